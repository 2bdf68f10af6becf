/**
 * A full sync's plan made while the kernel's lists are read (issue 23), instead of planPeers over
 * two complete PeerStates. Pure; the same ops, in the same order, as planPeers(desired, observed).
 *
 * Design note: planPeers builds six Maps per call (three of the desired entries, three of the
 * observed ones, with a `mac|dst` string per FDB entry) and needs every observed entry kept until
 * the three dumps are done; at 10,000 peers that was ≈ 16 MB of a full sync's ≈ 40 MB of garbage
 * and a good part of its CPU, every 10 s. Here the desired side is indexed once (PeerIndex, kept
 * while the desired states are the same objects: OverlayDataplane's desiredCache makes them so) and
 * each index entry has a mark (a slot of a typed array); a full sync (PeerPlanner) looks each
 * observed entry up as it comes, emits its deletion at once or marks the wanted entry as present,
 * and at the end writes every wanted entry not marked. Nothing of the observed side is kept. Marks
 * are generation numbers, so starting a sync allocates nothing per entry. The index stays live
 * between full syncs: 1.6 MB at 10,000 peers (measured with forced collections).
 * The states it indexes are kept compact (compactPeerState, applied by OverlayDataplane before
 * caching): desiredPeers' pushed-to arrays each keep room for 16 entries, so the cached states, the
 * applied map and this index (one set of objects) were 12.6 MB at 10,000 peers in a heap snapshot,
 * 8.0 MB with exact-length arrays, one shared frozen empty array and the route dst shared with the
 * lease key (VmHWM 127.1 → 122.2 MB, medians of 7 alternated runs; docs/performance.md §7).
 * Equivalence with planPeers relies on the desired keys being unique (neighbour ip, FDB mac, route
 * dst: one lease each); when two desired entries share one (two leases with one VtepMAC, e.g. a
 * host's stale lease beside its new one) `exact` is false and the caller uses planPeers. Observed
 * duplicates keep planPeers' rules: for neighbours and routes the last one listed counts, for FDB
 * entries any exact one.
 */
import type { FdbWant, NeighbourWant, PeerOp, PeerState, RouteWant } from './peers';

const NONE: never[] = Object.freeze([]) as unknown as never[];
const tight = <T>(a: T[]): T[] => (a.length === 0 ? NONE : a.slice()); // slice(): exactly a.length

/**
 * `s` as kept between syncs (OverlayDataplane's desiredCache, `applied`, this index's states):
 * arrays of exactly their length (a pushed-to array keeps room for 16), one shared frozen empty
 * array for every absent kind, and the route's dst the lease key's string when equal (leaseId is
 * formatCidr of the subnet: one string, not two). Same entries; the wants are not copied.
 */
export function compactPeerState(s: PeerState, key?: string): PeerState {
  for (const r of s.routes) if (r.dst === key) r.dst = key;
  return { neighbours: tight(s.neighbours), fdb: tight(s.fdb), routes: tight(s.routes), flood: tight(s.flood) };
}

/** One kind of desired entry: key → slot, the entry, and per slot the generation that saw it listed
 *  (a typed array, no object per entry: the index of 10,000 peers 2.5 → 1.6 MB live). */
class Slots<T> {
  readonly slot = new Map<string, number>();
  readonly wants: T[] = [];
  seen = new Int32Array(0);
  /** false if `key` was there already (the first entry keeps it, as for planPeers' flood Set). */
  add(key: string, want: T): boolean {
    if (this.slot.has(key)) return false;
    this.slot.set(key, this.wants.length);
    this.wants.push(want);
    return true;
  }
  seal(): void {
    this.seen = new Int32Array(this.wants.length);
  }
}

export class PeerIndex {
  private readonly neigh = new Slots<NeighbourWant>();
  private readonly fdb = new Slots<FdbWant>();
  private readonly routes = new Slots<RouteWant>();
  private readonly flood = new Slots<string>();
  /** false when two desired entries share a key: plan with planPeers instead. */
  readonly exact: boolean;
  private gen = 0;

  constructor(private readonly states: readonly PeerState[]) {
    let exact = true;
    for (const s of states) {
      // indexed loops: for-of over the shared frozen empty array (compactPeerState) made this 20 % slower
      for (let i = 0; i < s.neighbours.length; i++) exact = this.neigh.add(s.neighbours[i]!.ip, s.neighbours[i]!) && exact;
      for (let i = 0; i < s.fdb.length; i++) exact = this.fdb.add(s.fdb[i]!.mac, s.fdb[i]!) && exact;
      for (let i = 0; i < s.routes.length; i++) exact = this.routes.add(s.routes[i]!.dst, s.routes[i]!) && exact;
      for (let i = 0; i < s.flood.length; i++) this.flood.add(s.flood[i]!, s.flood[i]!); // a Set in planPeers too: duplicates are fine
    }
    for (const k of [this.neigh, this.fdb, this.routes, this.flood]) k.seal();
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
    private readonly neigh: Slots<NeighbourWant>,
    private readonly fdbs: Slots<FdbWant>,
    private readonly routes: Slots<RouteWant>,
    private readonly floods: Slots<string>,
  ) {}

  neighbour(n: NeighbourWant): void {
    const i = this.neigh.slot.get(n.ip);
    if (i === undefined) this.delNeigh.push({ op: 'deleteNeighbour', ip: n.ip });
    else this.neigh.seen[i] = (this.neigh.wants[i] as NeighbourWant).mac === n.mac ? this.gen : 0;
  }

  fdb(f: FdbWant): void {
    const i = this.fdbs.slot.get(f.mac);
    if (i === undefined || (this.fdbs.wants[i] as FdbWant).dst !== f.dst) this.delFdb.push({ op: 'deleteFdb', mac: f.mac, dst: f.dst });
    else this.fdbs.seen[i] = this.gen;
  }

  flood(dst: string): void {
    const i = this.floods.slot.get(dst);
    if (i !== undefined) {
      this.floods.seen[i] = this.gen;
      return;
    }
    this.floodDeleted ??= new Set();
    if (this.floodDeleted.has(dst)) return;
    this.floodDeleted.add(dst);
    this.delFlood.push({ op: 'deleteFlood', dst });
  }

  route(dst: string, gateway: string, dev: RouteWant['dev'], onlink: boolean): void {
    const i = this.routes.slot.get(dst);
    if (i === undefined) {
      this.delRoutes.push({ op: 'deleteRoute', dst });
      return;
    }
    const w = this.routes.wants[i] as RouteWant;
    this.routes.seen[i] = w.gateway === gateway && w.dev === dev && w.onlink === onlink ? this.gen : 0;
  }

  /** The plan: planPeers' order (deletions route, flood, FDB, neighbour; then writes neighbour, FDB, flood, route). */
  finish(): PeerOp[] {
    const ops: PeerOp[] = [...this.delRoutes, ...this.delFlood, ...this.delFdb, ...this.delNeigh];
    const unseen = <T>(k: Slots<T>, push: (w: T) => void) => {
      for (let i = 0; i < k.wants.length; i++) if (k.seen[i] !== this.gen) push(k.wants[i] as T);
    };
    unseen(this.neigh, (entry) => ops.push({ op: 'setNeighbour', entry }));
    unseen(this.fdbs, (entry) => ops.push({ op: 'setFdb', entry }));
    unseen(this.floods, (dst) => ops.push({ op: 'setFlood', dst }));
    unseen(this.routes, (entry) => ops.push({ op: 'setRoute', entry }));
    return ops;
  }
}
