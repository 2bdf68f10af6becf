/**
 * A check that runs every `intervalMs` and whenever it is kicked, one at a time on `queue`; a kick
 * while a check is already waiting joins it (so a burst of events costs one check). Used by the
 * keepers of kernel state that must follow both events and drift (reconcile/isolation-keeper.ts,
 * reconcile/fastpath-keeper.ts), network replication's sync and retry (docker/network-replicator.ts)
 * and the address audit's rounds (reconcile/address-audit.ts). A check that throws is a bug: it is
 * reported, the ticker goes on.
 */
import type { SerialQueue } from './serial-queue';

export class CoalescedTicker {
  private timer: NodeJS.Timeout | null = null;
  private pending = false;
  private stopped = false;

  constructor(
    private readonly check: () => Promise<void>,
    private readonly queue: SerialQueue,
    private readonly onBug: (e: unknown) => void,
    private readonly intervalMs: number,
  ) {}

  /** Check every intervalMs from now on; at once too unless `kickNow` is false (an event will kick). */
  start(kickNow = true): void {
    this.timer = setInterval(() => this.kick(), this.intervalMs);
    this.timer.unref();
    if (kickNow) this.kick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** Check in `delayMs` (0: as soon as the queue allows), unless a check is already waiting. */
  kick(delayMs = 0): void {
    if (this.pending || this.stopped) return;
    this.pending = true;
    const delayed = delayMs > 0 ? new Promise<void>((r) => setTimeout(r, delayMs).unref()) : Promise.resolve();
    const run = (): Promise<void> =>
      this.queue.run(async () => {
        this.pending = false;
        if (!this.stopped) await this.check();
      });
    void delayed.then(run).catch(this.onBug);
  }
}
