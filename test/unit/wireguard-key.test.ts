// The host's WireGuard key pair: X25519 as wg does it (RFC 7748 vector), kept 0600 across restarts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateWireguardKeyPair, loadOrCreateWireguardKey, wireguardKeyFile, wireguardPublicKey, WG_KEY_FILE } from '../../src/host/wireguard-key';
import { isWireguardKey } from '../../src/domain/wireguard-config';

const hex64 = (h: string) => Buffer.from(h, 'hex').toString('base64');

test('public key from private key: RFC 7748 §6.1 test vectors (Alice and Bob)', () => {
  assert.equal(wireguardPublicKey(hex64('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a')), hex64('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a'));
  assert.equal(wireguardPublicKey(hex64('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb')), hex64('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f'));
  assert.throws(() => wireguardPublicKey('abc'), /not base64 of 32 bytes/);
});

test('a generated pair is two distinct wg-format keys whose public half matches', () => {
  const a = generateWireguardKeyPair();
  const b = generateWireguardKeyPair();
  assert.ok(isWireguardKey(a.privateKey) && isWireguardKey(a.publicKey));
  assert.equal(wireguardPublicKey(a.privateKey), a.publicKey);
  assert.notEqual(a.privateKey, b.privateKey);
  assert.notEqual(a.privateKey, a.publicKey);
});

test('the private key is persisted 0600 and reused on the next start', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wgkey-'));
  try {
    const state = join(dir, 'state');
    const first = await loadOrCreateWireguardKey(state);
    assert.equal(first.created, true);
    const path = join(state, WG_KEY_FILE);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(state)).mode & 0o777, 0o700);
    assert.equal((await readFile(path, 'utf8')).trim(), first.privateKey);
    const again = await loadOrCreateWireguardKey(state);
    assert.deepEqual(again, { privateKey: first.privateKey, publicKey: first.publicKey, created: false });
    await chmod(path, 0o644); // loosened by hand: tightened back
    await loadOrCreateWireguardKey(state);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a key file that is not a key is an error naming it, and is left alone', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wgkey-'));
  try {
    const path = join(dir, WG_KEY_FILE);
    await writeFile(path, 'garbage\n', { mode: 0o600 });
    await assert.rejects(loadOrCreateWireguardKey(dir), (e: Error) => e.message.includes(path) && /not a WireGuard private key/.test(e.message) && !e.message.includes('garbage'));
    assert.equal(await readFile(path, 'utf8'), 'garbage\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('our public key is what `wg pubkey` (wireguard-tools) prints for the same private key', async () => {
  const { execFileSync } = await import('node:child_process');
  for (let i = 0; i < 3; i++) {
    const pair = generateWireguardKeyPair();
    assert.equal(execFileSync('wg', ['pubkey'], { input: pair.privateKey + '\n', timeout: 5000 }).toString().trim(), pair.publicKey);
  }
  const priv = execFileSync('wg', ['genkey'], { timeout: 5000 }).toString().trim();
  assert.equal(wireguardPublicKey(priv), execFileSync('wg', ['pubkey'], { input: priv + '\n', timeout: 5000 }).toString().trim());
});

test('one key file per overlay: wireguard.key for the default one, wireguard-<name>.key for a named one, two different keys', async () => {
  assert.equal(wireguardKeyFile('default'), 'wireguard.key');
  assert.equal(wireguardKeyFile('blue'), 'wireguard-blue.key');
  assert.throws(() => wireguardKeyFile('../x'), /cannot name a key file/);
  const dir = await mkdtemp(join(tmpdir(), 'wgkey-'));
  try {
    const a = await loadOrCreateWireguardKey(dir, wireguardKeyFile('default'));
    const b = await loadOrCreateWireguardKey(dir, wireguardKeyFile('blue'));
    assert.notEqual(a.publicKey, b.publicKey);
    assert.equal((await stat(join(dir, 'wireguard-blue.key'))).mode & 0o777, 0o600);
    assert.equal((await loadOrCreateWireguardKey(dir, wireguardKeyFile('blue'))).publicKey, b.publicKey);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
