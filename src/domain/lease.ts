/**
 * Subnet leases in flanneld's exact etcd format (docs/flannel-compat.md §2–§3):
 *   key   <prefix>/subnets/10.1.15.0-24
 *   value {"PublicIP":"192.0.2.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"…"}}
 * The value is Go's json.Marshal of LeaseAttrs, so field order and `"PublicIPv6":null` matter:
 * encodeLeaseAttrs writes it byte for byte. BackendType and BackendData are `omitempty`: flanneld's
 * alloc backend sets neither, so an alloc lease is just `{"PublicIP":"192.0.2.1","PublicIPv6":null}`.
 * A wireguard lease: `…,"BackendType":"wireguard","BackendData":{"PublicKey":"<base64 32 bytes>"}`. Decoding is lenient where Go is (key case, unknown keys)
 * and strict where a wrong value would program the kernel wrongly (IPs, MACs).
 */
import { invalid } from '../errors';
import { Cidr, cidr, formatIPv4, isIPv4, parseIPv4 } from './ipv4';
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

export interface LeaseAttrs {
  readonly publicIP: string;
  readonly backendType: string; // 'vxlan' | 'host-gw' | '' (alloc) | other (a flanneld peer with another backend)
  readonly vxlan?: VxlanLeaseData; // BackendData of a vxlan lease
  readonly wireguard?: WireguardLeaseData; // BackendData of a wireguard lease
  /** BackendData of other backends, kept verbatim (we never rewrite a peer's lease). */
  readonly rawBackendData?: unknown;
}

export interface Lease {
  readonly subnet: Cidr;
  readonly attrs: LeaseAttrs;
  /** etcd lease id as a decimal string; "0" = no TTL (a reservation). */
  readonly etcdLease: string;
  /** Unix ms when it expires, if known. */
  readonly expiresAt?: number;
  readonly modRevision?: bigint;
}

// flannel matches this against the *suffix* of every key under "<prefix>/subnets".
const LEASE_KEY_RE = /(\d+\.\d+\.\d+\.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$/;

/** "10.1.15.0-24" for a subnet. */
export function leaseKeyOf(subnet: Cidr): string {
  return `${formatIPv4(subnet.base)}-${subnet.len}`;
}

/** The subnet named by a key (full path or last segment), or null when flannel would not read it as a lease. */
export function subnetFromLeaseKey(key: string): Cidr | null {
  const m = LEASE_KEY_RE.exec(key);
  if (!m || !isIPv4(m[1])) return null;
  const len = Number(m[2]);
  if (!Number.isInteger(len) || len < 0 || len > 32) return null;
  const base = parseIPv4(m[1]);
  const c = cidr(base, len);
  if (c.base !== base) return null; // host bits set: not a subnet key
  return c;
}

/** The exact bytes flanneld writes for these attributes. */
export function encodeLeaseAttrs(attrs: LeaseAttrs): string {
  let out = `{"PublicIP":${JSON.stringify(attrs.publicIP)},"PublicIPv6":null`;
  if (attrs.backendType) out += `,"BackendType":${JSON.stringify(attrs.backendType)}`;
  if (attrs.vxlan) {
    out += `,"BackendData":{"VNI":${attrs.vxlan.vni},"VtepMAC":${JSON.stringify(attrs.vxlan.vtepMac)}}`;
  } else if (attrs.wireguard) {
    out += `,"BackendData":{"PublicKey":${JSON.stringify(attrs.wireguard.publicKey)}}`;
  } else if (attrs.rawBackendData !== undefined && attrs.rawBackendData !== null) {
    out += `,"BackendData":${JSON.stringify(attrs.rawBackendData)}`;
  }
  return out + '}';
}

/** Parse a lease value; throws INVALID naming what is wrong (callers skip such leases with a warning). */
export function decodeLeaseAttrs(text: string, where = 'lease'): LeaseAttrs {
  const obj = parseJsonObject(text, where);
  const publicIP = stringField(obj, 'PublicIP', where);
  if (publicIP === undefined) throw invalid(`${where}: "PublicIP" is missing`);
  parseIPv4(publicIP, `${where}: PublicIP`);
  const backendType = stringField(obj, 'BackendType', where) ?? '';
  const data = field(obj, 'BackendData');
  if (backendType === 'wireguard') {
    if (!isObject(data)) throw invalid(`${where}: a wireguard lease needs "BackendData" with PublicKey`);
    const key = stringField(data, 'PublicKey', `${where}: BackendData`);
    if (key === undefined) throw invalid(`${where}: BackendData has no "PublicKey"`);
    return { publicIP, backendType, wireguard: { publicKey: checkWireguardKey(key, `${where}: PublicKey`) } };
  }
  if (backendType !== 'vxlan') {
    return { publicIP, backendType, ...(data !== undefined ? { rawBackendData: data } : {}) };
  }
  if (!isObject(data)) throw invalid(`${where}: a vxlan lease needs "BackendData" with VNI and VtepMAC`);
  const vni = intField(data, 'VNI', `${where}: BackendData`, 0, 16777215) ?? 0;
  const mac = stringField(data, 'VtepMAC', `${where}: BackendData`);
  if (mac === undefined) throw invalid(`${where}: BackendData has no "VtepMAC"`);
  return { publicIP, backendType, vxlan: { vni, vtepMac: normalizeMac(mac, `${where}: VtepMAC`) } };
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
