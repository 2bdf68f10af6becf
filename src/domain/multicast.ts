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
 *  - nftables `netdev` table `overlay-flannel-mcast`, at priority -10 (before the fast path):
 *    on each container's host veth, an IPv4 packet to 224.0.0.0/4 or 255.255.255.255 is `dup`ed
 *    to flannel.<VNI> (which replicates it) and to the network's other local veths, then dropped
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

/** One base chain of the table: on `device`'s ingress, copy IPv4 multicast/broadcast to `dups`,
 *  then drop it or let it go on. */
export interface MulticastChain {
  name: string;
  device: Device;
  dups: Device[];
  verdict: 'drop' | 'continue';
}

export interface MulticastPlan {
  chains: MulticastChain[];
  /** Of every chain (names, devices, ifindexes, copies): the table is rewritten when it changes. */
  digest: string;
}

export const vxlanInChain = (vni: number): string => `in-${vni}`;
export const vethOutChain = (veth: Device, vni: number): string => `${veth.name}.${veth.index}.${vni}`;
export const multicastMarker = (digest: string): string => `plan-${digest}`;

export function multicastPlan(inputs: readonly MulticastOverlayInput[]): MulticastPlan {
  const chains: MulticastChain[] = [];
  for (const o of [...inputs].sort((a, b) => a.vni - b.vni)) {
    const net = o.network?.enabled ? o.network : null;
    const veths = net ? [...net.veths].sort((a, b) => a.name.localeCompare(b.name)) : [];
    const local = !net ? [] : net.mode === 'bridge' ? [net.bridge] : veths;
    chains.push({ name: vxlanInChain(o.vni), device: o.vxlan, dups: local, verdict: 'drop' });
    if (!net) continue;
    for (const v of veths) {
      const others = net.mode === 'routed' ? veths.filter((x) => x.name !== v.name) : [];
      chains.push({ name: vethOutChain(v, o.vni), device: v, dups: [o.vxlan, ...others], verdict: net.mode === 'routed' ? 'drop' : 'continue' });
    }
  }
  const text = chains.map((c) => `${c.name}@${c.device.name}#${c.device.index}>${c.dups.map((d) => `${d.name}#${d.index}`).join(',')}:${c.verdict}`).join('\n');
  return { chains, digest: chains.length ? createHash('sha256').update(text).digest('hex').slice(0, 16) : '' };
}
