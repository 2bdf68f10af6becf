/**
 * A full sync's plan made while the kernel's lists are read (issue 23), instead of planPeers over
 * two complete PeerStates. Pure; the same ops, in the same order, as planPeers(desired, observed).
 *
 * Design note: planPeers builds six Maps per call (three of the desired entries, three of the
 * observed ones, with a `mac|dst` string per FDB entry) and needs every observed entry kept until
 * the three dumps are done; at 10,000 peers that was ≈ 16 MB of a full sync's ≈ 40 MB of garbage
 * and a good part of its CPU, every 10 s. Here the desired side is indexed once (PeerIndex, kept
 * while the desired states are the same objects: OverlayDataplane's desiredCache makes them so) and
 * each index entry carries a mark; a full sync (PeerPlanner) looks each observed entry up as it
 * comes, emits its deletion at once or marks the wanted entry as present, and at the end writes
 * every wanted entry not marked. Nothing of the observed side is kept. Marks are generation
 * numbers, so starting a sync allocates nothing per entry.
 * Equivalence with planPeers relies on the desired keys being unique (neighbour ip, FDB mac, route
 * dst: one lease each); when two desired entries share one (two leases with one VtepMAC, e.g. a
 * host's stale lease beside its new one) `exact` is false and the caller uses planPeers. Observed
 * duplicates keep planPeers' rules: for neighbours and routes the last one listed counts, for FDB
 * entries any exact one.
 */
import type { FdbWant, NeighbourWant, PeerOp, PeerState, RouteWant } from './peers';

interface Mark<T> {
  readonly want: T;
  seen: number; // == the planner's generation: listed by the kernel as wanted
}

export class PeerIndex {
  private readonly neigh = new Map<string, Mark<NeighbourWant>>();
  private readonly fdb = new Map<string, Mark<FdbWant>>();
  private readonly routes = new Map<string, Mark<RouteWant>>();
  private readonly flood = new Map<string, Mark<string>>();
  /** false when two desired entries share a key: plan with planPeers instead. */
  readonly exact: boolean;
  private gen = 0;

  constructor(private readonly states: readonly PeerState[]) {
    let exact = true;
    const add = <T>(m: Map<string, Mark<T>>, key: string, want: T) => {
      if (m.has(key)) exact = false;
      else m.set(key, { want, seen: 0 });
    };
    for (const s of states) {
      for (const n of s.neighbours) add(this.neigh, n.ip, n);
      for (const f of s.fdb) add(this.fdb, f.mac, f);
      for (const r of s.routes) add(this.routes, r.dst, r);
      for (const d of s.flood) if (!this.flood.has(d)) this.flood.set(d, { want: d, seen: 0 }); // a Set in planPeers too
    }
    this.exact = exact;
  }

  /** Whether this index was built from exactly these state objects, in this order. */
  sameStates(states: readonly PeerState[]): boolean {
    if (states.length !== this.states.length) return false;
    for (let i = 0; i < states.length; i++) if (states[i] !== this.states[i]) return false;
    return true;
  }

  /** Start one full sync's plan (one at a time per index: a new one forgets the marks of the last). */
  plan(): PeerPlanner {
    this.gen++;
    return new PeerPlanner(this.gen, this.neigh, this.fdb, this.routes, this.flood);
  }
}

/** Fed every entry the kernel holds for the overlay (observePeerEntries' filter), then finish(). */
export class PeerPlanner {
  private readonly delRoutes: PeerOp[] = [];
  private readonly delFlood: PeerOp[] = [];
  private readonly delFdb: PeerOp[] = [];
  private readonly delNeigh: PeerOp[] = [];
  private floodDeleted: Set<string> | null = null;

  constructor(
    private readonly gen: number,
    private readonly neigh: Map<string, Mark<NeighbourWant>>,
    private readonly fdbs: Map<string, Mark<FdbWant>>,
    private readonly routes: Map<string, Mark<RouteWant>>,
    private readonly floods: Map<string, Mark<string>>,
  ) {}

  neighbour(n: NeighbourWant): void {
    const m = this.neigh.get(n.ip);
    if (!m) this.delNeigh.push({ op: 'deleteNeighbour', ip: n.ip });
    else m.seen = m.want.mac === n.mac ? this.gen : 0;
  }

  fdb(f: FdbWant): void {
    const m = this.fdbs.get(f.mac);
    if (!m || m.want.dst !== f.dst) this.delFdb.push({ op: 'deleteFdb', mac: f.mac, dst: f.dst });
    else m.seen = this.gen;
  }

  flood(dst: string): void {
    const m = this.floods.get(dst);
    if (m) {
      m.seen = this.gen;
      return;
    }
    this.floodDeleted ??= new Set();
    if (this.floodDeleted.has(dst)) return;
    this.floodDeleted.add(dst);
    this.delFlood.push({ op: 'deleteFlood', dst });
  }

  route(dst: string, gateway: string, dev: RouteWant['dev'], onlink: boolean): void {
    const m = this.routes.get(dst);
    if (!m) this.delRoutes.push({ op: 'deleteRoute', dst });
    else m.seen = m.want.gateway === gateway && m.want.dev === dev && m.want.onlink === onlink ? this.gen : 0;
  }

  /** The plan: planPeers' order (deletions route, flood, FDB, neighbour; then writes neighbour, FDB, flood, route). */
  finish(): PeerOp[] {
    const ops: PeerOp[] = [...this.delRoutes, ...this.delFlood, ...this.delFdb, ...this.delNeigh];
    for (const m of this.neigh.values()) if (m.seen !== this.gen) ops.push({ op: 'setNeighbour', entry: m.want });
    for (const m of this.fdbs.values()) if (m.seen !== this.gen) ops.push({ op: 'setFdb', entry: m.want });
    for (const m of this.floods.values()) if (m.seen !== this.gen) ops.push({ op: 'setFlood', dst: m.want });
    for (const m of this.routes.values()) if (m.seen !== this.gen) ops.push({ op: 'setRoute', entry: m.want });
    return ops;
  }
}
