/**
 * Path reports (issue 20) in etcd: `<prefix>/overlay-flannel/paths/<public IP>`, one per host,
 * never under `<prefix>/subnets` (flanneld reads that). The codec and the write rule are
 * src/domain/path-report.ts.
 *
 * Design note.
 * - {@link PathReportPublisher}: this host's record, bound to a short etcd lease of its own
 *   ({@link NameLease}, TTL {@link PATH_REPORT_TTL_SEC} s, kept alive every TTL/3), so the record
 *   of a host that dies goes within the TTL. `offer(report)` writes only when publishDue says so
 *   (≤ 1 put / 3 s while paths change, 1 / 10 s when steady) plus one keep-alive / 10 s. A failed
 *   put is retried by an offer 3 s later at the earliest (the daemon offers every second); a lost lease is granted
 *   again on the next put. stop() revokes the lease (the record goes at once).
 * - {@link PathReportWatcher}: every host's record, listed and watched with {@link ListWatch}; kept
 *   while etcd is down (the view marks old reports stale by their age). A broken value is logged
 *   once per key and value and skipped; the other hosts' reports are unaffected.
 */
import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import { EtcdLeaseInvalidError } from 'etcd3';
import type { Logger } from 'pino';
import { encodePathReport, MIN_PUBLISH_MS, parsePathReport, publishDue, type PathReport } from '../domain/path-report';
import { errorText } from '../errors';
import { StateChanges } from '../util/state-changes';
import { toStoreError } from './etcd-client';
import { parsePathKey, type OverlayKeys } from './keys';
import { ListWatch, type KeyValue } from './list-watch';
import { NameLease } from './name-lease';

export const PATH_REPORT_TTL_SEC = 30;

export class PathReportPublisher {
  private last: { report: PathReport; atMs: number } | null = null;
  private writing: Promise<void> | null = null;
  private stopped = false;
  private failedAt = -Infinity;
  readonly lease: NameLease;
  readonly stats = { puts: 0, failures: 0, offers: 0 };

  constructor(
    private readonly client: Etcd3,
    private readonly keys: OverlayKeys,
    private readonly log: Logger,
    readonly host: string,
    ttlSec = PATH_REPORT_TTL_SEC,
    private readonly now: () => number = Date.now,
  ) {
    this.lease = new NameLease(client, log, ttlSec, () => (this.last = null), 'path report lease');
  }

  /** Write `report` if due (see the design note). Never throws; resolves when a write is done. */
  offer(report: PathReport): Promise<void> {
    this.stats.offers++;
    const now = this.now();
    if (this.stopped || this.writing || now - this.failedAt < MIN_PUBLISH_MS || !publishDue(this.last, report, now)) return this.writing ?? Promise.resolve();
    this.writing = this.put(report).finally(() => (this.writing = null));
    return this.writing;
  }

  private async put(report: PathReport): Promise<void> {
    const at = this.now();
    let id: string | null = null;
    try {
      const value = encodePathReport(report);
      id = await this.lease.ensure();
      await this.client.put(this.keys.pathsRoot + this.host).value(value).lease(id).exec();
      this.stats.puts++;
      this.last = { report, atMs: at };
    } catch (e) {
      if (e instanceof EtcdLeaseInvalidError && id) this.lease.lostBy(id, 'a put found the path report lease gone');
      this.stats.failures++;
      this.failedAt = this.now();
      this.log[this.stats.failures === 1 || this.stats.failures % 30 === 0 ? 'warn' : 'debug']({ err: errorText(toStoreError(e, 'write the path report')) }, 'path report not written; the next round tries again');
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.writing?.catch(() => undefined);
    await this.lease.revoke();
  }
}

export class PathReportWatcher extends EventEmitter {
  private readonly known = new Map<string, PathReport>();
  private readonly warned = new StateChanges();
  private readonly lw: ListWatch;
  skipped = 0;

  constructor(
    client: Etcd3,
    private readonly keys: OverlayKeys,
    private readonly logger: Logger,
  ) {
    super();
    this.lw = new ListWatch({
      client,
      target: { prefix: keys.pathsRoot },
      what: `path reports ${keys.pathsRoot}`,
      logger,
      onSnapshot: (kvs) => {
        this.known.clear();
        for (const kv of kvs) this.apply(kv);
        this.emit('change');
      },
      onChanges: (changes) => {
        for (const c of changes) {
          if (c.type === 'put') this.apply(c.kv);
          else {
            this.warned.forget(c.key);
            this.known.delete(c.key);
          }
        }
        this.emit('change');
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

  /** Every host's report as last known (also while etcd is down). */
  reports(): PathReport[] {
    return [...this.known.values()];
  }

  private apply(kv: KeyValue): void {
    const host = parsePathKey(this.keys, kv.key);
    const parsed = host === null ? { ok: false as const, reason: 'the key does not end in an IPv4 address' } : parsePathReport(kv.value.toString('utf8'), host);
    if (parsed.ok) {
      this.warned.forget(kv.key);
      this.known.set(kv.key, parsed.report);
      return;
    }
    this.known.delete(kv.key);
    if (this.warned.changed(kv.key, parsed.reason)) {
      this.skipped++;
      this.logger.warn({ key: kv.key, reason: parsed.reason }, 'path report skipped: its value is broken');
    }
  }
}
