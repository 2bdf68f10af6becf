/**
 * scale.ts — the scale numbers of the overlay benchmark come from the project's two existing
 * benchmarks, run as they are (`bench/store-bench.ts`, `bench/kernel-bench.ts`) in child processes
 * after the Docker lab is gone, so their numbers are the same as `npm run bench:store` /
 * `bench:kernel` would print.
 *
 * Design note: store-bench prints one JSON line last; kernel-bench writes
 * bench/results/kernel-<date>.json, of which the newest one written after its start is read.
 * Both are bounded here by a timeout (they bound themselves too); a failure is reported, never
 * turned into numbers.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../test/helpers/run';
import { ROOT } from './lab';

const RESULTS = join(ROOT, 'bench/results');

/** Run store-bench with `leases` leases; its JSON line. */
export async function storeBench(leases: number, log: (l: string) => void): Promise<Record<string, unknown>> {
  log(`bench:store with ${leases} leases`);
  const r = await run(process.execPath, ['--import', 'tsx', 'bench/store-bench.ts'], {
    cwd: ROOT,
    env: { ...process.env, STORE_BENCH_LEASES: String(leases) },
    check: false,
    timeoutMs: 240_000,
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !line.startsWith('{')) throw new Error(`bench:store exited ${r.code}: ${(r.stderr || r.stdout).slice(-400)}`);
  return JSON.parse(line) as Record<string, unknown>;
}

/** Run kernel-bench (2000 peers); the JSON file it wrote. */
export async function kernelBench(log: (l: string) => void): Promise<Record<string, unknown>> {
  log('bench:kernel (2000 peers)');
  const started = Date.now();
  const r = await run(process.execPath, ['--import', 'tsx', 'bench/kernel-bench.ts'], { cwd: ROOT, check: false, timeoutMs: 300_000 });
  const fresh = readdirSync(RESULTS)
    .filter((f) => /^kernel-.*\.json$/.test(f))
    .map((f) => ({ f, t: statSync(join(RESULTS, f)).mtimeMs }))
    .filter((x) => x.t >= started)
    .sort((a, b) => b.t - a.t)[0];
  if (!fresh) throw new Error(`bench:kernel exited ${r.code} without a result file: ${(r.stderr || r.stdout).slice(-400)}`);
  const j = JSON.parse(readFileSync(join(RESULTS, fresh.f), 'utf8')) as Record<string, unknown>;
  if (r.code !== 0) j.exitCode = r.code;
  return { ...j, file: `bench/results/${fresh.f}` };
}

/** Shapes read from the two benchmarks' JSON (fields they always write; absent ones are skipped). */
interface StoreJson {
  acquire?: { leases: number; ms: number; perSec: number };
  snapshot?: { leases: number; ms: number };
  latency?: { p50: number; p99: number };
}
interface KernelJson {
  program?: { wallMs: number };
  convergence?: { totalMs: { p50: number; p99: number } };
  memory?: { daemonMaxRssPeakMb: number };
}

/** The rows of the report's scale table: what each benchmark measured, with its own units. */
export function scaleRows(s: { store?: Record<string, unknown>; kernel?: Record<string, unknown> }): string[][] {
  const rows: string[][] = [];
  const st = s.store as StoreJson | undefined;
  if (st?.acquire) rows.push([`store: acquire ${st.acquire.leases} leases (8 at a time)`, `${st.acquire.ms} ms (${st.acquire.perSec}/s)`]);
  if (st?.snapshot) rows.push([`store: fresh watcher snapshot of ${st.snapshot.leases} leases`, `${st.snapshot.ms} ms`]);
  if (st?.latency) rows.push(['store: put → watcher callback', `p50 ${st.latency.p50} ms, p99 ${st.latency.p99} ms`]);
  const k = s.kernel as KernelJson | undefined;
  if (k?.program) rows.push(['kernel: program 2000 leases from an empty kernel', `${k.program.wallMs} ms`]);
  if (k?.convergence) rows.push(['kernel: one new lease → in the kernel (2000 peers)', `p50 ${k.convergence.totalMs.p50} ms, p99 ${k.convergence.totalMs.p99} ms`]);
  if (k?.memory) rows.push(['kernel: daemon peak RSS', `${k.memory.daemonMaxRssPeakMb} MB`]);
  return rows;
}
