/**
 * Container IPv6 addresses inside a host's v6 lease (Docker `--ipv6` networks, issue 21).
 * Reserved: the subnet address (`::0`, the /128 on flannel-v6.<VNI> and flannel's next hop) and
 * `::1` (the network's IPAM gateway, as `.1` in v4; the routed data path answers with a
 * link-local gateway instead, see routedGateway6).
 *
 * Allocation is random in the host bits; every address handed out is recorded in etcd
 * (src/store/address6-store.ts: create-if-absent, so a pick that meets a record, even one from
 * before a restart, loses its create and picks again, at most MAX_PICKS6 times). Random rather than
 * walked: a v6 lease is a /64 by default (2^64 addresses), so a pick meets one of n records with
 * probability n/2^hostBits and the store needs no index or listing per allocation. That bound on
 * re-picks is why a v6 lease with fewer than 32 host bits (IPv6SubnetLen > 96) is refused.
 */
import { conflict, invalid } from '../errors';
import { Cidr6, cidr6Contains, cidr6Size, formatCidr6, formatIPv6, parseIPv6 } from './ipv6';

/** Fewest host bits a v6 lease must have for random picks (at most MAX_PICKS6 re-picks) to stay sparse. */
export const MIN_HOST_BITS6 = 32;

export function gateway6Of(subnet: Cidr6): bigint {
  return subnet.base + 1n;
}

export function isReservedAddress6(subnet: Cidr6, ip: bigint): boolean {
  const offset = ip - subnet.base;
  return offset === 0n || offset === 1n;
}

/** Validate a requested v6 address (`--ip6`) against the lease. */
export function checkRequestedAddress6(subnet: Cidr6, text: string): bigint {
  const ip = parseIPv6(text, 'requested IPv6 address');
  if (!cidr6Contains(subnet, ip)) throw invalid(`address ${text} is not in this host's IPv6 subnet ${formatCidr6(subnet)}`);
  if (isReservedAddress6(subnet, ip)) throw conflict(`address ${text} is reserved in ${formatCidr6(subnet)} (the subnet address ::0 on flannel-v6, and the gateway ::1)`);
  return ip;
}

/**
 * A random free address of `subnet` (never reserved, never in `taken`). `random` returns `bytes`
 * random bytes (crypto.randomBytes in production, a table in tests). Bounded: 64 tries.
 */
export function pickAddress6(subnet: Cidr6, taken: { has(ip: bigint): boolean }, random: (bytes: number) => Uint8Array): bigint {
  const hostBits = 128 - subnet.len;
  if (hostBits < MIN_HOST_BITS6) throw invalid(`IPv6 subnet ${formatCidr6(subnet)} is too small for Docker addresses: it needs at least ${MIN_HOST_BITS6} host bits (IPv6SubnetLen ≤ ${128 - MIN_HOST_BITS6})`);
  const size = cidr6Size(subnet);
  for (let i = 0; i < 64; i++) {
    let n = 0n;
    for (const b of random(16)) n = (n << 8n) | BigInt(b);
    const ip = subnet.base + (n % size);
    if (!isReservedAddress6(subnet, ip) && !taken.has(ip)) return ip;
  }
  throw conflict(`no free IPv6 address found in ${formatCidr6(subnet)} after 64 random picks`);
}

export function address6WithPrefix(ip: bigint, subnet: Cidr6): string {
  return `${formatIPv6(ip)}/${subnet.len}`;
}

/**
 * The link-local IPv6 gateway of a routed network, derived from its v4 link-local gateway
 * (169.254.1.k → fe80::a9fe:10k): distinct per network of a host like the v4 one, and no new
 * state (the record bridge already holds the v4 one). Each host veth of the network holds it as
 * fe80::…/64, because Linux answers neighbour solicitations only for addresses of the receiving
 * interface (unlike ARP, which answers for any local address).
 */
export function routedGateway6(routedGatewayV4: number): string {
  return formatIPv6(0xfe80n << 112n | BigInt(routedGatewayV4 >>> 0));
}
