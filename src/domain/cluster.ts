/**
 * The whole overlay at a glance (issue 20): every host of each overlay and every container of
 * every host, from what one daemon already knows (the leases its watches hold, the name records
 * of every host), with the problems that matter first. Pure: the status server
 * (src/status/cluster-view.ts) and `overlay-flannel status --containers` feed it.
 *
 * Design note.
 * - Which hosts run this plugin: a lease is in flanneld's byte-exact format (domain/lease.ts), so
 *   it carries no marker of its writer, and adding one would change what flanneld and its tools
 *   read. The name records do carry one: only this plugin writes them, under the host's public
 *   IP. So a host is `plugin` when it writes name records (or is this host), else `flanneld`:
 *   no name records means a flanneld host, or a plugin host with no container on an overlay
 *   network yet (or NAMES=false). The page says "flanneld (no name records)" for what it cannot
 *   tell apart.
 * - A container's host entry is the lease whose subnet holds its address (several overlays: the
 *   right one), else the first lease of its public IP.
 * - "About to expire": less than a quarter of the lease's life left (its life seen as expiresAt −
 *   lastSeen, the last write), at least 1 s and at most 5 min. A plugin lease is renewed with its
 *   renew margin left (LEASE_TTL 6 s, margin 4 s: never under 4 s); flanneld renews with 1 h of
 *   24 h left: so the warning means renewals were missed, not that one is due.
 * - The host × host path matrix is domain/path-matrix.ts over the same leases; its problems (A cannot
 *   reach B, both leases live) join this host's own path problems.
 * - Kernel drift: what the reconciler's last full sync had to fix; the first full sync is the
 *   catch-up of a starting daemon, so it counts from the second on.
 */
import { cidrContains, isIPv4, parseCidr, parseIPv4 } from './ipv4';
import type { NameRow } from './name-rows';
import { buildMatrix, noEcho, type MatrixInput, type OverlayMatrix } from './path-matrix';

/** One lease as the status views show it (status/views.ts LeaseJson, plus its overlay). */
export interface ClusterLeaseInput {
  overlay: string;
  subnet: string;
  publicIP: string;
  backend: string;
  vtepMac: string | null;
  expiresAt: string | null;
  lastSeen: string | null;
  own: boolean;
  /** Whether this host's kernel has the peer programmed (null: own lease, or not known). */
  programmed: boolean | null;
  /** This host's path probes to it (null: own lease, not probed, or no prober). */
  path?: PathInput | null;
}

/** A path probe summary as the view shows it (domain/path-stats.ts). */
export interface PathBrief {
  state: 'unknown' | 'reachable' | 'unreachable';
  rttMs: number | null;
  loss: number | null;
  /** `no echo`: never answered and publishes no path report (domain/path-matrix.ts noEcho): unknown, not unreachable. */
  note: 'no echo' | null;
}

/** What the prober says of a peer (the input of {@link PathBrief}). */
export interface PathInput {
  state: PathBrief['state'];
  rttMs: number | null;
  loss: number | null;
  /** When it last answered (ms; null: never since this daemon started). */
  lastReplyAt: number | null;
}

export interface ClusterInput {
  leases: ClusterLeaseInput[];
  /** Every host's name records, in the order to list them (nameRows'; null: NAMES=false, none known). */
  names: NameRow[] | null;
  etcd: { up: boolean | null; since: string | null; lastError: string | null } | null;
  /** The name watch cannot reach etcd (its records are from before). */
  namesStale: boolean;
  /** Kernel entries the last full sync of each overlay had to fix, and how many full syncs ran (the first is the catch-up). */
  drift: { overlay: string; lastDrift: number; fullSyncs: number }[];
  /** This host's probes and every host's path reports, for the matrix (absent: no prober). */
  paths?: Pick<MatrixInput, 'reports' | 'local' | 'thisHost'>;
  nowMs: number;
}

export type HostKind = 'plugin' | 'flanneld';

export interface ClusterHost extends Omit<ClusterLeaseInput, 'path'> {
  path: PathBrief | null;
  kind: HostKind;
  /** Containers of this host on this overlay (by name record). */
  containers: number;
}

export interface ClusterContainer {
  name: string;
  aliases: string[];
  addresses: string[];
  network: string;
  host: string;
  /** The overlay and subnet of the lease holding its address (null: no lease of its host). */
  overlay: string | null;
  subnet: string | null;
}

export type ProblemKind = 'etcd-down' | 'names-stale' | 'lease-expired' | 'lease-expiring' | 'path-unreachable' | 'names-without-lease' | 'kernel-drift';

export interface Problem {
  kind: ProblemKind;
  severity: 'error' | 'warning';
  text: string;
  /** The host (public IP) it is about, when one. */
  host: string | null;
}

export interface Cluster {
  hosts: ClusterHost[];
  containers: ClusterContainer[];
  problems: Problem[];
  /** Per probed overlay: rows and columns the hosts holding a lease, cells what the row's probes to the column say. */
  matrix: OverlayMatrix[];
}

const MIN_WARN_MS = 1000;
const MAX_WARN_MS = 300_000;

/** Milliseconds left below which a lease is "about to expire" (see the design note). */
export function expiryWarningMs(expiresAt: number, lastSeen: number | null): number {
  const life = lastSeen === null ? MAX_WARN_MS * 4 : expiresAt - lastSeen;
  return Math.min(MAX_WARN_MS, Math.max(MIN_WARN_MS, life / 4));
}

/** One collator for every sort (localeCompare with options builds one per call: 5,000 rows took 200 ms). */
const numeric = new Intl.Collator('en', { numeric: true }).compare;
const plain = new Intl.Collator('en').compare;
const secs = (ms: number) => (ms < 120_000 ? `${Math.max(0, Math.round(ms / 1000))} s` : `${Math.round(ms / 60_000)} min`);
const bySubnet = (a: { overlay: string | null; subnet: string | null }, b: { overlay: string | null; subnet: string | null }) =>
  plain(a.overlay ?? '', b.overlay ?? '') || numeric(a.subnet ?? '', b.subnet ?? '');

function containersOf(rows: NameRow[], leases: ClusterLeaseInput[]): ClusterContainer[] {
  const byIP = new Map<string, { lease: ClusterLeaseInput; cidr: ReturnType<typeof parseCidr> }[]>();
  for (const l of leases) {
    const list = byIP.get(l.publicIP) ?? [];
    list.push({ lease: l, cidr: parseCidr(l.subnet) });
    byIP.set(l.publicIP, list);
  }
  return rows.map((r) => {
    const mine = byIP.get(r.host) ?? [];
    // One lease of its host (one overlay): that one, without parsing addresses.
    const v4 = mine.length > 1 ? r.addresses.filter((a) => isIPv4(a)).map((a) => parseIPv4(a)) : [];
    const at = mine.find((m) => v4.some((a) => cidrContains(m.cidr, a))) ?? mine[0];
    return { name: r.name, aliases: r.aliases, addresses: r.addresses, network: r.network, host: r.host, overlay: at?.lease.overlay ?? null, subnet: at?.lease.subnet ?? null };
  });
}

function leaseProblems(hosts: ClusterHost[], nowMs: number, stale: boolean): Problem[] {
  const out: Problem[] = [];
  const asKnown = stale ? ' (etcd unreachable: as last known)' : '';
  for (const h of hosts) {
    const exp = h.expiresAt ? Date.parse(h.expiresAt) : Infinity;
    const left = exp - nowMs;
    const who = `${h.publicIP} (${h.subnet}${h.own ? ', this host' : ''}, overlay ${h.overlay})`;
    if (h.path?.state === 'unreachable' && left > 0) {
      const loss = h.path.loss === null ? '' : ` (${Math.round(h.path.loss * 100)}% of the last probes lost)`;
      out.push({ kind: 'path-unreachable', severity: 'error', text: `${who} is unreachable through the overlay from this host while its lease is live${loss}`, host: h.publicIP });
    }
    if (!h.expiresAt) continue;
    if (left <= 0) out.push({ kind: 'lease-expired', severity: 'error', text: `the lease of ${who} expired ${secs(-left)} ago${asKnown}`, host: h.publicIP });
    else if (left < expiryWarningMs(exp, h.lastSeen ? Date.parse(h.lastSeen) : null)) {
      out.push({ kind: 'lease-expiring', severity: 'warning', text: `the lease of ${who} expires in ${secs(left)} and was not renewed${asKnown}`, host: h.publicIP });
    }
  }
  return out;
}

export function buildCluster(input: ClusterInput): Cluster {
  const rows = input.names ?? [];
  // In the rows' order (domain/name-rows.ts: network, name, host), as `overlay-flannel names` lists them.
  const containers = containersOf(rows, input.leases);
  const writers = new Set(rows.map((r) => r.host));
  const perLease = new Map<string, number>();
  for (const c of containers) if (c.subnet) perLease.set(`${c.overlay} ${c.subnet}`, (perLease.get(`${c.overlay} ${c.subnet}`) ?? 0) + 1);
  const reporters = new Set((input.paths?.reports ?? []).map((r) => r.host));
  const brief = (p: PathInput | null | undefined, host: string): PathBrief | null =>
    !p ? null : noEcho(p.state, p.lastReplyAt, reporters.has(host)) ? { state: 'unknown', rttMs: p.rttMs, loss: p.loss, note: 'no echo' } : { state: p.state, rttMs: p.rttMs, loss: p.loss, note: null };
  const hosts: ClusterHost[] = input.leases
    .map((l) => ({ ...l, path: brief(l.path, l.publicIP), kind: (l.own || writers.has(l.publicIP) ? 'plugin' : 'flanneld') as HostKind, containers: perLease.get(`${l.overlay} ${l.subnet}`) ?? 0 }))
    .sort(bySubnet);

  const problems: Problem[] = [];
  const e = input.etcd;
  const stale = e?.up === false || input.namesStale;
  if (e?.up === false) {
    problems.push({ kind: 'etcd-down', severity: 'error', text: `etcd is unreachable${e.since ? ` since ${e.since}` : ''}${e.lastError ? `: ${e.lastError}` : ''}; showing the last known state`, host: null });
  }
  if (input.namesStale) problems.push({ kind: 'names-stale', severity: 'warning', text: 'the name records are from before etcd went away', host: null });
  problems.push(...leaseProblems(hosts, input.nowMs, stale));
  const { matrix, problems: pathProblems } = input.paths
    ? buildMatrix({
        ...input.paths,
        hosts: hosts.map((h) => ({ overlay: h.overlay, publicIP: h.publicIP, subnet: h.subnet, own: h.own, live: !h.expiresAt || Date.parse(h.expiresAt) > input.nowMs })),
        etcdDown: e?.up === false,
        nowMs: input.nowMs,
      })
    : { matrix: [], problems: [] };
  problems.push(...pathProblems);
  const leased = new Set(input.leases.map((l) => l.publicIP));
  const orphans = new Map<string, number>();
  for (const r of rows) if (!leased.has(r.host)) orphans.set(r.host, (orphans.get(r.host) ?? 0) + 1);
  for (const [host, n] of [...orphans].sort((a, b) => numeric(a[0], b[0]))) {
    problems.push({ kind: 'names-without-lease', severity: 'warning', text: `${n} name record${n === 1 ? '' : 's'} of host ${host}, which holds no lease (gone? its records go within NAME_TTL)`, host });
  }
  for (const d of input.drift) {
    if (d.lastDrift > 0 && d.fullSyncs > 1) {
      const n = `${d.lastDrift} kernel entr${d.lastDrift === 1 ? 'y' : 'ies'}`;
      problems.push({ kind: 'kernel-drift', severity: 'warning', text: `overlay ${d.overlay}: the last full sync repaired ${n} that disagreed with etcd (drift, or a change the fast path had not applied)`, host: null });
    }
  }
  const rank = (p: Problem) => (p.severity === 'error' ? 0 : 1);
  problems.sort((a, b) => rank(a) - rank(b));
  return { hosts, containers, problems, matrix };
}
