/**
 * Name records as operators see them: one row per record (the status API's `/api/v1/names` and
 * `overlay-flannel names` print the same rows), with the record's age from its writer's
 * `updatedAt`, sorted by network, name, host; and the age as a table cell.
 */
import type { NameRecord } from './name-record';

export interface NameRow {
  network: string;
  name: string;
  aliases: string[];
  addresses: string[];
  host: string;
  containerId: string | null;
  endpointId: string;
  updatedAt: string;
  /** Seconds since updatedAt (null: the writer's clock is more than a minute ahead of ours). */
  ageSec: number | null;
}

export function nameRow(r: NameRecord, nowMs: number): NameRow {
  const age = Math.round((nowMs - Date.parse(r.updatedAt)) / 1000);
  return {
    network: r.networkName,
    name: r.containerName,
    aliases: [...r.aliases],
    addresses: [...r.ipv4, ...r.ipv6],
    host: r.host,
    containerId: r.containerId ?? null,
    endpointId: r.endpointId,
    updatedAt: r.updatedAt,
    ageSec: Number.isFinite(age) && age >= -60 ? Math.max(0, age) : null,
  };
}

/** Rows by network, then name, then host. */
export function nameRows(records: readonly NameRecord[], nowMs: number): NameRow[] {
  return records
    .map((r) => nameRow(r, nowMs))
    .sort((a, b) => a.network.localeCompare(b.network) || a.name.localeCompare(b.name) || a.host.localeCompare(b.host, 'en', { numeric: true }));
}

/** 42 → "42s", 300 → "5m", 7200 → "2h", 172800 → "2d"; null → "?". */
export function formatAge(sec: number | null): string {
  if (sec === null) return '?';
  if (sec < 60) return `${sec}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h`;
  return `${Math.floor(sec / 86400)}d`;
}
