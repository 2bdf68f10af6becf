/**
 * The status server's whole-overlay view (`GET /api/v1/cluster`, the page's hosts, containers,
 * problems and events): domain/cluster.ts over what this daemon knows, stepped every few seconds
 * by the server so events are found even while no page is open.
 *
 * Design note.
 * - Stale: while etcd is unreachable (the store's state, or the name watch's) the view is the last
 *   known one: the lease and name caches keep what they had, and an expiry that cannot be asked
 *   now is the one last seen. `stale` and `staleSince` say so.
 * - One step at a time: a request during a step gets that step's answer.
 * - The page gets the same view in a compact form ({@link pageCluster}, {@link pageContainers}):
 *   5,000 containers as rows of five cells with the host and network as indexes, about 35 bytes
 *   each instead of 200, so the page with 200 hosts and 5,000 containers stays under 300 KB. The
 *   path matrix's cells go as [state, RTT, age, note] (~20 bytes), up to {@link PAGE_MATRIX_HOSTS}
 *   hosts (2,500 cells ≈ 50 KB); a bigger overlay's cut paths are in the problems list.
 * - `/api/v1/cluster` carries every cell, lossless but by row ({@link apiMatrix}): the states as
 *   one string of codes, RTT, loss and last-reply age as arrays, the row's age once (every cell of
 *   a row is as old as its writer's report) and only the cells that have a note. At 200 hosts that
 *   is ~0.5 MB instead of ~3.5 MB of one object per cell (test/unit/page-matrix.test.ts).
 */
import { buildCluster, type Cluster, type ClusterLeaseInput } from '../domain/cluster';
import { clusterEvents, EventLog, type ClusterEvent, type ClusterStep } from '../domain/cluster-events';
import { nameRows } from '../domain/name-rows';
import type { OverlayMatrix } from '../domain/path-matrix';
import { etcdView, kernelView, overlaysView, type StatusSource } from './views';

/** What the server's snapshot already read (views.ts). */
export interface Views {
  overlays: Awaited<ReturnType<typeof overlaysView>>;
  kernel: ReturnType<typeof kernelView>;
}

export interface ClusterJson extends Cluster {
  generatedAt: string;
  thisHost: string | null;
  stale: boolean;
  staleSince: string | null;
  counts: { hosts: number; pluginHosts: number; flanneldHosts: number; containers: number };
  events: ClusterEvent[];
}

export class ClusterTracker {
  private last: ClusterStep | null = null;
  private lastJson: ClusterJson | null = null;
  private running: Promise<ClusterJson> | null = null;
  private readonly expiries = new Map<string, string>();
  private staleSince: string | null = null;
  readonly events: EventLog;

  constructor(
    private readonly src: StatusSource,
    private readonly now: () => number = Date.now,
    logSize?: number,
  ) {
    this.events = new EventLog(logSize);
  }

  /** The view now (computed; events since the last step logged); `views`: the overlays and kernel views just read (not read again). */
  step(views?: Views): Promise<ClusterJson> {
    if (!this.running) {
      this.running = this.compute(views).finally(() => (this.running = null));
    }
    return this.running;
  }

  /** The last view computed (null before the first step). */
  latest(): ClusterJson | null {
    return this.lastJson;
  }

  private async compute(views?: Views): Promise<ClusterJson> {
    const nowMs = this.now();
    const at = new Date(nowMs).toISOString();
    const { overlays, kernel } = views ?? { overlays: await overlaysView(this.src), kernel: kernelView(this.src) };
    const etcd = etcdView(this.src);
    const names = this.src.names?.() ?? null;
    const namesState = names?.state() ?? null;
    const stale = etcd?.up === false || namesState?.etcdStale === true;
    const programmed = new Map(kernel.map((k) => [k.name, new Set(k.peers.map((p) => p.subnet))]));
    const paths = new Map((this.src.paths?.() ?? []).flatMap((o) => o.peers.map((p) => [`${o.overlay} ${p.subnet}`, { state: p.state, rttMs: p.rttMs, loss: p.loss, lastReplyAt: p.lastReplyAt }] as const)));
    const leases: ClusterLeaseInput[] = overlays.flatMap((o) =>
      o.leases.map((l) => {
        const key = `${o.name} ${l.subnet} ${l.publicIP}`;
        let expiresAt = l.expiresAt;
        if (expiresAt) this.expiries.set(key, expiresAt);
        else if (stale) expiresAt = this.expiries.get(key) ?? null;
        const set = programmed.get(o.name);
        const path = l.own ? null : (paths.get(`${o.name} ${l.subnet}`) ?? null);
        return { overlay: o.name, ...l, expiresAt, programmed: l.own || l.backend === 'alloc' || !set ? null : set.has(l.subnet), path };
      }),
    );
    this.forgetExpiries(leases);
    const cluster = buildCluster({
      leases,
      names: names ? nameRows(names.records(), nowMs) : null,
      etcd: etcd ? { up: etcd.up, since: etcd.since, lastError: etcd.lastError } : null,
      namesStale: namesState?.etcdStale === true,
      drift: kernel.map((k) => ({ overlay: k.name, lastDrift: k.stats?.lastDrift ?? 0, fullSyncs: k.stats?.fullSyncs ?? 0 })),
      ...(this.src.paths
        ? { paths: { local: this.src.paths().map((o) => ({ overlay: o.overlay, peers: o.peers })), reports: this.src.pathReports?.() ?? [], thisHost: this.src.publicIP ?? null } }
        : {}),
      nowMs,
    });
    const step: ClusterStep = { cluster, stale, etcdUp: etcd?.up ?? null };
    this.events.add(clusterEvents(this.last, step, at));
    this.last = step;
    if (!stale) this.staleSince = null;
    else this.staleSince ??= (etcd?.up === false ? etcd.since : null) ?? at;
    const plugin = cluster.hosts.filter((h) => h.kind === 'plugin').length;
    this.lastJson = {
      generatedAt: at,
      thisHost: this.src.publicIP ?? null,
      stale,
      staleSince: this.staleSince,
      counts: { hosts: cluster.hosts.length, pluginHosts: plugin, flanneldHosts: cluster.hosts.length - plugin, containers: cluster.containers.length },
      ...cluster,
      events: this.events.list(),
    };
    return this.lastJson;
  }

  /** Bounded memory: expiries of leases no longer listed are dropped. */
  private forgetExpiries(leases: ClusterLeaseInput[]): void {
    if (this.expiries.size <= leases.length * 2 + 16) return;
    const keep = new Set(leases.map((l) => `${l.overlay} ${l.subnet} ${l.publicIP}`));
    for (const k of this.expiries.keys()) if (!keep.has(k)) this.expiries.delete(k);
  }
}

/** Hosts up to which the page gets the matrix's cells (n² of them); beyond, the problems list the cut paths. */
export const PAGE_MATRIX_HOSTS = 50;
const STATE_CODE = { self: '-', reachable: 'r', unreachable: 'u', unknown: '?' } as const;

/** The page's matrix: cells as [state code, RTT ms, age s, note] (r reachable, u unreachable, ? unknown, - self). */
export function pageMatrix(m: OverlayMatrix[]) {
  return m.map((o) => ({
    overlay: o.overlay,
    hosts: o.hosts,
    rows: o.hosts.length > PAGE_MATRIX_HOSTS ? null : o.rows.map((r) => r.map((x) => [STATE_CODE[x.state], x.rttMs, x.ageSec, x.note] as const)),
  }));
}

/** One row of {@link apiMatrix}: what hosts[i]'s probes to every host say (see README, `MatrixRow`). */
export interface MatrixRow {
  /** One code per column: `-` self, `r` reachable, `u` unreachable, `?` unknown. */
  state: string;
  rttMs: (number | null)[];
  loss: (number | null)[];
  lastReplyAgeSec: (number | null)[];
  /** Seconds since the row's host measured it (every cell of the row but its own; null: no report). */
  ageSec: number | null;
  /** Column index → note, for the cells that have one. */
  notes: Record<string, NonNullable<OverlayMatrix['rows'][number][number]['note']>>;
}

/** The API's matrix: lossless, by row (see the design note). */
export function apiMatrix(m: OverlayMatrix[]) {
  return m.map((o) => ({
    overlay: o.overlay,
    hosts: o.hosts,
    rows: o.rows.map((r): MatrixRow => {
      const notes: MatrixRow['notes'] = {};
      r.forEach((c, j) => {
        if (c.note) notes[j] = c.note;
      });
      return {
        state: r.map((c) => STATE_CODE[c.state]).join(''),
        rttMs: r.map((c) => c.rttMs),
        loss: r.map((c) => c.loss),
        lastReplyAgeSec: r.map((c) => c.lastReplyAgeSec),
        ageSec: r.find((c) => c.state !== 'self')?.ageSec ?? null,
        notes,
      };
    }),
  }));
}

/** `/api/v1/cluster`: the view with its matrix by row. */
export function apiCluster(c: ClusterJson) {
  return { ...c, matrix: apiMatrix(c.matrix) };
}

/** The page's hosts, problems, matrix and events (everything but the containers). */
export function pageCluster(c: ClusterJson) {
  const { containers: _containers, matrix, ...rest } = c;
  return { ...rest, matrix: pageMatrix(matrix) };
}

/** The page's containers: rows [name, aliases, addresses, network index, host index]. */
export function pageContainers(c: ClusterJson) {
  const hosts: string[] = [];
  const networks: string[] = [];
  const hostIx = new Map<string, number>();
  const netIx = new Map<string, number>();
  const ix = (m: Map<string, number>, list: string[], v: string) => {
    let i = m.get(v);
    if (i === undefined) {
      i = list.push(v) - 1;
      m.set(v, i);
    }
    return i;
  };
  const rows = c.containers.map((x) => [x.name, x.aliases.join(' '), x.addresses.join(' '), ix(netIx, networks, x.network), ix(hostIx, hosts, x.host)] as const);
  return { hosts, networks, rows };
}
