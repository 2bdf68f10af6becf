/**
 * wait.ts — polling with a deadline, instead of fixed sleeps.
 *
 * Design note: tests wait for real things (a daemon's socket, an etcd key, a kernel route) that
 * appear after an unknown delay. {@link waitFor} calls a probe until it returns a value, bounded by
 * a deadline; each probe is itself raced against the time left, so a hanging probe cannot stretch
 * the wait. On timeout the error names what was awaited and the last value or error seen, which is
 * usually the clue needed to fix the test.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { inspect } from 'node:util';

/** Options of {@link waitFor}. */
export interface WaitOptions {
  /** Give up after this many milliseconds. Default 10 000. */
  timeoutMs?: number;
  /** Pause between attempts, in milliseconds. Default 100. */
  intervalMs?: number;
  /** What is awaited, for the error message ("etcd at http://…", "route to 10.1.2.0/24"). */
  what?: string;
  /** Called with each error the probe throws; returning true stops waiting and rethrows it at once. */
  bail?: (err: unknown) => boolean;
}

/** Thrown by {@link waitFor} when the deadline passes. */
export class WaitTimeoutError extends Error {
  /**
   * @param what what was awaited
   * @param attempts how many probes ran
   * @param lastValue the last falsy value returned, if any
   * @param lastError the last error thrown, if any
   */
  constructor(
    readonly what: string,
    readonly attempts: number,
    readonly lastValue: unknown,
    readonly lastError: unknown,
  ) {
    const last =
      lastError !== undefined
        ? `last error: ${lastError instanceof Error ? lastError.message : inspect(lastError)}`
        : `last value: ${inspect(lastValue, { depth: 3, breakLength: Infinity })}`;
    super(`timed out waiting for ${what} after ${attempts} attempt(s); ${last}`);
    this.name = 'WaitTimeoutError';
  }
}

const PENDING = Symbol('pending');

/**
 * Call `fn` until it returns something other than `undefined` or `false`, then return it.
 * A thrown error counts as "not yet" and is remembered for the timeout message.
 *
 * @example
 *   const port = await waitFor(async () => (await isListening()) && 2379, { what: 'etcd', timeoutMs: 15000 });
 */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false>,
  opts: WaitOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 100;
  const what = opts.what ?? 'condition';
  const deadline = Date.now() + timeoutMs;
  let attempts = 0;
  let lastValue: unknown;
  let lastError: unknown;
  for (;;) {
    attempts++;
    const left = deadline - Date.now();
    try {
      const v = await raceDeadline(fn(), Math.max(left, 1));
      if (v !== PENDING && v !== undefined && v !== false) return v as T;
      if (v === PENDING) lastError = new Error(`probe still running when the deadline passed`);
      else {
        lastValue = v;
        lastError = undefined;
      }
    } catch (err) {
      if (opts.bail?.(err)) throw err;
      lastError = err;
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new WaitTimeoutError(what, attempts, lastValue, lastError);
    await delay(Math.min(intervalMs, remaining));
  }
}

/** Resolve with `p`'s value, or with PENDING when `ms` pass first (the probe is left to finish). */
async function raceDeadline<T>(p: Promise<T>, ms: number): Promise<T | typeof PENDING> {
  const ac = new AbortController();
  try {
    return await Promise.race([p, delay(ms, PENDING, { signal: ac.signal })]);
  } finally {
    ac.abort();
  }
}

/** Sleep (rejects with AbortError when `signal` aborts); prefer {@link waitFor}. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal });
}
