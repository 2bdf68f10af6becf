/**
 * The short etcd lease one host binds its name records to (default TTL 30 s), kept alive every
 * TTL/3. Not the subnet lease: that one lives 24 h and is renewed by a new grant.
 *
 * Design note.
 * - Keep-alive is one short LeaseKeepAlive stream per tick (write the id, read one answer, end),
 *   raced against a deadline, rather than one long-lived stream: nothing to resume after an
 *   outage, and a hung etcd cannot stall it.
 * - The lease counts as lost when etcd answers TTL 0 (revoked, or expired during an outage), when
 *   a put says the lease is gone (the owner calls {@link NameLease.lostBy}), or when no keep-alive
 *   was answered for a whole TTL. The last rule may fire while etcd still holds the lease (a
 *   restarted etcd extends its leases); that is harmless, because the owner re-puts everything on
 *   a new lease and the old one then expires holding nothing.
 * - While keep-alives fail it retries every second (so it notices both a returning etcd and the
 *   expiry promptly), otherwise every TTL/3.
 */
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { errorText, unavailable } from '../errors';
import { rawEtcdText, toStoreError } from './etcd-client';
import { etcdHealthOf } from './etcd-health';

export const DEFAULT_NAME_TTL_SEC = 30;

type KeepAliveStream = Awaited<ReturnType<Etcd3['leaseClient']['leaseKeepAlive']>>;

export class NameLease {
  private current: { id: string; lastOk: number; timer?: NodeJS.Timeout; failing: boolean } | null = null;
  private granting: Promise<string> | null = null;
  /** Set by revoke(): no lease is granted after it (a write still in flight must not leak one). */
  private closed = false;
  /** Counters for tests and the status page. */
  readonly stats = { grants: 0, keepAlives: 0, keepAliveFailures: 0, losses: 0 };

  constructor(
    private readonly client: Etcd3,
    private readonly log: Logger,
    readonly ttlSec: number,
    private readonly onLost: (id: string, reason: string) => void,
    /** What the logs call it (the path reports reuse this lease: "path report lease"). */
    private readonly what = 'name lease',
  ) {
    if (!Number.isInteger(ttlSec) || ttlSec < 2) throw new RangeError(`name lease TTL must be a whole number of seconds ≥ 2, got ${ttlSec}`);
  }

  /** The lease id, or null while none is held. */
  get id(): string | null {
    return this.current?.id ?? null;
  }

  /** The held lease, or a new one (granted and kept alive from now). Throws on etcd errors. */
  ensure(): Promise<string> {
    if (this.closed) return Promise.reject(unavailable('grant a name lease: the name registry was stopped'));
    if (this.current) return Promise.resolve(this.current.id);
    this.granting ??= (async () => {
      try {
        const r = await this.client.leaseClient.leaseGrant({ TTL: this.ttlSec });
        const id = String(r.ID);
        if (this.closed) {
          this.client.leaseClient.leaseRevoke({ ID: id }).catch(() => undefined);
          throw unavailable('grant a name lease: the name registry was stopped');
        }
        this.stats.grants++;
        this.current = { id, lastOk: Date.now(), failing: false };
        this.schedule(this.intervalMs());
        this.log.info({ etcdLease: id, ttlSec: this.ttlSec }, `${this.what} granted`);
        return id;
      } catch (e) {
        throw toStoreError(e, `grant a ${this.what} (TTL ${this.ttlSec} s)`);
      } finally {
        this.granting = null;
      }
    })();
    return this.granting;
  }

  /** A write found lease `id` gone: count it lost (once). */
  lostBy(id: string, reason: string): void {
    if (this.current?.id === id) this.lose(reason);
  }

  /** Stop keeping it alive and revoke it (its keys go at once). Bounded; never throws. */
  async revoke(): Promise<boolean> {
    this.closed = true;
    const cur = this.current;
    this.current = null;
    if (!cur) return false;
    clearTimeout(cur.timer);
    try {
      await this.client.leaseClient.leaseRevoke({ ID: cur.id });
      this.log.info({ etcdLease: cur.id }, `${this.what} revoked`);
      return true;
    } catch (e) {
      this.log.warn({ etcdLease: cur.id, err: errorText(toStoreError(e, 'revoke the name lease')) }, 'could not revoke the name lease; its names expire within its TTL');
      return false;
    }
  }

  /** Stop keeping it alive without revoking (the names expire within the TTL). */
  release(): void {
    this.closed = true;
    clearTimeout(this.current?.timer);
    this.current = null;
  }

  private intervalMs(): number {
    return Math.max(500, Math.floor((this.ttlSec * 1000) / 3));
  }

  private schedule(ms: number): void {
    const cur = this.current;
    if (!cur) return;
    clearTimeout(cur.timer);
    cur.timer = setTimeout(() => void this.tick(cur), ms);
    cur.timer.unref?.();
  }

  private async tick(cur: NonNullable<NameLease['current']>): Promise<void> {
    if (this.current !== cur) return;
    try {
      const ttl = await this.keepAliveOnce(cur.id, Math.min(3000, this.intervalMs()));
      if (this.current !== cur) return;
      if (ttl <= 0) return this.lose('etcd says the lease is gone (revoked, or expired while we could not reach etcd)');
      this.stats.keepAlives++;
      etcdHealthOf(this.client).ok();
      if (cur.failing) this.log.info({ etcdLease: cur.id }, `${this.what} keep-alive works again`);
      cur.failing = false;
      cur.lastOk = Date.now();
      this.schedule(this.intervalMs());
    } catch (e) {
      if (this.current !== cur) return;
      this.stats.keepAliveFailures++;
      const err = toStoreError(e, `keep the ${this.what} alive`);
      etcdHealthOf(this.client).failed(`keep the ${this.what} alive`, err);
      this.log[cur.failing ? 'debug' : 'warn']({ etcdLease: cur.id, err: err.message }, `${this.what} keep-alive failed; retrying every second`);
      this.log.debug({ raw: rawEtcdText(e) }, 'keep-alive failed: the error as etcd3 gave it');
      cur.failing = true;
      const silentMs = Date.now() - cur.lastOk;
      if (silentMs > this.ttlSec * 1000) return this.lose(`no keep-alive answered for ${Math.round(silentMs / 1000)} s (TTL ${this.ttlSec} s)`);
      this.schedule(1000);
    }
  }

  private lose(reason: string): void {
    const cur = this.current;
    if (!cur) return;
    clearTimeout(cur.timer);
    this.current = null;
    this.stats.losses++;
    this.log.warn({ etcdLease: cur.id, reason }, `${this.what} lost`);
    try {
      this.onLost(cur.id, reason);
    } catch (e) {
      this.log.error({ err: e }, 'a name-lease loss handler threw; continuing');
    }
  }

  /** One keep-alive round trip: the TTL etcd answered (0 = no such lease). */
  private async keepAliveOnce(id: string, deadlineMs: number): Promise<number> {
    let stream: KeepAliveStream | undefined;
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    try {
      return await new Promise<number>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no keep-alive answer within ${deadlineMs} ms`)), deadlineMs);
        this.client.leaseClient.leaseKeepAlive().then((s) => {
          if (done) {
            s.on('error', () => undefined);
            s.end(); // opened after the deadline passed
            return;
          }
          stream = s;
          s.on('data', (r: { TTL: string }) => resolve(Number(r.TTL)));
          s.on('error', reject);
          s.write({ ID: id });
        }, reject);
      });
    } finally {
      done = true;
      clearTimeout(timer);
      if (stream) {
        const s = stream as KeepAliveStream & { removeAllListeners(event: string): unknown };
        s.removeAllListeners('data');
        s.on('error', () => undefined); // a late error of a finished stream must not crash us
        try {
          s.end();
          (s as unknown as { cancel?: () => void }).cancel?.();
        } catch {
          // already closed
        }
      }
    }
  }
}
