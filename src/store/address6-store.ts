/**
 * IPv6 endpoint addresses (Docker `--ipv6` networks) inside a host's v6 lease, recorded in etcd
 * as the v4 ones are (address-store.ts), so an address is never handed out twice, even by a
 * restarted daemon or by two daemons on one lease, and the address audit can release orphans.
 *
 * Design note. One key per address, `<prefix>/overlay-flannel/addresses6/<v6 lease>/<ip6>`
 * (keys.ts says why a root of its own and how the address is spelled), value
 * `{"owner":…,"createdAt":…}`, written with the same create-if-absent transaction (`Version == 0`).
 * A v6 lease is a /64 by default, so the address is picked at random in the host bits
 * (pickAddress6) rather than walked in order: there is no in-memory index of the lease (at 2^64
 * addresses a pick meets a record with probability n/2^64) and no listing per allocation; the
 * transaction alone decides. A pick that loses its create (a record exists: another daemon, or a
 * container from before a restart) picks again, at most MAX_PICKS6 times, never the same address
 * twice in one allocation, nor one this process is creating right now. `--ip6` creates exactly that
 * key: CONFLICT naming the owner when it is held. The subnet address (::0) and the gateway (::1)
 * are never recorded. A create the client retried after a dropped answer finds our own bytes and
 * counts as ours, as in v4.
 */
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { checkRequestedAddress6, pickAddress6 } from '../domain/addresses-v6';
import { Cidr6, formatCidr6, formatIPv6, parseIPv6 } from '../domain/ipv6';
import { conflict, invalid } from '../errors';
import { deleteIfCreatedBefore, valueOf } from './address-store';
import { toStoreError } from './etcd-client';
import { OverlayKeys, parseAddress6Key } from './keys';
import { toKeyValue } from './list-watch';

/** Random picks per allocation whose create may be lost before it fails. */
export const MAX_PICKS6 = 8;

export interface Address6Record {
  subnet6: Cidr6;
  ip: bigint;
  owner: string;
}

/** A v6 record as the address audit needs it (as DetailedAddressRecord in v4). */
export interface DetailedAddress6Record extends Address6Record {
  /** `createdAt` of the value (ms since the epoch), or null when it has none readable. */
  createdAt: number | null;
  modRevision: bigint;
}

export class Address6Store {
  /** Addresses whose create is in flight in this process, per v6 lease. */
  private readonly inFlight = new Map<string, Set<bigint>>();

  constructor(
    private readonly client: Etcd3,
    private readonly keys: OverlayKeys,
    private readonly logger: Logger,
    /** Random bytes (crypto.randomBytes; a table in tests). */
    private readonly random: (bytes: number) => Uint8Array = randomBytes,
  ) {}

  /**
   * Record a v6 address for `owner` in `subnet6` and return it. With `requested` (`--ip6`): exactly
   * that one (INVALID outside the subnet, CONFLICT when reserved or held by another owner; asking
   * again for one the owner holds returns it). Without: a random free one, CONFLICT after
   * MAX_PICKS6 lost creates.
   */
  async allocate(subnet6: Cidr6, owner: string, requested?: string): Promise<bigint> {
    if (!owner) throw invalid('allocate IPv6 address: an owner is required');
    try {
      if (requested !== undefined && requested !== '') {
        const ip = checkRequestedAddress6(subnet6, requested);
        const got = await this.create(subnet6, ip, owner);
        if (got.ok || got.owner === owner) return ip;
        throw conflict(`address ${requested} is already in use in ${formatCidr6(subnet6)} (owner ${got.owner || 'unknown'})`);
      }
      const lease = formatCidr6(subnet6);
      const busy = this.inFlight.get(lease) ?? new Set<bigint>();
      this.inFlight.set(lease, busy);
      const lost = new Set<bigint>();
      for (let i = 0; i < MAX_PICKS6; i++) {
        const ip = pickAddress6(subnet6, { has: (a) => busy.has(a) || lost.has(a) }, this.random);
        busy.add(ip);
        try {
          const got = await this.create(subnet6, ip, owner);
          if (got.ok) return ip;
          lost.add(ip);
          this.logger.debug({ subnet6: lease, address: formatIPv6(ip), owner: got.owner }, 'random IPv6 address already recorded; picking again');
        } finally {
          busy.delete(ip);
        }
      }
      throw conflict(`no free IPv6 address found in ${formatCidr6(subnet6)}: ${MAX_PICKS6} random picks were all recorded already`);
    } catch (e) {
      throw toStoreError(e, `allocate IPv6 address in ${formatCidr6(subnet6)}`);
    }
  }

  /** Forget the record of `ip` (bigint or text). Idempotent: true when a record was deleted. */
  async release(subnet6: Cidr6, ip: bigint | string): Promise<boolean> {
    const n = typeof ip === 'bigint' ? ip : parseIPv6(ip, 'IPv6 address to release');
    try {
      const r = await this.client.delete().key(this.keys.address6Key(subnet6, n)).exec();
      return Number(r.deleted) > 0;
    } catch (e) {
      throw toStoreError(e, `release IPv6 address ${formatIPv6(n)} in ${formatCidr6(subnet6)}`);
    }
  }

  /** As AddressStore.releaseIfCreatedBefore: a retried release never deletes a newer allocation. */
  async releaseIfCreatedBefore(subnet6: Cidr6, ip: bigint, before: number): Promise<'released' | 'absent' | 'kept'> {
    try {
      return (await deleteIfCreatedBefore(this.client, this.keys.address6Key(subnet6, ip), before)).outcome;
    } catch (e) {
      throw toStoreError(e, `release IPv6 address ${formatIPv6(ip)} in ${formatCidr6(subnet6)}`);
    }
  }

  /** Every recorded v6 address of the lease, in address order. */
  async list(subnet6: Cidr6): Promise<Address6Record[]> {
    return (await this.listDetailed(subnet6)).map(({ subnet6: s, ip, owner }) => ({ subnet6: s, ip, owner }));
  }

  /** Every recorded v6 address of the lease with its createdAt and mod revision (for the address audit). */
  async listDetailed(subnet6: Cidr6): Promise<DetailedAddress6Record[]> {
    try {
      const res = await this.client.getAll().prefix(this.keys.addresses6Prefix(subnet6)).exec();
      const rows: DetailedAddress6Record[] = [];
      for (const raw of res.kvs) {
        const kv = toKeyValue(raw);
        const parsed = parseAddress6Key(this.keys, kv.key);
        if (!parsed) continue;
        const { owner, createdAt } = valueOf(kv.value.toString('utf8'));
        if (!owner) this.logger.warn({ key: kv.key }, 'IPv6 address record without a readable owner; keeping the address taken');
        rows.push({ subnet6: parsed.subnet6, ip: parsed.ip, owner, createdAt, modRevision: kv.modRevision });
      }
      return rows.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
    } catch (e) {
      throw toStoreError(e, `list IPv6 addresses in ${formatCidr6(subnet6)}`);
    }
  }

  /** Delete the record of `ip` only if unchanged since it was read at `modRevision`. True when deleted. */
  async releaseIfUnchanged(subnet6: Cidr6, ip: bigint, modRevision: bigint): Promise<boolean> {
    const key = this.keys.address6Key(subnet6, ip);
    try {
      const r = await this.client.if(key, 'Mod', '==', modRevision.toString()).then(this.client.delete().key(key)).commit();
      return r.succeeded;
    } catch (e) {
      throw toStoreError(e, `release IPv6 address ${formatIPv6(ip)} in ${formatCidr6(subnet6)}`);
    }
  }

  /** Create-if-absent; on failure, who holds it. */
  private async create(subnet6: Cidr6, ip: bigint, owner: string): Promise<{ ok: true } | { ok: false; owner: string }> {
    const key = this.keys.address6Key(subnet6, ip);
    const value = JSON.stringify({ owner, createdAt: new Date().toISOString() });
    const r = await this.client.if(key, 'Version', '==', 0).then(this.client.put(key).value(value)).else(this.client.get(key)).commit();
    if (r.succeeded) return { ok: true };
    const existing = r.responses[0]?.response_range?.kvs[0];
    if (!existing) return { ok: false, owner: '' };
    const text = existing.value.toString('utf8');
    if (text === value) return { ok: true }; // our own create, retried by the client after a dropped answer
    return { ok: false, owner: valueOf(text).owner };
  }
}
