/** Capped exponential backoff with jitter, and an abortable sleep. */
export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  jitter?: number; // 0..1, share of the delay that is random
}

export class Backoff {
  private attempt = 0;
  constructor(private readonly opts: BackoffOptions = {}) {}

  next(): number {
    const { initialMs = 100, maxMs = 5000, factor = 2, jitter = 0.3 } = this.opts;
    const base = Math.min(maxMs, initialMs * factor ** this.attempt++);
    return Math.round(base * (1 - jitter + Math.random() * jitter));
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** Sleep `ms`, resolving early (without throwing) if the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
