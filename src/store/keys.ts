/**
 * Key layout of one overlay under its flannel prefix (e.g. /coreos.com/network):
 *
 *   <prefix>/config                                         flannel's network config (JSON)
 *   <prefix>/subnets/10.1.15.0-24                           flannel's leases, one per host
 *   <prefix>/subnets/10.1.15.0-24&fd00:10:0:f::-64          … dual-stack (IPv6-only: 0.0.0.0-0&…)
 *   <prefix>/overlay-flannel/addresses/10.1.15.0-24/10.1.15.7   our endpoint address records (v4)
 *   <prefix>/overlay-flannel/addresses6/fd00:10:0:f::-64/fd00:10:0:f::7   … v6 (Docker --ipv6)
 *   <prefix>/overlay-flannel/networks/…                     reserved for replicated Docker networks
 *   <prefix>/overlay-flannel/names/<network id>/<endpoint id>   DNS name records (name-records.ts)
 *   <prefix>/overlay-flannel/paths/<public IP>              one host's path report (path-reports.ts)
 *
 * flanneld lists and watches the *string* prefix `<prefix>/subnets` (no trailing slash) and reads
 * any key whose suffix looks like a lease key as a lease, so nothing of ours may start with
 * `<prefix>/subnets`; everything we add lives under `<prefix>/overlay-flannel/`.
 *
 * v6 address records have a root of their own (`addresses6/`, not a sibling directory under
 * `addresses/`), so every v4 read (a lease's records, releaseOwner's whole-root list) sees exactly
 * the keys it saw before v6 existed. Both segments are written as flannel writes the v6 half of a
 * lease key: Go's net.IP.String() (formatIPv6: lowercase, the longest zero run as `::`) and `-len`
 * for the subnet. A v6 address holds ':' but never '/', so the key stays two segments; etcd keys
 * are bytes, and ':' is already in flannel's dual-stack lease keys. Only that canonical spelling
 * parses (`fd00:10:0:f:0::7` is not a record), so one address has exactly one key.
 */
import { Cidr, formatIPv4, isIPv4, parseIPv4, cidrContains } from '../domain/ipv4';
import { decodeLeaseAttrs, Lease, LeaseAttrs, leaseKeyOf, makeLease, subnetFromLeaseKey } from '../domain/lease';
import type { IKeyValue } from 'etcd3';
import { toKeyValue, type KeyValue } from './list-watch';
import { Cidr6, cidr6, cidr6Contains, formatIPv6, isIPv6, parseIPv6 } from '../domain/ipv6';
import { LeaseSubnets, makeLeaseKey, parseLeaseKey } from '../domain/lease-v6';
import { isRecordId } from '../domain/name-record';
import { invalid } from '../errors';

/** Our own subtree, beside flannel's keys. */
export const OWN_DIR = 'overlay-flannel';

export interface OverlayKeys {
  /** The flannel prefix, without a trailing slash. */
  readonly prefix: string;
  /** `<prefix>/config`. */
  readonly config: string;
  /** `<prefix>/subnets`: a string prefix (no trailing slash), as flannel lists it. */
  readonly subnetsPrefix: string;
  /** `<prefix>/overlay-flannel/addresses/`. */
  readonly addressesRoot: string;
  /** `<prefix>/overlay-flannel/addresses6/` (v6 address records; not under addressesRoot). */
  readonly addresses6Root: string;
  /** `<prefix>/overlay-flannel/networks/` (reserved). */
  readonly networksRoot: string;
  /** `<prefix>/overlay-flannel/names/`. */
  readonly namesRoot: string;
  /** `<prefix>/overlay-flannel/paths/`. */
  readonly pathsRoot: string;
  /** `<prefix>/overlay-flannel/names/<network id>/<endpoint id>`. */
  nameKey(networkId: string, endpointId: string): string;
  /** `<prefix>/subnets/10.1.15.0-24`, or `…/10.1.15.0-24&fd00:10:0:f::-64` with a v6 subnet. */
  leaseKey(subnet: Cidr, subnet6?: Cidr6): string;
  /** `<prefix>/overlay-flannel/addresses/10.1.15.0-24/` (with the trailing slash). */
  addressesPrefix(subnet: Cidr): string;
  /** `<prefix>/overlay-flannel/addresses/10.1.15.0-24/10.1.15.7`. */
  addressKey(subnet: Cidr, ip: number): string;
  /** `<prefix>/overlay-flannel/addresses6/fd00:10:0:f::-64/` (with the trailing slash). */
  addresses6Prefix(subnet6: Cidr6): string;
  /** `<prefix>/overlay-flannel/addresses6/fd00:10:0:f::-64/fd00:10:0:f::7`. */
  address6Key(subnet6: Cidr6, ip: bigint): string;
}

/** The v6 lease segment of a v6 address key: flannel's v6 half of a lease key, `fd00:10:0:f::-64`. */
export function subnet6Segment(subnet6: Cidr6): string {
  return `${formatIPv6(subnet6.base)}-${subnet6.len}`;
}

/** Normalise a flannel prefix: must start with "/", trailing slashes dropped. */
export function normalizePrefix(prefix: string): string {
  const p = prefix.replace(/\/+$/, '');
  if (!p.startsWith('/') || p.length < 2) throw invalid(`etcd prefix "${prefix}" must start with "/" and not be "/" alone (e.g. /coreos.com/network)`);
  return p;
}

/** The keys of the overlay stored under `prefix`. */
export function overlayKeys(prefix: string): OverlayKeys {
  const p = normalizePrefix(prefix);
  const addressesRoot = `${p}/${OWN_DIR}/addresses/`;
  const addresses6Root = `${p}/${OWN_DIR}/addresses6/`;
  return {
    prefix: p,
    config: `${p}/config`,
    subnetsPrefix: `${p}/subnets`,
    addressesRoot,
    addresses6Root,
    networksRoot: `${p}/${OWN_DIR}/networks/`,
    namesRoot: `${p}/${OWN_DIR}/names/`,
    pathsRoot: `${p}/${OWN_DIR}/paths/`,
    nameKey: (networkId, endpointId) => `${p}/${OWN_DIR}/names/${networkId}/${endpointId}`,
    leaseKey: (subnet, subnet6) => `${p}/subnets/${makeLeaseKey(subnet, subnet6)}`,
    addressesPrefix: (subnet) => `${addressesRoot}${leaseKeyOf(subnet)}/`,
    addressKey: (subnet, ip) => `${addressesRoot}${leaseKeyOf(subnet)}/${formatIPv4(ip)}`,
    addresses6Prefix: (subnet6) => `${addresses6Root}${subnet6Segment(subnet6)}/`,
    address6Key: (subnet6, ip) => `${addresses6Root}${subnet6Segment(subnet6)}/${formatIPv6(ip)}`,
  };
}

/**
 * The subnet of a key found under `keys.subnetsPrefix`, read as flannel reads it (by suffix), or
 * null when flannel would ignore the key.
 */
export function leaseSubnetOfKey(keys: OverlayKeys, key: string): Cidr | null {
  if (!key.startsWith(keys.subnetsPrefix)) return null;
  return subnetFromLeaseKey(key.slice(keys.subnetsPrefix.length));
}

/** Both subnets of a key found under `keys.subnetsPrefix` (flannel's ParseSubnetKey), or null. */
export function leaseSubnetsOfKey(keys: OverlayKeys, key: string): LeaseSubnets | null {
  if (!key.startsWith(keys.subnetsPrefix)) return null;
  return parseLeaseKey(key.slice(keys.subnetsPrefix.length));
}

/**
 * The lease a listed key and value stand for when choosing a subnet: any key flannel reads as a
 * lease, and an unreadable value still blocks its subnet (as an owner-less lease); null otherwise.
 */
export function blockingLeaseOf(keys: OverlayKeys, kv: KeyValue): Lease | null {
  const subnets = leaseSubnetsOfKey(keys, kv.key);
  if (!subnets) return null;
  let attrs: LeaseAttrs;
  try {
    attrs = decodeLeaseAttrs(kv.value.toString('utf8'));
  } catch {
    attrs = { publicIP: '', backendType: '' };
  }
  return makeLease(subnets, attrs, kv.lease, kv.modRevision);
}

const NOT_OURS: LeaseAttrs = Object.freeze({ publicIP: '', backendType: '' }); // undecoded: not ours

/**
 * The leases of a `<prefix>/subnets` list as an acquire needs them (docs/flannel-compat.md §4):
 * every one blocks its subnet, but only the values that may name `owner` (a byte search for
 * `"<owner>"`; a backslash could escape it) are decoded, and kept with their KeyValue for the
 * reuse or stale writes. At 10,000 leases that is 10,000 JSON decodes fewer per attempt.
 */
export function leasesForAcquire(keys: OverlayKeys, kvs: readonly IKeyValue[], owner: string): { leases: Lease[]; kvOf: Map<Lease, KeyValue> } {
  const kvOf = new Map<Lease, KeyValue>();
  const leases: Lease[] = [];
  const ours = Buffer.from(`"${owner}"`);
  for (const raw of kvs) {
    if (!raw.value.includes(ours) && !raw.value.includes(0x5c /* \\ */)) {
      const subnets = leaseSubnetsOfKey(keys, raw.key.toString('utf8'));
      if (subnets) leases.push(makeLease(subnets, NOT_OURS, String(raw.lease ?? '0')));
      continue;
    }
    const kv = toKeyValue(raw);
    const lease = blockingLeaseOf(keys, kv);
    if (!lease) continue;
    kvOf.set(lease, kv);
    leases.push(lease);
  }
  return { leases, kvOf };
}

/** The subnet and address of an address-record key, or null for anything else. */
export function parseAddressKey(keys: OverlayKeys, key: string): { subnet: Cidr; ip: number } | null {
  if (!key.startsWith(keys.addressesRoot)) return null;
  const [leasePart, ipPart, extra] = key.slice(keys.addressesRoot.length).split('/');
  if (extra !== undefined || ipPart === undefined || !isIPv4(ipPart)) return null;
  const subnet = subnetFromLeaseKey(leasePart);
  if (!subnet || `${leaseKeyOf(subnet)}` !== leasePart) return null;
  const ip = parseIPv4(ipPart);
  return cidrContains(subnet, ip) ? { subnet, ip } : null;
}

/**
 * The v6 subnet and address of a v6 address-record key, or null for anything else: both segments
 * must be the canonical spelling (see the note at the top), the subnet without host bits, the
 * address inside it.
 */
export function parseAddress6Key(keys: OverlayKeys, key: string): { subnet6: Cidr6; ip: bigint } | null {
  if (!key.startsWith(keys.addresses6Root)) return null;
  const [leasePart, ipPart, extra] = key.slice(keys.addresses6Root.length).split('/');
  if (extra !== undefined || ipPart === undefined || !isIPv6(ipPart)) return null;
  const m = /^([0-9a-f:.]+)-(\d{1,3})$/.exec(leasePart);
  if (!m || !isIPv6(m[1]) || !(Number(m[2]) <= 128)) return null;
  const subnet6 = cidr6(parseIPv6(m[1]), Number(m[2]));
  if (subnet6Segment(subnet6) !== leasePart) return null;
  const ip = parseIPv6(ipPart);
  if (formatIPv6(ip) !== ipPart) return null;
  return cidr6Contains(subnet6, ip) ? { subnet6, ip } : null;
}

/** The network and endpoint ids of a name-record key, or null for anything else. */
export function parseNameKey(keys: OverlayKeys, key: string): { networkId: string; endpointId: string } | null {
  if (!key.startsWith(keys.namesRoot)) return null;
  const parts = key.slice(keys.namesRoot.length).split('/');
  if (parts.length !== 2 || !isRecordId(parts[0]) || !isRecordId(parts[1])) return null;
  return { networkId: parts[0], endpointId: parts[1] };
}

/** The host (public IP) of a path-report key, or null for anything else. */
export function parsePathKey(keys: OverlayKeys, key: string): string | null {
  if (!key.startsWith(keys.pathsRoot)) return null;
  const host = key.slice(keys.pathsRoot.length);
  return isIPv4(host) ? host : null;
}
