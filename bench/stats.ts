/**
 * stats.ts — the summary statistics of the overlay benchmark (pure, table-tested in
 * test/unit/bench-stats.test.ts).
 *
 * Design note: the benchmark runs on noisy shared 2-core machines (docs/performance.md §1), so a
 * result is never one number: every workload keeps its raw samples and reports the median with the
 * min/max of the repetitions (throughput, wall times) or the mean with the p99 of many probes
 * (latency). Percentiles use the nearest-rank method on the sorted samples (no interpolation): p99
 * of 100 probes is the 99th smallest, a value that was actually measured.
 */

/** What a set of samples says. Every field is `NaN` for an empty set. */
export interface Summary {
  n: number;
  min: number;
  max: number;
  mean: number;
  median: number;
  p50: number;
  p90: number;
  p99: number;
  /** (max - min) / median: the relative spread of the repetitions (0 = all equal). */
  spread: number;
}

function sorted(xs: readonly number[]): number[] {
  for (const x of xs) if (!Number.isFinite(x)) throw new Error(`stats: sample ${x} is not a finite number (a failed measurement must be dropped before summarising)`);
  return [...xs].sort((a, b) => a - b);
}

/** Nearest-rank percentile (0 < p ≤ 100) of samples; NaN when empty. */
export function percentile(xs: readonly number[], p: number): number {
  if (!(p > 0 && p <= 100)) throw new Error(`stats: percentile ${p} is outside (0, 100]`);
  const s = sorted(xs);
  if (!s.length) return NaN;
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** Median: the middle sample, or the mean of the two middle ones for an even count; NaN when empty. */
export function median(xs: readonly number[]): number {
  const s = sorted(xs);
  if (!s.length) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function mean(xs: readonly number[]): number {
  if (!xs.length) return NaN;
  return sorted(xs).reduce((a, b) => a + b, 0) / xs.length;
}

/** Every statistic of {@link Summary} at once. */
export function summarize(xs: readonly number[]): Summary {
  const s = sorted(xs);
  if (!s.length) return { n: 0, min: NaN, max: NaN, mean: NaN, median: NaN, p50: NaN, p90: NaN, p99: NaN, spread: NaN };
  const med = median(s);
  return {
    n: s.length,
    min: s[0]!,
    max: s[s.length - 1]!,
    mean: mean(s),
    median: med,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    spread: med === 0 ? 0 : (s[s.length - 1]! - s[0]!) / med,
  };
}

/** a / b, or NaN when either is missing or b is 0 (a ratio of nothing is not 0). */
export function ratio(a: number | undefined, b: number | undefined): number {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return NaN;
  return a / b;
}

/** Round to `digits` decimals (NaN stays NaN). */
export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * Order in which repetitions run: every path once per round, rounds one after the other, and the
 * path order rotated each round so no path always runs first (or right after a heavy one).
 */
export function interleave<T>(items: readonly T[], rounds: number): T[] {
  const out: T[] = [];
  for (let r = 0; r < rounds; r++) for (let i = 0; i < items.length; i++) out.push(items[(i + r) % items.length]!);
  return out;
}
