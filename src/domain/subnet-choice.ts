/**
 * Which subnet a host should lease, decided as flanneld's tryAcquireLease does (docs/flannel-compat.md
 * §4 "Choosing a subnet"): reuse the lease that carries our PublicIP if it still fits the config,
 * else the subnet this host had before (flanneld reads it from subnet.env; we read it from the
 * vxlan device's address, which outlives the daemon) if it is still free, else pick at random among
 * the first 100 free subnets from SubnetMin to SubnetMax. Pure: the store lists the leases and
 * applies the decision. With EnableIPv6 the v6 subnet is chosen the same way and independently
 * (subnet-choice-v6.ts); an IPv6-only config's v4 part is always 0.0.0.0/0, never checked for
 * overlap (flanneld would find every lease overlapping it and report "out of subnets").
 */
import { Cidr, cidr, formatCidr, maskOf } from './ipv4';
import { Cidr6, formatCidr6 } from './ipv6';
import { Lease } from './lease';
import { leaseOwner } from './lease-v6';
import { freeSubnets6, subnet6Fits } from './subnet-choice-v6';
import { leasableSubnets, NetworkConfig, subnetInRange } from './network-config';

export const FREE_CANDIDATES = 100;

export type SubnetChoice =
  | { kind: 'reuse'; lease: Lease; stale: Lease[] }
  | { kind: 'new'; candidates: Cidr[]; candidates6?: Cidr6[]; stale: Lease[] }
  | { kind: 'exhausted'; family: 'IPv4' | 'IPv6'; stale: Lease[] };

/**
 * @param leases every lease currently under `<prefix>/subnets` (reservations included)
 * @param owner this host's identity: its PublicIP, or its PublicIPv6 in an IPv6-only overlay (leaseOwner)
 * `stale` lists leases of ours that no longer fit the config (either family): flannel deletes them.
 */
export function chooseSubnet(cfg: NetworkConfig, leases: readonly Lease[], owner: string, previous?: Cidr | null, previous6?: Cidr6 | null): SubnetChoice {
  const stale: Lease[] = [];
  for (const lease of leases) {
    if (owner === '' || leaseOwner(lease.attrs) !== owner) continue;
    if (subnetInRange(cfg, lease.subnet) && subnet6Fits(cfg.ipv6, lease.subnet6)) return { kind: 'reuse', lease, stale };
    stale.push(lease);
  }
  let candidates6: { candidates6?: Cidr6[] } = {};
  if (cfg.ipv6) {
    const taken6 = leases.filter((l) => !stale.includes(l) && l.subnet6).map((l) => l.subnet6!);
    const free6 = freeSubnets6(cfg.ipv6, taken6, previous6);
    if (free6.length === 0) return { kind: 'exhausted', family: 'IPv6', stale };
    candidates6 = { candidates6: free6 };
  }
  if (!cfg.enableIPv4) return { kind: 'new', candidates: [cidr(0, 0)], ...candidates6, stale };
  const overlapsTaken = overlapIndex(
    leases.filter((l) => !stale.includes(l)).map((l) => l.subnet),
    cfg.subnetLen,
  );
  if (previous && subnetInRange(cfg, previous) && !overlapsTaken(previous)) {
    return { kind: 'new', candidates: [previous], ...candidates6, stale };
  }
  const candidates: Cidr[] = [];
  for (const subnet of leasableSubnets(cfg)) {
    if (overlapsTaken(subnet)) continue;
    candidates.push(subnet);
    if (candidates.length >= FREE_CANDIDATES) break;
  }
  return candidates.length ? { kind: 'new', candidates, ...candidates6, stale } : { kind: 'exhausted', family: 'IPv4', stale };
}

/**
 * `(c) => taken.some((t) => cidrsOverlap(t, c))` for CIDRs `c` of prefix length `len`, in
 * O(distinct prefix lengths) per call instead of O(taken): 2047 subnets × 2000 leases were 4 M
 * comparisons (~75 ms) per acquire attempt.
 */
export function overlapIndex(taken: readonly Cidr[], len: number): (c: Cidr) => boolean {
  const shorter = new Map<number, Set<number>>(); // prefix length (≤ len) -> bases of taken CIDRs
  const longer = new Set<number>(); // taken CIDRs longer than len, as their enclosing /len base
  for (const t of taken) {
    if (t.len <= len) {
      let bases = shorter.get(t.len);
      if (!bases) shorter.set(t.len, (bases = new Set()));
      bases.add(t.base);
    } else {
      longer.add((t.base & maskOf(len)) >>> 0);
    }
  }
  return (c) => {
    if (c.len !== len) throw new Error(`overlapIndex built for /${len}, asked about /${c.len}`);
    if (longer.has(c.base)) return true;
    for (const [l, bases] of shorter) if (bases.has((c.base & maskOf(l)) >>> 0)) return true;
    return false;
  };
}

/** Why a choice was exhausted, naming the family and its range. */
export function describeExhausted(cfg: NetworkConfig, family: 'IPv4' | 'IPv6', leases: number): string {
  if (family === 'IPv6') return `no free IPv6 subnet in ${formatCidr6(cfg.ipv6!.network)} between IPv6SubnetMin and IPv6SubnetMax (${leases} leases)`;
  return `no free subnet in ${formatCidr(cfg.network)} between SubnetMin and SubnetMax (${leases} leases)`;
}

export function pickRandom<T>(items: readonly T[], random: () => number = Math.random): T {
  return items[Math.min(items.length - 1, Math.floor(random() * items.length))];
}
