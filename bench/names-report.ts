/**
 * names-report.ts — what the names benchmark (names-bench.ts) prints and writes: three Markdown
 * tables (run → resolvable / rm → gone, answer latency, memory of 10,000 records), each with its
 * target and ratios against the references measured in the same run, and the JSON of every raw
 * sample in bench/results/names-<date>.json.
 *
 * Design note: percentiles are stats.ts's nearest-rank ones (a p99 is a sample that happened; of
 * 20 runs it is the 20th, ceil(0.99 × 20) = 20, i.e. the slowest run). Ratios are of p50s and of
 * p99s separately; a missing side prints "-", never 0.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { DOCKER } from '../test/helpers/docker-lab';
import { run } from '../test/helpers/run';
import { ratio, round, summarize } from './stats';

export interface Lifecycle {
  /** `docker run -d` wall time. */
  runMs: number[];
  upMs: number[];
  upFromStartMs: number[];
  goneMs: number[];
  errors: string[];
}
export interface LatencySamples {
  us: number[];
  wrong: number;
  timeouts: number;
  lastWrong?: string;
}
interface Mem {
  rssKb: number;
  hwmKb: number;
}
export interface NamesResults {
  date: string;
  quick: boolean;
  machine: Record<string, string | number>;
  settings: Record<string, number>;
  notes: string[];
  lifecycle: Record<string, Lifecycle>;
  latency: Record<string, LatencySamples>;
  limitedDuringLatency?: number;
  memory?: { standalone?: Array<{ phase: string; records: number; heapUsed: number; rss: number; rssBeforeGc: number }>; records: number; writtenMs: number; retrying?: number; tablesLoadedMs: number; hosts: Array<{ host: string; pid: number; before: Mem; after: Mem; removed: Mem }> };
  upstreamQueries?: number;
  errors: string[];
  durationS?: number;
}

export function machine(): Record<string, string | number> {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? '?';
  let docker = '?';
  try {
    docker = execFileSync(DOCKER, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim();
  } catch {
    /* reported as ? */
  }
  return { cpu, cpus: os.cpus().length, kernel: os.release(), docker, node: process.version, loadavg: os.loadavg().map((l) => l.toFixed(2)).join(' ') };
}

const f = (x: number, d = 0): string => (Number.isFinite(x) ? round(x, d).toFixed(d) : '-');

function table(title: string, head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ')} |`;
  return [`\n### ${title}\n`, line(head), `|${w.map((x, i) => (i === 0 ? `${'-'.repeat(x + 1)}-` : `${'-'.repeat(x + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

const OURS = 'overlay-flannel (h2 → h1)';
const SWARM = 'swarm (h2 → h1)';
const SAME = 'same host (Docker itself, h1)';
const K = {
  overlay: 'overlay name of h2 (our resolver)',
  same: 'same-host name (Docker answers)',
  fwdOn: 'external name, NAMES=true (forwarded through the queue)',
  fwdOff: 'external name, NAMES=false on h3 (forwarded, reference)',
  swarm: 'swarm: name of h2 (swarm DNS)',
  swarmFwd: 'swarm: external name (forwarded)',
};

export function renderNames(r: NamesResults): string {
  const out: string[] = [];
  out.push(`\n## overlay-flannel names benchmark, ${r.date}${r.quick ? ' (--quick)' : ''}`);
  out.push(`\nMachine: ${r.machine.cpus} × ${r.machine.cpu}, kernel ${r.machine.kernel}, ${r.machine.docker}, node ${r.machine.node}; load average at start ${r.machine.loadavg}; run took ${r.durationS ?? '?'} s.`);

  const s = (xs: number[]) => summarize(xs);
  const pp = (xs: number[]) => `${f(s(xs).p50)} / ${f(s(xs).p99)}`;
  const swarm = r.lifecycle[SWARM];
  const same = r.lifecycle[SAME];
  const x2 = (xs: number[], ref?: number[]) => (ref ? `${f(ratio(s(xs).p50, s(ref).p50), 2)} / ${f(ratio(s(xs).p99, s(ref).p99), 2)}` : '-');
  const life = Object.entries(r.lifecycle).map(([k, L]) => [
    k,
    f(s(L.runMs).p50),
    pp(L.upMs),
    pp(L.upFromStartMs),
    k === SWARM ? '' : x2(L.upFromStartMs, swarm?.upFromStartMs),
    k === SAME ? '' : x2(L.upFromStartMs, same?.upFromStartMs),
    pp(L.goneMs),
    `${s(L.upMs).n}/${s(L.goneMs).n}`,
    String(L.errors.length),
  ]);
  out.push(table(`Name resolvable from h1 after \`docker run -d\`, gone after \`docker rm -f\`: ms p50 / p99 (${r.settings.runs} runs each, interleaved; the probe asks every ${r.settings.pollMs} ms; targets: resolvable ≤ 1000 ms and gone ≤ 2000 ms p99 after the command returned)`,
    ['container on', 'docker run took (p50)', 'resolvable after run returned', 'resolvable from run start', '×swarm (from start)', '×same host (from start)', 'gone after rm returned', 'n up/gone', 'failed'], life));
  out.push('\nNegative: the name answered (or was gone) before the command returned. p99 of 20 runs is the slowest run (nearest rank). Ratios: of the p50s / of the p99s, measured from the start of `docker run` (after it returned they can be negative).');
  for (const [k, L] of Object.entries(r.lifecycle)) if (L.errors.length) out.push(`- ${k}: ${L.errors.length} failed run(s), first: ${L.errors[0]}`);

  const ref = (key: string) => (r.latency[key] ? r.latency[key]!.us : undefined);
  const lat = Object.entries(r.latency).map(([k, x]) => {
    const a = s(x.us);
    const isRef = k === K.same || k === K.fwdOff;
    return [k, f(a.p50 / 1000, 3), f(a.p99 / 1000, 3), f(a.mean / 1000, 3), isRef ? '' : x2(x.us, ref(K.same)), isRef ? '' : x2(x.us, ref(K.fwdOff)), String(a.n), `${x.wrong}/${x.timeouts}`];
  });
  out.push(table(`Answer latency at the client (127.0.0.11, sequential, ${r.settings.gapMs} ms apart, ${r.settings.rounds} interleaved rounds): ms; target p99 ≤ 2 ms for overlay names, forwarded names no cost beyond one hop`,
    ['query', 'p50', 'p99', 'mean', '×same-host (p50 / p99)', '×forwarded, NAMES=false (p50 / p99)', 'n', 'wrong/timeout'], lat));
  out.push('\nReferences of the same run: a same-host name (Docker answers it itself, no hop) and an external name asked from h3, whose plugin runs with NAMES=false (Docker forwards it to the fake upstream, one hop, nothing queued).');
  const p50 = (k: string) => (ref(k) ? s(ref(k)!).p50 : NaN);
  const hop = p50(K.fwdOff) - p50(K.same);
  if (Number.isFinite(hop)) out.push(`\nOne hop (forwarded, NAMES=false − same-host, p50): ${f(hop, 0)} µs; the queue's cost on forwarded names (NAMES=true − NAMES=false, p50): ${f(p50(K.fwdOn) - p50(K.fwdOff), 0)} µs${ref(K.swarmFwd) ? `; h1's swarm container forwards without the queue: ${f(p50(K.swarmFwd) - p50(K.fwdOff), 0)} µs against h3` : ''}.`);
  if (r.limitedDuringLatency !== undefined) out.push(`\nResolver verdict "limited" (per-container budget) during the latency phase: ${r.limitedDuringLatency} (must be 0: no query was passed on for being over budget).`);
  for (const [k, x] of Object.entries(r.latency)) if (x.wrong) out.push(`- ${k}: ${x.wrong} wrong answer(s), last: ${x.lastWrong}`);

  if (r.memory) {
    const m = r.memory;
    const mb = (kb: number) => f(kb / 1024, 1);
    const rows = m.hosts.map((h) => [h.host, mb(h.before.rssKb), mb(h.after.rssKb), mb(h.after.rssKb - h.before.rssKb), mb(h.after.hwmKb - h.before.hwmKb), mb(h.removed.rssKb), f(((h.after.rssKb - h.before.rssKb) * 1024) / m.records, 0)]);
    out.push(table(`${m.records} name records (synthetic, 20 fake hosts, the product's writer): the plugin's node process, MB; target ≤ 20 MB extra`, ['daemon', 'RSS before', 'RSS with records', 'Δ RSS', 'Δ VmHWM', 'RSS after revoke', 'B/record'], rows));
    const st = m.standalone;
    if (st?.length === 3) {
      const [r0, r1, r2] = st as [NonNullable<typeof st>[number], NonNullable<typeof st>[number], NonNullable<typeof st>[number]];
      const MB = (b: number) => `${b >= 0 ? '+' : ''}${f(b / 1048576, 1)}`;
      out.push(`\nThe same watcher + table code alone in a node process with forced GCs (bench/names-heap.ts): live heap ${MB(r1.heapUsed - r0.heapUsed)} MB (${f((r1.heapUsed - r0.heapUsed) / m.records, 0)} B/record), RSS without forced GC ${MB(r1.rssBeforeGc - r0.rssBeforeGc)} MB, after GC ${MB(r1.rss - r0.rss)} MB; after the revoke: live heap ${MB(r2.heapUsed - r0.heapUsed)} MB over the start, RSS ${MB(r2.rss - r0.rss)} MB.`);
    }
    out.push(`\nThe writer's puts returned after ${m.writtenMs} ms${m.retrying ? ` (${m.retrying} of 20 fake hosts still retrying: etcd answered late)` : ''}; both daemons' tables held every record ${m.tablesLoadedMs} ms after the writer started. RSS: median of 5 samples 0.5 s apart.`);
  }
  if (r.upstreamQueries !== undefined) out.push(`\nThe fake upstream saw ${r.upstreamQueries} queries in the run (forwarded names and the probes' polls for names not yet known).`);
  if (r.notes.length) out.push(`\nNotes:\n${r.notes.map((n) => `- ${n}`).join('\n')}`);
  if (r.errors.length) out.push(`\nErrors:\n${r.errors.map((n) => `- ${n}`).join('\n')}`);
  return out.join('\n');
}

/** Write `<dir>/names-<date>.json`; returns its path. */
export function writeNamesJson(r: NamesResults, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `names-${r.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(r, null, 1)}\n`);
  return file;
}

/**
 * `npm run bench` runs bench:names as it is, in a child process (as scale.ts runs bench:store and
 * bench:kernel), after its own lab is gone; the newest names-<date>.json written since its start.
 */
export async function namesBench(quick: boolean, log: (l: string) => void): Promise<NamesResults & { file: string }> {
  log(`bench:names${quick ? ' --quick' : ''} (its own lab: three dockerds, swarm, fake upstream DNS)`);
  const root = join(__dirname, '..');
  const dir = join(root, 'bench/results');
  const started = Date.now();
  const r = await run(process.execPath, ['--import', 'tsx', 'bench/names-bench.ts', ...(quick ? ['--quick'] : [])], { cwd: root, check: false, timeoutMs: 1_200_000 });
  const fresh = readdirSync(dir)
    .filter((f) => /^names-.*\.json$/.test(f))
    .map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs }))
    .filter((x) => x.t >= started)
    .sort((a, b) => b.t - a.t)[0];
  if (!fresh) throw new Error(`bench:names exited ${r.code} without a result file: ${(r.stderr || r.stdout).slice(-400)}`);
  return { ...(JSON.parse(readFileSync(join(dir, fresh.f), 'utf8')) as NamesResults), file: `bench/results/${fresh.f}` };
}
