/**
 * Orphan address records: records in etcd for addresses of this host's lease that no Docker
 * endpoint holds any more (a crash between RequestAddress and ReleaseAddress, a plugin that was
 * down while Docker cleaned up after a reboot, a dockerd that lost its state). Left alone they
 * leak the subnet's addresses one by one. The address audit (src/reconcile/address-audit.ts) asks
 * Docker which addresses its endpoints hold and this module decides which records to release.
 *
 * Design note: a record is written by RequestAddress *before* Docker creates the endpoint that
 * holds the address, so a record without an endpoint is normal for a moment. Only a record older
 * than `graceMs` is released: its age comes from the `createdAt` the record carries; a record
 * without a readable one (written by an older version, or by hand) is aged from the first audit
 * that found it without an endpoint (`firstSeen`, kept by the caller between audits). A record
 * whose createdAt lies in the future (clock skew between hosts) counts as just created.
 */
import { vethNames } from './names';

/** One address record as the audit sees it: `I` is number (v4, u32) or bigint (v6). */
export interface AuditedRecord<I = number> {
  /** The address, u32 (v4) or bigint (v6). */
  ip: I;
  /** When it was written (ms since the epoch), or null when the record does not say. */
  createdAt: number | null;
}

/** What to do with the records of one lease. */
export interface OrphanDecision<I = number> {
  /** Records to release: no endpoint holds them and they are older than the grace period. */
  release: AuditedRecord<I>[];
  /** Records without an endpoint, still inside the grace period (kept for now). */
  waiting: AuditedRecord<I>[];
  /** The new first-seen map to keep until the next audit (only records still without an endpoint). */
  firstSeen: Map<I, number>;
}

/**
 * Decide which records of one lease (one family: the v4 and the v6 records of a lease are judged
 * apart, each against Docker's addresses of that family) are orphans.
 * @param records every address record of the lease
 * @param held the addresses Docker's endpoints hold (u32, or bigint for v6)
 * @param now the time of the audit (ms since the epoch)
 * @param graceMs how old a record without an endpoint must be before it is released
 * @param firstSeen ip → when an earlier audit first found it without an endpoint
 */
export function orphanAddresses<I extends number | bigint = number>(
  records: readonly AuditedRecord<I>[],
  held: ReadonlySet<I>,
  now: number,
  graceMs: number,
  firstSeen: ReadonlyMap<I, number> = new Map(),
): OrphanDecision<I> {
  if (!(graceMs >= 0)) throw new RangeError(`orphanAddresses: graceMs must be ≥ 0, got ${graceMs}`);
  const out: OrphanDecision<I> = { release: [], waiting: [], firstSeen: new Map() };
  for (const r of records) {
    if (held.has(r.ip)) continue;
    const seen = firstSeen.get(r.ip) ?? now;
    out.firstSeen.set(r.ip, seen);
    const born = r.createdAt === null || !Number.isFinite(r.createdAt) ? seen : Math.min(r.createdAt, now);
    if (now - born >= graceMs) out.release.push(r);
    else out.waiting.push(r);
  }
  return out;
}

/**
 * The host ends of veth pairs (`ofh<first 12 hex of the endpoint id>`, domain/names.ts) that no
 * Docker endpoint owns: left when the plugin died inside CreateEndpoint (Docker never got the
 * answer, so it never calls DeleteEndpoint). A veth is judged from the first audit that found it
 * without an endpoint (`firstSeen`, name → ms) and removed once that is `graceMs` ago, since a
 * veth exists a moment before Docker records its endpoint.
 */
export function orphanVeths(
  veths: readonly string[],
  endpointIds: ReadonlySet<string>,
  now: number,
  graceMs: number,
  firstSeen: ReadonlyMap<string, number> = new Map(),
): { remove: string[]; waiting: string[]; firstSeen: Map<string, number> } {
  if (!(graceMs >= 0)) throw new RangeError(`orphanVeths: graceMs must be ≥ 0, got ${graceMs}`);
  const owned = new Set([...endpointIds].map((id) => vethNames(id).host));
  const out = { remove: [] as string[], waiting: [] as string[], firstSeen: new Map<string, number>() };
  for (const v of veths) {
    if (owned.has(v)) continue;
    const seen = firstSeen.get(v) ?? now;
    out.firstSeen.set(v, seen);
    (now - seen >= graceMs ? out.remove : out.waiting).push(v);
  }
  return out;
}
