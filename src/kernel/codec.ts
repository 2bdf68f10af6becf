/**
 * Value codecs at the netlink boundary: the package takes and returns IPv4 and MAC addresses as raw
 * Buffers and some u32 attributes (IFLA_LINK, NDA_IFINDEX) as little-endian Buffers. The rest of the
 * daemon uses dotted strings, lowercase colon MACs and "a.b.c.d/n"; these helpers convert, and throw
 * INVALID for malformed input before anything reaches the kernel. Kept here, not in domain/, so the
 * adapter depends on nothing but errors.ts, and
 * free of the native package so that test fakes can use it too.
 */
import { invalid, OverlayError } from '../errors';

// Netlink message header values (linux/netlink.h), shared by every hand-encoding part of the adapter.
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_DUMP = 0x300;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
// Attribute header values (linux/netlink.h): NLA_F_NESTED marks a nested attribute (the kernel's
// strict validation refuses a nest without it), NLA_TYPE_MASK strips both flag bits from a type.
export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = 0x3fff;

// ---- attributes (struct nlattr: u16 length incl. the 4-byte header, u16 type; padded to 4) ----
/** A NUL-terminated string value (NLA_NUL_STRING / NLA_STRING as the kernel puts them). */
export const str = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');
export function attr(type: number, value: Buffer): Buffer {
  const len = 4 + value.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  value.copy(b, 4);
  return b;
}
export const nest = (type: number, ...attrs: Buffer[]): Buffer => attr(type | NLA_F_NESTED, Buffer.concat(attrs));
/** Attributes of `buf` from `start` (4 after an nfgenmsg or a genlmsghdr), type → value. */
export function attrsOf(buf: Buffer, start = 4): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (const [type, value] of attrList(buf, start)) m.set(type, value);
  return m;
}
/** Attributes in order (repeated types kept), flags stripped from the type; stops quietly at a
 *  malformed one (attrListStrict throws instead). */
export function attrList(buf: Buffer, start = 0): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (let off = start; off + 4 <= buf.length; ) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    out.push([buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + 4, off + len)]);
    off += (len + 3) & ~3;
  }
  return out;
}
/** Where the value of the first attribute of `type` in `buf[start, end)` starts (its length:
 *  {@link attrValueLength}), or -1. Allocates nothing: for dumps of thousands of elements. */
export function attrOffset(buf: Buffer, start: number, end: number, type: number): number {
  for (let off = start; off + 4 <= end; ) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > end) return -1;
    if ((buf.readUInt16LE(off + 2) & NLA_TYPE_MASK) === type) return off + 4;
    off += (len + 3) & ~3;
  }
  return -1;
}
/** The value length of the attribute whose value starts at `valueOff` (from {@link attrOffset}). */
export const attrValueLength = (buf: Buffer, valueOff: number): number => buf.readUInt16LE(valueOff - 4) - 4;
/** Like attrList, but a truncated or overlong attribute, or stray bytes at the end, is an error
 *  naming `where` and the offset (for replies we must read whole, e.g. a WireGuard dump). */
export function attrListStrict(buf: Buffer, start: number, where: string): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  let off = start;
  while (off < buf.length) {
    const left = buf.length - off;
    if (left < 4) throw new OverlayError('KERNEL', `${where}: ${left} stray byte(s) at offset ${off}, shorter than an attribute header (4)`);
    const len = buf.readUInt16LE(off);
    if (len < 4) throw new OverlayError('KERNEL', `${where}: attribute at offset ${off} has length ${len}, less than its own header (4)`);
    if (len > left) throw new OverlayError('KERNEL', `${where}: attribute type ${buf.readUInt16LE(off + 2) & NLA_TYPE_MASK} at offset ${off} claims ${len} bytes, only ${left} left`);
    out.push([buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + 4, off + len)]);
    off += Math.min((len + 3) & ~3, left);
  }
  return out;
}
/** A string attribute's text, without its NUL terminator (undefined for a missing attribute). */
export const attrText = (b: Buffer | undefined): string | undefined => b?.toString('utf8').replace(/\0+$/, '');

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export interface ParsedCidr {
  ip: string; // as written
  net: number; // u32, host bits cleared
  len: number;
}

export function ip4ToInt(ip: string, what = 'IPv4 address'): number {
  if (typeof ip !== 'string' || !IPV4_RE.test(ip)) throw invalid(`${what}: "${String(ip)}" is not an IPv4 address`);
  let acc = 0;
  let part = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i); // digits and dots only (checked above); no split: this runs per kernel write
    if (c === 0x2e) {
      acc = ((acc << 8) | part) >>> 0;
      part = 0;
    } else part = part * 10 + (c - 0x30);
  }
  return ((acc << 8) | part) >>> 0;
}

export function intToIp4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function ip4ToBuf(ip: string, what?: string): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ip4ToInt(ip, what));
  return b;
}

/** '' for a missing or non-IPv4 attribute. */
export function bufToIp4(b: Buffer | undefined): string {
  return b && b.length === 4 ? intToIp4(b.readUInt32BE(0)) : '';
}

const MAC_RE_ANY_CASE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Throws INVALID (naming `what`) unless `mac` is a MAC like 0e:2a:01:02:03:04 (either case). */
export function checkMac(mac: string, what: string): void {
  if (typeof mac !== 'string' || !MAC_RE_ANY_CASE.test(mac)) throw invalid(`${what}: "${String(mac)}" is not a MAC address like 0e:2a:01:02:03:04`);
}

/** The 6 bytes of a MAC that passed checkMac, written at `b[off]` (no intermediate strings or arrays). */
export function writeMac(b: Buffer, off: number, mac: string): void {
  const nibble = (c: number) => (c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57);
  for (let i = 0; i < 6; i++) b[off + i] = (nibble(mac.charCodeAt(i * 3)) << 4) | nibble(mac.charCodeAt(i * 3 + 1));
}

export function macToBuf(mac: string, what = 'MAC address'): Buffer {
  const m = typeof mac === 'string' ? mac.toLowerCase() : '';
  if (!MAC_RE.test(m)) throw invalid(`${what}: "${String(mac)}" is not a MAC address like 0e:2a:01:02:03:04`);
  return Buffer.from(m.split(':').map((h) => parseInt(h, 16)));
}

/** '' for a missing address (some devices have none). */
export function bufToMac(b: Buffer | undefined): string {
  return b ? Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':') : '';
}

export function maskOf(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

export function parseCidr(text: string, what = 'CIDR'): ParsedCidr {
  const m = typeof text === 'string' ? /^([^/]+)\/(\d{1,2})$/.exec(text) : null;
  const len = m ? Number(m[2]) : NaN;
  if (!m || !(len >= 0 && len <= 32)) throw invalid(`${what}: "${String(text)}" is not an IPv4 CIDR like 10.1.0.0/16`);
  const ip = m[1] as string;
  return { ip, net: (ip4ToInt(ip, what) & maskOf(len)) >>> 0, len };
}

/** A route destination must have no host bits set (the kernel answers EINVAL otherwise). */
export function parseNetworkCidr(text: string, what = 'route destination'): ParsedCidr {
  const c = parseCidr(text, what);
  if (ip4ToInt(c.ip) !== c.net) throw invalid(`${what}: "${text}" has host bits set (use ${intToIp4(c.net)}/${c.len})`);
  return c;
}

export function cidrContains(c: ParsedCidr, ip: string): boolean {
  return ((ip4ToInt(ip) & maskOf(c.len)) >>> 0) === c.net;
}

export function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

export function readU32le(b: Buffer | undefined): number {
  return b && b.length >= 4 ? b.readUInt32LE(0) : 0;
}

const IFNAME_RE = /^[^\s/:]{1,15}$/;

/** Linux interface names: 1–15 bytes, no whitespace, '/' or ':'. */
export function checkIfName(name: string, what = 'interface name'): string {
  if (typeof name !== 'string' || !IFNAME_RE.test(name) || Buffer.byteLength(name) > 15 || name === '.' || name === '..') {
    throw invalid(`${what}: "${String(name)}" is not a valid interface name (1-15 characters, no spaces, "/" or ":")`);
  }
  return name;
}
