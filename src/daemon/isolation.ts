/**
 * Keeps the FORWARD drop rules between the overlays this host has joined (nft-isolation.ts) in
 * step with their Networks: checked when an overlay is joined or becomes ready, and every few
 * seconds (a Network can change, Docker can flush its chain on restart). One rule set for all
 * overlays; with a single overlay there is nothing to isolate and nothing is written.
 */
import type { Logger } from 'pino';
import { errorText } from '../errors';
import type { IsolationResult } from '../kernel/nft-isolation';
import type { SerialQueue } from '../util/serial-queue';

export class OverlayIsolation {
  private timer: NodeJS.Timeout | null = null;
  private lastState: string | null = null;
  private pending = false;
  private stopped = false;

  constructor(
    private readonly networks: () => string[],
    private readonly ensure: (networks: string[]) => Promise<IsolationResult>,
    private readonly queue: SerialQueue,
    private readonly log: Logger,
    private readonly intervalMs = 5000,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), this.intervalMs);
    this.timer.unref();
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** Check the rules soon (coalesced). */
  kick(): void {
    if (this.pending || this.stopped) return;
    this.pending = true;
    void this.queue
      .run(async () => {
        this.pending = false;
        if (this.stopped) return;
        const nets = this.networks();
        // Rules exist only between overlays; with <2 networks we still clean up stale ones once rules were written.
        if (nets.length < 2 && this.lastState === null) return;
        let state: string;
        try {
          const r = await this.ensure(nets);
          state = r.state;
          if (r.state === 'ok' && (r.added || r.removed)) this.log.info({ networks: nets, added: r.added, removed: r.removed }, 'FORWARD drop rules between overlays updated (isolation)');
        } catch (e) {
          state = 'error';
          if (this.lastState !== 'error') this.log.warn({ err: errorText(e), networks: nets }, 'could not write the isolation rules between overlays; retrying');
        }
        if (state === 'no-chain' && this.lastState !== 'no-chain') {
          this.log.warn({ networks: nets }, 'no nftables "ip filter FORWARD" chain (yet): overlays are not isolated from each other until it exists');
        }
        this.lastState = state;
      })
      .catch((e) => this.log.error({ err: errorText(e) }, 'isolation check failed (a bug)'));
  }
}
