/**
 * List-then-watch of one key or key prefix, that survives disconnects, etcd restarts and
 * compaction. The building block of the config watch, the lease watcher and the keeper's watch
 * of its own key.
 *
 * Design note. etcd3's Watcher reconnects by itself, but resumes from "header revision + 1" of the
 * last response, and a create or catch-up response carries the *current* store revision, not the
 * last event delivered (docs/library-traps.md §2, trap 4): a stream that breaks while etcd is still replaying a
 * backlog would silently skip events. And a watcher whose start revision was compacted dies with
 * an `error` event and is never retried (trap 5). So we do not let etcd3 resume anything:
 * - the revision we resume from is the highest `mod_revision` we have *delivered* (progress
 *   notifications, which etcd only sends to caught-up watchers, may move it forward);
 * - on `disconnected` we drop the etcd3 watcher, wait (capped backoff, 100 ms → 5 s) and create a
 *   fresh one from that revision + 1; events at or below it are duplicates and are skipped;
 * - on `error` (compaction, a cancel by the server, permission denied) history is lost: we re-list
 *   and hand the owner a fresh snapshot, then watch from the list's revision + 1. The owner diffs.
 * The first list, and every re-list, also retries with backoff while etcd is down.
 * We use `.watcher()` rather than `.create()`: create() waits for the first `connected` and hangs
 * for as long as etcd is down.
 */
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { Backoff, BackoffOptions, sleep } from '../util/backoff';
import { flatString } from '../domain/lease-v6';
import { errorText, OverlayError } from '../errors';
import { rawEtcdText, tagWithTarget, toStoreError } from './etcd-client';
import { etcdHealthOf } from './etcd-health';

/** A key-value as we pass it on: key as text, revisions as bigint, lease id as a decimal string. */
export interface KeyValue {
  readonly key: string;
  readonly value: Buffer;
  /** etcd lease id ("0" = none). */
  readonly lease: string;
  readonly modRevision: bigint;
  readonly createRevision: bigint;
}

export type WatchChange =
  | { readonly type: 'put'; readonly kv: KeyValue; readonly prev?: KeyValue }
  | { readonly type: 'delete'; readonly key: string; readonly modRevision: bigint; readonly prev?: KeyValue };

export interface ListWatchOptions {
  client: Etcd3;
  /** One key, or a string prefix (flannel's `<prefix>/subnets` has no trailing slash). */
  target: { key: string } | { prefix: string };
  /** For logs: "lease watch /coreos.com/network/subnets". */
  what: string;
  logger: Logger;
  /** The full current state: after the first list and after every re-list. */
  onSnapshot(kvs: KeyValue[], revision: bigint): void;
  /** Changes after the snapshot, in revision order, without duplicates. */
  onChanges(changes: WatchChange[], revision: bigint): void;
  backoff?: BackoffOptions;
}

/** Convert etcd3's kv (Buffers and string revisions). */
export function toKeyValue(kv: IKeyValue): KeyValue {
  return {
    key: kv.key.toString('utf8'),
    value: kv.value,
    lease: flatString(String(kv.lease ?? '0')), // Long.toString's cons tree, kept per lease
    modRevision: BigInt(kv.mod_revision),
    createRevision: BigInt(kv.create_revision),
  };
}

type Outcome = { kind: 'stopped' } | { kind: 'disconnected'; err: unknown } | { kind: 'canceled'; err: unknown };

/**
 * @example
 *   const lw = new ListWatch({ client, target: { prefix: '/coreos.com/network/subnets' }, what: 'leases',
 *     logger, onSnapshot: (kvs) => …, onChanges: (changes) => … });
 *   lw.start(); await lw.ready; … await lw.stop();
 */
export class ListWatch {
  private readonly abort = new AbortController();
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private rev = 0n;
  private downSince: number | null = null;
  private running: Promise<void> | null = null;
  private cancels = new Set<Promise<unknown>>();
  private resolveReady!: () => void;
  /** Resolves after the first snapshot was delivered, or on stop() (never rejects; waits through outages). */
  readonly ready: Promise<void> = new Promise((r) => (this.resolveReady = r));
  /** Counters for tests and the status page. */
  readonly stats = { lists: 0, watches: 0, disconnects: 0, cancels: 0, duplicates: 0 };
  /** The last failure while no snapshot or watch works (null once one does): why we are waiting. */
  problem: OverlayError | null = null;

  constructor(private readonly opts: ListWatchOptions) {
    this.log = opts.logger.child({ watch: opts.what });
    this.backoff = new Backoff({ initialMs: 100, maxMs: 5000, ...opts.backoff });
  }

  /** The revision up to which changes have been delivered. */
  get revision(): bigint {
    return this.rev;
  }

  start(): void {
    if (!this.running) this.running = this.loop();
  }

  /** Stop watching; waits for the etcd watcher to be cancelled (bounded). */
  async stop(): Promise<void> {
    this.abort.abort();
    this.resolveReady(); // nobody waits forever on a watch that was stopped during an outage
    await this.running;
    await Promise.race([Promise.allSettled([...this.cancels]), sleep(2000)]);
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    let needList = true;
    while (!signal.aborted) {
      if (needList) {
        try {
          const { kvs, revision } = await this.list();
          if (signal.aborted) break;
          this.stats.lists++;
          etcdHealthOf(this.opts.client).ok();
          this.rev = revision;
          this.deliver(() => this.opts.onSnapshot(kvs, revision));
          this.resolveReady();
          needList = false;
          if (this.downSince !== null) this.log.info({ downMs: Date.now() - this.downSince }, 'listed again after an outage');
          this.downSince = null;
          this.problem = null;
        } catch (e) {
          const err = toStoreError(tagWithTarget(e, this.opts.client), `list ${this.opts.what}`);
          this.problem = err;
          etcdHealthOf(this.opts.client).failed(`list ${this.opts.what}`, err);
          if (this.downSince === null) this.log.warn({ err: err.message }, 'list failed; retrying with backoff');
          else this.log.debug({ err: err.message }, 'list failed again');
          this.log.debug({ raw: rawEtcdText(e) }, 'list failed: the error as etcd3 gave it');
          this.downSince ??= Date.now();
          await sleep(this.backoff.next(), signal);
          continue;
        }
      }
      const startedAt = Date.now();
      const outcome = await this.watchOnce(this.rev + 1n, signal);
      if (outcome.kind === 'stopped') break;
      if (Date.now() - startedAt > 2000) this.backoff.reset();
      if (outcome.kind === 'canceled') {
        this.stats.cancels++;
        this.log.warn({ err: errorText(outcome.err), revision: String(this.rev) }, 'watch cancelled by etcd (compacted history?); re-listing');
        needList = true;
      } else {
        this.stats.disconnects++;
        const err = toStoreError(tagWithTarget(outcome.err, this.opts.client), `watch ${this.opts.what}`);
        this.problem = err;
        etcdHealthOf(this.opts.client).failed(`watch ${this.opts.what}`, err);
        if (this.downSince === null) this.log.warn({ err: err.message }, 'watch disconnected; reconnecting with backoff');
        else this.log.debug({ err: err.message }, 'watch still disconnected');
        this.log.debug({ raw: rawEtcdText(outcome.err) }, 'watch disconnected: the error as etcd3 gave it');
        this.downSince ??= Date.now();
      }
      await sleep(this.backoff.next(), signal);
    }
  }

  private async list(): Promise<{ kvs: KeyValue[]; revision: bigint }> {
    const t = this.opts.target;
    const res = 'key' in t ? await this.opts.client.get(t.key).exec() : await this.opts.client.getAll().prefix(t.prefix).exec();
    return { kvs: res.kvs.map(toKeyValue), revision: BigInt(res.header.revision) };
  }

  private watchOnce(from: bigint, signal: AbortSignal): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      const t = this.opts.target;
      const b = this.opts.client.watch();
      const w: Watcher = ('key' in t ? b.key(t.key) : b.prefix(t.prefix)).startRevision(from.toString()).withPreviousKV().watcher();
      this.stats.watches++;
      let done = false;
      const finish = (outcome: Outcome, cancel: boolean) => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        w.removeAllListeners();
        w.on('error', () => undefined); // a late error on a dropped watcher must not crash us
        if (cancel) {
          const p = w.cancel().catch(() => undefined);
          this.cancels.add(p);
          void p.finally(() => this.cancels.delete(p));
        }
        resolve(outcome);
      };
      const onAbort = () => finish({ kind: 'stopped' }, true);
      w.on('connected', () => {
        etcdHealthOf(this.opts.client).ok();
        this.problem = null;
        if (this.downSince !== null) this.log.info({ downMs: Date.now() - this.downSince, from: String(from) }, 'watch resumed');
        else this.log.debug({ from: String(from) }, 'watch connected');
        this.downSince = null;
      });
      w.on('data', (res: IWatchResponse) => {
        if (!done) this.handleData(res);
      });
      // etcd3 already dropped a watcher it reports as errored (server-side cancel): no cancel().
      w.on('error', (err: unknown) => finish({ kind: 'canceled', err }, false));
      w.on('disconnected', (err: unknown) => finish({ kind: 'disconnected', err }, true));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private handleData(res: IWatchResponse): void {
    const events = res.events ?? [];
    if (events.length === 0) {
      // A progress notification: etcd sends it only to watchers that have caught up.
      const headerRev = BigInt(res.header.revision);
      if (headerRev > this.rev) this.rev = headerRev;
      return;
    }
    const changes: WatchChange[] = [];
    let last = this.rev;
    for (const ev of events) {
      const mod = BigInt(ev.kv.mod_revision);
      if (mod <= this.rev) {
        this.stats.duplicates++;
        continue;
      }
      if (mod > last) last = mod;
      const prev = ev.prev_kv ? toKeyValue(ev.prev_kv) : undefined;
      if (ev.type === 'Put') changes.push({ type: 'put', kv: toKeyValue(ev.kv), ...(prev ? { prev } : {}) });
      else changes.push({ type: 'delete', key: ev.kv.key.toString('utf8'), modRevision: mod, ...(prev ? { prev } : {}) });
    }
    this.rev = last;
    if (changes.length) this.deliver(() => this.opts.onChanges(changes, last));
  }

  private deliver(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.log.error({ err: e }, 'watch consumer threw; continuing');
    }
  }
}
