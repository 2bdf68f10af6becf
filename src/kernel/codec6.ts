/**
 * IPv6 value codecs at the netlink boundary, the v6 half of codec.ts: 16-byte buffers in and out,
 * text as RFC 5952 (what `ip -6` prints: lowercase, no leading zeros, the longest run of two or more
 * zero groups as `::`, the first of equal runs). Unlike domain/ipv6.ts's formatIPv6 (which copies
 * Go's net.IP.String() quirks for lease keys) nothing here prints dotted IPv4, so a dump always
 * reads back the text the reconciler wrote for an ordinary v6 address.
 *
 * Which family a call is about is told by its text: an address with a ':' is IPv6 (`familyOf`).
 * That keeps the Kernel door's methods single (replaceRoute, replaceNeighbour, replaceFdb, …)
 * instead of a v6 copy of each; only the dumps take a family, since they have no address to look at.
 */
import { invalid } from '../errors';
import { groupsText, isIPv6, parseIPv6 } from '../domain/ipv6';

export const AF_INET = 2;
export const AF_INET6 = 10;

/** 4 or 6: which family an address or CIDR text is (a ':' means IPv6). */
export function familyOf(text: string): 4 | 6 {
  return typeof text === 'string' && text.includes(':') ? 6 : 4;
}

export function ip6ToBuf(text: string, what = 'IPv6 address'): Buffer {
  if (!isIPv6(text)) throw invalid(`${what}: "${String(text)}" is not an IPv6 address`);
  let n = parseIPv6(text, what);
  const b = Buffer.alloc(16);
  for (let i = 15; i >= 0; i--) {
    b[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return b;
}

/** The RFC 5952 text of the 16 bytes at `b[o, o+16)`. */
export function ip6At(b: Buffer, o: number): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(b.readUInt16BE(o + 2 * i));
  return groupsText(g);
}

/** '' for a missing or non-IPv6 attribute. */
export function bufToIp6(b: Buffer | undefined): string {
  return b && b.length === 16 ? ip6At(b, 0) : '';
}

/** Canonical text of an IPv6 address (INVALID if it is none). */
export function canonicalIp6(text: string, what?: string): string {
  return ip6At(ip6ToBuf(text, what), 0);
}

export interface ParsedCidr6 {
  ip: string; // canonical
  bytes: Buffer; // the address as written
  len: number;
}

export function parseCidr6(text: string, what = 'IPv6 CIDR'): ParsedCidr6 {
  const m = typeof text === 'string' ? /^([^/]+)\/(\d{1,3})$/.exec(text) : null;
  const len = m ? Number(m[2]) : NaN;
  if (!m || !(len >= 0 && len <= 128) || !isIPv6(m[1])) throw invalid(`${what}: "${String(text)}" is not an IPv6 CIDR like fd00:10::/64`);
  const bytes = ip6ToBuf(m[1], what);
  return { ip: ip6At(bytes, 0), bytes, len };
}

/** A copy of `bytes` with the bits after `len` cleared. */
export function maskBytes6(bytes: Buffer, len: number): Buffer {
  const out = Buffer.from(bytes);
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, len - 8 * i));
    out[i] = (out[i] as number) & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

/** A route destination: no host bits set (the kernel would clear them silently for v6). */
export function parseNetworkCidr6(text: string, what = 'route destination'): ParsedCidr6 {
  const c = parseCidr6(text, what);
  const net = maskBytes6(c.bytes, c.len);
  if (!net.equals(c.bytes)) throw invalid(`${what}: "${text}" has host bits set (use ${ip6At(net, 0)}/${c.len})`);
  return c;
}

export function cidr6ContainsText(c: ParsedCidr6, ip: string): boolean {
  return maskBytes6(ip6ToBuf(ip), c.len).equals(maskBytes6(c.bytes, c.len));
}
