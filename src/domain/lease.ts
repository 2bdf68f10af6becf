/**
 * Subnet leases in flanneld's exact etcd format (docs/flannel-compat.md §2–§3):
 *   key   <prefix>/subnets/10.1.15.0-24
 *   value {"PublicIP":"192.0.2.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"…"}}
 * The value is Go's json.Marshal of LeaseAttrs, so field order and `"PublicIPv6":null` matter:
 * encodeLeaseAttrs writes it byte for byte. BackendType and BackendData are `omitempty`: flanneld's
 * alloc backend sets neither, so an alloc lease is just `{"PublicIP":"192.0.2.1","PublicIPv6":null}`.
 * A wireguard lease: `…,"BackendType":"wireguard","BackendData":{"PublicKey":"<base64 32 bytes>"}`. Decoding is lenient where Go is (key case, unknown keys)
 * and strict where a wrong value would program the kernel wrongly (IPs, MACs).
 * The IPv6 parts (dual-stack keys, PublicIPv6, BackendV6Data) live in lease-v6.ts.
 */
import { invalid } from '../errors';
import { Cidr, formatIPv4, parseIPv4 } from './ipv4';
import type { Cidr6 } from './ipv6';
import { decodeLeaseAttrsV6, encodeBackendV6Data, encodePublicIPv6, LeaseAttrsV6, LeaseSubnets, parseLeaseKey } from './lease-v6';
import { field, intField, isObject, parseJsonObject, stringField } from './json-fields';
import { normalizeMac } from './mac';
import type { Backend } from './network-config';
import { checkWireguardKey } from './wireguard-config';

export interface VxlanLeaseData {
  readonly vni: number;
  readonly vtepMac: string;
}

/** flannel's wireguardLeaseAttrs: the host's public key, base64 as wg prints it. */
export interface WireguardLeaseData {
  readonly publicKey: string;
}

export interface LeaseAttrs extends LeaseAttrsV6 {
  readonly publicIP: string;
  readonly backendType: string; // 'vxlan' | 'host-gw' | '' (alloc) | other (a flanneld peer with another backend)
  readonly vxlan?: VxlanLeaseData; // BackendData of a vxlan lease
  readonly wireguard?: WireguardLeaseData; // BackendData of a wireguard lease
  /** BackendData of other backends, kept verbatim (we never rewrite a peer's lease). */
  readonly rawBackendData?: unknown;
}

export interface Lease {
  readonly subnet: Cidr; // 0.0.0.0/0 in an IPv6-only lease (flannel's zero IP4Net)
  /** The v6 subnet of a dual-stack or IPv6-only lease (the key's `&fd00::-64` part). */
  readonly subnet6?: Cidr6;
  readonly attrs: LeaseAttrs;
  /** etcd lease id as a decimal string; "0" = no TTL (a reservation). */
  readonly etcdLease: string;
  /** Unix ms when it expires, if known. */
  readonly expiresAt?: number;
  readonly modRevision?: bigint;
}

/**
 * A lease read from etcd, built by one of four object literals (with or without subnet6 and
 * modRevision), never by spreading: `{ ...subnets, attrs, … }` gave V8 a hidden class per object
 * (9,986 for 10,000 leases, ≈ 2.7 MB of maps and descriptors at 10,000 peers; docs/performance.md §7).
 */
export function makeLease(s: LeaseSubnets, attrs: LeaseAttrs, etcdLease: string, modRevision?: bigint): Lease {
  const { subnet, subnet6 } = s;
  if (modRevision === undefined) return subnet6 ? { subnet, subnet6, attrs, etcdLease } : { subnet, attrs, etcdLease };
  return subnet6 ? { subnet, subnet6, attrs, etcdLease, modRevision } : { subnet, attrs, etcdLease, modRevision };
}

/** "10.1.15.0-24" for a subnet. */
export function leaseKeyOf(subnet: Cidr): string {
  return `${formatIPv4(subnet.base)}-${subnet.len}`;
}

/** The (v4) subnet named by a key (full path or last segment), or null when flannel would not read it as a lease. */
export function subnetFromLeaseKey(key: string): Cidr | null {
  return parseLeaseKey(key)?.subnet ?? null;
}

/** The exact bytes flanneld writes for these attributes. */
export function encodeLeaseAttrs(attrs: LeaseAttrs): string {
  let out = `{"PublicIP":${JSON.stringify(attrs.publicIP)},${encodePublicIPv6(attrs)}`;
  if (attrs.backendType) out += `,"BackendType":${JSON.stringify(attrs.backendType)}`;
  if (attrs.vxlan) {
    out += `,"BackendData":{"VNI":${attrs.vxlan.vni},"VtepMAC":${JSON.stringify(attrs.vxlan.vtepMac)}}`;
  } else if (attrs.wireguard) {
    out += `,"BackendData":{"PublicKey":${JSON.stringify(attrs.wireguard.publicKey)}}`;
  } else if (attrs.rawBackendData !== undefined && attrs.rawBackendData !== null) {
    out += `,"BackendData":${JSON.stringify(attrs.rawBackendData)}`;
  }
  return out + encodeBackendV6Data(attrs) + '}';
}

/** Parse a lease value; throws INVALID naming what is wrong (callers skip such leases with a warning). */
export function decodeLeaseAttrs(text: string, where = 'lease'): LeaseAttrs {
  const obj = parseJsonObject(text, where);
  const publicIP = stringField(obj, 'PublicIP', where);
  if (publicIP === undefined) throw invalid(`${where}: "PublicIP" is missing`);
  parseIPv4(publicIP, `${where}: PublicIP`);
  const backendType = stringField(obj, 'BackendType', where) ?? '';
  const data = field(obj, 'BackendData');
  const v6 = decodeLeaseAttrsV6(obj, backendType, where);
  if (backendType === 'wireguard') {
    if (!isObject(data)) throw invalid(`${where}: a wireguard lease needs "BackendData" with PublicKey`);
    const key = stringField(data, 'PublicKey', `${where}: BackendData`);
    if (key === undefined) throw invalid(`${where}: BackendData has no "PublicKey"`);
    return { publicIP, ...v6, backendType, wireguard: { publicKey: checkWireguardKey(key, `${where}: PublicKey`) } };
  }
  if (backendType !== 'vxlan') {
    return { publicIP, ...v6, backendType, ...(data !== undefined ? { rawBackendData: data } : {}) };
  }
  if (data === undefined && v6.vxlan6) return { publicIP, ...v6, backendType }; // IPv6-only: BackendV6Data alone
  if (!isObject(data)) throw invalid(`${where}: a vxlan lease needs "BackendData" with VNI and VtepMAC`);
  const vni = intField(data, 'VNI', `${where}: BackendData`, 0, 16777215) ?? 0;
  const mac = stringField(data, 'VtepMAC', `${where}: BackendData`);
  if (mac === undefined) throw invalid(`${where}: BackendData has no "VtepMAC"`);
  return { publicIP, ...v6, backendType, vxlan: { vni, vtepMac: normalizeMac(mac, `${where}: VtepMAC`) } };
}

/** The BackendType flanneld writes in the leases of `backend` ('' for alloc, which writes none). */
export function leaseBackendType(backend: Backend): string {
  return backend.type === 'alloc' ? '' : backend.type;
}

/** How a lease's BackendType reads in log messages ('' is an alloc lease). */
export function describeLeaseBackend(backendType: string): string {
  return backendType === '' ? 'alloc (no BackendType)' : JSON.stringify(backendType);
}

export function sameAttrs(a: LeaseAttrs, b: LeaseAttrs): boolean {
  return encodeLeaseAttrs(a) === encodeLeaseAttrs(b);
}

export function isReservation(lease: Lease): boolean {
  return lease.etcdLease === '0';
}
