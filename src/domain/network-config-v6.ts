/**
 * The IPv6 half of flannel's network config (EnableIPv6, IPv6Network, IPv6SubnetLen,
 * IPv6SubnetMin/Max), read and checked exactly as flanneld's CheckNetworkConfig does
 * (docs/flannel-compat.md §1), with flanneld's error texts followed by what to do:
 * - IPv6SubnetLen defaults to 64 for a /62 or shorter, else prefix + 2; a network longer than /124
 *   is too small; an explicit length must be ≤ 126 and ≥ prefix + 2;
 * - IPv6SubnetMin defaults to the second subnet, IPv6SubnetMax to the last; given ones must lie in
 *   the network and on a subnet boundary (no check that Min ≤ Max, as flanneld);
 * - "" and "::" mean unset, as for the v4 bounds (Go's zero IP).
 * Deliberate differences (a clear error where flanneld would silently misbehave): IPv6Network must
 * be IPv6 text (Go reads "10.0.0.0/8" as a v4-mapped network with prefix /8), and must not reach
 * into ::/96 or ::ffff:0:0/96, whose subnets Go prints as dotted IPv4 in lease keys that flannel
 * itself could not read back.
 */
import { invalid } from '../errors';
import { Cidr6, cidr6, cidr6Contains, cidr6Size, cidr6sOverlap, formatCidr6, formatIPv6, mask6, nextNetworkBase6, parseCidr6, parseIPv6 } from './ipv6';
import { intField, JsonObject, stringField } from './json-fields';
import type { NetworkConfig } from './network-config';

export interface Ipv6NetworkConfig {
  readonly network: Cidr6;
  readonly subnetLen: number;
  readonly subnetMin: bigint; // base of the first v6 subnet that may be leased
  readonly subnetMax: bigint; // base of the last one
}

const WHERE = 'network config';
const V4_LOOKING: readonly Cidr6[] = [cidr6(0n, 96), cidr6(0xffffn << 32n, 96)];

/** The v6 fields of a config that has EnableIPv6 true. Throws INVALID naming the field and the fix. */
export function parseIPv6Fields(obj: JsonObject): Ipv6NetworkConfig {
  const text = stringField(obj, 'IPv6Network', WHERE);
  if (text === undefined || text === '') {
    throw invalid(`${WHERE}: please define a correct IPv6Network parameter (EnableIPv6 is true), e.g. "IPv6Network":"fd00:10::/48"`);
  }
  const network = parseCidr6(text, `${WHERE}: "IPv6Network"`);
  if (network.base === 0n && network.len === 0) {
    throw invalid(`${WHERE}: please define a correct IPv6Network parameter: ::/0 is flannel's "empty" network; use e.g. "fd00:10::/48"`);
  }
  const clash = V4_LOOKING.find((r) => cidr6sOverlap(r, network));
  if (clash) {
    throw invalid(
      `${WHERE}: IPv6Network ${formatCidr6(network)} reaches into ${formatCidr6(clash)}, whose addresses flannel writes as dotted IPv4 in lease keys; ` +
        'use a unique local range such as fd00:10::/48',
    );
  }

  const subnetLen = flannelSubnetLen(intField(obj, 'IPv6SubnetLen', WHERE, 0, 128) ?? 0, network.len, formatCidr6(network), IPV6_LENS, WHERE);

  const size = cidr6Size(cidr6(0n, subnetLen));
  const subnetMin = boundField(obj, 'IPv6SubnetMin', network, network.base + size, subnetLen);
  const subnetMax = boundField(obj, 'IPv6SubnetMax', network, nextNetworkBase6(network) - size, subnetLen);
  return { network, subnetLen, subnetMin, subnetMax };
}

/** The names and sizes flanneld's SubnetLen rule uses, per family. */
export interface SubnetLenFamily {
  readonly lenField: 'SubnetLen' | 'IPv6SubnetLen';
  readonly netField: 'Network' | 'IPv6Network';
  /** Address bits: 32 or 128. */
  readonly bits: number;
  /** The default subnet length (24 or 64), used while the network leaves room for four of them. */
  readonly defaultLen: number;
}

export const IPV4_LENS: SubnetLenFamily = { lenField: 'SubnetLen', netField: 'Network', bits: 32, defaultLen: 24 };
const IPV6_LENS: SubnetLenFamily = { lenField: 'IPv6SubnetLen', netField: 'IPv6Network', bits: 128, defaultLen: 64 };

/**
 * flanneld's CheckNetworkConfig rule for the subnet length, the same for both families: a given
 * length must be shorter than a /(bits−1) and leave room for four subnets in the network; unset
 * (0), it is the family's default while the network holds four of those, else network + 2, and a
 * network longer than /(bits−4) is refused as too small.
 */
export function flannelSubnetLen(given: number, networkLen: number, networkText: string, f: SubnetLenFamily, where: string): number {
  if (given > 0) {
    if (given > f.bits - 2) throw invalid(`${where}: ${f.lenField} must be less than /${f.bits - 1}, got ${given}`);
    if (given < networkLen + 2) {
      throw invalid(`${where}: ${f.netField} ${networkText} must be able to accommodate at least four subnets of /${given}`);
    }
    return given;
  }
  if (networkLen > f.bits - 4) throw invalid(`${where}: ${f.netField} ${networkText} is too small; the minimum useful network prefix is /${f.bits - 4}`);
  return networkLen <= f.defaultLen - 2 ? f.defaultLen : networkLen + 2;
}

function boundField(obj: JsonObject, name: string, network: Cidr6, dflt: bigint, subnetLen: number): bigint {
  const text = stringField(obj, name, WHERE);
  if (text === undefined || text === '') return dflt;
  const ip = parseIPv6(text, `${WHERE}: "${name}"`);
  if (ip === 0n) return dflt; // Go's zero IP means "unset"
  if (!cidr6Contains(network, ip)) throw invalid(`${WHERE}: ${name} ${text} is not in the range of the IPv6Network ${formatCidr6(network)}`);
  if ((ip & mask6(subnetLen)) !== ip) throw invalid(`${WHERE}: ${name} is not on an IPv6SubnetLen (/${subnetLen}) boundary: ${text}`);
  return ip;
}

/** The v6 subnets flannel may lease, in order (lazy: a /48 split in /64s is 65536). */
export function* leasableSubnets6(v6: Ipv6NetworkConfig): Generator<Cidr6> {
  const size = cidr6Size(cidr6(0n, v6.subnetLen));
  for (let ip = v6.subnetMin; ip <= v6.subnetMax; ip += size) yield cidr6(ip, v6.subnetLen);
}

/** flannel's isIPv6SubnetConfigCompat for an enabled v6 half: in Min..Max with the right length. */
export function subnet6InRange(v6: Ipv6NetworkConfig, subnet: Cidr6): boolean {
  return subnet.len === v6.subnetLen && subnet.base >= v6.subnetMin && subnet.base <= v6.subnetMax && cidr6Contains(v6.network, subnet.base);
}

/** How many v6 subnets Min..Max holds, as text (a /32 in /64s is 2^32: beyond a JS number's comfort). */
export function countSubnets6(v6: Ipv6NetworkConfig): string {
  if (v6.subnetMax < v6.subnetMin) return '0';
  return String((v6.subnetMax - v6.subnetMin) / cidr6Size(cidr6(0n, v6.subnetLen)) + 1n);
}

export function describeIPv6(v6: Ipv6NetworkConfig): string {
  return `${formatCidr6(v6.network)}, /${v6.subnetLen} per host (${formatIPv6(v6.subnetMin)}–${formatIPv6(v6.subnetMax)}, ${countSubnets6(v6)} subnets)`;
}

/**
 * Why the daemon cannot run `cfg` yet, or null. The config itself is valid (config set/show, and
 * flanneld reads it the same way); what is missing is named precisely, with the way out. Runs
 * today: dual-stack leases with the alloc backend (no data plane: the operator routes the subnets),
 * dual-stack vxlan (flannel-v6.<VNI> between the hosts, docs/ipv6.md; Docker networks stay v4),
 * dual-stack wireguard in Mode "separate" (flannel-wg-v6, docs/wireguard.md), and IPv6-only vxlan
 * (flannel-v6.<VNI> alone, host to host; Docker networks on it are refused by the IPAM, docs/ipv6.md §8).
 */
export function ipv6Refusal(cfg: NetworkConfig): string | null {
  if (!cfg.ipv6) return null;
  if (!cfg.enableIPv4) {
    if (cfg.backend.type === 'vxlan') return null; // flannel-v6.<VNI> only, as flanneld
    return (
      `EnableIPv4 false with the ${cfg.backend.type} backend: IPv6-only overlays run only with the vxlan backend in overlay-flannel ` +
      '(flannel-v6.<VNI>; issue 21); use "Backend":{"Type":"vxlan"}, or add "EnableIPv4": true and a "Network" (dual-stack)'
    );
  }
  if (cfg.backend.type === 'alloc' || cfg.backend.type === 'vxlan') return null;
  if (cfg.backend.type === 'wireguard') {
    if (cfg.backend.mode === 'separate') return null; // flannel-wg-v6 beside flannel-wg (docs/wireguard.md)
    return (
      `EnableIPv6 with wireguard Mode "${cfg.backend.mode}": one device for both families is not built in overlay-flannel (issue 21); ` +
      'use Mode "separate" (flanneld\'s default: a second device flannel-wg-v6 on ListenPortV6), which works'
    );
  }
  const planes: Record<string, string> = { 'host-gw': "host-gw's v6 routes" };
  const plane = planes[cfg.backend.type] ?? `${cfg.backend.type}'s v6 data plane`;
  return (
    `EnableIPv6 with the ${cfg.backend.type} backend: IPv6 leases are supported, but ${plane} and Docker --ipv6 networks are not built yet ` +
    'in overlay-flannel (issue 21); set "EnableIPv6": false, use "Backend":{"Type":"vxlan"} (flannel-v6.<VNI> between the hosts), ' +
    'or "Backend":{"Type":"alloc"} for dual-stack leases whose v6 subnets you route'
  );
}
