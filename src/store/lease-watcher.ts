/**
 * Follows every host's lease under `<prefix>/subnets`, as flanneld's watchSubnets does, and keeps
 * the current set in memory.
 *
 * Design note.
 * - Keys: the *string* prefix `<prefix>/subnets` (no slash), and any key whose suffix parses as a
 *   lease key, exactly what flanneld accepts; other keys there are ignored silently.
 * - Events: a `snapshot` after the first list and after every re-list (compaction, cancelled
 *   watch): consumers diff it against what they programmed. Then `added` per PUT (new lease, a
 *   renewal or changed attributes; consumers must be idempotent) and `removed` per DELETE (explicit,
 *   revoke or expiry look the same), carrying the value the lease had, from prev-kv or our cache.
 * - A value that does not parse (a foreign or broken writer) is skipped with one warning per
 *   key+value. It counts as "no lease there": a key that turns bad after being good is `removed`,
 *   so that the incremental view always equals what a snapshot of the same moment would say.
 * - No per-lease TTL lookups on the hot path (2000 leases would be 2000 calls): events carry the
 *   etcd lease id; {@link LeaseWatcher.expiryOf} asks etcd lazily and caches per lease id.
 */
import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { decodeLeaseAttrs, Lease, makeLease } from '../domain/lease';
import { errorText } from '../errors';
import { StateChanges } from '../util/state-changes';
import { toStoreError } from './etcd-client';
import { leaseSubnetsOfKey, OverlayKeys } from './keys';
import { KeyValue, ListWatch, toKeyValue, WatchChange } from './list-watch';
import type { LeaseEvent } from './types';

type Snapshot = Extract<LeaseEvent, { type: 'snapshot' }>;
type Added = Extract<LeaseEvent, { type: 'added' }>;
type Removed = Extract<LeaseEvent, { type: 'removed' }>;

export interface LeaseWatcher {
  /** Every event, in order. */
  on(event: 'event', listener: (e: LeaseEvent) => void): this;
  on(event: 'snapshot', listener: (e: Snapshot) => void): this;
  on(event: 'added', listener: (e: Added) => void): this;
  on(event: 'removed', listener: (e: Removed) => void): this;
}

/**
 * @example
 *   const w = store.overlay('/coreos.com/network').leases();
 *   w.on('event', (e) => reconciler.onLeaseEvent(e));
 *   await w.start();   // resolves after the first snapshot
 */
export class LeaseWatcher extends EventEmitter {
  private readonly cache = new Map<string, Lease>(); // full key -> lease
  private readonly warned = new StateChanges(); // full key -> bad value already warned about
  private readonly expiries = new Map<string, number>(); // etcd lease id -> unix ms
  private readonly lw: ListWatch;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: OverlayKeys,
    private readonly logger: Logger,
  ) {
    super();
    this.lw = new ListWatch({
      client,
      target: { prefix: keys.subnetsPrefix },
      what: `leases ${keys.subnetsPrefix}`,
      logger,
      onSnapshot: (kvs) => this.onSnapshot(kvs),
      onChanges: (changes) => changes.forEach((c) => this.onChange(c)),
    });
  }

  /**
   * Start listing and watching; resolves after the first snapshot was emitted (waiting through
   * outages), or when stop() is called first.
   */
  start(): Promise<void> {
    this.lw.start();
    return this.lw.ready;
  }

  stop(): Promise<void> {
    return this.lw.stop();
  }

  /**
   * List the leases once, without watching (`overlay-flannel status`): fails at once with the
   * translated error when etcd does not answer, instead of waiting through the outage as start() does.
   */
  async listOnce(): Promise<Lease[]> {
    let kvs: KeyValue[];
    try {
      const res = await this.client.getAll().prefix(this.keys.subnetsPrefix).exec();
      kvs = res.kvs.map(toKeyValue);
    } catch (e) {
      throw toStoreError(e, `list leases ${this.keys.subnetsPrefix}`);
    }
    this.onSnapshot(kvs);
    return this.leases();
  }

  /** The current leases (a copy), as of the last event emitted. */
  leases(): Lease[] {
    return [...this.cache.values()];
  }

  /** The revision up to which events were emitted, and counters (lists, disconnects, …). */
  get progress(): { revision: bigint; stats: ListWatch['stats'] } {
    return { revision: this.lw.revision, stats: this.lw.stats };
  }

  /**
   * When `lease` expires (unix ms), asked from etcd once per etcd lease id; undefined for a
   * reservation (no etcd lease) or one that is already gone. Throws UNAVAILABLE when etcd is down.
   */
  async expiryOf(lease: Lease): Promise<number | undefined> {
    if (lease.etcdLease === '0') return undefined;
    const known = this.expiries.get(lease.etcdLease);
    if (known !== undefined) return known;
    try {
      const r = await this.client.leaseClient.leaseTimeToLive({ ID: lease.etcdLease });
      const ttl = Number(r.TTL);
      if (!(ttl > 0)) return undefined;
      const at = Date.now() + ttl * 1000;
      this.expiries.set(lease.etcdLease, at);
      return at;
    } catch (e) {
      throw toStoreError(e, `read TTL of etcd lease ${lease.etcdLease}`);
    }
  }

  private decode(kv: KeyValue): Lease | null {
    const subnets = leaseSubnetsOfKey(this.keys, kv.key);
    if (!subnets) return null;
    const text = kv.value.toString('utf8');
    try {
      const attrs = decodeLeaseAttrs(text, `lease ${kv.key}`);
      this.warned.forget(kv.key);
      return makeLease(subnets, attrs, kv.lease, kv.modRevision);
    } catch (e) {
      if (this.warned.changed(kv.key, text)) {
        this.logger.warn({ key: kv.key, value: text.slice(0, 200), err: errorText(e) }, 'skipping a lease value that does not parse');
      }
      return null;
    }
  }

  private onSnapshot(kvs: KeyValue[]): void {
    this.cache.clear();
    const present = new Set<string>();
    for (const kv of kvs) {
      present.add(kv.key);
      const lease = this.decode(kv);
      if (lease) this.cache.set(kv.key, lease);
    }
    this.warned.retain(present);
    this.expiries.clear();
    this.fire({ type: 'snapshot', leases: this.leases() });
  }

  private onChange(c: WatchChange): void {
    if (c.type === 'put') {
      const lease = this.decode(c.kv);
      if (lease) {
        const before = this.cache.get(c.kv.key);
        if (before && before.etcdLease !== lease.etcdLease) this.expiries.delete(before.etcdLease); // renewed: a new etcd lease
        this.cache.set(c.kv.key, lease);
        this.fire({ type: 'added', lease });
        return;
      }
      const old = this.cache.get(c.kv.key);
      if (old) {
        this.cache.delete(c.kv.key);
        this.fire({ type: 'removed', lease: old });
      }
      return;
    }
    const cached = this.cache.get(c.key);
    this.cache.delete(c.key);
    const prev = c.prev ? this.decode(c.prev) : null; // before forgetting the warning: no second one
    this.warned.forget(c.key);
    const lease = prev ?? cached;
    if (lease) {
      this.expiries.delete(lease.etcdLease);
      this.fire({ type: 'removed', lease: makeLease(lease, lease.attrs, lease.etcdLease, c.modRevision) });
    }
  }

  private fire(e: LeaseEvent): void {
    for (const name of [e.type, 'event'] as const) {
      try {
        this.emit(name, e);
      } catch (err) {
        this.logger.error({ err }, `a lease '${name}' listener threw; continuing`);
      }
    }
  }
}
