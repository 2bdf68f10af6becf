/**
 * Endpoint addresses inside a host's lease, recorded in etcd so that the IPAM never hands out an
 * address twice, even after a crash or with two daemons (or a restarted one) on the same lease.
 *
 * Design note. One key per address, `<prefix>/overlay-flannel/addresses/<lease-key>/<ip>`, value
 * `{"owner":…,"createdAt":…}`, written with a create-if-absent transaction (`Version == 0`): the
 * transaction is the lock, so no in-memory state is needed for correctness. To allocate we walk
 * `freeAddresses` round-robin from the most recently created record (highest create revision), so
 * a just-released address is not reused at once, skipping the addresses an in-memory index of the
 * lease's records says are taken (address-watch.ts: a list-then-watch of the lease, issue 23: at
 * 4,000 records, listing the lease per allocation cost ~45 ms of CPU and a p99 of 159 ms). A lost
 * create means another allocator won that address (or the index was behind): the index learns it
 * from the transaction's answer and we move on. Without an index yet, after MAX_LOST_CREATES lost
 * creates in one allocation, or when the index finds nothing free, we list the lease's records
 * (one range read) and walk again, so "no free address" is always said after a fresh read.
 * A create the client retried after a dropped answer finds our own bytes in the key and counts as
 * ours. The network, gateway (.1) and broadcast addresses are never handed out.
 * Speed under concurrency (20 `docker run` at once): addresses this process is creating right now
 * are skipped by its other allocations (an in-memory hint, not a lock), so concurrent requests try
 * different addresses and each create wins at the first attempt instead of racing for the same one.
 */
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { checkRequestedAddress, freeAddresses } from '../domain/addresses';
import { Cidr, formatCidr, formatIPv4, parseIPv4 } from '../domain/ipv4';
import { leaseKeyOf } from '../domain/lease';
import { conflict, invalid } from '../errors';
import { AddressWatches } from './address-watch';
import { toStoreError } from './etcd-client';
import { OverlayKeys, parseAddressKey } from './keys';
import { KeyValue, toKeyValue } from './list-watch';
import type { AddressRecord } from './types';

/** Lost creates in one allocation after which the index is distrusted and the lease is read. */
export const MAX_LOST_CREATES = 16;

interface Row {
  record: AddressRecord;
  kv: KeyValue;
  /** `createdAt` of the value (ms since the epoch), or null. */
  createdAt: number | null;
}

/** A record as the address audit needs it: when it was written, and its revision for a guarded delete. */
export interface DetailedAddressRecord extends AddressRecord {
  /** `createdAt` of the value (ms since the epoch), or null when it has none readable. */
  createdAt: number | null;
  modRevision: bigint;
}

export class AddressStore {
  /** Last address handed out per lease key, with its create revision (the listing path's round-robin). */
  private readonly last = new Map<string, { ip: number; rev: bigint }>();
  /** Addresses whose create is in flight in this process, per lease key. */
  private readonly inFlight = new Map<string, Set<number>>();
  private readonly watches: AddressWatches;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: OverlayKeys,
    private readonly logger: Logger,
  ) {
    this.watches = new AddressWatches(client, keys, logger);
  }

  /** Stop the watches of the leases' records (openStore's close() does). */
  stop(): Promise<void> {
    return this.watches.stop();
  }

  /**
   * Record an address for `owner` in `subnet` and return it (u32).
   * With `requested`: exactly that one; CONFLICT when another owner holds it or it is reserved,
   * INVALID when it is outside the subnet. Asking again for an address one already holds returns it.
   * Without: the next free one, round-robin; CONFLICT "no free address in 10.1.15.0/24" when full.
   */
  async allocate(subnet: Cidr, owner: string, requested?: string): Promise<number> {
    if (!owner) throw invalid('allocate address: an owner is required');
    const where = `allocate address in ${formatCidr(subnet)}`;
    try {
      if (requested !== undefined && requested !== '') {
        const ip = checkRequestedAddress(subnet, requested);
        const got = await this.create(subnet, ip, owner);
        if (got.ok) return ip;
        if (got.owner === owner) return ip;
        throw conflict(`address ${requested} is already in use in ${formatCidr(subnet)} (owner ${got.owner || 'unknown'})`);
      }
      const index = await this.watches.index(subnet);
      if (index) {
        const ip = await this.walk(subnet, owner, index, index.newest(), MAX_LOST_CREATES);
        if (ip !== null) return ip;
      }
      // No index yet, it was behind too often, or it found nothing free: read every record.
      const rows = await this.rows(this.keys.addressesPrefix(subnet));
      const taken = new Set(rows.map((r) => r.record.ip));
      let after: { ip: number; rev: bigint } | undefined = this.last.get(leaseKeyOf(subnet));
      for (const r of rows) if (!after || r.kv.createRevision > after.rev) after = { ip: r.record.ip, rev: r.kv.createRevision };
      const ip = await this.walk(subnet, owner, taken, after?.ip, Infinity);
      if (ip !== null) return ip;
      throw conflict(`no free address in ${formatCidr(subnet)}`);
    } catch (e) {
      throw toStoreError(e, where);
    }
  }

  /**
   * Try the free addresses after `after`, skipping `taken` and this process's in-flight creates;
   * the first create that wins is ours. Null when none is left, or after `maxLost` lost creates.
   */
  private async walk(subnet: Cidr, owner: string, taken: { has(ip: number): boolean }, after: number | undefined, maxLost: number): Promise<number | null> {
    const lease = leaseKeyOf(subnet);
    const busy = this.inFlight.get(lease) ?? new Set<number>();
    this.inFlight.set(lease, busy);
    let lost = 0;
    for (const ip of freeAddresses(subnet, { has: (a) => taken.has(a) || busy.has(a) }, after)) {
      busy.add(ip);
      try {
        const got = await this.create(subnet, ip, owner);
        if (got.ok) {
          const prev = this.last.get(lease);
          if (!prev || got.rev > prev.rev) this.last.set(lease, { ip, rev: got.rev });
          return ip;
        }
        if (++lost >= maxLost) return null;
      } finally {
        busy.delete(ip);
      }
    }
    return null;
  }

  /** Forget the record of `ip` (u32 or dotted). Idempotent: true when a record was deleted. */
  async release(subnet: Cidr, ip: number | string): Promise<boolean> {
    const n = typeof ip === 'number' ? ip : parseIPv4(ip, 'address to release');
    try {
      const r = await this.client.delete().key(this.keys.addressKey(subnet, n)).exec();
      const deleted = Number(r.deleted) > 0;
      if (deleted) this.watches.with(subnet, (x) => x.delete(n, BigInt(r.header.revision)));
      return deleted;
    } catch (e) {
      throw toStoreError(e, `release address ${formatIPv4(n)} in ${formatCidr(subnet)}`);
    }
  }

  /**
   * A retried release (src/driver/pending-releases.ts): delete the record of `ip` only if it was
   * created before `before` (ms since the epoch) and is unchanged since read, so a retry never
   * deletes a newer allocation of the same address. A record without a readable createdAt is kept.
   */
  async releaseIfCreatedBefore(subnet: Cidr, ip: number, before: number): Promise<'released' | 'absent' | 'kept'> {
    try {
      const r = await deleteIfCreatedBefore(this.client, this.keys.addressKey(subnet, ip), before);
      if (r.revision !== undefined) this.watches.with(subnet, (x) => x.delete(ip, r.revision!));
      return r.outcome;
    } catch (e) {
      throw toStoreError(e, `release address ${formatIPv4(ip)} in ${formatCidr(subnet)}`);
    }
  }

  /** Every recorded address of the lease, in address order. */
  async list(subnet: Cidr): Promise<AddressRecord[]> {
    try {
      return (await this.rows(this.keys.addressesPrefix(subnet))).map((r) => r.record);
    } catch (e) {
      throw toStoreError(e, `list addresses in ${formatCidr(subnet)}`);
    }
  }

  /** Every recorded address of the lease with its createdAt and mod revision (for the address audit). */
  async listDetailed(subnet: Cidr): Promise<DetailedAddressRecord[]> {
    try {
      return (await this.rows(this.keys.addressesPrefix(subnet))).map((r) => ({
        ...r.record,
        createdAt: r.createdAt,
        modRevision: r.kv.modRevision,
      }));
    } catch (e) {
      throw toStoreError(e, `list addresses in ${formatCidr(subnet)}`);
    }
  }

  /**
   * Delete the record of `ip` only if it is unchanged since it was read at `modRevision` (it may
   * have been released and handed out again meanwhile). True when it was deleted.
   */
  async releaseIfUnchanged(subnet: Cidr, ip: number, modRevision: bigint): Promise<boolean> {
    const key = this.keys.addressKey(subnet, ip);
    try {
      const r = await this.client.if(key, 'Mod', '==', modRevision.toString()).then(this.client.delete().key(key)).commit();
      if (r.succeeded) this.watches.with(subnet, (x) => x.delete(ip, BigInt(r.header.revision)));
      return r.succeeded;
    } catch (e) {
      throw toStoreError(e, `release address ${formatIPv4(ip)} in ${formatCidr(subnet)}`);
    }
  }

  /** Release every address held by `owner`, in any lease of this overlay; returns how many. */
  async releaseOwner(owner: string): Promise<number> {
    try {
      let n = 0;
      for (const row of await this.rows(this.keys.addressesRoot)) {
        if (row.record.owner !== owner) continue;
        // Only if unchanged since we read it: it may have been released and handed to someone else.
        const r = await this.client
          .if(row.kv.key, 'Mod', '==', row.kv.modRevision.toString())
          .then(this.client.delete().key(row.kv.key))
          .commit();
        if (!r.succeeded) continue;
        n++;
        this.watches.with(row.record.subnet, (x) => x.delete(row.record.ip, BigInt(r.header.revision)));
      }
      return n;
    } catch (e) {
      throw toStoreError(e, `release addresses of ${owner}`);
    }
  }

  /** Create-if-absent; on failure, who holds it. Either way the lease's index learns the outcome. */
  private async create(subnet: Cidr, ip: number, owner: string): Promise<{ ok: true; rev: bigint } | { ok: false; owner: string }> {
    const key = this.keys.addressKey(subnet, ip);
    const value = JSON.stringify({ owner, createdAt: new Date().toISOString() });
    const r = await this.client.if(key, 'Version', '==', 0).then(this.client.put(key).value(value)).else(this.client.get(key)).commit();
    if (r.succeeded) {
      const rev = BigInt(r.header.revision);
      this.watches.with(subnet, (x) => x.put(ip, rev, rev));
      return { ok: true, rev };
    }
    const existing = r.responses[0]?.response_range?.kvs[0];
    if (!existing) return { ok: false, owner: '' };
    const [mod, created] = [BigInt(existing.mod_revision), BigInt(existing.create_revision)];
    this.watches.with(subnet, (x) => x.put(ip, mod, created));
    const text = existing.value.toString('utf8');
    // Our own create, retried by the client after a dropped answer.
    if (text === value) return { ok: true, rev: created };
    return { ok: false, owner: ownerOf(text) };
  }

  private async rows(prefix: string): Promise<Row[]> {
    const res = await this.client.getAll().prefix(prefix).exec();
    const rows: Row[] = [];
    for (const raw of res.kvs) {
      const kv = toKeyValue(raw);
      const parsed = parseAddressKey(this.keys, kv.key);
      if (!parsed) continue;
      const { owner, createdAt } = valueOf(kv.value.toString('utf8'));
      if (!owner) this.logger.warn({ key: kv.key }, 'address record without a readable owner; keeping the address taken');
      rows.push({ kv, createdAt, record: { subnet: parsed.subnet, ip: parsed.ip, owner } });
    }
    return rows.sort((a, b) => a.record.ip - b.record.ip);
  }
}

/**
 * The guarded delete of a retried release (v4 and v6 records alike): read the record, delete it
 * only if its createdAt is at or before `before` and its mod revision is still the one read.
 * `revision` is the delete's store revision when it happened.
 */
export async function deleteIfCreatedBefore(client: Etcd3, key: string, before: number): Promise<{ outcome: 'released' | 'absent' | 'kept'; revision?: bigint }> {
  const kv = (await client.get(key).exec()).kvs[0];
  if (!kv) return { outcome: 'absent' };
  const { createdAt } = valueOf(kv.value.toString('utf8'));
  if (createdAt === null || createdAt > before) return { outcome: 'kept' };
  const r = await client.if(key, 'Mod', '==', kv.mod_revision).then(client.delete().key(key)).commit();
  return r.succeeded ? { outcome: 'released', revision: BigInt(r.header.revision) } : { outcome: 'kept' };
}

/** A record's value, parsed once: its owner ('' when unreadable) and createdAt (null when unreadable). */
export function valueOf(text: string): { owner: string; createdAt: number | null } {
  try {
    const v = JSON.parse(text) as { owner?: unknown; createdAt?: unknown };
    const t = typeof v?.createdAt === 'string' ? Date.parse(v.createdAt) : NaN;
    return { owner: typeof v?.owner === 'string' ? v.owner : '', createdAt: Number.isFinite(t) ? t : null };
  } catch {
    return { owner: '', createdAt: null };
  }
}

function ownerOf(text: string): string {
  return valueOf(text).owner;
}
