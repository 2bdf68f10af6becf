/**
 * Desired kernel state for the remote hosts of one overlay, and the plan that moves the kernel to
 * it. Pure: leases and what the kernel listed go in, an ordered list of operations comes out.
 *
 * Per remote vxlan lease (docs/flannel-compat.md §5): neighbour (remote .0 → VtepMAC), FDB (VtepMAC →
 * PublicIP), route (subnet via .0 onlink) — written in that order so the kernel never resolves the
 * gateway itself, and removed in reverse. DirectRouting peers on our L2 segment, and host-gw peers,
 * get one plain route via their PublicIP on the public interface. An alloc overlay has no data
 * plane: no entries for any lease, whatever its backend (the operator routes the subnets).
 *
 * Flooding (issue 17, domain/multicast.ts): when asked, each remote overlay-flannel vxlan host (not
 * a flanneld one) also gets an all-zeros FDB entry towards its PublicIP, so the vxlan device
 * replicates multicast/broadcast frames to it; written after its FDB entry, removed with it.
 *
 * Unlike flanneld, the plan also deletes what no lease asks for any more (entries of hosts that
 * vanished while we were down, the old FDB entry of a changed VtepMAC).
 */
import { Backend } from './network-config';
import { Cidr, cidrContains, cidrEquals, formatCidr, formatIPv4 } from './ipv4';
import { describeLeaseBackend, Lease, leaseBackendType } from './lease';
import { floodsTo } from './multicast';

export interface NeighbourWant { ip: string; mac: string }
export interface FdbWant { mac: string; dst: string }
export interface RouteWant { dst: string; gateway: string; dev: 'vxlan' | 'public'; onlink: boolean }

export interface PeerState {
  neighbours: NeighbourWant[]; // on the vxlan device
  fdb: FdbWant[]; // on the vxlan device
  routes: RouteWant[];
  /** PublicIPs with an all-zeros (flood) FDB entry on the vxlan device. */
  flood: string[];
}

export interface DesiredInput {
  backend: Backend;
  ownSubnet: Cidr | null;
  leases: readonly Lease[];
  /** true when the address is on a directly connected network of the public interface */
  onLink(ip: string): boolean;
  /** Give overlay-flannel peers a flood entry (multicast on for this host's network). */
  flood?: boolean;
}

export interface DesiredResult {
  state: PeerState;
  /** leases we cannot program, with the reason (logged by the caller) */
  skipped: { subnet: string; reason: string }[];
}

export function desiredPeers(input: DesiredInput): DesiredResult {
  const state: PeerState = { neighbours: [], fdb: [], routes: [], flood: [] };
  const skipped: DesiredResult['skipped'] = [];
  // alloc: no data plane; wireguard: its peers are planned in wg-peers.ts (routes: one per overlay).
  if (input.backend.type === 'alloc' || input.backend.type === 'wireguard') return { state, skipped };
  for (const lease of input.leases) {
    if (input.ownSubnet && cidrEquals(lease.subnet, input.ownSubnet)) continue;
    const subnet = formatCidr(lease.subnet);
    const { publicIP, backendType } = lease.attrs;
    if (backendType !== leaseBackendType(input.backend)) {
      skipped.push({ subnet, reason: `its backend is ${describeLeaseBackend(backendType)}, this overlay uses ${input.backend.type}` });
      continue;
    }
    if (input.backend.type === 'host-gw') {
      if (!input.onLink(publicIP)) {
        skipped.push({ subnet, reason: `host-gw needs peers on the same L2 segment, and ${publicIP} is not on-link` });
        continue;
      }
      state.routes.push({ dst: subnet, gateway: publicIP, dev: 'public', onlink: false });
      continue;
    }
    const vx = lease.attrs.vxlan;
    if (!vx) {
      skipped.push({ subnet, reason: 'vxlan lease without BackendData' });
      continue;
    }
    if (input.flood && floodsTo(lease, input.backend.vni)) state.flood.push(publicIP);
    if (input.backend.directRouting && input.onLink(publicIP)) {
      state.routes.push({ dst: subnet, gateway: publicIP, dev: 'public', onlink: false });
      continue;
    }
    const gw = formatIPv4(lease.subnet.base);
    state.neighbours.push({ ip: gw, mac: vx.vtepMac });
    state.fdb.push({ mac: vx.vtepMac, dst: publicIP });
    state.routes.push({ dst: subnet, gateway: gw, dev: 'vxlan', onlink: true });
  }
  return { state, skipped };
}

export type PeerOp =
  | { op: 'deleteRoute'; dst: string }
  | { op: 'deleteFdb'; mac: string; dst: string }
  | { op: 'deleteNeighbour'; ip: string }
  | { op: 'setNeighbour'; entry: NeighbourWant }
  | { op: 'setFdb'; entry: FdbWant }
  | { op: 'setRoute'; entry: RouteWant }
  | { op: 'deleteFlood'; dst: string }
  | { op: 'setFlood'; dst: string };

/**
 * Ops that turn `observed` into `desired`: deletions first (route, flood, FDB, neighbour), then
 * writes (neighbour, FDB, flood, route). Identical entries produce no op, so a plan applied twice is empty.
 * `observed` must hold only objects this overlay owns (the caller filters the kernel's lists).
 */
export function planPeers(desired: PeerState, observed: PeerState): PeerOp[] {
  const ops: PeerOp[] = [];
  const routeKey = (r: RouteWant) => r.dst;
  const routeSame = (a: RouteWant, b: RouteWant) => a.gateway === b.gateway && a.dev === b.dev && a.onlink === b.onlink;
  const wantRoutes = new Map(desired.routes.map((r) => [routeKey(r), r]));
  const wantFdb = new Map(desired.fdb.map((f) => [f.mac, f]));
  const wantNeigh = new Map(desired.neighbours.map((n) => [n.ip, n]));
  const haveRoutes = new Map(observed.routes.map((r) => [routeKey(r), r]));
  const haveFdb = new Map(observed.fdb.map((f) => [`${f.mac}|${f.dst}`, f]));
  const haveNeigh = new Map(observed.neighbours.map((n) => [n.ip, n]));

  for (const r of observed.routes) if (!wantRoutes.has(routeKey(r))) ops.push({ op: 'deleteRoute', dst: r.dst });
  const wantFlood = new Set(desired.flood);
  const haveFlood = new Set(observed.flood);
  for (const d of haveFlood) if (!wantFlood.has(d)) ops.push({ op: 'deleteFlood', dst: d });
  for (const f of observed.fdb) if (wantFdb.get(f.mac)?.dst !== f.dst) ops.push({ op: 'deleteFdb', mac: f.mac, dst: f.dst });
  for (const n of observed.neighbours) if (!wantNeigh.has(n.ip)) ops.push({ op: 'deleteNeighbour', ip: n.ip });

  for (const n of desired.neighbours) if (haveNeigh.get(n.ip)?.mac !== n.mac) ops.push({ op: 'setNeighbour', entry: n });
  for (const f of desired.fdb) if (!haveFdb.has(`${f.mac}|${f.dst}`)) ops.push({ op: 'setFdb', entry: f });
  for (const d of wantFlood) if (!haveFlood.has(d)) ops.push({ op: 'setFlood', dst: d });
  for (const r of desired.routes) {
    const have = haveRoutes.get(routeKey(r));
    if (!have || !routeSame(have, r)) ops.push({ op: 'setRoute', entry: r });
  }
  return ops;
}

/** Whether a route destination belongs to this overlay (and so may be deleted by its plan). */
export function routeInOverlay(network: Cidr, dst: Cidr): boolean {
  return cidrContains(network, dst.base) && dst.len >= network.len;
}

/** The union of several leases' entries (one plan for all of them). */
export function mergeStates(states: Iterable<PeerState>): PeerState {
  const out: PeerState = { neighbours: [], fdb: [], routes: [], flood: [] };
  for (const s of states) {
    out.flood.push(...s.flood);
    out.neighbours.push(...s.neighbours);
    out.fdb.push(...s.fdb);
    out.routes.push(...s.routes);
  }
  return out;
}
