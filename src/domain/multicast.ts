/**
 * Multicast and broadcast across hosts (issue 17; docs/multicast.md has the measurements): the
 * pure decisions. The kernel does every packet, nothing in userspace:
 *  - head-end replication: the vxlan device sends a frame whose destination MAC has no FDB entry
 *    (every multicast/broadcast MAC; unicast always has its peer's VtepMAC) once to each
 *    all-zeros FDB entry. The reconciler keeps one per remote overlay-flannel host of the overlay
 *    (domain/peers.ts), never for a flanneld host: flanneld's flannel.<VNI> is an L3 device that
 *    would only drop (or, for 255.255.255.255, deliver to its host's stack) what we send it.
 *    The two are told apart from the lease alone: our VtepMAC is derived from (VNI, PublicIP)
 *    (domain/mac.ts), flanneld's is random.
 *  - nftables `netdev` table `overlay-flannel-mcast`, at priority -10 (before the fast path; the
 *    chains are listed at multicastPlan): on each container's host veth, an IPv4 packet to
 *    224.0.0.0/4 or 255.255.255.255 is `dup`ed to flannel.<VNI> (which replicates it) and to the
 *    network's other local veths, then dropped
 *    (routed data path: the host's own stack never sees it); on the bridge data path it is only
 *    `dup`ed to flannel.<VNI> and goes on into the bridge, which floods it locally. On the ingress
 *    of flannel.<VNI> such a packet from a peer is `dup`ed to the local veths (routed) or to the
 *    bridge device (bridge: it floods its ports, never the host) and dropped. It is never sent
 *    back to flannel.<VNI>: that is the loop guard, so a receiving host never re-replicates.
 *    The vxlan chain exists for every joined vxlan overlay, even without a local network or with
 *    multicast off: a peer's flood then stops there instead of reaching this host's stack.
 * The inner frame keeps its MAC header: each container's stack filters by group membership, and
 * the TTL is not decremented (a flat L2 segment's behaviour; TTL-1 link-local groups work).
 */
import { createHash } from 'node:crypto';
import { invalid } from '../errors';
import { cidr, parseIPv4 } from './ipv4';
import type { Datapath, JoinRoute } from './datapath';
import type { Lease } from './lease';
import { vtepMacFor } from './mac';

/** The `docker network create -o` keys that turn multicast on or off (on by default). */
export const MULTICAST_OPTIONS = ['multicast', 'overlay-flannel.multicast'] as const;
/** The alias a network's record bridge carries when multicast is off (the kernel is the record). */
export const MULTICAST_OFF_ALIAS = 'overlay-flannel multicast=off';
export const MULTICAST_TABLE = 'overlay-flannel-mcast';
/** Before the fast path's chains (priority 0) on the same ingress hooks. */
export const MULTICAST_PRIORITY = -10;

const ON = new Set(['true', 'on', 'yes', '1']);
const OFF = new Set(['false', 'off', 'no', '0']);

/** Whether a network's generic options ask for multicast (`-o multicast=false` turns it off). */
export function multicastOption(generic: Record<string, string | undefined>): boolean {
  const given = MULTICAST_OPTIONS.map((k) => [k, generic[k]] as const).filter(([, v]) => v !== undefined && v !== '');
  if (given.length === 0) return true;
  const [key, value] = given[0]!;
  const v = value!.trim().toLowerCase();
  if (ON.has(v)) return true;
  if (OFF.has(v)) return false;
  throw invalid(`-o ${key}=${value}: use -o multicast=true (the default: multicast and broadcast reach the network's containers on every host) or -o multicast=false`);
}

/** The routes Join adds for multicast: the groups and the limited broadcast, on-link. */
export function multicastJoinRoutes(on: boolean): JoinRoute[] {
  if (!on) return [];
  return [
    { destination: cidr(parseIPv4('224.0.0.0'), 4), nextHop: null },
    { destination: cidr(parseIPv4('255.255.255.255'), 32), nextHop: null },
  ];
}

/** Whether a peer's lease is another overlay-flannel host of the vxlan overlay `vni` (it gets a
 *  flood entry); a flanneld host's random VtepMAC never matches. */
export function floodsTo(lease: Lease, vni: number): boolean {
  const vx = lease.attrs.vxlan;
  return lease.attrs.backendType === 'vxlan' && vx !== undefined && vx.vtepMac === vtepMacFor(vni, lease.attrs.publicIP);
}

export interface Device {
  name: string;
  index: number;
}

/** One joined vxlan overlay whose device is up, with its Docker network on this host if any. */
export interface MulticastOverlayInput {
  overlay: string;
  vni: number;
  vxlan: Device;
  network: {
    mode: Datapath;
    enabled: boolean;
    bridge: Device;
    /** The host veths of its endpoints (routed: those with a host route; bridge: its ports). */
    veths: Device[];
  } | null;
}

/**
 * What a rule matches: IPv4 to 224.0.0.0/4, IPv4 to 255.255.255.255, a packet that did not come in
 * on `from` (meta iif), or anything. Then it copies to `dups` (in order) and ends with its verdict.
 */
export type MulticastRule =
  | { match: 'groups' | 'broadcast'; dups: Device[]; then: 'drop' | 'continue' | { jump: string } }
  | { match: 'not-from'; from: Device; dups: Device[]; then: 'continue' }
  | { match: 'any'; dups: []; then: 'drop' | { jump: string } };

/** A chain of the table: a base chain on `device`'s ingress, or a regular chain (device null). */
export interface MulticastChain {
  name: string;
  device: Device | null;
  rules: MulticastRule[];
}

export interface MulticastPlan {
  /** In creation order: regular chains before the base chains that jump to them. */
  chains: MulticastChain[];
  /** Of every chain (names, devices, ifindexes, rules): the table is rewritten when it changes. */
  digest: string;
}

export const vxlanInChain = (vni: number): string => `in-${vni}`;
export const outChain = (vni: number): string => `out-${vni}`;
export const localChain = (vni: number): string => `local-${vni}`;
export const vethOutChain = (veth: Device, vni: number): string => `${veth.name}.${veth.index}.${vni}`;
export const multicastMarker = (digest: string): string => `plan-${digest}`;

/** The same copies and verdict for both kinds of destination. */
const both = (dups: Device[], then: 'drop' | 'continue' | { jump: string }): MulticastRule[] => [
  { match: 'groups', dups, then },
  { match: 'broadcast', dups, then },
];

/**
 * The table for these overlays. Its size grows linearly with the local endpoints (the routed
 * copies to "every other local veth" are one shared chain `local-<vni>` of `iif != X → dup to X`
 * rules, not a list per veth), so one transaction holds hundreds of endpoints:
 *   local-<vni>  (routed)  per veth: iif != veth → dup to veth; then drop
 *   out-<vni>              routed: groups/broadcast → dup to flannel, jump local-<vni>
 *                          bridge: groups/broadcast → dup to flannel (and on into the bridge)
 *   in-<vni>   (ingress of flannel.<VNI>) routed: jump local-<vni>; bridge: dup to the bridge, drop;
 *                          no network or multicast off: drop (the guard)
 *   <veth>.<ifindex>.<vni> (ingress of each host veth): jump out-<vni>
 */
export function multicastPlan(inputs: readonly MulticastOverlayInput[]): MulticastPlan {
  const chains: MulticastChain[] = [];
  for (const o of [...inputs].sort((a, b) => a.vni - b.vni)) {
    const net = o.network?.enabled ? o.network : null;
    if (!net) {
      chains.push({ name: vxlanInChain(o.vni), device: o.vxlan, rules: both([], 'drop') });
      continue;
    }
    const veths = [...net.veths].sort((a, b) => a.name.localeCompare(b.name));
    if (net.mode === 'routed') {
      const local: MulticastRule[] = veths.map((v) => ({ match: 'not-from', from: v, dups: [v], then: 'continue' }));
      chains.push({ name: localChain(o.vni), device: null, rules: [...local, { match: 'any', dups: [], then: 'drop' }] });
      chains.push({ name: outChain(o.vni), device: null, rules: both([o.vxlan], { jump: localChain(o.vni) }) });
      chains.push({ name: vxlanInChain(o.vni), device: o.vxlan, rules: both([], { jump: localChain(o.vni) }) });
    } else {
      chains.push({ name: outChain(o.vni), device: null, rules: both([o.vxlan], 'continue') });
      chains.push({ name: vxlanInChain(o.vni), device: o.vxlan, rules: both([net.bridge], 'drop') });
    }
    for (const v of veths) chains.push({ name: vethOutChain(v, o.vni), device: v, rules: [{ match: 'any', dups: [], then: { jump: outChain(o.vni) } }] });
  }
  return { chains, digest: chains.length ? createHash('sha256').update(describeChains(chains)).digest('hex').slice(0, 16) : '' };
}

const dev = (d: Device): string => `${d.name}#${d.index}`;
/** One line per chain, e.g. `in-1@flannel.1#10: groups>jump local-1 | broadcast>jump local-1`. */
export function describeChains(chains: readonly MulticastChain[]): string {
  return chains
    .map((c) => {
      const rules = c.rules.map((r) => {
        const m = r.match === 'not-from' ? `iif!=${dev(r.from)}` : r.match;
        const then = typeof r.then === 'string' ? r.then : `jump ${r.then.jump}`;
        return `${m}>${r.dups.map((d) => `dup ${dev(d)},`).join('')}${then}`;
      });
      return `${c.name}${c.device ? `@${dev(c.device)}` : ''}: ${rules.join(' | ')}`;
    })
    .join('\n');
}
