/**
 * Neighbour/FDB and route messages encoded and decoded by hand (the layouts of linux/neighbour.h
 * and linux/rtnetlink.h), for the tables that grow with the number of peers.
 *
 * Why not the netlink package's formatters and parser (docs/performance.md §7): they build generic
 * objects for every message (a header object, an attribute map, enum names, flag objects) and a
 * buffer per attribute, ≈ 9 kB of garbage per write and several kB per dumped entry; at 10,000
 * peers that garbage was most of the daemon's peak RSS. Here a write is one Buffer of 40–60 bytes,
 * and a dumped entry is read straight into the one small object the caller keeps.
 * Little-endian hosts only, like the rest of this adapter (codec.ts).
 * IPv6 (issue 21): NDA_DST, RTA_DST and RTA_GATEWAY of 16 bytes; a neighbour's or an FDB entry's
 * family of address is told by its text (codec6.ts), a route's by its rtm_family.
 */
import { checkMac, ip4ToInt, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, writeMac } from './codec';
import { AF_INET, AF_INET6, familyOf, ip6At, ip6ToBuf } from './codec6';

export { NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST };

export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;
export const RTM_NEWNEIGH = 28;
export const RTM_DELNEIGH = 29;
export const RTM_GETNEIGH = 30;
export const NUD_REACHABLE = 0x02;
export const NUD_NOARP = 0x40;
export const NUD_PERMANENT = 0x80;
export const NTF_SELF = 0x02;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_TABLE = 15;
const HEADER = 16;
const BODY = 12; // ndmsg and rtmsg are both 12 bytes

function start(type: number, flags: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size).fill(0); // from node's pool: no ArrayBuffer of its own per write
  b.writeUInt32LE(size, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(flags | NLM_F_REQUEST | NLM_F_ACK, 6);
  return b; // seq and pid stay 0: the writer sets the seq, the kernel ignores the pid
}

function putAttr(b: Buffer, off: number, type: number, len: number): number {
  b.writeUInt16LE(4 + len, off);
  b.writeUInt16LE(type, off + 2);
  return off + 4;
}

export interface NeighMessage {
  family: number;
  ifindex: number;
  state: number; // NUD_* bits, 0 for a delete
  ntfFlags: number; // NTF_* bits
  dst?: string; // IPv4 or IPv6 (an FDB entry's remote VTEP may be either)
  lladdr?: string; // MAC
}

/** RTM_NEWNEIGH / RTM_DELNEIGH with NDA_DST and NDA_LLADDR as given (validated: INVALID if malformed). */
export function neighMessage(type: number, flags: number, n: NeighMessage): Buffer {
  const what = n.family === 7 /* AF_BRIDGE */ ? 'fdb' : 'neighbour';
  const dstWhat = what === 'fdb' ? 'fdb dst' : 'neighbour IP';
  const v6 = n.dst !== undefined && familyOf(n.dst) === 6;
  const dst = n.dst === undefined || v6 ? null : ip4ToInt(n.dst, dstWhat);
  const dst6 = n.dst !== undefined && v6 ? ip6ToBuf(n.dst, dstWhat) : null;
  const mac = n.lladdr;
  if (mac !== undefined) checkMac(mac, what === 'fdb' ? 'fdb MAC' : 'neighbour MAC');
  const b = start(type, flags, HEADER + BODY + (dst === null ? 0 : 8) + (dst6 ? 20 : 0) + (mac !== undefined ? 12 : 0));
  b[HEADER] = n.family;
  b.writeInt32LE(n.ifindex, HEADER + 4);
  b.writeUInt16LE(n.state, HEADER + 8);
  b[HEADER + 10] = n.ntfFlags;
  let off = HEADER + BODY;
  if (dst !== null) {
    b.writeUInt32BE(dst, putAttr(b, off, NDA_DST, 4));
    off += 8;
  }
  if (dst6) {
    dst6.copy(b, putAttr(b, off, NDA_DST, 16));
    off += 20;
  }
  if (mac !== undefined) writeMac(b, putAttr(b, off, NDA_LLADDR, 6), mac);
  return b;
}

export interface RouteMessage {
  family?: number; // AF_INET (default) or AF_INET6
  dstLen: number;
  dst: number | Buffer | null; // u32 (IPv4) or 16 bytes (IPv6), null for the default route
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags: number; // rtm_flags (RTNH_F_ONLINK …)
  gateway?: number | Buffer; // u32 or 16 bytes
  oif?: number;
}

export function routeMessage(type: number, flags: number, r: RouteMessage): Buffer {
  const addrSize = (v: number | Buffer | null | undefined) => (v === null || v === undefined ? 0 : typeof v === 'number' ? 8 : 4 + v.length);
  const size = HEADER + BODY + addrSize(r.dst) + addrSize(r.gateway) + (r.oif ? 8 : 0);
  const b = start(type, flags, size);
  b[HEADER] = r.family ?? AF_INET;
  b[HEADER + 1] = r.dstLen;
  b[HEADER + 4] = r.table;
  b[HEADER + 5] = r.protocol;
  b[HEADER + 6] = r.scope;
  b[HEADER + 7] = r.type;
  b.writeUInt32LE(r.flags >>> 0, HEADER + 8);
  let off = HEADER + BODY;
  if (r.dst !== null) off = putAddr(b, off, RTA_DST, r.dst);
  if (r.gateway !== undefined) off = putAddr(b, off, RTA_GATEWAY, r.gateway);
  if (r.oif) b.writeUInt32LE(r.oif, putAttr(b, off, RTA_OIF, 4));
  return b;
}

function putAddr(b: Buffer, off: number, type: number, v: number | Buffer): number {
  if (typeof v !== 'number') {
    v.copy(b, putAttr(b, off, type, v.length));
    return off + 4 + ((v.length + 3) & ~3);
  }
  b.writeUInt32BE(v >>> 0, putAttr(b, off, type, 4));
  return off + 8;
}

// ---- decoding (one dumped message's payload, after the 16-byte header) ----

// Addresses are written as ASCII into one scratch buffer and read back as one flat string: a
// template literal of 7 or 11 parts builds a chain of intermediate strings that is flattened again
// when the text is hashed (a full sync at 10,000 peers decodes 30,000 entries, every 10 s).
const SCRATCH = Buffer.alloc(24);
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
const ip4At = (b: Buffer, o: number): string => {
  let k = 0;
  for (let i = 0; i < 4; i++) {
    let v = b[o + i] as number;
    if (i) SCRATCH[k++] = 0x2e; // '.'
    if (v >= 100) {
      SCRATCH[k++] = 0x30 + ((v / 100) | 0);
      v %= 100;
      SCRATCH[k++] = 0x30 + ((v / 10) | 0);
      v %= 10;
    } else if (v >= 10) {
      SCRATCH[k++] = 0x30 + ((v / 10) | 0);
      v %= 10;
    }
    SCRATCH[k++] = 0x30 + v;
  }
  return SCRATCH.toString('latin1', 0, k);
};
const macAt = (b: Buffer, o: number): string => {
  let k = 0;
  for (let i = 0; i < 6; i++) {
    const v = b[o + i] as number;
    if (i) SCRATCH[k++] = 0x3a; // ':'
    SCRATCH[k++] = HEX_DIGITS[v >> 4] as number;
    SCRATCH[k++] = HEX_DIGITS[v & 15] as number;
  }
  return SCRATCH.toString('latin1', 0, k);
};

export interface DumpedNeigh {
  family: number;
  ifindex: number;
  state: number;
  dst: string; // IPv4 or IPv6 text, '' if absent
  lladdr: string; // '' if absent or not a MAC
}

/** The ndmsg + attributes at `p[start, end)` (a dump reply's payload). */
export function decodeNeigh(p: Buffer, start = 0, end = p.length): DumpedNeigh | null {
  if (end - start < BODY) return null;
  const n: DumpedNeigh = { family: p[start] as number, ifindex: p.readInt32LE(start + 4), state: p.readUInt16LE(start + 8), dst: '', lladdr: '' };
  for (let off = start + BODY; off + 4 <= end; ) {
    const len = p.readUInt16LE(off);
    if (len < 4 || off + len > end) break;
    const type = p.readUInt16LE(off + 2) & 0x3fff;
    if (type === NDA_DST && len === 8) n.dst = ip4At(p, off + 4);
    else if (type === NDA_DST && len === 20) n.dst = ip6At(p, off + 4);
    else if (type === NDA_LLADDR && len === 10) n.lladdr = macAt(p, off + 4);
    off += (len + 3) & ~3;
  }
  return n;
}

export interface DumpedRoute {
  family: number;
  dstLen: number;
  table: number;
  type: number;
  flags: number;
  dst: string; // '' for the default route
  gateway: string; // '' if none
  oif: number;
  priority: number;
}

/** The rtmsg + attributes at `p[start, end)` (a dump reply's payload). */
export function decodeRoute(p: Buffer, start = 0, end = p.length): DumpedRoute | null {
  if (end - start < BODY) return null;
  const r: DumpedRoute = {
    family: p[start] as number,
    dstLen: p[start + 1] as number,
    table: p[start + 4] as number,
    type: p[start + 7] as number,
    flags: p.readUInt32LE(start + 8),
    dst: '',
    gateway: '',
    oif: 0,
    priority: 0,
  };
  for (let off = start + BODY; off + 4 <= end; ) {
    const len = p.readUInt16LE(off);
    if (len < 4 || off + len > end) break;
    if (len === 8) {
      const type = p.readUInt16LE(off + 2) & 0x3fff;
      if (type === RTA_DST) r.dst = ip4At(p, off + 4);
      else if (type === RTA_GATEWAY) r.gateway = ip4At(p, off + 4);
      else if (type === RTA_OIF) r.oif = p.readUInt32LE(off + 4);
      else if (type === RTA_PRIORITY) r.priority = p.readUInt32LE(off + 4);
      else if (type === RTA_TABLE) r.table = p.readUInt32LE(off + 4);
    } else if (len === 20 && r.family === AF_INET6) {
      const type = p.readUInt16LE(off + 2) & 0x3fff;
      if (type === RTA_DST) r.dst = ip6At(p, off + 4);
      else if (type === RTA_GATEWAY) r.gateway = ip6At(p, off + 4);
    }
    off += (len + 3) & ~3;
  }
  return r;
}

/** A dump request: `type` (RTM_GET*) with NLM_F_DUMP and the given body. */
export function dumpRequest(type: number, body: Buffer): Buffer {
  const b = Buffer.alloc(HEADER + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
  body.copy(b, HEADER);
  return b;
}
