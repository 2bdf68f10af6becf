/**
 * The kernel I/O of a vxlan / host-gw overlay's peer entries, for OverlayDataplane: what the kernel
 * holds that the overlay owns (its device's permanent neighbours and FDB entries, the routes via
 * it, and host-gw / DirectRouting routes on the public interface inside the overlay with its
 * subnet length), and applying a plan of domain/peers.ts stage by stage (deletions, neighbours,
 * FDB, routes: a route after its neighbour and FDB entry), each stage pipelined on the netlink
 * socket so thousands of writes don't wait in turn. A full sync's plan is made while the dumps are
 * read (planFullSync, domain/peer-index.ts): nothing of the observed side is kept.
 */
import type { Kernel } from '../kernel';
import { parseCidr } from '../domain/ipv4';
import type { NetworkConfig } from '../domain/network-config';
import { FdbWant, mergeStates, NeighbourWant, PeerOp, PeerState, planPeers, RouteWant, routeInOverlay } from '../domain/peers';
import { PeerIndex } from '../domain/peer-index';

const WRITE_PIPELINE = 256; // netlink writes in flight per stage (batched into few datagrams: kernel/rtnl-writer.ts)
const STAGES: PeerOp['op'][] = ['deleteRoute', 'deleteFlood', 'deleteFdb', 'deleteNeighbour', 'setNeighbour', 'setFdb', 'setFlood', 'setRoute'];
const ZERO_MAC = '00:00:00:00:00:00';

export interface PeerDevices {
  readonly vxIndex: number; // the vxlan device, 0 if none
  readonly pubIndex: number; // the public interface
}

/** Told of every entry the kernel holds that the overlay owns, as the dumps are read. */
export interface PeerSink {
  /** The kernel's entry objects themselves, not copies (a full sync at 10,000 peers lists 20,000). */
  neighbour(n: NeighbourWant): void;
  fdb(f: FdbWant): void;
  flood(dst: string): void;
  route(dst: string, gateway: string, dev: RouteWant['dev'], onlink: boolean): void;
}

/** What the kernel holds that this overlay owns. */
export async function observePeerEntries(kernel: Kernel, vxIndex: number, pubIndex: number, config: NetworkConfig): Promise<PeerState> {
  const state: PeerState = { neighbours: [], fdb: [], routes: [], flood: [] };
  await observePeerEntriesInto(kernel, vxIndex, pubIndex, config, {
    neighbour: (n) => state.neighbours.push(n),
    fdb: (f) => state.fdb.push(f),
    flood: (dst) => state.flood.push(dst),
    route: (dst, gateway, dev, onlink) => state.routes.push({ dst, gateway, dev, onlink }),
  });
  return state;
}

/** The same entries handed to `sink` dump by dump (a full sync's PeerPlanner: nothing kept). */
export async function observePeerEntriesInto(kernel: Kernel, vxIndex: number, pubIndex: number, config: NetworkConfig, sink: PeerSink): Promise<void> {
  if (vxIndex) {
    for (const n of await kernel.listNeighbours(vxIndex)) if (n.permanent) sink.neighbour(n);
    for (const f of await kernel.listFdb(vxIndex)) {
      if (!f.permanent || !f.dst) continue;
      if (f.mac !== ZERO_MAC) sink.fdb(f as FdbWant);
      else sink.flood(f.dst);
    }
  }
  for (const r of await kernel.listRoutes()) {
    if (!r.gateway) continue;
    if (vxIndex && r.oif === vxIndex) {
      sink.route(r.dst, r.gateway, 'vxlan', r.onlink);
    } else if (r.oif === pubIndex && routeInOverlay(config.network, parseCidr(r.dst)) && parseCidr(r.dst).len === config.subnetLen) {
      sink.route(r.dst, r.gateway, 'public', r.onlink);
    }
  }
}

/** What a full sync's drift figure depends on (OverlayDataplane: DataplaneStats.lastDrift). */
export interface DriftInput {
  /** Why what we wrote is not what the kernel should hold (null: it is). */
  appliedUnknown: 'catch-up' | 'drift' | null;
  /** Changes were pending (lease events, a snapshot): drift is then a second plan against `applied`. */
  caughtUp: boolean;
  applied(): Iterable<PeerState>;
}

/**
 * A full sync's plan and drift (ops for entries that disagree with what we wrote; 0 for catch-up).
 * Made while the dumps are read, against `index` of the desired states (domain/peer-index.ts; a new
 * one when they changed); when changes were pending, the drift is a second plan made in the same
 * pass against an index of `applied`. Only when two leases want one key: planPeers over the whole
 * observed state, as before.
 */
export async function planFullSync(kernel: Kernel, d: PeerDevices, config: NetworkConfig, states: PeerState[], index: PeerIndex | null, drift: DriftInput): Promise<{ ops: PeerOp[]; drift: number; index: PeerIndex | null }> {
  if (!index?.sameStates(states)) index = new PeerIndex(states);
  const secondPlan = drift.appliedUnknown === null && drift.caughtUp;
  const against = secondPlan ? new PeerIndex([...drift.applied()]) : null;
  if (index.exact && (!against || against.exact)) {
    const planner = index.plan();
    const second = against?.plan();
    const sink: PeerSink = second
      ? {
          neighbour: (n) => (planner.neighbour(n), second.neighbour(n)),
          fdb: (f) => (planner.fdb(f), second.fdb(f)),
          flood: (dst) => (planner.flood(dst), second.flood(dst)),
          route: (dst, gw, dev, onlink) => (planner.route(dst, gw, dev, onlink), second.route(dst, gw, dev, onlink)),
        }
      : planner;
    await observePeerEntriesInto(kernel, d.vxIndex, d.pubIndex, config, sink);
    const ops = planner.finish();
    const n = second ? second.finish().length : drift.appliedUnknown === 'catch-up' ? 0 : ops.length;
    return { ops, drift: n, index };
  }
  const observed = await observePeerEntries(kernel, d.vxIndex, d.pubIndex, config);
  const ops = planPeers(mergeStates(states), observed);
  if (drift.appliedUnknown === 'catch-up') return { ops, drift: 0, index };
  if (drift.appliedUnknown === 'drift' || !drift.caughtUp) return { ops, drift: ops.length, index };
  return { ops, drift: planPeers(mergeStates(drift.applied()), observed).length, index };
}

function applyOne(k: Kernel, op: PeerOp, d: PeerDevices): Promise<void> {
  switch (op.op) {
    case 'deleteRoute':
      return k.deleteRoute(op.dst);
    case 'deleteFdb':
      return k.deleteFdb(d.vxIndex, op.mac, op.dst);
    case 'deleteNeighbour':
      return k.deleteNeighbour(d.vxIndex, op.ip);
    case 'setNeighbour':
      return k.replaceNeighbour({ ifindex: d.vxIndex, ip: op.entry.ip, mac: op.entry.mac, permanent: true });
    case 'setFdb':
      return k.replaceFdb({ ifindex: d.vxIndex, mac: op.entry.mac, dst: op.entry.dst, permanent: true });
    case 'deleteFlood':
      return k.deleteFdb(d.vxIndex, ZERO_MAC, op.dst);
    case 'setFlood':
      return k.replaceFdb({ ifindex: d.vxIndex, mac: ZERO_MAC, dst: op.dst, permanent: true });
    case 'setRoute': {
      const e = op.entry;
      return k.replaceRoute({ dst: e.dst, gateway: e.gateway, oif: e.dev === 'vxlan' ? d.vxIndex : d.pubIndex, onlink: e.onlink });
    }
  }
}

/** Apply `ops` in stages; `onOp` is told of each op as it starts. */
export async function applyPeerOps(kernel: Kernel, ops: PeerOp[], devices: PeerDevices, onOp: (op: PeerOp['op']) => void): Promise<void> {
  for (const stage of STAGES) {
    const batch = ops.filter((o) => o.op === stage);
    for (let i = 0; i < batch.length; i += WRITE_PIPELINE) {
      await Promise.all(
        batch.slice(i, i + WRITE_PIPELINE).map((op) => {
          onOp(op.op);
          return applyOne(kernel, op, devices);
        }),
      );
    }
  }
}
