/**
 * The fast path (routed data path, vxlan backend): what the nftables `netdev` table of
 * kernel/nft-fastpath.ts should hold, planned from this host's overlays and the host routes the
 * driver gives each endpoint (`<address>/32 dev ofh<id>`).
 *
 * Why: in the routed data path an overlay packet is still routed by the host twice (container →
 * flannel.<VNI> and back), so it walks the host's netfilter hooks (raw, mangle, Docker's FORWARD
 * chain) and a FIB lookup on both hosts; swarm's overlay bridges it inside a namespace without
 * those. At the netdev ingress hook the packet can be handed straight to the other device with
 * nftables' `fwd ip to <next hop> device <dev>`, which decrements the TTL and fills the Ethernet
 * header from the neighbour table exactly as routing would:
 *  - on each endpoint's host veth: `daddr & subnet mask` in the set of peer subnets that the
 *    reconciler routes through flannel.<VNI> (`<subnet> via <subnet>.0 onlink`, read back from the
 *    kernel) → next hop that `.0` (its permanent neighbour entry is already there) on
 *    flannel.<VNI>. So the fast path forwards exactly what that route would, one rule and one
 *    hash lookup per overlay whatever the number of peers; a peer whose lease has another length
 *    (a config change) or no route yet is simply routed.
 *  - on flannel.<VNI>: `ip daddr` looked up in a map address → host veth ifindex → that veth.
 * Nothing on the wire changes (peers still see the subnet behind `.0`). The fast path only
 * accelerates: a packet it does not match (other destinations, a missing neighbour or device, a
 * table that is not written yet) takes the routed path as before, so a stale or absent table
 * never breaks connectivity. Overlays whose Networks overlap another's are left to routing, where
 * the FORWARD head block (forward-head.ts) decides between them.
 * A dual-stack overlay's v6 half (flannel-v6.<VNI>) gets the same two rules for ip6: fastpath-v6.ts.
 */
import { createHash } from 'node:crypto';
import { cidrContains, cidrsOverlap, type Cidr, formatCidr } from './ipv4';
import { digestTextV6, endpointMap6, formatV6Skip, fromOverlayChain6, overlappingV6, peerSet6, planV6, toOverlayChain6, type FastpathV6, type FastpathV6Input, type HostRoute6Input } from './fastpath-v6';

/** One overlay as the fast path needs it: vxlan only, with a lease and its device up. */
export interface FastpathOverlayInput {
  name: string;
  vni: number;
  network: Cidr;
  subnet: Cidr;
  vxlanDevice: string;
  vxlanIndex: number;
  /** The subnets routed through the vxlan device (`via <subnet>.0 onlink`): the peers. */
  peerRoutes: Cidr[];
  /** A dual-stack overlay's v6 half, its device up (fastpath-v6.ts). */
  v6?: FastpathV6Input;
}

/** A main-table host route, with its device's name. */
export interface HostRouteInput {
  dst: Cidr;
  oif: number;
  oifName: string;
}

export interface FastpathEndpoint {
  address: number;
  veth: string;
  vethIndex: number;
}

export interface FastpathOverlay extends Omit<FastpathOverlayInput, 'peerRoutes' | 'v6'> {
  endpoints: FastpathEndpoint[];
  /** Bases of the peer subnets of this host's subnet length, sorted. */
  peers: number[];
  v6?: FastpathV6;
}

export interface FastpathPlan {
  overlays: FastpathOverlay[];
  /** Changes whenever an overlay-level part changes (VNI, Network, subnet, device and its ifindex):
   *  then the table is written anew; endpoints and peers are applied as element-wise changes. */
  digest: string;
}

export interface FastpathSkip {
  overlay: string;
  reason: string;
}

/**
 * The plan: each usable overlay with the endpoints of its subnet (host routes /32 on a device
 * named `vethPrefix…`), sorted so equal inputs give equal digests.
 */
export function fastpathPlan(overlays: readonly FastpathOverlayInput[], routes: readonly HostRouteInput[], vethPrefix: string, routes6: readonly HostRoute6Input[] = []): { plan: FastpathPlan; skipped: FastpathSkip[] } {
  const skipped: FastpathSkip[] = [];
  const usable = overlays.filter((o) => {
    const other = overlays.find((x) => x !== o && cidrsOverlap(x.network, o.network));
    if (other) skipped.push({ overlay: o.name, reason: `its Network ${formatCidr(o.network)} overlaps overlay "${other.name}" (${formatCidr(other.network)}): left to routing` });
    return !other;
  });
  const planned = usable
    .map(({ peerRoutes, v6, ...o }) => ({
      ...o,
      ...v6Half(o.name, v6, usable, routes6, vethPrefix, skipped),
      peers: [...new Set(peerRoutes.filter((p) => p.len === o.subnet.len && p.base !== o.subnet.base).map((p) => p.base))].sort((a, b) => a - b),
      endpoints: routes
        .filter((r) => r.dst.len === 32 && r.oifName.startsWith(vethPrefix) && cidrContains(o.subnet, r.dst.base) && r.dst.base !== o.subnet.base)
        .map((r) => ({ address: r.dst.base, veth: r.oifName, vethIndex: r.oif }))
        .sort((a, b) => a.address - b.address),
    }))
    .sort((a, b) => a.vni - b.vni);
  return { plan: { overlays: planned, digest: digestOf(planned) }, skipped };
}

/** `{ v6 }` planned, or nothing when absent or when its IPv6Network overlaps another overlay's. */
function v6Half(name: string, v6: FastpathV6Input | undefined, usable: readonly FastpathOverlayInput[], routes6: readonly HostRoute6Input[], vethPrefix: string, skipped: FastpathSkip[]): { v6?: FastpathV6 } {
  if (!v6) return {};
  const other = overlappingV6(usable.find((o) => o.name === name)!, usable);
  if (other) {
    skipped.push({ overlay: name, reason: formatV6Skip(v6.network, other.name, other.v6!.network) });
    return {};
  }
  return { v6: planV6(v6, routes6, vethPrefix) };
}

function digestOf(overlays: FastpathOverlay[]): string {
  const text = overlays.map((o) => `${o.vni} ${formatCidr(o.network)} ${formatCidr(o.subnet)} ${o.vxlanDevice}#${o.vxlanIndex}${digestTextV6(o.v6)}`).join('\n');
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/**
 * Names in the table (≤ 256 characters). A veth's chain carries what its hook and rule depend on
 * (`<veth>.<ifindex>.<vni>`), so a recreated veth or a move to another overlay is a new name:
 * comparing names is comparing content.
 */
export const FASTPATH_TABLE = 'overlay-flannel';
export const toOverlayChain = (vni: number): string => `to-${vni}`;
export const fromOverlayChain = (vni: number): string => `from-${vni}`;
export const endpointMap = (vni: number): string => `endpoints-${vni}`;
export const peerSet = (vni: number): string => `peers-${vni}`;
export const planMarkerChain = (digest: string): string => `plan-${digest}`;
export const vethChain = (e: { veth: string; vethIndex: number }, vni: number): string => `${e.veth}.${e.vethIndex}.${vni}`;

/** The overlay-level chains of `plan`: when one is missing the table is written anew. */
export function overlayChains(plan: FastpathPlan): string[] {
  return [planMarkerChain(plan.digest), ...plan.overlays.flatMap((o) => [toOverlayChain(o.vni), fromOverlayChain(o.vni), ...(o.v6 ? [toOverlayChain6(o.vni), fromOverlayChain6(o.vni)] : [])])].sort();
}

/** The sets and maps of `plan` (read back element by element). */
export function planSets(plan: FastpathPlan): string[] {
  return plan.overlays.flatMap((o) => [endpointMap(o.vni), peerSet(o.vni), ...(o.v6 ? [endpointMap6(o.vni), peerSet6(o.vni)] : [])]);
}

/**
 * The per-endpoint chains of `plan`, name → [overlay VNI, host veth, whether it also jumps to
 * to6-<vni>]: one per veth with a v4 or v6 host route. Whether the overlay has a v6 half is in
 * the digest, so a chain's name still names its content.
 */
export function endpointChains(plan: FastpathPlan): Map<string, { vni: number; veth: string; v6: boolean }> {
  return new Map(plan.overlays.flatMap((o) => [...o.endpoints, ...(o.v6?.endpoints ?? [])].map((e) => [vethChain(e, o.vni), { vni: o.vni, veth: e.veth, v6: o.v6 !== undefined }] as const)));
}

/** What to change in an address set: keys to delete, entries to add (a changed value is both). */
export function setChanges<K extends number | bigint>(have: ReadonlyMap<K, number | undefined>, want: ReadonlyMap<K, number | undefined>): { remove: K[]; add: [K, number | undefined][] } {
  // Loops, not spreads: at 10,000 peers this runs every few seconds on 10,000-entry maps.
  const remove: K[] = [];
  for (const [k, v] of have) if (!want.has(k) || want.get(k) !== v) remove.push(k);
  const add: [K, number | undefined][] = [];
  for (const [k, v] of want) if (!have.has(k) || have.get(k) !== v) add.push([k, v]);
  return { remove, add };
}
