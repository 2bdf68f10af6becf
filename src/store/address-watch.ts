/**
 * The address records of the leases this process allocates from, kept in memory by a
 * list-then-watch per lease (src/store/list-watch.ts) feeding an AddressIndex
 * (src/domain/address-index.ts). AddressStore asks it which addresses are taken instead of
 * listing the whole lease per allocation.
 *
 * Design note. A lease's watch starts on its first allocation and stays while it is used: at most
 * MAX_WATCHED_LEASES per overlay (a host has one lease per overlay; an older one is left when the
 * lease changes), the least recently used one is stopped beyond that. The first allocation waits
 * up to INDEX_WAIT_MS for the watch's first snapshot; an index without one answers null and the
 * caller reads the records itself, as before the index existed (so an etcd outage at start fails
 * the request with etcd's error, not with a wait). The index is only a hint: etcd's
 * create-if-absent transaction still decides, and the caller feeds its own outcomes back (`with`)
 * so the next allocation does not wait for the watch to learn them.
 */
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { AddressIndex, type IndexedRecord } from '../domain/address-index';
import { Cidr, formatCidr } from '../domain/ipv4';
import { leaseKeyOf } from '../domain/lease';
import { sleep } from '../util/backoff';
import { OverlayKeys, parseAddressKey } from './keys';
import { KeyValue, ListWatch, WatchChange } from './list-watch';

export const MAX_WATCHED_LEASES = 4;
export const INDEX_WAIT_MS = 1000;

interface Watched {
  readonly index: AddressIndex;
  readonly watch: ListWatch;
  snapshot: boolean;
  usedAt: number;
}

export class AddressWatches {
  private readonly watched = new Map<string, Watched>();
  private uses = 0;
  private stopped = false;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: OverlayKeys,
    private readonly logger: Logger,
  ) {}

  /** The index of `subnet`'s records, starting its watch if needed; null until it has a snapshot. */
  async index(subnet: Cidr): Promise<AddressIndex | null> {
    if (this.stopped) return null;
    const w = this.watched.get(leaseKeyOf(subnet)) ?? this.start(subnet);
    w.usedAt = ++this.uses;
    if (!w.snapshot) {
      const giveUp = new AbortController();
      await Promise.race([w.watch.ready, sleep(INDEX_WAIT_MS, giveUp.signal)]);
      giveUp.abort();
    }
    return w.snapshot ? w.index : null;
  }

  /** Apply one of our own outcomes to `subnet`'s index, if it is watched. */
  with(subnet: Cidr, fn: (index: AddressIndex) => void): void {
    const w = this.watched.get(leaseKeyOf(subnet));
    if (w?.snapshot) fn(w.index);
  }

  /** Stop every watch. Idempotent; index() answers null afterwards. */
  async stop(): Promise<void> {
    this.stopped = true;
    const all = [...this.watched.values()];
    this.watched.clear();
    await Promise.allSettled(all.map((w) => w.watch.stop()));
  }

  private start(subnet: Cidr): Watched {
    if (this.watched.size >= MAX_WATCHED_LEASES) {
      const [oldKey, old] = [...this.watched].reduce((a, b) => (b[1].usedAt < a[1].usedAt ? b : a));
      this.watched.delete(oldKey);
      void old.watch.stop().catch(() => undefined);
    }
    const lease = leaseKeyOf(subnet);
    const index = new AddressIndex();
    const w: Watched = {
      index,
      snapshot: false,
      usedAt: 0,
      watch: new ListWatch({
        client: this.client,
        target: { prefix: this.keys.addressesPrefix(subnet) },
        what: `address records of ${formatCidr(subnet)}`,
        logger: this.logger,
        onSnapshot: (kvs) => {
          index.reset(kvs.flatMap((kv) => this.recordOf(lease, kv)));
          w.snapshot = true;
        },
        onChanges: (changes) => {
          for (const c of changes) this.apply(lease, index, c);
        },
      }),
    };
    this.watched.set(lease, w);
    w.watch.start();
    return w;
  }

  private apply(lease: string, index: AddressIndex, c: WatchChange): void {
    if (c.type === 'put') {
      for (const r of this.recordOf(lease, c.kv)) index.put(r.ip, r.modRevision, r.createRevision);
      return;
    }
    const parsed = parseAddressKey(this.keys, c.key);
    if (parsed && leaseKeyOf(parsed.subnet) === lease) index.delete(parsed.ip, c.modRevision);
  }

  /** The record of a key under the lease's prefix (none for a key that is not an address record). */
  private recordOf(lease: string, kv: KeyValue): IndexedRecord[] {
    const parsed = parseAddressKey(this.keys, kv.key);
    if (!parsed || leaseKeyOf(parsed.subnet) !== lease) return [];
    return [{ ip: parsed.ip, modRevision: kv.modRevision, createRevision: kv.createRevision }];
  }
}
