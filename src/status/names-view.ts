/**
 * The name records for the status server's JSON API (`GET /api/v1/names`) and its metric: every
 * record this daemon knows (all hosts), as the NameTable has them, with each record's age (from
 * the writer's updatedAt). While etcd is unreachable `etcdStale` is true and the list is what was
 * known before the outage (those names keep resolving).
 */
import type { NameRecord } from '../domain/name-record';
import { nameRows, type NameRow } from '../domain/name-rows';
import type { NameResolverStats } from '../reconcile/name-resolver';

/** What the daemon's names part offers the status server (daemon/names-part.ts). */
export interface StatusNames {
  records(): NameRecord[];
  state(): { records: number; localRecords: number | null; etcdStale: boolean; problem: string | null; notWriting: string | null; lease: string | null; resolving?: boolean; upstreamProblem?: string | null };
  /** The resolver's counters, when it runs (absent in fakes). */
  resolver?(): { readonly stats: Readonly<NameResolverStats> } | null;
}

export function namesView(names: StatusNames | null | undefined, nowMs = Date.now()) {
  if (!names) return { enabled: false, state: null, resolver: null, records: [] as NameRow[] };
  return { enabled: true, state: names.state(), resolver: names.resolver?.()?.stats ?? null, records: nameRows(names.records(), nowMs) };
}

/** Records known per network name (the metric's labels). */
export function recordsPerNetwork(names: StatusNames | null | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of names?.records() ?? []) out.set(r.networkName, (out.get(r.networkName) ?? 0) + 1);
  return out;
}
