/**
 * The name records for the status server's JSON API (`GET /api/v1/names`) and its metric: every
 * record this daemon knows (all hosts), as the NameTable has them, with each record's age (from
 * the writer's updatedAt). While etcd is unreachable `etcdStale` is true and the list is what was
 * known before the outage (those names keep resolving).
 */
import type { NameRecord } from '../domain/name-record';

/** What the daemon's names part offers the status server (daemon/names-part.ts). */
export interface StatusNames {
  records(): NameRecord[];
  state(): { records: number; localRecords: number | null; etcdStale: boolean; problem: string | null; notWriting: string | null; lease: string | null };
}

export interface NameRow {
  name: string;
  aliases: string[];
  addresses: string[];
  host: string;
  network: string;
  containerId: string | null;
  endpointId: string;
  updatedAt: string;
  /** Seconds since updatedAt (null: the writer's clock is ahead of ours by more than a minute). */
  ageSec: number | null;
}

export function nameRow(r: NameRecord, nowMs: number): NameRow {
  const age = Math.round((nowMs - Date.parse(r.updatedAt)) / 1000);
  return {
    name: r.containerName,
    aliases: [...r.aliases],
    addresses: [...r.ipv4, ...r.ipv6],
    host: r.host,
    network: r.networkName,
    containerId: r.containerId ?? null,
    endpointId: r.endpointId,
    updatedAt: r.updatedAt,
    ageSec: age >= -60 ? Math.max(0, age) : null,
  };
}

/** Rows by network, then name, then host. */
export function nameRows(records: readonly NameRecord[], nowMs: number): NameRow[] {
  return records
    .map((r) => nameRow(r, nowMs))
    .sort((a, b) => a.network.localeCompare(b.network) || a.name.localeCompare(b.name) || a.host.localeCompare(b.host, 'en', { numeric: true }));
}

export function namesView(names: StatusNames | null | undefined, nowMs = Date.now()) {
  if (!names) return { enabled: false, state: null, records: [] as NameRow[] };
  return { enabled: true, state: names.state(), records: nameRows(names.records(), nowMs) };
}

/** Records known per network name (the metric's labels). */
export function recordsPerNetwork(names: StatusNames | null | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of names?.records() ?? []) out.set(r.networkName, (out.get(r.networkName) ?? 0) + 1);
  return out;
}
