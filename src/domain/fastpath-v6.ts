/**
 * The fast path's IPv6 half (issue 21): the v6 twin of fastpath.ts's plan for a dual-stack vxlan
 * overlay, planned from the v6 peer routes the reconciler keeps on flannel-v6.<VNI>
 * (`<subnet6> via <subnet6 address> onlink`, vxlan-v6-plane.ts) and the driver's endpoint host
 * routes `<v6>/128 dev ofh<id>` (network-v6.ts). The same two rules as v4, for ip6:
 *  - on each endpoint's host veth: `ip6 daddr & <subnet6 mask>` in the set of v6 peer subnets →
 *    `fwd ip6 to` that address (the subnet's base, the peer's permanent NDP entry on flannel-v6)
 *    `device flannel-v6.<VNI>`;
 *  - on flannel-v6.<VNI>: `ip6 daddr` looked up in a map v6 address → host veth → that veth.
 * `fwd ip6` decrements the hop limit as routing does (nft_fwd_netdev); a hop limit that would
 * expire, and anything else the sets miss, is routed, as in v4. Unlike v4, the veths' MTU
 * (parent − 50, FLANNEL_MTU) is above flannel-v6's (parent − 70), and `fwd` checks no MTU: a
 * 1450-byte packet handed to flannel-v6 is lost (measured: v6 TCP stalled). So to6- forwards only
 * packets of at most flannel-v6's MTU (`meta length`); a bigger one — a container's first
 * full-size packets, and every GSO batch, whose length is the batch's — is routed, and routing
 * answers Packet Too Big (the sender learns 1430) or segments the batch as before. An overlay whose IPv6Network
 * overlaps another's keeps its v4 fast path; its v6 half is left to routing.
 */
import { cidr6Contains, cidr6sOverlap, formatCidr6, type Cidr6 } from './ipv6';

/** A dual-stack overlay's v6 half as the fast path needs it (its device up). */
export interface FastpathV6Input {
  network: Cidr6;
  subnet: Cidr6;
  device: string;
  index: number;
  /** flannel-v6's MTU (parent − 70, below the veths' parent − 50): bigger packets are routed, which answers Packet Too Big. */
  mtu: number;
  /** The v6 subnets routed through flannel-v6 (`via <subnet6 address> onlink`): the peers. */
  peerRoutes: Cidr6[];
}

/** A main-table v6 host route (`<v6>/128 dev <veth>`), with its device's name. */
export interface HostRoute6Input {
  dst: Cidr6;
  oif: number;
  oifName: string;
}

export interface FastpathEndpoint6 {
  address: bigint;
  veth: string;
  vethIndex: number;
}

export interface FastpathV6 extends Omit<FastpathV6Input, 'peerRoutes'> {
  endpoints: FastpathEndpoint6[];
  /** Bases of the v6 peer subnets of this host's v6 subnet length, sorted. */
  peers: bigint[];
}

const byBig = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0);

/** The v6 half: peers of our subnet length (not ours), endpoints /128 on `vethPrefix…` veths in our v6 subnet. */
export function planV6(v6: FastpathV6Input, routes: readonly HostRoute6Input[], vethPrefix: string): FastpathV6 {
  const { peerRoutes, ...rest } = v6;
  return {
    ...rest,
    peers: [...new Set(peerRoutes.filter((p) => p.len === v6.subnet.len && p.base !== v6.subnet.base).map((p) => p.base))].sort(byBig),
    endpoints: routes
      .filter((r) => r.dst.len === 128 && r.oifName.startsWith(vethPrefix) && cidr6Contains(v6.subnet, r.dst.base) && r.dst.base !== v6.subnet.base)
      .map((r) => ({ address: r.dst.base, veth: r.oifName, vethIndex: r.oif }))
      .sort((a, b) => byBig(a.address, b.address)),
  };
}

/** The overlay whose IPv6Network overlaps `mine` (then the v6 half is left to routing), if any. */
export function overlappingV6<T extends { name: string; v6?: { network: Cidr6 } }>(mine: T, all: readonly T[]): T | undefined {
  return all.find((x) => x !== mine && x.v6 !== undefined && mine.v6 !== undefined && cidr6sOverlap(x.v6.network, mine.v6.network));
}

export const formatV6Skip = (mine: Cidr6, other: string, theirs: Cidr6): string => `its IPv6Network ${formatCidr6(mine)} overlaps overlay "${other}" (${formatCidr6(theirs)}): its IPv6 half is left to routing`;

/** The v6 half's part of the plan digest (a change rewrites the table). */
export const digestTextV6 = (v6: FastpathV6 | undefined): string => (v6 ? ` v6 ${formatCidr6(v6.network)} ${formatCidr6(v6.subnet)} ${v6.device}#${v6.index} mtu ${v6.mtu}` : '');

export const toOverlayChain6 = (vni: number): string => `to6-${vni}`;
export const fromOverlayChain6 = (vni: number): string => `from6-${vni}`;
export const endpointMap6 = (vni: number): string => `endpoints6-${vni}`;
export const peerSet6 = (vni: number): string => `peers6-${vni}`;
