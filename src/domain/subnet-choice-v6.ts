/**
 * The IPv6 half of flannel's subnet choice (docs/flannel-compat.md §4 "Choosing a subnet"), as
 * flanneld's allocateSubnet does it: walk IPv6SubnetMin → IPv6SubnetMax in IPv6SubnetLen steps,
 * skip every subnet that overlaps a lease's v6 subnet, collect the first 100 free ones; the caller
 * picks one at random, independently of the v4 pick. A lease of ours fits when its v6 subnet is in
 * Min..Max with the right length (isIPv6SubnetConfigCompat), or, with IPv6 off, when it has none.
 *
 * Bounded where flanneld is not: a /48 in /64s is 65536 steps and a /8 is 2^56, so the walk jumps
 * over a taken block in one step (a lease with a shorter prefix covers many subnets), and taken
 * subnets are looked up in sets per prefix length instead of comparing with every lease.
 */
import { Cidr6, cidr6, cidr6Size, mask6 } from './ipv6';
import { Ipv6NetworkConfig, subnet6InRange } from './network-config-v6';

export const FREE_CANDIDATES_V6 = 100;

/** flannel's isIPv6SubnetConfigCompat. */
export function subnet6Fits(v6: Ipv6NetworkConfig | undefined, subnet6: Cidr6 | undefined): boolean {
  if (!v6) return subnet6 === undefined;
  return subnet6 !== undefined && subnet6InRange(v6, subnet6);
}

/**
 * For CIDRs of length `len`: the taken CIDR that overlaps `c`, as {base,len} of the block to skip
 * (the taken one when it is shorter, else `c` itself), or null when `c` is free.
 */
export function blockerIndex6(taken: readonly Cidr6[], len: number): (c: Cidr6) => Cidr6 | null {
  // Taken CIDRs by prefix length; a longer one is filed as the /len that encloses it.
  const byLen = new Map<number, Set<bigint>>();
  for (const t of taken) {
    const l = Math.min(t.len, len);
    const bases = byLen.get(l) ?? new Set<bigint>();
    bases.add(t.base & mask6(l));
    byLen.set(l, bases);
  }
  const lengths = [...byLen.keys()].sort((a, b) => a - b); // the widest block first: the longest skip
  return (c) => {
    for (const l of lengths) if (byLen.get(l)!.has(c.base & mask6(l))) return cidr6(c.base, l);
    return null;
  };
}

/**
 * The v6 subnets to pick from: `previous6` alone when it fits and is free (flanneld: subnet.env's
 * FLANNEL_IPV6_SUBNET), else the first 100 free ones. Empty = no free v6 subnet.
 */
export function freeSubnets6(v6: Ipv6NetworkConfig, taken: readonly Cidr6[], previous6?: Cidr6 | null): Cidr6[] {
  const blocker = blockerIndex6(taken, v6.subnetLen);
  if (previous6 && subnet6InRange(v6, previous6) && !blocker(previous6)) return [previous6];
  const size = cidr6Size(cidr6(0n, v6.subnetLen));
  const out: Cidr6[] = [];
  for (let ip = v6.subnetMin; ip <= v6.subnetMax && out.length < FREE_CANDIDATES_V6; ) {
    const c = cidr6(ip, v6.subnetLen);
    const b = blocker(c);
    if (!b) {
      out.push(c);
      ip += size;
    } else {
      ip = b.base + cidr6Size(b); // past the whole taken block
    }
  }
  return out;
}
