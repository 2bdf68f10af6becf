/**
 * Address releases that etcd could not take when Docker asked (ReleaseAddress while etcd is down,
 * cut off or timing out), kept and retried until etcd takes them.
 *
 * Design note. Docker does not retry a failed ReleaseAddress: it logs a warning and forgets the
 * address. Before this, such a record stayed in etcd until the address audit found it without an
 * endpoint and older than its grace period (≈ 2 min at best, ADDRESS_AUDIT_INTERVAL at worst), and
 * the address was unusable meanwhile (the soak's link cut showed it, issue 24). Now a release that
 * fails with UNAVAILABLE is answered as done and retried here with a capped backoff (1 s → 30 s,
 * jittered), so the address is free within seconds of etcd's return. Any other failure is not
 * retried (logged; the audit stays the safety net), nor is anything past MAX_PENDING addresses.
 * Pending releases live in this process only: a crash loses them, and the audit then frees those
 * records as it always did.
 * Never a duplicate: by the time a retry runs, the audit may have freed the record and a new
 * container may hold the address under a new record. So a retry is not the plain delete Docker
 * asked for: it deletes the record only if it was created before Docker's ReleaseAddress arrived
 * (`releaseIfCreatedBefore`: read, compare createdAt, delete if the mod revision is unchanged).
 * An allocator without that method gets no retry (the release fails as before).
 */
import type { Logger } from 'pino';
import { errorText, isOverlayError } from '../errors';
import { Backoff } from '../util/backoff';

/** More pending releases than this are not kept (the audit frees the rest). */
export const MAX_PENDING = 4096;

/** What a retry found: released, no record any more, or a record it must not delete (newer, or changed). */
export type RetryOutcome = 'released' | 'absent' | 'kept';

interface Pending {
  what: string;
  run: () => Promise<RetryOutcome>;
  backoff: Backoff;
  attempts: number;
  timer?: NodeJS.Timeout;
}

export class PendingReleases {
  private readonly pending = new Map<string, Pending>();
  private stopped = false;

  constructor(
    private readonly log: Logger,
    private readonly opts: { initialMs?: number; maxMs?: number } = {},
  ) {}

  /** How many releases wait for etcd. */
  get size(): number {
    return this.pending.size;
  }

  /**
   * Run `now` (Docker's release); when it fails with UNAVAILABLE and there is a `later`, keep it
   * and run `later` until etcd takes it (resolves: the release is ours now). Other failures reject
   * as before. `key` names the address (one pending release per address), `what` is for the log
   * ("10.1.5.7 in 10.1.5.0/24").
   */
  async release(key: string, what: string, now: () => Promise<unknown>, later?: () => Promise<RetryOutcome>): Promise<void> {
    try {
      await now();
      this.forget(key);
    } catch (e) {
      if (!later || !isOverlayError(e, 'UNAVAILABLE') || this.stopped) throw e;
      this.keep(key, what, later, e);
    }
  }

  /** Stop retrying (the process stops; the audit frees what is left). */
  stop(): void {
    this.stopped = true;
    for (const p of this.pending.values()) clearTimeout(p.timer);
    if (this.pending.size) this.log.warn({ pending: this.pending.size }, 'stopping with address releases that etcd has not taken; the address audit frees them');
    this.pending.clear();
  }

  private keep(key: string, what: string, run: () => Promise<RetryOutcome>, err: unknown): void {
    this.forget(key);
    if (this.pending.size >= MAX_PENDING) {
      this.log.warn({ address: what, err: errorText(err), pending: this.pending.size }, 'address release failed (etcd unavailable) and too many wait already; the address audit frees it later');
      return;
    }
    const p: Pending = { what, run, backoff: new Backoff({ initialMs: this.opts.initialMs ?? 1000, maxMs: this.opts.maxMs ?? 30_000 }), attempts: 1 };
    this.pending.set(key, p);
    this.log.warn({ address: what, err: errorText(err) }, 'address release not taken by etcd (unavailable): answered Docker and retrying until etcd takes it');
    this.schedule(key, p);
  }

  private schedule(key: string, p: Pending): void {
    p.timer = setTimeout(() => void this.retry(key, p), p.backoff.next());
    p.timer.unref();
  }

  private async retry(key: string, p: Pending): Promise<void> {
    if (this.stopped || this.pending.get(key) !== p) return;
    p.attempts++;
    try {
      const outcome = await p.run();
      if (this.pending.get(key) === p) this.pending.delete(key);
      if (outcome === 'kept') this.log.info({ address: p.what, attempts: p.attempts }, 'address not released on retry: its record is newer than the release (the audit freed it and it was handed out again)');
      else this.log.info({ address: p.what, attempts: p.attempts, outcome }, 'address released (etcd took the release that had failed)');
    } catch (e) {
      if (this.pending.get(key) !== p) return;
      if (isOverlayError(e, 'UNAVAILABLE') && !this.stopped) return this.schedule(key, p);
      this.pending.delete(key);
      this.log.warn({ address: p.what, err: errorText(e) }, 'address release failed and is not retried; the address audit frees it later');
    }
  }

  private forget(key: string): void {
    const old = this.pending.get(key);
    if (!old) return;
    clearTimeout(old.timer);
    this.pending.delete(key);
  }
}
