/**
 * Value codecs at the netlink boundary: the package takes and returns IPv4 and MAC addresses as raw
 * Buffers and some u32 attributes (IFLA_LINK, NDA_IFINDEX) as little-endian Buffers. The rest of the
 * daemon uses dotted strings, lowercase colon MACs and "a.b.c.d/n"; these helpers convert, and throw
 * INVALID for malformed input before anything reaches the kernel. Kept here, not in domain/, so the
 * adapter depends on nothing but errors.ts, and
 * free of the native package so that test fakes can use it too.
 */
import { invalid } from '../errors';

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

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export interface ParsedCidr {
  ip: string; // as written
  net: number; // u32, host bits cleared
  len: number;
}

export function ip4ToInt(ip: string, what = 'IPv4 address'): number {
  if (typeof ip !== 'string' || !IPV4_RE.test(ip)) throw invalid(`${what}: "${String(ip)}" is not an IPv4 address`);
  return ip.split('.').reduce((acc, part) => ((acc << 8) | Number(part)) >>> 0, 0);
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
