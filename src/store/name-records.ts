/**
 * Cross-host DNS name records (issue 16, docs/names-design.md §7) under
 * `<prefix>/overlay-flannel/names/<network id>/<endpoint id>` (never under `<prefix>/subnets`,
 * which flanneld reads). The codec is src/domain/name-record.ts.
 *
 * Design note.
 * - {@link NameRegistry}: this host's records, all bound to one short lease of their own
 *   ({@link NameLease}, TTL 30 s by default), so a dead host's names vanish within the TTL. It
 *   holds the desired records in memory and writes the difference (one SerialQueue, never
 *   read-modify-write). A write that fails keeps the record held and retries with backoff; the
 *   caller's promise rejects with our words. When the lease is lost (revoked, or etcd unreachable
 *   for longer than the TTL) it grants a new lease and re-puts everything it *still* holds: a name
 *   removed meanwhile never comes back, since it was bound to the old lease.
 *   `replaceAll` (after a plugin restart) puts the new set first, then deletes the stale ones,
 *   including records of this host written by the previous process (found by listing the names
 *   and matching `host`): a record that stays is overwritten in place, never deleted in between.
 *   `stop()` revokes the lease (the names go at once); `stop({ revoke: false })`, as the daemon
 *   stops, lets them run out within the TTL so that a restarted process takes them over seamlessly.
 * - {@link NameWatcher}: every host's records, listed and watched with {@link ListWatch}
 *   (re-listed after compaction; a re-list is diffed into upserts and removals). The set stays in
 *   memory while etcd is down, so names already known keep resolving. A broken value is logged
 *   once per key and value with the reason, and skipped; the others are unaffected.
 */
import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import { EtcdLeaseInvalidError } from 'etcd3';
import type { Logger } from 'pino';
import { encodeNameRecord, isRecordId, NameRecord, parseNameRecord } from '../domain/name-record';
import { errorText, invalid, OverlayError, unavailable } from '../errors';
import { Backoff, sleep } from '../util/backoff';
import { SerialQueue } from '../util/serial-queue';
import { StateChanges } from '../util/state-changes';
import { toStoreError } from './etcd-client';
import { OverlayKeys, parseNameKey } from './keys';
import { KeyValue, ListWatch } from './list-watch';
import { DEFAULT_NAME_TTL_SEC, NameLease } from './name-lease';

export interface NameRegistryOptions {
  /** This host's public IP: every record it writes must carry it as `host`. */
  host: string;
  /** TTL of the names' lease in seconds (default 30); kept alive every TTL/3. */
  ttlSec?: number;
}

const PUT_CONCURRENCY = 32;

export interface NameRegistry {
  on(event: 'lease-lost', listener: (e: { lease: string; reason: string }) => void): this;
  on(event: 'registered', listener: (e: { lease: string; records: number }) => void): this;
}

/**
 * @example
 *   const reg = overlay.nameRegistry({ host: '192.0.2.11' });
 *   await reg.replaceAll(recordsFromDocker);   // after a start
 *   await reg.put(record); await reg.remove(networkId, endpointId);
 *   await reg.stop();                            // revokes: names go at once
 */
export class NameRegistry extends EventEmitter {
  readonly lease: NameLease;
  private readonly held = new Map<string, string>(); // key -> encoded value
  private readonly written = new Map<string, string>(); // key -> "<lease id> <value>" etcd has
  private readonly toDelete = new Set<string>();
  private scanStale = false;
  private readonly writes = new SerialQueue();
  private readonly backoff = new Backoff({ initialMs: 200, maxMs: 5000 });
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly log: Logger;
  readonly stats = { syncs: 0, failedSyncs: 0, puts: 0, deletes: 0, reRegistrations: 0, staleScans: 0 };

  constructor(
    private readonly client: Etcd3,
    private readonly keys: OverlayKeys,
    logger: Logger,
    private readonly opts: NameRegistryOptions,
  ) {
    super();
    this.log = logger.child({ names: keys.namesRoot, host: opts.host });
    this.lease = new NameLease(client, this.log, opts.ttlSec ?? DEFAULT_NAME_TTL_SEC, (id, reason) => this.onLeaseLost(id, reason));
  }

  /** The records this host holds (what it re-puts after a lease loss). */
  records(): NameRecord[] {
    return [...this.held.values()].map((v) => (parseNameRecord(v) as { record: NameRecord }).record);
  }

  /** Write (or overwrite) one record. Rejects INVALID for a bad record, UNAVAILABLE while etcd is down (still held, retried). */
  async put(record: NameRecord): Promise<void> {
    const [key, value] = this.encode(record);
    this.held.set(key, value);
    this.toDelete.delete(key);
    return this.flush(`register name ${record.containerName} of endpoint ${record.endpointId}`);
  }

  /** Remove one record (idempotent). */
  async remove(networkId: string, endpointId: string): Promise<void> {
    if (this.stopped) throw invalid('remove a name: the name registry was stopped');
    if (!isRecordId(networkId) || !isRecordId(endpointId)) throw invalid(`remove a name: network id ${JSON.stringify(networkId)} or endpoint id ${JSON.stringify(endpointId)} is not an id`);
    const key = this.keys.nameKey(networkId, endpointId);
    this.held.delete(key);
    this.toDelete.add(key);
    return this.flush(`remove the name record of endpoint ${endpointId}`);
  }

  /**
   * Make `records` the whole set of this host (after a plugin restart): put them all, then delete
   * every other record of this host, ours from before this process included. With
   * `scanStale: false` (a periodic audit by the same process) etcd is not listed: only what this
   * registry held and no longer holds is deleted (a scan still pending from before stays pending).
   */
  async replaceAll(records: readonly NameRecord[], opts: { scanStale?: boolean } = {}): Promise<void> {
    const next = new Map(records.map((r) => this.encode(r)));
    for (const key of this.held.keys()) if (!next.has(key)) this.toDelete.add(key);
    this.held.clear();
    for (const [k, v] of next) {
      this.held.set(k, v);
      this.toDelete.delete(k);
    }
    if (opts.scanStale !== false) this.scanStale = true;
    return this.flush(`register ${records.length} names`);
  }

  /**
   * Stop writing. `revoke` (the default): every name of this host goes at once. `revoke: false`
   * (the daemon's stop): the lease is no longer kept alive, so the names stay until NAME_TTL runs
   * out; a process that starts again within it takes them over (replaceAll) with no gap, which is
   * what a plugin restart or upgrade needs.
   */
  async stop(opts: { revoke?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retry);
    await Promise.race([this.writes.run(async () => undefined), sleep(5000)]);
    if (opts.revoke === false) this.lease.release();
    else await this.lease.revoke();
  }

  private encode(record: NameRecord): [string, string] {
    if (this.stopped) throw invalid('register a name: the name registry was stopped');
    if (record.host !== this.opts.host) throw invalid(`name record of endpoint ${record.endpointId}: host ${record.host} is not this host (${this.opts.host})`);
    const value = encodeNameRecord(record);
    return [this.keys.nameKey(record.networkId, record.endpointId), value];
  }

  private async flush(what: string): Promise<void> {
    try {
      try {
        await this.writes.run(() => this.sync());
      } catch (e) {
        if (!(e instanceof EtcdLeaseInvalidError)) throw e;
        await this.writes.run(() => this.sync()); // the lease went under us: once more, on a new one
      }
      this.backoff.reset();
    } catch (e) {
      this.scheduleRetry();
      if (e instanceof OverlayError && e.code === 'INVALID') throw e;
      const err = toStoreError(e, what);
      throw unavailable(`${err.message}; the record is held and written when etcd answers`, err);
    }
  }

  private scheduleRetry(): void {
    if (this.stopped || this.retry) return;
    const ms = this.backoff.next();
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.writes.run(() => this.sync()).then(
        () => this.backoff.reset(),
        (e: unknown) => {
          this.log.debug({ err: errorText(e) }, 'name records still not written; retrying');
          this.scheduleRetry();
        },
      );
    }, ms);
    this.retry.unref?.();
  }

  /** Write what etcd lacks: puts first, then deletes. Throws on the first etcd error. */
  private async sync(): Promise<void> {
    if (this.stopped) return;
    this.stats.syncs++;
    try {
      const id = await this.lease.ensure();
      const fresh = this.written.size === 0 && this.held.size > 0;
      const due = [...this.held].filter(([k, v]) => this.written.get(k) !== `${id} ${v}`);
      for (let i = 0; i < due.length; i += PUT_CONCURRENCY) {
        await Promise.all(
          due.slice(i, i + PUT_CONCURRENCY).map(async ([k, v]) => {
            try {
              await this.client.put(k).value(v).lease(id).exec();
            } catch (e) {
              if (e instanceof EtcdLeaseInvalidError) this.lease.lostBy(id, 'a put found the lease gone (revoked, or expired)');
              throw e;
            }
            if (this.lease.id === id && this.held.get(k) === v) this.written.set(k, `${id} ${v}`);
            this.stats.puts++;
          }),
        );
      }
      if (this.scanStale) await this.findStale(id);
      for (const key of [...this.toDelete]) {
        if (!this.toDelete.has(key) || this.held.has(key)) continue; // put again meanwhile: keep it
        await this.client.delete().key(key).exec();
        this.toDelete.delete(key);
        this.written.delete(key);
        this.stats.deletes++;
      }
      if (fresh && due.length > 0 && this.lease.id === id) this.emitSafely('registered', { lease: id, records: this.held.size });
    } catch (e) {
      this.stats.failedSyncs++;
      throw e;
    }
  }

  /** Records of this host that it does not hold (a previous process's): to delete. */
  private async findStale(id: string): Promise<void> {
    this.stats.staleScans++;
    const res = await this.client.getAll().prefix(this.keys.namesRoot).exec();
    for (const raw of res.kvs) {
      const key = raw.key.toString('utf8');
      if (this.held.has(key) || !parseNameKey(this.keys, key)) continue;
      const r = parseNameRecord(raw.value.toString('utf8'));
      if (r.ok && r.record.host === this.opts.host) {
        this.log.info({ key, etcdLease: String(raw.lease), ours: String(raw.lease) === id }, 'deleting a stale name record of this host');
        this.toDelete.add(key);
      }
    }
    this.scanStale = false;
  }

  private onLeaseLost(id: string, reason: string): void {
    this.written.clear(); // whatever was written went (or goes) with that lease
    if (this.stopped) return;
    this.stats.reRegistrations++;
    this.log.warn({ etcdLease: id, reason, records: this.held.size }, 'name lease lost; re-registering the names this host holds');
    this.emitSafely('lease-lost', { lease: id, reason });
    this.backoff.reset();
    this.scheduleRetry();
  }

  private emitSafely(event: string, e: unknown): void {
    try {
      this.emit(event, e);
    } catch (err) {
      this.log.error({ err }, `a name registry '${event}' listener threw; continuing`);
    }
  }
}

export interface NameWatcher {
  /** A record appeared or changed (after start, also every record of the first list). */
  on(event: 'upsert', listener: (r: NameRecord) => void): this;
  /** A record went (deleted, expired with its host's lease, or turned unreadable). */
  on(event: 'remove', listener: (r: NameRecord) => void): this;
  /** A list (the first, or after compaction) was applied. */
  on(event: 'synced', listener: (e: { records: number }) => void): this;
}

/**
 * @example
 *   const w = overlay.nameWatcher();
 *   w.on('upsert', (r) => index.add(r)).on('remove', (r) => index.drop(r));
 *   await w.start();   // resolves after the first list
 */
export class NameWatcher extends EventEmitter {
  /**
   * key → the record and the etcd revision it was read at. The revision, not the value's text,
   * tells a change apart from a re-read (after a re-list): the text would cost ~500 B a record.
   */
  private readonly known = new Map<string, { rev: number; record: NameRecord }>();
  private readonly warned = new StateChanges();
  private readonly lw: ListWatch;
  /** Records skipped because their value or key is broken (each counted once per key and value). */
  skipped = 0;

  constructor(
    client: Etcd3,
    private readonly keys: OverlayKeys,
    private readonly logger: Logger,
  ) {
    super();
    this.lw = new ListWatch({
      client,
      target: { prefix: keys.namesRoot },
      what: `names ${keys.namesRoot}`,
      logger,
      onSnapshot: (kvs) => this.onSnapshot(kvs),
      onChanges: (changes) => {
        for (const c of changes) {
          if (c.type === 'put') this.apply(c.kv.key, this.decode(c.kv));
          else {
            this.warned.forget(c.key);
            this.apply(c.key, null);
          }
        }
      },
    });
  }

  start(): Promise<void> {
    this.lw.start();
    return this.lw.ready;
  }

  stop(): Promise<void> {
    return this.lw.stop();
  }

  /** Every known record (a copy): the last known set, also while etcd is down. */
  records(): NameRecord[] {
    return [...this.known.values()].map((x) => x.record);
  }

  get size(): number {
    return this.known.size;
  }

  /** Why the watch is waiting (etcd down, …), or null while it works. */
  get problem(): OverlayError | null {
    return this.lw.problem;
  }

  get progress(): { revision: bigint; stats: ListWatch['stats'] } {
    return { revision: this.lw.revision, stats: this.lw.stats };
  }

  private decode(kv: KeyValue): { rev: number; record: NameRecord } | null {
    const text = kv.value.toString('utf8');
    const ids = parseNameKey(this.keys, kv.key);
    const r = parseNameRecord(text);
    let reason = '';
    if (!ids) reason = 'the key is not <network id>/<endpoint id>';
    else if (!r.ok) reason = r.reason;
    else if (r.record.networkId !== ids.networkId || r.record.endpointId !== ids.endpointId) reason = 'the network or endpoint id differs from the key';
    if (reason === '' && r.ok) {
      this.warned.forget(kv.key);
      return { rev: Number(kv.modRevision), record: r.record };
    }
    if (this.warned.changed(kv.key, text)) {
      this.skipped++;
      this.logger.warn({ key: kv.key, value: text.slice(0, 200), reason }, 'skipping a name record that does not parse');
    }
    return null;
  }

  private onSnapshot(kvs: KeyValue[]): void {
    const present = new Set<string>();
    for (const kv of kvs) {
      present.add(kv.key);
      this.apply(kv.key, this.decode(kv));
    }
    for (const key of [...this.known.keys()]) if (!present.has(key)) this.apply(key, null);
    this.warned.retain(present);
    this.fire('synced', { records: this.known.size });
  }

  private apply(key: string, next: { rev: number; record: NameRecord } | null): void {
    const before = this.known.get(key);
    if (next === null) {
      if (!before) return;
      this.known.delete(key);
      this.fire('remove', before.record);
      return;
    }
    if (before?.rev === next.rev) return;
    this.known.set(key, next);
    this.fire('upsert', next.record);
  }

  private fire(event: string, arg: unknown): void {
    try {
      this.emit(event, arg);
    } catch (err) {
      this.logger.error({ err }, `a name watcher '${event}' listener threw; continuing`);
    }
  }
}

/** Every host's records, read once (the CLI): broken values are counted, not returned. Throws UNAVAILABLE naming etcd. */
export async function listNameRecords(client: Etcd3, keys: OverlayKeys): Promise<{ records: NameRecord[]; skipped: number }> {
  let res;
  try {
    res = await client.getAll().prefix(keys.namesRoot).exec();
  } catch (e) {
    throw toStoreError(e, `list the name records under ${keys.namesRoot}`);
  }
  const records: NameRecord[] = [];
  let skipped = 0;
  for (const kv of res.kvs) {
    const ids = parseNameKey(keys, kv.key.toString('utf8'));
    const r = parseNameRecord(kv.value.toString('utf8'));
    if (ids && r.ok && r.record.networkId === ids.networkId && r.record.endpointId === ids.endpointId) records.push(r.record);
    else skipped++;
  }
  return { records, skipped };
}
