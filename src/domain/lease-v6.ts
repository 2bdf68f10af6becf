/**
 * The IPv6 parts of flanneld's leases (docs/flannel-compat.md §2–§3), kept apart from lease.ts:
 *   key   <prefix>/subnets/10.1.15.0-24&fd00:10:0:f::-64     dual-stack (MakeSubnetKey)
 *         <prefix>/subnets/0.0.0.0-0&fd00:10:0:f::-64        IPv6-only: the v4 part is Go's zero IP4Net
 *   value {"PublicIP":"192.0.2.1","PublicIPv6":"2001:db8::1","BackendType":"vxlan",
 *          "BackendData":{"VNI":1,"VtepMAC":"…"},"BackendV6Data":{"VNI":1,"VtepMAC":"…"}}
 * The v6 address in the key and PublicIPv6 are Go's net.IP.String() (formatIPv6). BackendV6Data
 * carries the MAC of `flannel-v6.<VNI>`; an IPv6-only vxlan lease has PublicIP "0.0.0.0" and no
 * BackendData (flannel's newSubnetAttrs sets each half only when that family's device exists).
 * Key parsing is flannel's ParseSubnetKey: the v6 part must match `[a-f\d:]+` (lowercase) and its
 * prefix must parse as a 7-bit number (≤ 127); we also refuse host bits, as for the v4 part.
 */
import { invalid } from '../errors';
import { Cidr, cidr, formatCidr, formatIPv4, isIPv4, parseIPv4 } from './ipv4';
import { Cidr6, cidr6, formatCidr6, formatIPv6, isIPv6, parseIPv6 } from './ipv6';
import { field, intField, isObject, JsonObject, stringField } from './json-fields';
import { normalizeMac } from './mac';
import { checkWireguardKey } from './wireguard-config';

/** The subnets a lease key names: the v4 one always (0.0.0.0/0 in an IPv6-only lease), the v6 one in dual-stack and IPv6-only keys. */
export interface LeaseSubnets {
  readonly subnet: Cidr;
  readonly subnet6?: Cidr6;
}

// flannel's subnetRegex, matched against the *suffix* of every key under "<prefix>/subnets".
const KEY_RE = /(\d+\.\d+\.\d+\.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$/;

/** flannel's MakeSubnetKey: "10.1.15.0-24", or "10.1.15.0-24&fd00:10:0:f::-64" with a v6 subnet. */
export function makeLeaseKey(subnet: Cidr, subnet6?: Cidr6): string {
  const v4 = `${formatIPv4(subnet.base)}-${subnet.len}`;
  return subnet6 ? `${v4}&${formatIPv6(subnet6.base)}-${subnet6.len}` : v4;
}

/** flannel's ParseSubnetKey (full path or last segment); null when flannel would not read it as a lease. */
export function parseLeaseKey(key: string): LeaseSubnets | null {
  const m = KEY_RE.exec(key);
  if (!m || !isIPv4(m[1])) return null;
  const len = Number(m[2]);
  if (!Number.isInteger(len) || len < 0 || len > 32) return null;
  const base = parseIPv4(m[1]);
  const subnet = cidr(base, len);
  if (subnet.base !== base) return null; // host bits set: not a subnet key
  if (m[3] === undefined) return { subnet };
  const len6 = Number(m[4]);
  if (!isIPv6(m[3]) || !(len6 <= 127)) return null; // Go: ParseUint(…, 10, 7)
  const base6 = parseIPv6(m[3]);
  const subnet6 = cidr6(base6, len6);
  if (subnet6.base !== base6) return null;
  if (base6 === 0n && len6 === 0) return { subnet }; // Go: an Empty() IP6Net, no v6 subnet
  return { subnet, subnet6 };
}

/** The v6 half of a lease value. */
export interface LeaseAttrsV6 {
  /** PublicIPv6 in Go's text form; absent = `null`. */
  readonly publicIPv6?: string;
  /** BackendV6Data of a vxlan lease: VNI and the VtepMAC of flannel-v6.<VNI>. */
  readonly vxlan6?: { readonly vni: number; readonly vtepMac: string };
  /** BackendV6Data of a wireguard lease: the public key of flannel-wg-v6 (Mode "separate"). flanneld
   *  ≥ 0.26.6 also writes its "Port"; we read it (kept), and write only the key, as in BackendData. */
  readonly wireguard6?: { readonly publicKey: string; readonly port?: number };
  /** BackendV6Data of other backends, kept verbatim. */
  readonly rawBackendV6Data?: unknown;
}

/** `"PublicIPv6":…` as Go writes it: the address, or null. */
export function encodePublicIPv6(attrs: LeaseAttrsV6): string {
  return `"PublicIPv6":${attrs.publicIPv6 ? JSON.stringify(attrs.publicIPv6) : 'null'}`;
}

/** `,"BackendV6Data":{…}` (omitempty), or "". */
export function encodeBackendV6Data(attrs: LeaseAttrsV6): string {
  if (attrs.vxlan6) return `,"BackendV6Data":{"VNI":${attrs.vxlan6.vni},"VtepMAC":${JSON.stringify(attrs.vxlan6.vtepMac)}}`;
  if (attrs.wireguard6) return `,"BackendV6Data":{"PublicKey":${JSON.stringify(attrs.wireguard6.publicKey)}}`;
  if (attrs.rawBackendV6Data !== undefined && attrs.rawBackendV6Data !== null) return `,"BackendV6Data":${JSON.stringify(attrs.rawBackendV6Data)}`;
  return '';
}

/** Read PublicIPv6 and BackendV6Data; strict on what programs the kernel (addresses, MACs). */
export function decodeLeaseAttrsV6(obj: JsonObject, backendType: string, where: string): LeaseAttrsV6 {
  const text = stringField(obj, 'PublicIPv6', where);
  let publicIPv6: string | undefined;
  if (text !== undefined) {
    if (!isIPv6(text)) throw invalid(`${where}: PublicIPv6 "${text}" is not an IPv6 address`);
    publicIPv6 = formatIPv6(parseIPv6(text));
  }
  const data = field(obj, 'BackendV6Data');
  const out = { ...(publicIPv6 ? { publicIPv6 } : {}) };
  if (data === undefined) return out;
  if (backendType === 'wireguard' && data !== null) {
    if (!isObject(data)) throw invalid(`${where}: "BackendV6Data" of a wireguard lease must be an object with PublicKey`);
    const key = stringField(data, 'PublicKey', `${where}: BackendV6Data`);
    if (key === undefined) throw invalid(`${where}: BackendV6Data has no "PublicKey"`);
    const port = intField(data, 'Port', `${where}: BackendV6Data`, 0, 65535);
    return { ...out, wireguard6: { publicKey: checkWireguardKey(key, `${where}: BackendV6Data PublicKey`), ...(port ? { port } : {}) } };
  }
  if (backendType !== 'vxlan') return { ...out, rawBackendV6Data: data };
  if (!isObject(data)) throw invalid(`${where}: "BackendV6Data" of a vxlan lease must be an object with VNI and VtepMAC`);
  const vni = intField(data, 'VNI', `${where}: BackendV6Data`, 0, 16777215) ?? 0;
  const mac = stringField(data, 'VtepMAC', `${where}: BackendV6Data`);
  if (mac === undefined) throw invalid(`${where}: BackendV6Data has no "VtepMAC"`);
  return { ...out, vxlan6: { vni, vtepMac: normalizeMac(mac, `${where}: BackendV6Data VtepMAC`) } };
}

/**
 * Who a lease belongs to: its PublicIP, or, when that is "0.0.0.0" (an IPv6-only vxlan lease:
 * flannel fills PublicIP only for a v4 device), its PublicIPv6; '' when it names neither. flanneld
 * matches on PublicIP alone, so two flanneld hosts of an IPv6-only etcd overlay would take the same
 * lease; we tell them apart (docs/flannel-compat.md §4).
 */
export function leaseOwner(attrs: { readonly publicIP: string } & LeaseAttrsV6): string {
  if (attrs.publicIP !== '' && attrs.publicIP !== '0.0.0.0') return attrs.publicIP;
  return attrs.publicIPv6 ?? '';
}

/**
 * The subnet a lease is known by (maps of leases, status rows): its v4 subnet ("10.1.5.0/24"), or,
 * in an IPv6-only lease, whose v4 part is always 0.0.0.0/0, its v6 subnet ("fd00:10:0:5::/64"):
 * keyed by the v4 part, every IPv6-only lease would be the same one.
 */
export function leaseId(l: { readonly subnet: Cidr; readonly subnet6?: Cidr6 }): string {
  let id = ids.get(l);
  if (id === undefined) {
    id = flatString(l.subnet.len === 0 && l.subnet6 ? formatCidr6(l.subnet6) : formatCidr(l.subnet));
    ids.set(l, id);
  }
  return id;
}

/** leaseId's answers per (immutable) lease object: the watcher's, the agent's and the dataplane's
 *  maps of one lease share one flat key string instead of each holding its own concatenation. */
const ids = new WeakMap<object, string>();

const WIDE = /[^\x00-\xff]/;

/**
 * A flat copy of a string built by concatenation. V8 keeps `a + b` (and template literals of 13+
 * characters) as a tree of cons strings: "10.39.87.0/24" from formatCidr is three or four heap
 * objects, a decimal etcd lease id from Long.toString half a dozen. Strings kept per lease (map
 * keys, etcd lease ids) are copied once into one sequential string (docs/performance.md §7).
 * Only for text of code units ≤ 0xFF (addresses, decimal ids); other text is returned as it is.
 */
export function flatString(s: string): string {
  if (s.length < 13 || WIDE.test(s)) return s; // V8 builds shorter concatenations flat already
  return Buffer.from(s, 'latin1').toString('latin1');
}

/** Whether a lease is IPv6-only (the key's v4 part is flannel's zero 0.0.0.0-0). */
export function isIPv6OnlyLease(l: { readonly subnet: Cidr; readonly subnet6?: Cidr6 }): boolean {
  return l.subnet.len === 0 && l.subnet6 !== undefined;
}
