/**
 * Kernel WireGuard's generic netlink messages, encoded and decoded by hand (pure: no socket here;
 * wireguard-genl.ts sends them). Numbers and layouts are those of include/uapi/linux/wireguard.h
 * (family "wireguard", version 1) and linux/genetlink.h (the nlctrl controller), checked against
 * the kernel's drivers/net/wireguard/netlink.c (what it validates, how it dumps) and
 * wireguard-tools' ipc-linux.h (how a big configuration is split). docs/wireguard.md says how.
 * - Every nest carries NLA_F_NESTED, the list entries (type 0) too: the family is validated
 *   strictly, and nla_parse_nested refuses a nest without the flag ("NLA_F_NESTED is missing").
 * - u16/u32 are host order (little-endian hosts only, like the rest of this adapter); in the
 *   endpoint's sockaddr the port and address are network order, the family host order.
 * - WG_CMD_SET_DEVICE is split into messages of at most `maxBytes` (the PEERS nest's u16 length
 *   caps one message near 64 KiB): device attributes and REPLACE_PEERS only in the first; a peer
 *   whose allowed IPs do not fit goes on in the next message with only its key, its flags minus
 *   REPLACE_ALLOWEDIPS, and the rest of its allowed IPs (as `wg setconf` does).
 * - A GET_DEVICE dump is several messages: the device's attributes in the first, peers after; a
 *   peer cut in two comes again with only its key and more allowed IPs: adjacent entries with the
 *   same key are coalesced (wireguard.h: "up to the receiver to coalesce").
 * Keys are base64 here (as wg prints them) and 32 bytes on the wire; a key of another length is an
 * error naming the attribute, never quoting a private key or PSK.
 */
import { Address6 } from 'ip-address';
import { invalid, OverlayError } from '../errors';
import { parseIPv6 } from '../domain/ipv6';
import { attr, attrListStrict, intToIp4, ip4ToBuf, ip4ToInt, nest, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, str, u32le } from './codec';

// linux/genetlink.h
export const GENL_ID_CTRL = 0x10; // NLMSG_MIN_TYPE: the controller's fixed family id
export const CTRL_CMD_GETFAMILY = 3; // CTRL_CMD_UNSPEC, NEWFAMILY, DELFAMILY, GETFAMILY
export const CTRL_ATTR_FAMILY_ID = 1; // NLA_U16
export const CTRL_ATTR_FAMILY_NAME = 2; // NLA_NUL_STRING
export const CTRL_ATTR_VERSION = 3; // NLA_U32
export const CTRL_ATTR_HDRSIZE = 4; // NLA_U32
export const CTRL_ATTR_MAXATTR = 5; // NLA_U32
const GENL_HDRLEN = 4; // struct genlmsghdr { u8 cmd; u8 version; u16 reserved; }
// linux/wireguard.h
export const WG_GENL_NAME = 'wireguard';
export const WG_GENL_VERSION = 1;
export const WG_KEY_LEN = 32;
export const WG_CMD_GET_DEVICE = 0;
export const WG_CMD_SET_DEVICE = 1;
export const WGDEVICE_F_REPLACE_PEERS = 1;
export const WGDEVICE_A = { IFINDEX: 1, IFNAME: 2, PRIVATE_KEY: 3, PUBLIC_KEY: 4, FLAGS: 5, LISTEN_PORT: 6, FWMARK: 7, PEERS: 8 } as const;
export const WGPEER_F_REMOVE_ME = 1;
export const WGPEER_F_REPLACE_ALLOWEDIPS = 2;
export const WGPEER_F_UPDATE_ONLY = 4;
export const WGPEER_A = { PUBLIC_KEY: 1, PRESHARED_KEY: 2, FLAGS: 3, ENDPOINT: 4, PERSISTENT_KEEPALIVE_INTERVAL: 5, LAST_HANDSHAKE_TIME: 6, RX_BYTES: 7, TX_BYTES: 8, ALLOWEDIPS: 9, PROTOCOL_VERSION: 10 } as const;
export const WGALLOWEDIP_A = { FAMILY: 1, IPADDR: 2, CIDR_MASK: 3 } as const;
export const AF_INET = 2;
export const AF_INET6 = 10;
/** Default split size: well under the PEERS nest's u16 limit and any socket's send buffer. */
export const WG_SET_MAX_BYTES = 32 << 10;

export type WgIface = { readonly name: string } | { readonly index: number };

export interface WgPeerSet {
  readonly publicKey: string;
  readonly remove?: boolean; // WGPEER_F_REMOVE_ME
  readonly updateOnly?: boolean; // WGPEER_F_UPDATE_ONLY
  readonly replaceAllowedIPs?: boolean; // WGPEER_F_REPLACE_ALLOWEDIPS
  readonly presharedKey?: string; // base64; all zeros removes it
  readonly endpoint?: string; // "192.0.2.2:51820" or "[2001:db8::2]:51820"
  readonly persistentKeepalive?: number; // seconds, 0 = off
  readonly allowedIPs?: readonly string[]; // "10.9.2.0/24", "fd00::/64"
}

export interface WgDeviceSet {
  readonly iface: WgIface;
  readonly privateKey?: string; // base64; all zeros removes it
  readonly listenPort?: number; // 0: the kernel picks one
  readonly fwmark?: number;
  readonly replacePeers?: boolean; // WGDEVICE_F_REPLACE_PEERS
  readonly peers?: readonly WgPeerSet[];
}

// ---- values ----
function keyBytes(b64: string, what: string): Buffer {
  const b = typeof b64 === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(b64) ? Buffer.from(b64, 'base64') : Buffer.alloc(0);
  if (b.length !== WG_KEY_LEN || b.toString('base64') !== b64) throw invalid(`wireguard genetlink: ${what} is not base64 of ${WG_KEY_LEN} bytes (WG_KEY_LEN)`);
  return b;
}

function ip6Bytes(text: string, what: string): Buffer {
  const n = parseIPv6(text, what);
  const b = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) b[i] = Number((n >> BigInt(8 * (15 - i))) & 0xffn);
  return b;
}

export function formatIp6(b: Buffer): string {
  return Address6.fromByteArray([...b]).correctForm();
}

/** struct sockaddr_in (16 bytes) or sockaddr_in6 (28) of "a.b.c.d:port" / "[v6]:port". */
export function encodeEndpoint(text: string): Buffer {
  const m = typeof text === 'string' ? /^(?:(\d+\.\d+\.\d+\.\d+)|\[([0-9a-fA-F:.]+)\]):(\d{1,5})$/.exec(text) : null;
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) throw invalid(`wireguard genetlink: endpoint ${JSON.stringify(text)} is not IPv4:port or [IPv6]:port`);
  const b = Buffer.alloc(m[1] ? 16 : 28);
  b.writeUInt16LE(m[1] ? AF_INET : AF_INET6, 0); // sa_family: host order
  b.writeUInt16BE(port, 2); // sin_port / sin6_port: network order
  if (m[1]) b.writeUInt32BE(ip4ToInt(m[1], 'wireguard endpoint'), 4); // sin_addr; sin_zero[8] stays 0
  else ip6Bytes(m[2] as string, 'wireguard endpoint').copy(b, 8); // after sin6_flowinfo (0); sin6_scope_id 0
  return b;
}

/** "a.b.c.d:port" / "[v6]:port" of a sockaddr; undefined for another family (as wg ignores it). */
export function decodeEndpoint(b: Buffer, where: string): string | undefined {
  if (b.length < 2) throw new OverlayError('KERNEL', `${where}: WGPEER_A_ENDPOINT is ${b.length} bytes, shorter than a sockaddr's family`);
  const family = b.readUInt16LE(0);
  const want = family === AF_INET ? 16 : family === AF_INET6 ? 28 : 0;
  if (!want) return undefined;
  if (b.length !== want) throw new OverlayError('KERNEL', `${where}: WGPEER_A_ENDPOINT of family ${family} is ${b.length} bytes, a sockaddr_in${family === AF_INET6 ? '6' : ''} is ${want}`);
  const port = b.readUInt16BE(2);
  return family === AF_INET ? `${intToIp4(b.readUInt32BE(4))}:${port}` : `[${formatIp6(b.subarray(8, 24))}]:${port}`;
}

/** One WGPEER_A_ALLOWEDIPS entry (a type-0 nest): FAMILY u16, IPADDR in_addr/in6_addr, CIDR_MASK u8. */
export function encodeAllowedIp(cidr: string): Buffer {
  const m = typeof cidr === 'string' ? /^([^/]+)\/(\d{1,3})$/.exec(cidr) : null;
  const v6 = !!m && (m[1] as string).includes(':');
  const len = m ? Number(m[2]) : NaN;
  if (!m || !(len <= (v6 ? 128 : 32))) throw invalid(`wireguard genetlink: allowed IP ${JSON.stringify(cidr)} is not a CIDR like 10.9.2.0/24 or fd00::/64`);
  const addr = v6 ? ip6Bytes(m[1] as string, 'wireguard allowed IP') : ip4ToBuf(m[1] as string, 'wireguard allowed IP');
  return nest(0, attr(WGALLOWEDIP_A.FAMILY, u16le(v6 ? AF_INET6 : AF_INET)), attr(WGALLOWEDIP_A.IPADDR, addr), attr(WGALLOWEDIP_A.CIDR_MASK, Buffer.from([len])));
}

const u16le = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};

// ---- messages ----
/** One generic netlink message: nlmsghdr (seq 0, the sender sets it) + genlmsghdr + attributes. */
export function genlMessage(family: number, flags: number, cmd: number, version: number, attrs: readonly Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from([cmd, version, 0, 0]), ...attrs]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE(family, 4);
  h.writeUInt16LE(flags, 6);
  return Buffer.concat([h, body]);
}

/** CTRL_CMD_GETFAMILY for one family by name (version 1, as libmnl's mnlg asks). */
export function encodeGetFamily(name: string): Buffer {
  return genlMessage(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, CTRL_CMD_GETFAMILY, 1, [attr(CTRL_ATTR_FAMILY_NAME, str(name))]);
}

export interface GenlFamily {
  id: number;
  name: string;
  version: number;
  hdrsize: number;
  maxattr: number;
}

/** The controller's CTRL_CMD_NEWFAMILY answer (`payload`: after the nlmsghdr). */
export function decodeFamily(payload: Buffer): GenlFamily {
  const where = 'nlctrl reply';
  if (payload.length < GENL_HDRLEN) throw new OverlayError('KERNEL', `${where}: ${payload.length} bytes, shorter than a genlmsghdr (4)`);
  const f: GenlFamily = { id: 0, name: '', version: 0, hdrsize: 0, maxattr: 0 };
  for (const [type, v] of attrListStrict(payload, GENL_HDRLEN, where)) {
    if (type === CTRL_ATTR_FAMILY_ID) f.id = fixed(v, 2, 'CTRL_ATTR_FAMILY_ID', where).readUInt16LE(0);
    else if (type === CTRL_ATTR_FAMILY_NAME) f.name = v.toString('utf8').replace(/\0+$/, '');
    else if (type === CTRL_ATTR_VERSION) f.version = fixed(v, 4, 'CTRL_ATTR_VERSION', where).readUInt32LE(0);
    else if (type === CTRL_ATTR_HDRSIZE) f.hdrsize = fixed(v, 4, 'CTRL_ATTR_HDRSIZE', where).readUInt32LE(0);
    else if (type === CTRL_ATTR_MAXATTR) f.maxattr = fixed(v, 4, 'CTRL_ATTR_MAXATTR', where).readUInt32LE(0);
  }
  if (!f.id) throw new OverlayError('KERNEL', `${where}: no CTRL_ATTR_FAMILY_ID`);
  return f;
}

function ifaceAttr(iface: WgIface): Buffer {
  if ('index' in iface) {
    if (!Number.isInteger(iface.index) || iface.index < 1 || iface.index > 0x7fffffff) throw invalid(`wireguard genetlink: ifindex ${iface.index} is not a positive integer`);
    return attr(WGDEVICE_A.IFINDEX, u32le(iface.index));
  }
  if (typeof iface.name !== 'string' || !iface.name || Buffer.byteLength(iface.name) > 15) throw invalid(`wireguard genetlink: interface name ${JSON.stringify(iface.name)} is not 1-15 bytes (IFNAMSIZ - 1)`);
  return attr(WGDEVICE_A.IFNAME, str(iface.name));
}

/** WG_CMD_GET_DEVICE: a dump request naming one device (flags as `wg show` sends them). */
export function encodeGetDevice(iface: WgIface, familyId: number): Buffer {
  return genlMessage(familyId, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP, WG_CMD_GET_DEVICE, WG_GENL_VERSION, [ifaceAttr(iface)]);
}

function u16Attr(type: number, n: number, what: string): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw invalid(`wireguard genetlink: ${what} ${n} is not in 0..65535`);
  return attr(type, u16le(n));
}

/** A peer's first fragment (everything but its allowed IPs) and its continuation head. */
function peerHeads(p: WgPeerSet): { first: Buffer[]; more: Buffer[] } {
  const key = attr(WGPEER_A.PUBLIC_KEY, keyBytes(p.publicKey, 'peer public key'));
  const base = (p.remove ? WGPEER_F_REMOVE_ME : 0) | (p.updateOnly ? WGPEER_F_UPDATE_ONLY : 0);
  const flags = base | (p.replaceAllowedIPs ? WGPEER_F_REPLACE_ALLOWEDIPS : 0);
  const first = [key];
  if (p.presharedKey !== undefined) first.push(attr(WGPEER_A.PRESHARED_KEY, keyBytes(p.presharedKey, 'peer preshared key')));
  if (p.endpoint !== undefined) first.push(attr(WGPEER_A.ENDPOINT, encodeEndpoint(p.endpoint)));
  if (p.persistentKeepalive !== undefined) first.push(u16Attr(WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL, p.persistentKeepalive, 'persistent keepalive interval'));
  if (flags) first.push(attr(WGPEER_A.FLAGS, u32le(flags)));
  return { first, more: base ? [key, attr(WGPEER_A.FLAGS, u32le(base))] : [key] };
}

const size = (bs: readonly Buffer[]): number => bs.reduce((n, b) => n + b.length, 0);
const HEAD = 16 + GENL_HDRLEN;

/** WG_CMD_SET_DEVICE as one or more messages of at most `maxBytes` each, to be sent in order,
 *  each waiting for its ACK (what the first one does is not undone if a later one fails). */
export function encodeSetDevice(dev: WgDeviceSet, familyId: number, maxBytes = WG_SET_MAX_BYTES): Buffer[] {
  if (!(maxBytes >= 512 && maxBytes <= 65000)) throw invalid(`wireguard genetlink: message size ${maxBytes} is not in 512..65000`);
  const ifa = ifaceAttr(dev.iface);
  const devAttrs: Buffer[] = [];
  if (dev.privateKey !== undefined) devAttrs.push(attr(WGDEVICE_A.PRIVATE_KEY, keyBytes(dev.privateKey, 'private key')));
  if (dev.listenPort !== undefined) devAttrs.push(u16Attr(WGDEVICE_A.LISTEN_PORT, dev.listenPort, 'listen port'));
  if (dev.fwmark !== undefined) devAttrs.push(attr(WGDEVICE_A.FWMARK, u32le(dev.fwmark)));
  if (dev.replacePeers) devAttrs.push(attr(WGDEVICE_A.FLAGS, u32le(WGDEVICE_F_REPLACE_PEERS)));
  const out: Buffer[] = [];
  let fixedPart: Buffer[] = [ifa, ...devAttrs];
  let peerNests: Buffer[] = [];
  const used = () => HEAD + size(fixedPart) + 4 + size(peerNests); // + the PEERS nest header
  const flush = () => {
    out.push(genlMessage(familyId, NLM_F_REQUEST | NLM_F_ACK, WG_CMD_SET_DEVICE, WG_GENL_VERSION, peerNests.length ? [...fixedPart, nest(WGDEVICE_A.PEERS, ...peerNests)] : fixedPart));
    fixedPart = [ifa];
    peerNests = [];
  };
  for (const p of dev.peers ?? []) {
    const heads = peerHeads(p);
    const ips = (p.allowedIPs ?? []).map(encodeAllowedIp);
    let i = 0;
    for (let fragment = 0; fragment === 0 || i < ips.length; fragment++) {
      const head = fragment === 0 ? heads.first : heads.more;
      const overhead = 4 + size(head) + (ips.length ? 4 : 0); // peer nest + head + ALLOWEDIPS nest
      const need = overhead + (i < ips.length ? (ips[i] as Buffer).length : 0);
      if (used() + need > maxBytes && peerNests.length) flush();
      if (used() + need > maxBytes) throw invalid(`wireguard genetlink: a peer does not fit in a message of ${maxBytes} bytes`);
      const take: Buffer[] = [];
      while (i < ips.length && used() + overhead + size(take) + (ips[i] as Buffer).length <= maxBytes) take.push(ips[i++] as Buffer);
      peerNests.push(nest(0, ...head, ...(ips.length ? [nest(WGPEER_A.ALLOWEDIPS, ...take)] : [])));
      if (i < ips.length) flush();
    }
  }
  flush();
  return out;
}

/** An attribute's value of exactly `n` bytes, else an error naming it. */
export function fixed(v: Buffer, n: number, name: string, where: string): Buffer {
  if (v.length !== n) throw new OverlayError('KERNEL', `${where}: ${name} is ${v.length} bytes, expected ${n}`);
  return v;
}
