/**
 * The reply of kernel WireGuard's WG_CMD_GET_DEVICE dump, decoded (pure; the encoders and the
 * attribute numbers are in wg-genetlink.ts). The kernel (drivers/net/wireguard/netlink.c,
 * wg_get_device_dump) writes the device's attributes (LISTEN_PORT, FWMARK, IFINDEX, IFNAME and,
 * when set, PRIVATE_KEY and PUBLIC_KEY) into the first message only, then as many peers as fit;
 * the next message holds a PEERS nest only, and a peer whose allowed IPs did not fit comes again
 * there with only PUBLIC_KEY and the rest of its ALLOWEDIPS. Adjacent entries with the same key
 * are coalesced here, as wireguard-tools does (coalesce_peers). Unknown attributes (a newer
 * kernel's, or the type-0 pad nla_put_u64_64bit may add) are skipped; a malformed one is an error
 * naming where it is. Key values never appear in an error.
 */
import { OverlayError } from '../errors';
import { attrListStrict, intToIp4 } from './codec';
import { AF_INET, AF_INET6, decodeEndpoint, fixed, formatIp6, WG_CMD_GET_DEVICE, WG_KEY_LEN, WGALLOWEDIP_A, WGDEVICE_A, WGPEER_A } from './wg-genetlink';

export interface WgPeerDump {
  publicKey: string; // base64
  presharedKey?: string; // absent when all zeros (none)
  endpoint?: string;
  persistentKeepalive: number; // 0 = off
  lastHandshakeSec: number; // 0 = never
  rxBytes: bigint;
  txBytes: bigint;
  protocolVersion?: number;
  allowedIPs: string[];
}

export interface WgDeviceDump {
  ifindex: number;
  ifname: string;
  privateKey?: string; // base64; never logged
  publicKey?: string;
  listenPort: number;
  fwmark: number;
  peers: WgPeerDump[];
}

const key = (v: Buffer, name: string, where: string): string => fixed(v, WG_KEY_LEN, name, where).toString('base64');
const isZero = (b: Buffer): boolean => b.every((x) => x === 0);

/** The entries of a nest that holds a list (type-0 nests, each with NLA_F_NESTED as the kernel writes them). */
function listOf(v: Buffer, where: string): Buffer[] {
  return attrListStrict(v, 0, where).map(([, e]) => e);
}

function allowedIp(v: Buffer, where: string): string {
  let family = -1;
  let addr: Buffer | undefined;
  let cidr = -1;
  for (const [type, a] of attrListStrict(v, 0, where)) {
    if (type === WGALLOWEDIP_A.FAMILY) family = fixed(a, 2, 'WGALLOWEDIP_A_FAMILY', where).readUInt16LE(0);
    else if (type === WGALLOWEDIP_A.IPADDR) addr = a;
    else if (type === WGALLOWEDIP_A.CIDR_MASK) cidr = fixed(a, 1, 'WGALLOWEDIP_A_CIDR_MASK', where)[0] as number;
  }
  if (family !== AF_INET && family !== AF_INET6) throw new OverlayError('KERNEL', `${where}: WGALLOWEDIP_A_FAMILY ${family === -1 ? 'missing' : family}, expected ${AF_INET} (AF_INET) or ${AF_INET6} (AF_INET6)`);
  const v6 = family === AF_INET6;
  if (!addr) throw new OverlayError('KERNEL', `${where}: no WGALLOWEDIP_A_IPADDR`);
  fixed(addr, v6 ? 16 : 4, 'WGALLOWEDIP_A_IPADDR', where);
  if (cidr < 0 || cidr > (v6 ? 128 : 32)) throw new OverlayError('KERNEL', `${where}: WGALLOWEDIP_A_CIDR_MASK ${cidr < 0 ? 'missing' : cidr} for family ${family}`);
  return `${v6 ? formatIp6(addr) : intToIp4(addr.readUInt32BE(0))}/${cidr}`;
}

function peer(v: Buffer, where: string): WgPeerDump {
  const p: WgPeerDump = { publicKey: '', persistentKeepalive: 0, lastHandshakeSec: 0, rxBytes: 0n, txBytes: 0n, allowedIPs: [] };
  for (const [type, a] of attrListStrict(v, 0, where)) {
    if (type === WGPEER_A.PUBLIC_KEY) p.publicKey = key(a, 'WGPEER_A_PUBLIC_KEY', where);
    else if (type === WGPEER_A.PRESHARED_KEY) {
      if (!isZero(fixed(a, WG_KEY_LEN, 'WGPEER_A_PRESHARED_KEY', where))) p.presharedKey = a.toString('base64');
    } else if (type === WGPEER_A.ENDPOINT) {
      const e = decodeEndpoint(a, where);
      if (e) p.endpoint = e;
    } else if (type === WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL) p.persistentKeepalive = fixed(a, 2, 'WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL', where).readUInt16LE(0);
    else if (type === WGPEER_A.LAST_HANDSHAKE_TIME) p.lastHandshakeSec = Number(fixed(a, 16, 'WGPEER_A_LAST_HANDSHAKE_TIME', where).readBigInt64LE(0)); // __kernel_timespec
    else if (type === WGPEER_A.RX_BYTES) p.rxBytes = fixed(a, 8, 'WGPEER_A_RX_BYTES', where).readBigUInt64LE(0);
    else if (type === WGPEER_A.TX_BYTES) p.txBytes = fixed(a, 8, 'WGPEER_A_TX_BYTES', where).readBigUInt64LE(0);
    else if (type === WGPEER_A.PROTOCOL_VERSION) p.protocolVersion = fixed(a, 4, 'WGPEER_A_PROTOCOL_VERSION', where).readUInt32LE(0);
    else if (type === WGPEER_A.ALLOWEDIPS) listOf(a, `${where} › WGPEER_A_ALLOWEDIPS`).forEach((e, i) => p.allowedIPs.push(allowedIp(e, `${where} › allowed IP ${i + 1}`)));
  }
  if (!p.publicKey) throw new OverlayError('KERNEL', `${where}: no WGPEER_A_PUBLIC_KEY`);
  return p;
}

/** The device from every message of the dump, in order (`payloads`: each after its nlmsghdr). */
export function decodeGetDevice(payloads: readonly Buffer[]): WgDeviceDump {
  const d: WgDeviceDump = { ifindex: 0, ifname: '', listenPort: 0, fwmark: 0, peers: [] };
  if (!payloads.length) throw new OverlayError('KERNEL', 'wireguard dump: no message before NLMSG_DONE');
  payloads.forEach((m, n) => {
    const where = `wireguard dump message ${n + 1}`;
    if (m.length < 4) throw new OverlayError('KERNEL', `${where}: ${m.length} bytes, shorter than a genlmsghdr (4)`);
    if (m[0] !== WG_CMD_GET_DEVICE) throw new OverlayError('KERNEL', `${where}: genl command ${m[0]}, expected WG_CMD_GET_DEVICE (${WG_CMD_GET_DEVICE})`);
    for (const [type, a] of attrListStrict(m, 4, where)) {
      if (type === WGDEVICE_A.IFINDEX) d.ifindex = fixed(a, 4, 'WGDEVICE_A_IFINDEX', where).readUInt32LE(0);
      else if (type === WGDEVICE_A.IFNAME) d.ifname = a.toString('utf8').replace(/\0+$/, '');
      else if (type === WGDEVICE_A.PRIVATE_KEY) d.privateKey = key(a, 'WGDEVICE_A_PRIVATE_KEY', where);
      else if (type === WGDEVICE_A.PUBLIC_KEY) d.publicKey = key(a, 'WGDEVICE_A_PUBLIC_KEY', where);
      else if (type === WGDEVICE_A.LISTEN_PORT) d.listenPort = fixed(a, 2, 'WGDEVICE_A_LISTEN_PORT', where).readUInt16LE(0);
      else if (type === WGDEVICE_A.FWMARK) d.fwmark = fixed(a, 4, 'WGDEVICE_A_FWMARK', where).readUInt32LE(0);
      else if (type === WGDEVICE_A.PEERS) {
        listOf(a, `${where} › WGDEVICE_A_PEERS`).forEach((e, i) => {
          const p = peer(e, `${where} › peer ${i + 1}`);
          const last = d.peers[d.peers.length - 1];
          if (last && last.publicKey === p.publicKey) last.allowedIPs.push(...p.allowedIPs);
          else d.peers.push(p);
        });
      }
    }
  });
  return d;
}
