/**
 * MAC addresses. The VtepMAC of flannel.<VNI> is derived from the VNI and the public IP, so a
 * host that restarts or reboots publishes the same MAC and its peers need no update (flanneld
 * picks a random one each time its device is recreated: flannel#1036, #533).
 */
import { createHash } from 'node:crypto';
import { invalid } from '../errors';

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function isMac(text: unknown): text is string {
  return typeof text === 'string' && MAC_RE.test(text.toLowerCase());
}

export function normalizeMac(text: string, what = 'MAC address'): string {
  const lower = typeof text === 'string' ? text.toLowerCase().replace(/-/g, ':') : '';
  if (!MAC_RE.test(lower)) throw invalid(`${what}: "${String(text)}" is not a MAC address like 0e:2a:01:02:03:04`);
  return lower;
}

export function macFromBytes(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

export function macToBytes(mac: string): Buffer {
  return Buffer.from(normalizeMac(mac).split(':').map((h) => parseInt(h, 16)));
}

/** A locally administered unicast MAC, stable for (salt, parts). */
export function stableMac(...parts: (string | number)[]): string {
  const digest = createHash('sha256').update(['overlay-flannel', ...parts].join('/')).digest();
  const bytes = Uint8Array.from(digest.subarray(0, 6));
  bytes[0] = (bytes[0] & 0xfc) | 0x02; // unicast, locally administered
  return macFromBytes(bytes);
}

/** The VtepMAC this host publishes for an overlay. */
export function vtepMacFor(vni: number, publicIP: string): string {
  return stableMac('vtep', vni, publicIP);
}

/**
 * The MAC of a Docker network's bridge, stable for its name. Set explicitly, it pins the bridge:
 * left alone, Linux gives a bridge the lowest MAC of its ports, so every container that starts or
 * stops can change the gateway's MAC under the other containers, whose ARP entries then point at a
 * MAC nobody has until they expire (seconds of lost traffic; Docker's bridge driver pins it too).
 */
export function bridgeMacFor(bridgeName: string): string {
  return stableMac('bridge', bridgeName);
}
