/**
 * Keeps the head block of FORWARD (domain/forward-head.ts, kernel/nft-isolation.ts: an accept
 * within each overlay this host has joined, drops between every two of them) in step with their
 * Networks and in place after Docker's DOCKER-USER jump: checked when an overlay is joined or
 * becomes ready, and every few seconds (a Network can change, Docker can flush its chain on restart
 * or insert rules above ours when it creates a bridge network). One rule set for all overlays.
 */
import type { Logger } from 'pino';
import { errorText } from '../errors';
import type { ForwardHeadResult } from '../kernel';
import type { SerialQueue } from '../util/serial-queue';
import { CoalescedTicker } from '../util/coalesced-ticker';
import { StateChanges } from '../util/state-changes';

export class OverlayIsolation {
  private readonly seen = new StateChanges();
  private readonly ticker: CoalescedTicker;

  constructor(
    private readonly networks: () => string[],
    private readonly ensure: (networks: string[]) => Promise<ForwardHeadResult>,
    queue: SerialQueue,
    private readonly log: Logger,
    intervalMs = 5000,
  ) {
    this.ticker = new CoalescedTicker(() => this.check(), queue, (e) => this.log.error({ err: errorText(e) }, 'isolation check failed (a bug)'), intervalMs);
  }

  start(): void {
    this.ticker.start();
  }

  stop(): void {
    this.ticker.stop();
  }

  /** Check the rules soon (coalesced). */
  kick(): void {
    this.ticker.kick();
  }

  private async check(): Promise<void> {
    const nets = this.networks();
    // Nothing joined yet and nothing written: nothing to do.
    if (nets.length === 0 && this.seen.get('rules') === undefined) return;
    let state: string;
    try {
      const r = await this.ensure(nets);
      state = r.state;
      if (r.state === 'ok' && (r.added || r.removed)) this.log.info({ networks: nets, added: r.added, removed: r.removed }, 'overlay rules at the head of FORWARD (accept within, drop between overlays) rewritten');
    } catch (e) {
      state = 'error';
      if (this.seen.get('rules') !== 'error') this.log.warn({ err: errorText(e), networks: nets }, 'could not write the overlay rules at the head of FORWARD (accept within, drop between overlays); retrying');
    }
    if (this.seen.changed('rules', state) && state === 'no-chain') {
      this.log.warn({ networks: nets }, 'no nftables "ip filter FORWARD" chain (yet): overlays are not isolated from each other until it exists');
    }
  }
}
