/**
 * WireGuard's cross-platform userspace API (the text protocol of wireguard-go's UAPI socket,
 * /var/run/wireguard/<dev>.sock): requests and replies as `key=value` lines ending in a blank line.
 * Keys travel in hex there (wg and leases use base64); a request is `set=1` or `get=1`, a reply
 * ends with `errno=N`. Pure text here; src/kernel speaks it over the socket.
 */
import { invalid } from '../errors';
import { checkWireguardKey } from './wireguard-config';

export interface UapiPeer {
  readonly publicKey: string; // base64
  readonly endpoint?: string; // "192.0.2.2:51820"
  readonly allowedIPs: readonly string[];
  readonly presharedKey?: string; // base64
  readonly persistentKeepalive?: number; // seconds
}

export interface UapiDevice {
  readonly privateKey?: string; // base64 (never logged)
  readonly listenPort?: number;
  readonly peers: readonly UapiPeer[];
}

const hex = (b64: string, what: string) => Buffer.from(checkWireguardKey(b64, what), 'base64').toString('hex');
const b64 = (h: string, what: string) => {
  if (!/^[0-9a-f]{64}$/.test(h)) throw invalid(`wireguard UAPI: ${what} is not 64 hex digits`);
  return Buffer.from(h, 'hex').toString('base64');
};

function peerLines(p: UapiPeer): string[] {
  const out = [`public_key=${hex(p.publicKey, 'peer public key')}`];
  if (p.presharedKey) out.push(`preshared_key=${hex(p.presharedKey, 'PSK')}`);
  if (p.endpoint) out.push(`endpoint=${p.endpoint}`);
  out.push(`persistent_keepalive_interval=${p.persistentKeepalive ?? 0}`);
  out.push('replace_allowed_ips=true', ...p.allowedIPs.map((a) => `allowed_ip=${a}`));
  return out;
}

/** A `set=1` request: the device's key and port, then `peers` set (each one's allowed IPs replaced), `remove` removed. */
export function formatUapiSet(dev: { privateKey?: string; listenPort?: number; replacePeers?: boolean }, peers: readonly UapiPeer[], remove: readonly string[] = []): string {
  const lines = ['set=1'];
  if (dev.privateKey) lines.push(`private_key=${hex(dev.privateKey, 'private key')}`);
  if (dev.listenPort !== undefined) lines.push(`listen_port=${dev.listenPort}`);
  if (dev.replacePeers) lines.push('replace_peers=true');
  for (const p of peers) lines.push(...peerLines(p));
  for (const k of remove) lines.push(`public_key=${hex(k, 'peer public key')}`, 'remove=true');
  return lines.join('\n') + '\n\n';
}

/** The errno of a reply (0 = ok); throws when the reply has none. */
export function uapiErrno(reply: string): number {
  const m = /(?:^|\n)errno=(-?\d+)\n/.exec(reply);
  if (!m) throw invalid(`wireguard UAPI: reply without errno: ${JSON.stringify(reply.slice(0, 80))}`);
  return Number(m[1]);
}

/** Parse a `get=1` reply into the device (keys back in base64). */
export function parseUapiGet(reply: string): UapiDevice {
  const errno = uapiErrno(reply);
  if (errno !== 0) throw invalid(`wireguard UAPI: get failed with errno ${errno}`);
  let privateKey: string | undefined;
  let listenPort: number | undefined;
  const peers: { publicKey: string; endpoint?: string; allowedIPs: string[]; presharedKey?: string; persistentKeepalive?: number }[] = [];
  for (const line of reply.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const k = line.slice(0, eq);
    const v = line.slice(eq + 1);
    const peer = peers[peers.length - 1];
    if (k === 'public_key') peers.push({ publicKey: b64(v, 'public_key'), allowedIPs: [] });
    else if (!peer && k === 'private_key') privateKey = b64(v, 'private_key');
    else if (!peer && k === 'listen_port') listenPort = Number(v);
    else if (peer && k === 'endpoint') peer.endpoint = v;
    else if (peer && k === 'allowed_ip') peer.allowedIPs.push(v);
    else if (peer && k === 'preshared_key' && !/^0+$/.test(v)) peer.presharedKey = b64(v, 'preshared_key');
    else if (peer && k === 'persistent_keepalive_interval' && v !== '0') peer.persistentKeepalive = Number(v);
  }
  return { ...(privateKey ? { privateKey } : {}), ...(listenPort !== undefined ? { listenPort } : {}), peers };
}
