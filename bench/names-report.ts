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
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { DOCKER } from '../test/helpers/docker-lab';
import { ratio, round, summarize } from './stats';

export interface Lifecycle {
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
  memory?: { records: number; writtenMs: number; tableLoadedAfterWriteMs: number; hosts: Array<{ host: string; pid: number; before: Mem; after: Mem; removed: Mem }> };
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
/** Which same-run reference each latency row is compared with. */
const LATENCY_REF: Record<string, string> = { [K.overlay]: K.same, [K.swarm]: K.same, [K.fwdOn]: K.fwdOff, [K.swarmFwd]: K.fwdOff };

export function renderNames(r: NamesResults): string {
  const out: string[] = [];
  out.push(`\n## overlay-flannel names benchmark, ${r.date}${r.quick ? ' (--quick)' : ''}`);
  out.push(`\nMachine: ${r.machine.cpus} × ${r.machine.cpu}, kernel ${r.machine.kernel}, ${r.machine.docker}, node ${r.machine.node}; load average at start ${r.machine.loadavg}; run took ${r.durationS ?? '?'} s.`);

  const s = (xs: number[]) => summarize(xs);
  const swarm = r.lifecycle[SWARM];
  const same = r.lifecycle[SAME];
  const life = Object.entries(r.lifecycle).map(([k, L]) => {
    const up = s(L.upMs);
    const gone = s(L.goneMs);
    const x = (a: number, ref?: Lifecycle, pick: (l: Lifecycle) => number[] = (l) => l.upMs) => (k === OURS && ref ? f(ratio(a, s(pick(ref)).p99), 2) : '');
    return [k, `${f(up.p50)} / ${f(up.p99)}`, f(s(L.upFromStartMs).p50), x(up.p99, swarm), x(up.p99, same), `${f(gone.p50)} / ${f(gone.p99)}`, x(gone.p99, swarm, (l) => l.goneMs), `${up.n}/${gone.n}`, String(L.errors.length)];
  });
  out.push(table(`Name resolvable from h1 after \`docker run -d\` returned on its host, gone after \`docker rm -f\` returned: ms p50 / p99 (${r.settings.runs} runs each, interleaved; probe asks every ${r.settings.pollMs} ms; targets ≤ 1000 / ≤ 2000 ms p99)`,
    ['container on', 'resolvable p50 / p99', 'from run start p50', 'p99 ×swarm', 'p99 ×same host', 'gone p50 / p99', 'p99 ×swarm', 'n up/gone', 'failed'], life));
  out.push('\nNegative: the name answered before `docker run` / `docker rm` returned. p99 of 20 runs is the slowest run (nearest rank).');
  for (const [k, L] of Object.entries(r.lifecycle)) if (L.errors.length) out.push(`- ${k}: ${L.errors.length} failed run(s), first: ${L.errors[0]}`);

  const lat = Object.entries(r.latency).map(([k, x]) => {
    const a = s(x.us);
    const baseKey = LATENCY_REF[k.replace(/ \(\+\d+ records\)$/, '')];
    const ref = baseKey && r.latency[baseKey] ? s(r.latency[baseKey]!.us) : undefined;
    return [k, f(a.p50 / 1000, 3), f(a.p99 / 1000, 3), f(a.mean / 1000, 3), ref ? f(ratio(a.p50, ref.p50), 2) : '', ref ? f(ratio(a.p99, ref.p99), 2) : '', ref ? `${baseKey === K.same ? 'same-host' : 'NAMES=false'}` : '', String(a.n), `${x.wrong}/${x.timeouts}`];
  });
  out.push(table(`Answer latency at the client (127.0.0.11, sequential, ${r.settings.gapMs} ms apart, ${r.settings.rounds} interleaved rounds): ms; target p99 ≤ 2 ms for overlay names`, ['query', 'p50', 'p99', 'mean', '×ref p50', '×ref p99', 'ref', 'n', 'wrong/timeout'], lat));
  if (r.limitedDuringLatency !== undefined) out.push(`\nResolver verdict "limited" (per-container budget) during the latency phase: ${r.limitedDuringLatency} (must be 0: no query was passed on for being over budget).`);
  for (const [k, x] of Object.entries(r.latency)) if (x.wrong) out.push(`- ${k}: ${x.wrong} wrong answer(s), last: ${x.lastWrong}`);

  if (r.memory) {
    const m = r.memory;
    const mb = (kb: number) => f(kb / 1024, 1);
    const rows = m.hosts.map((h) => [h.host, mb(h.before.rssKb), mb(h.after.rssKb), mb(h.after.rssKb - h.before.rssKb), mb(h.after.hwmKb - h.before.hwmKb), mb(h.removed.rssKb), f(((h.after.rssKb - h.before.rssKb) * 1024) / m.records, 0)]);
    out.push(table(`${m.records} name records (synthetic, 20 fake hosts, the product's writer): the plugin's node process, MB; target ≤ 20 MB extra`, ['daemon', 'RSS before', 'RSS with records', 'Δ RSS', 'Δ VmHWM', 'RSS after revoke', 'B/record'], rows));
    out.push(`\nWritten in ${m.writtenMs} ms; both tables held them ${m.tableLoadedAfterWriteMs} ms after the writer finished. RSS: median of 5 samples 0.5 s apart.`);
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
