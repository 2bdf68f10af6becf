/**
 * The host × host path matrix (issue 20): per probed overlay, rows and columns are the hosts
 * holding a lease, and the cell (A, B) is what A's probes to B say: an RTT, unreachable, or
 * unknown, with its age. Pure: the status view (src/status/cluster-view.ts) feeds it this host's
 * own probes (fresh, read locally) and every other host's path report (domain/path-report.ts,
 * read from etcd).
 *
 * Design note.
 * - A row with no report (a flanneld host, a plugin host without probes, or one whose record's
 *   etcd lease ran out) is all `unknown` with the note "no report". A report older than
 *   {@link STALE_REPORT_MS} (its writer refreshes it every 10 s: it cannot reach etcd, or
 *   stopped) is `unknown` with the note "report stale", its last values kept for reading.
 *   While this host cannot read etcd itself, every other row ages the same way: its note is then
 *   "etcd unreachable" (the last report read here), so a host cut off the LAN does not blame the
 *   others on its own page; its own row stays its live probes (its peers unreachable).
 * - A cell's age is the time since its row's writer summed up its probes (the writer's clock, so
 *   clock skew between hosts shows in it; the own row is always 0 s old).
 * - No echo: a peer that never answered (no reply since the row's writer started) and publishes
 *   no path report does not run our echo (a flanneld host, or a plugin host without STATUS_ADDR
 *   or with PROBE_PORT=0): its paths cannot be measured, so its column is `unknown` with the note
 *   "no echo", never "unreachable", and no problem. A plugin host cut off the LAN answered before
 *   (or still has a report): it stays unreachable.
 * - Problems: A's fresh report says B is unreachable while both leases are live →
 *   "path-unreachable", one per B naming up to 5 such A (200 hosts with one cut off: one problem,
 *   not 199); this host's own row is already a problem of domain/cluster.ts.
 */
import type { PathReport } from './path-report';
import { REFRESH_MS, MIN_PUBLISH_MS } from './path-report';
import type { PathState } from './path-stats';

export const STALE_REPORT_MS = REFRESH_MS + MIN_PUBLISH_MS + 2000;

export interface MatrixHostInput {
  overlay: string;
  publicIP: string;
  subnet: string;
  /** The lease has not expired. */
  live: boolean;
  own: boolean;
}

export interface MatrixInput {
  hosts: MatrixHostInput[];
  /** Every host's report (this host's own included or not: its row comes from `local`). */
  reports: PathReport[];
  /** This host's probes now, per overlay (null: no prober). */
  local: { overlay: string; peers: { publicIP: string; state: PathState; rttMs: number | null; loss: number | null; lastReplyAt: number | null }[] }[] | null;
  thisHost: string | null;
  /** This host cannot read etcd now (the reports are the last ones read). */
  etcdDown?: boolean;
  nowMs: number;
}

export interface MatrixCell {
  state: PathState | 'self';
  rttMs: number | null;
  loss: number | null;
  /** Seconds since the row's writer measured it (null: no report). */
  ageSec: number | null;
  /** Seconds since the column's host last answered the row's (null: never, or not known). */
  lastReplyAgeSec: number | null;
  note: 'no report' | 'report stale' | 'etcd unreachable' | 'not probed' | 'no echo' | null;
}

export interface MatrixHost {
  publicIP: string;
  subnet: string;
  own: boolean;
  live: boolean;
  /** The plugin version its report carries (null: no report). */
  version: string | null;
  reportAgeSec: number | null;
}

export interface OverlayMatrix {
  overlay: string;
  hosts: MatrixHost[];
  /** rows[i][j]: from hosts[i] to hosts[j]. */
  rows: MatrixCell[][];
}

export interface MatrixProblem {
  kind: 'path-unreachable';
  severity: 'error';
  text: string;
  host: string;
}

/** Reporters named in one problem; more are counted. */
const MAX_NAMED = 5;
const numeric = new Intl.Collator('en', { numeric: true }).compare;
const age = (nowMs: number, at: number | null) => (at === null ? null : Math.max(0, Math.round((nowMs - at) / 1000)));
const cell = (state: MatrixCell['state'], note: MatrixCell['note'], ageSec: number | null = null): MatrixCell => ({ state, rttMs: null, loss: null, ageSec, lastReplyAgeSec: null, note });

/** Whether a peer's probe state means "it runs no echo" rather than "the path is down" (see the design note). */
export function noEcho(state: PathState, lastReplyAt: number | null, reports: boolean): boolean {
  return state === 'unreachable' && lastReplyAt === null && !reports;
}

export function buildMatrix(input: MatrixInput): { matrix: OverlayMatrix[]; problems: MatrixProblem[] } {
  const overlays = new Set<string>([...(input.local ?? []).map((l) => l.overlay), ...input.reports.flatMap((r) => r.overlays.map((o) => o.overlay))]);
  const byHost = new Map(input.reports.map((r) => [r.host, r]));
  const matrix: OverlayMatrix[] = [];
  const problems: MatrixProblem[] = [];
  for (const overlay of [...overlays].sort()) {
    const seen = new Set<string>();
    const hosts = input.hosts
      .filter((h) => h.overlay === overlay && !seen.has(h.publicIP) && seen.add(h.publicIP))
      .sort((a, b) => numeric(a.subnet, b.subnet));
    if (hosts.length === 0) continue;
    const mh: MatrixHost[] = [];
    const cut = new Map<MatrixHostInput, string[]>();
    const rows = hosts.map((from) => {
      const own = from.own || from.publicIP === input.thisHost;
      const local = own ? input.local?.find((l) => l.overlay === overlay) : undefined;
      const report = own ? null : (byHost.get(from.publicIP) ?? null);
      const peers = local ? local.peers : report?.overlays.find((o) => o.overlay === overlay)?.peers.map((p) => ({ ...p, publicIP: p.peer }));
      const at = local ? input.nowMs : (report?.at ?? null);
      const stale = !local && at !== null && input.nowMs - at > STALE_REPORT_MS;
      mh.push({ publicIP: from.publicIP, subnet: from.subnet, own, live: from.live, version: own ? null : (report?.version ?? null), reportAgeSec: age(input.nowMs, at) });
      const byPeer = new Map((peers ?? []).map((p) => [p.publicIP, p]));
      return hosts.map((to): MatrixCell => {
        if (to.publicIP === from.publicIP) return cell('self', null);
        if (!peers) return cell('unknown', 'no report');
        const p = byPeer.get(to.publicIP);
        if (!p) return cell('unknown', 'not probed', age(input.nowMs, at));
        const echoless = noEcho(p.state, p.lastReplyAt, byHost.has(to.publicIP) || to.publicIP === input.thisHost);
        const c: MatrixCell = {
          state: stale || echoless ? 'unknown' : p.state,
          rttMs: p.rttMs,
          loss: p.loss,
          ageSec: age(input.nowMs, at),
          lastReplyAgeSec: age(input.nowMs, p.lastReplyAt),
          note: stale ? (input.etcdDown ? 'etcd unreachable' : 'report stale') : echoless ? 'no echo' : null,
        };
        if (!own && !stale && c.state === 'unreachable' && from.live && to.live) cut.set(to, [...(cut.get(to) ?? []), from.publicIP]);
        return c;
      });
    });
    matrix.push({ overlay, hosts: mh, rows });
    for (const [to, froms] of cut) {
      const who = froms.length <= MAX_NAMED ? froms.join(', ') : `${froms.slice(0, MAX_NAMED).join(', ')} and ${froms.length - MAX_NAMED} more`;
      const text = `${to.publicIP} (${to.subnet}, overlay ${overlay}) is unreachable through the overlay from ${who}${froms.length > 1 ? ` (${froms.length} hosts)` : ''} while both leases are live`;
      problems.push({ kind: 'path-unreachable', severity: 'error', text, host: to.publicIP });
    }
  }
  return { matrix, problems };
}
