/**
 * The kernel I/O of a vxlan / host-gw overlay's peer entries, for OverlayDataplane: what the kernel
 * holds that the overlay owns (its device's permanent neighbours and FDB entries, the routes via
 * it, and host-gw / DirectRouting routes on the public interface inside the overlay with its
 * subnet length), and applying a plan of domain/peers.ts stage by stage (deletions, neighbours,
 * FDB, routes: a route after its neighbour and FDB entry), each stage pipelined on the netlink
 * socket so thousands of writes don't wait in turn.
 */
import type { Kernel } from '../kernel';
import { parseCidr } from '../domain/ipv4';
import type { NetworkConfig } from '../domain/network-config';
import { FdbWant, PeerOp, PeerState, routeInOverlay } from '../domain/peers';

const WRITE_PIPELINE = 256; // netlink writes in flight per stage (batched into few datagrams: kernel/rtnl-writer.ts)
const STAGES: PeerOp['op'][] = ['deleteRoute', 'deleteFlood', 'deleteFdb', 'deleteNeighbour', 'setNeighbour', 'setFdb', 'setFlood', 'setRoute'];
const ZERO_MAC = '00:00:00:00:00:00';

export interface PeerDevices {
  readonly vxIndex: number; // the vxlan device, 0 if none
  readonly pubIndex: number; // the public interface
}

/** What the kernel holds that this overlay owns. */
export async function observePeerEntries(kernel: Kernel, vxIndex: number, pubIndex: number, config: NetworkConfig): Promise<PeerState> {
  const state: PeerState = { neighbours: [], fdb: [], routes: [], flood: [] };
  if (vxIndex) {
    // The kernel's entry objects themselves, not copies (a full sync at 10,000 peers lists 20,000
    // of them; the plan only reads ip/mac/dst).
    for (const n of await kernel.listNeighbours(vxIndex)) if (n.permanent) state.neighbours.push(n);
    for (const f of await kernel.listFdb(vxIndex)) {
      if (f.permanent && f.dst && f.mac !== ZERO_MAC) state.fdb.push(f as FdbWant);
      else if (f.permanent && f.dst && f.mac === ZERO_MAC) state.flood.push(f.dst);
    }
  }
  for (const r of await kernel.listRoutes()) {
    if (!r.gateway) continue;
    if (vxIndex && r.oif === vxIndex) {
      state.routes.push({ dst: r.dst, gateway: r.gateway, dev: 'vxlan', onlink: r.onlink });
    } else if (r.oif === pubIndex && routeInOverlay(config.network, parseCidr(r.dst)) && parseCidr(r.dst).len === config.subnetLen) {
      state.routes.push({ dst: r.dst, gateway: r.gateway, dev: 'public', onlink: r.onlink });
    }
  }
  return state;
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
