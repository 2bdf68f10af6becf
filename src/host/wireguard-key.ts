/**
 * This host's WireGuard key pair (flannel's wireguard backend): X25519 from node's crypto, both keys
 * as wg prints them (standard base64 of the raw 32 bytes). The private key lives in one file per wireguard overlay in
 * the daemon's state dir, mode 0600 (dir 0700 when we create it), and is reused on every start, so
 * the public key in our lease (and every peer's entry for us) survives restarts and upgrades.
 * Written to a temporary file (0600 from its creation) and renamed, so a crash never leaves half a
 * key. A file that is not a key is an error naming the path, never overwritten: replacing the key
 * would silently cut this host off from every peer still holding the old public key.
 * The private key is never logged: nothing here formats it into a message.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { invalid } from '../errors';
import { isWireguardKey } from '../domain/wireguard-config';

export const WG_KEY_FILE = 'wireguard.key';

/** The key file of an overlay: `wireguard.key` for the default one (as before named overlays had
 *  wireguard), `wireguard-<name>.key` for a named one (overlay names are [a-zA-Z0-9_.-], no "/"). */
export function wireguardKeyFile(overlay: string): string {
  if (overlay === 'default') return WG_KEY_FILE;
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(overlay)) throw invalid(`overlay name "${overlay}" cannot name a key file`);
  return `wireguard-${overlay}.key`;
}

export interface WireguardKeyPair {
  readonly privateKey: string; // base64, 32 bytes: never log
  readonly publicKey: string; // base64, 32 bytes: goes into our lease
}

// PKCS#8 DER of an X25519 private key: this fixed prefix, then the 32 raw bytes (RFC 8410).
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

function rawPublic(key: KeyObject): string {
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  return Buffer.from(String(jwk.x), 'base64url').toString('base64');
}

/** The public key of a base64 X25519 private key (what `wg pubkey` prints). */
export function wireguardPublicKey(privateKey: string): string {
  if (!isWireguardKey(privateKey)) throw invalid('wireguard private key: not base64 of 32 bytes');
  const der = Buffer.concat([PKCS8_X25519_PREFIX, Buffer.from(privateKey, 'base64')]);
  return rawPublic(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
}

/** A fresh pair (what `wg genkey | tee priv | wg pubkey` gives). */
export function generateWireguardKeyPair(): WireguardKeyPair {
  const { privateKey } = generateKeyPairSync('x25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return { privateKey: Buffer.from(String(jwk.d), 'base64url').toString('base64'), publicKey: rawPublic(privateKey) };
}

/** Load the key in `<stateDir>/<file>` (wireguard.key), or make and persist one; its mode is kept at 0600. */
export async function loadOrCreateWireguardKey(stateDir: string, file = WG_KEY_FILE): Promise<WireguardKeyPair & { created: boolean }> {
  const path = join(stateDir, file);
  let text: string | null = null;
  try {
    text = (await readFile(path, 'utf8')).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (text !== null) {
    if (!isWireguardKey(text)) throw invalid(`${path}: not a WireGuard private key (base64 of 32 bytes); fix or remove it (removing it gives this host a new public key)`);
    if (((await stat(path)).mode & 0o077) !== 0) await chmod(path, 0o600);
    return { privateKey: text, publicKey: wireguardPublicKey(text), created: false };
  }
  const pair = generateWireguardKeyPair();
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, pair.privateKey + '\n', { mode: 0o600, flag: 'wx' });
  await rename(tmp, path);
  return { ...pair, created: true };
}
