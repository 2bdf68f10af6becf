/**
 * report.ts — what the overlay benchmark prints and writes: a table per workload (absolute numbers
 * with their spread, and the ratios the issue asks for), the JSON of every raw sample under
 * bench/results/ (timestamped + latest.json), and a chart (SVG rendered to PNG by headless
 * Chromium: bench/results/latest.png).
 *
 * Design note: ratios are product/peer of medians (throughput) or of means (latency, as the issue
 * states latency as averages); each product path is compared with swarm's overlay and with its
 * kernel reference: hand vxlan for the vxlan paths, the underlay for host-gw and DirectRouting
 * (on one L2 segment DirectRouting is host-gw's route), wireguard with hand wireguard. A missing
 * side prints "-", never 0. The CPU cost (TCP 1 stream) is per run: busy cores of the whole machine
 * during that iperf3 run ÷ its Gbit/s (encrypted.ts); the encrypted table sets the wireguard paths
 * against hand wireguard (our plumbing vs wireguard-go itself) and against vxlan (the price of
 * encryption), and says which encrypted paths were not measured and why.
 */
import type { MulticastResult } from './multicast';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../test/helpers/run';
import type { NamesResults } from './names-report';
import { scaleRows } from './scale';
import { mean, ratio, round, summarize } from './stats';
import type { Path } from './workloads';

export interface PathResult {
  id: string;
  label: string;
  kind: Path['kind'];
  /** Path id this one is compared with besides swarm (hand vxlan or the underlay). */
  ref?: string;
  datapath?: string;
  tcp1Gbps: number[];
  /** CPU of each TCP 1-stream run (in tcp1Gbps order; absent in results written before issue 22). */
  tcp1Cpu?: TcpCpu[];
  tcp4Gbps: number[];
  pingMs: number[];
  pingLost: number;
  udpUs: number[];
  udpLost: number;
  errors: string[];
}

/** One TCP 1-stream run's CPU: whole-machine busy cores over it, and the path's wireguard-go processes' cores (wireguard paths). */
export interface TcpCpu {
  gbps: number;
  busyCores: number;
  coresPerGbps: number;
  wgCores?: number;
  wgCoresPerGbps?: number;
}

export interface Results {
  date: string;
  quick: boolean;
  machine: Record<string, string | number>;
  settings: Record<string, number | string>;
  notes: string[];
  paths: PathResult[];
  /** Busy cores with nothing measured, sampled just before the TCP 1-stream phase. */
  cpuBaseline?: { seconds: number; busyCores: number; loadavg: string };
  /** Encrypted paths not measured here (issue 22): why, as tried in this run. */
  encrypted?: { kernel: string; swarm: string };
  /** `docker run --rm` wall ms per network label. */
  dockerRun: Record<string, number[]>;
  control: {
    enableToPing?: { pingMs: number[]; enableMs: number[] };
    startToReach: Record<string, { runMs: number[]; reachMs: number[] }>;
    api?: { method: string; concurrent: number; wallMs: number; calls: Record<string, number[]> };
    errors: string[];
  };
  scale: { store?: Record<string, unknown>; kernel?: Record<string, unknown>; errors: string[] };
  /** bench:names (names-bench.ts), when it ran: its JSON and the file it wrote. */
  names?: NamesResults & { file: string };
  /** Multicast at fixed rates, h1 → members on h1 and h2 (multicast.ts). */
  multicast?: MulticastResult[];
  durationS?: number;
}

const f = (x: number, d = 2): string => (Number.isFinite(x) ? round(x, d).toFixed(d) : '-');
const med = (xs: number[]): number => summarize(xs).median;
const avg = (xs: number[]): number => (xs.length ? mean(xs) : NaN);
const p99 = (xs: number[]): number => summarize(xs).p99;

function table(title: string, head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ')} |`;
  return [`\n### ${title}\n`, line(head), `|${w.map((x, i) => (i === 0 ? `${'-'.repeat(x + 1)}-` : `${'-'.repeat(x + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** Every table of a result as Markdown (printed to stdout and pasted into the README). */
export function renderTables(r: Results): string {
  const byId = new Map(r.paths.map((p) => [p.id, p]));
  const swarm = byId.get('swarm');
  const spread = (xs: number[]) => (xs.length ? `${f(med(xs))} [${f(Math.min(...xs))}–${f(Math.max(...xs))}]` : '-');
  const out: string[] = [];
  const tput = r.paths.map((p) => {
    const ref = p.ref ? byId.get(p.ref) : undefined;
    const x = (a: number, b: number | undefined) => (p.kind === 'product' ? f(ratio(a, b)) : '');
    return [
      p.label,
      spread(p.tcp1Gbps),
      x(med(p.tcp1Gbps), swarm && med(swarm.tcp1Gbps)),
      x(med(p.tcp1Gbps), ref && med(ref.tcp1Gbps)),
      spread(p.tcp4Gbps),
      x(med(p.tcp4Gbps), swarm && med(swarm.tcp4Gbps)),
      x(med(p.tcp4Gbps), ref && med(ref.tcp4Gbps)),
    ];
  });
  out.push(table('TCP throughput, Gbit/s: median [min–max] of interleaved runs (iperf3, client core 0, server core 1)', ['path', '1 stream', '×swarm', '×ref', '4 streams', '×swarm', '×ref'], tput));
  const lat = r.paths.map((p) => {
    const ref = p.ref ? byId.get(p.ref) : undefined;
    const x = (a: number, b: number | undefined) => (p.kind === 'product' ? f(ratio(a, b)) : '');
    return [
      p.label,
      f(avg(p.pingMs), 3),
      f(p99(p.pingMs), 3),
      x(avg(p.pingMs), swarm && avg(swarm.pingMs)),
      x(avg(p.pingMs), ref && avg(ref.pingMs)),
      f(avg(p.udpUs), 0),
      f(med(p.udpUs), 0),
      f(p99(p.udpUs), 0),
      x(avg(p.udpUs), swarm && avg(swarm.udpUs)),
      x(avg(p.udpUs), ref && avg(ref.udpUs)),
      String(p.pingLost + p.udpLost),
    ];
  });
  out.push(table('Latency: ping every 20 ms (ms) and UDP request/response (µs, node echo): avg, p99', ['path', 'ping avg', 'p99', '×swarm', '×ref', 'UDP RR avg', 'p50', 'p99', '×swarm', '×ref', 'lost'], lat));
  out.push('\n×ref: the vxlan paths against hand vxlan (the --ipv6 network\'s IPv6 row against its IPv4 row), host-gw and DirectRouting against the underlay, wireguard against hand wireguard; latency ratios compare averages (lower is better).');
  out.push(...ipv6Table(r));
  out.push(...cpuAndEncrypted(r));
  const errs = r.paths.filter((p) => p.errors.length).map((p) => `- ${p.id}: ${p.errors.length} failed measurement(s), first: ${p.errors[0]}`);
  if (errs.length) out.push(`\nFailed measurements (left out, not counted as 0):\n${errs.join('\n')}`);

  const none = med(r.dockerRun.none ?? []);
  const runRows = Object.entries(r.dockerRun).map(([n, xs]) => [n, f(med(xs), 0), `${f(Math.min(...xs), 0)}–${f(Math.max(...xs), 0)}`, n === 'none' ? '' : `${med(xs) >= none ? '+' : ''}${f(med(xs) - none, 0)}`, String(xs.length)]);
  out.push(table('`docker run --rm` of a trivial container on h1, ms (interleaved)', ['network', 'median', 'min–max', 'over none', 'n'], runRows));

  if (r.multicast?.length) {
    const rows = r.multicast.flatMap((m) =>
      m.members.map((x) => [m.label, `${m.rate}`, `${m.count} in ${f(m.sentSeconds, 1)} s`, x.host.replace(/^.*(h\d+)$/, '$1'), String(x.unique), f((100 * (m.count - x.unique)) / Math.max(m.count, 1), 1), String(x.duplicates), x.latUs.avg === null ? '-' : `${x.latUs.avg}`, x.latUs.p50 === null ? '-' : `${x.latUs.p50}`, x.latUs.p99 === null ? '-' : `${x.latUs.p99}`]),
    );
    out.push(table(`Multicast: ${r.multicast[0]!.size}-byte datagrams to a group from h1, members on h1 and h2 (one-way µs, one clock)`, ['network', 'rate/s', 'sent', 'member', 'received', 'lost %', 'dup', 'avg µs', 'p50', 'p99'], rows));
    out.push('\nflannel (flanneld) carries no multicast either (flannel#179): like swarm, 100 % lost.');
  }

  const c = r.control;
  const cp: string[][] = [];
  if (c.enableToPing) {
    cp.push(['plugin enable on h2 (fresh lease) → first h1→h2 ping', `${spread(c.enableToPing.pingMs)}`, `enable returned ${f(med(c.enableToPing.enableMs), 0)} ms`]);
  }
  for (const [n, s] of Object.entries(c.startToReach)) cp.push([`docker run -d on h1 (${n}) → ping from h2 answered`, spread(s.reachMs), `docker run returned ${f(med(s.runMs), 0)} ms`]);
  out.push(table('Control plane, ms: median [min–max]', ['what', 'ms', 'note'], cp));
  if (c.api) {
    const rows = Object.entries(c.api.calls)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([call, xs]) => { const s = summarize(xs); return [call, String(s.n), f(s.p50, 1), f(s.p99, 1), f(s.max, 1)]; });
    out.push(table(`Plugin API latency under ${c.api.concurrent} concurrent docker run (burst ${f(c.api.wallMs, 0)} ms), ms — ${c.api.method}`, ['call', 'n', 'p50', 'p99', 'max'], rows));
  }
  if (c.errors.length) out.push(`\nControl-plane errors: ${c.errors.join('; ')}`);

  const s = r.scale;
  const sc = scaleRows(s);
  if (sc.length) out.push(table('Scale (bench:store, bench:kernel)', ['what', 'result'], sc));
  if (s.errors.length) out.push(`\nScale errors: ${s.errors.join('; ')}`);
  if (r.notes.length) out.push(`\nNotes:\n${r.notes.map((n) => `- ${n}`).join('\n')}`);
  return out.join('\n');
}

/** Issue 21's target, v6 throughput ≥ 0.95 × v4 (ratios of medians; latency as averages, lower is better). */
export const V6_TARGET = 0.95;

/** IPv6 ÷ IPv4 on the dual-stack vxlan overlay: the same containers (of-v6 ÷ of-v6v4), and against the v4-only network (÷ of-vxlan). */
export function ipv6Table(r: Results): string[] {
  const byId = new Map(r.paths.map((p) => [p.id, p]));
  const v6 = byId.get('of-v6');
  if (!v6) return [];
  const rows = ['of-v6v4', 'of-vxlan']
    .map((id) => byId.get(id))
    .filter((p): p is PathResult => p !== undefined)
    .map((v4) => {
      const [t1, t4] = [ratio(med(v6.tcp1Gbps), med(v4.tcp1Gbps)), ratio(med(v6.tcp4Gbps), med(v4.tcp4Gbps))];
      const verdict = Number.isFinite(t1) && Number.isFinite(t4) ? (t1 >= V6_TARGET && t4 >= V6_TARGET ? 'yes' : 'no') : '-';
      return [`of-v6 ÷ ${v4.id}`, f(t1), f(t4), f(ratio(avg(v6.pingMs), avg(v4.pingMs))), f(ratio(avg(v6.udpUs), avg(v4.udpUs))), verdict];
    });
  return [
    table(`IPv6 ÷ IPv4 through the vxlan overlay (issue 21: throughput ≥ ${V6_TARGET}×): ratios of medians (throughput) and of averages (latency, lower is better)`, ['ratio', '1 stream', '4 streams', 'ping avg', 'UDP RR avg', `≥ ${V6_TARGET}×`], rows),
    '\nof-v6 ÷ of-v6v4: the same two containers of one `--ipv6` network, IPv6 (flannel-v6.<VNI>, MTU parent − 70) against IPv4 (flannel.<VNI>, parent − 50); ÷ of-vxlan: against a v4-only network of a v4-only overlay.',
  ];
}

const nums = (xs: Array<number | undefined>): number[] => xs.filter((x): x is number => x !== undefined && Number.isFinite(x));

/** The CPU table (TCP 1 stream, every path) and the encrypted comparison (when a wireguard path ran). */
function cpuAndEncrypted(r: Results): string[] {
  const out: string[] = [];
  const cpu = (p: PathResult) => p.tcp1Cpu ?? [];
  const costs = (p: PathResult) => nums(cpu(p).map((c) => c.coresPerGbps));
  const spread = (xs: number[], d = 2) => (xs.length ? `${f(med(xs), d)} [${f(Math.min(...xs), d)}–${f(Math.max(...xs), d)}]` : '-');
  if (r.paths.some((p) => cpu(p).length)) {
    const rows = r.paths.map((p) => [p.label, f(med(p.tcp1Gbps)), f(med(nums(cpu(p).map((c) => c.busyCores)))), spread(costs(p)), f(med(nums(cpu(p).map((c) => c.wgCores))), 2), spread(nums(cpu(p).map((c) => c.wgCoresPerGbps)))]);
    out.push(table('CPU cost, TCP 1 stream: busy cores ÷ Gbit/s per run, median [min–max]', ['path', 'Gbit/s', 'busy cores', 'cores per Gbit/s', 'wireguard-go cores', 'wireguard-go cores per Gbit/s'], rows));
    const base = r.cpuBaseline ? ` With nothing measured (${r.cpuBaseline.seconds} s just before this phase) the machine had ${f(r.cpuBaseline.busyCores)} busy cores; load average then ${r.cpuBaseline.loadavg}.` : '';
    out.push(`\nBusy cores: /proc/stat of the whole machine (${r.machine.cpus} CPUs) over each iperf3 run — both ends, iperf3, the daemons and anything else running here included, so compare paths within one run, not absolutes.${base} wireguard-go: utime + stime of the path's two wireguard-go processes (/proc/<pid>/stat) over the same run.`);
  }
  const byId = new Map(r.paths.map((p) => [p.id, p]));
  if (!byId.has('of-wg') && !byId.has('hand-wg')) return out;
  const pairs: Array<[string, string]> = [['of-wg', 'hand-wg'], ['of-wg', 'of-vxlan'], ['hand-wg', 'hand-vxlan'], ['of-wg', 'swarm-enc'], ['of-wg', 'swarm']];
  const rows = pairs
    .filter(([a, b]) => byId.has(a) && byId.has(b))
    .map(([a, b]) => {
      const [x, y] = [byId.get(a)!, byId.get(b)!];
      return [`${a} ÷ ${b}`, f(ratio(med(x.tcp1Gbps), med(y.tcp1Gbps))), f(ratio(med(x.tcp4Gbps), med(y.tcp4Gbps))), f(ratio(avg(x.pingMs), avg(y.pingMs))), f(ratio(avg(x.udpUs), avg(y.udpUs))), f(ratio(med(costs(x)), med(costs(y))))];
    });
  out.push(table('Encrypted (wireguard): ratios of medians (throughput, CPU per Gbit/s) and of averages (latency)', ['ratio', '1 stream', '4 streams', 'ping avg', 'UDP RR avg', 'cores per Gbit/s'], rows));
  out.push('\nof-wg ÷ hand-wg: our plumbing against wireguard-go configured by hand; ÷ of-vxlan: what encryption costs the product; hand-wg ÷ hand-vxlan: the same for the hand-built paths.');
  if (r.encrypted) out.push(`\n- ${r.encrypted.kernel}\n- ${r.encrypted.swarm}`);
  return out;
}

/** Write `<dir>/overlay-<date>.json` and `<dir>/latest.json`; returns the timestamped file. */
export function writeJson(r: Results, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `overlay-${r.date.replace(/[:.]/g, '-')}.json`);
  const text = `${JSON.stringify(r, null, 1)}\n`;
  writeFileSync(file, text);
  writeFileSync(join(dir, 'latest.json'), text);
  return file;
}

const COLORS: Record<Path['kind'], string> = { product: '#1f77b4', swarm: '#d62728', reference: '#7f7f7f' };

/** Horizontal bar panel: one bar per row (value, label, colour) with an optional min–max whisker, scaled to the panel's max. */
function panel(x: number, y: number, w: number, title: string, unit: string, rows: Array<{ label: string; value: number; color: string; lo?: number; hi?: number }>): { svg: string; h: number } {
  const bar = 18;
  const labelW = 340;
  const fin = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? v : 0);
  const max = Math.max(...rows.map((r) => Math.max(fin(r.value), fin(r.hi))), 1e-9);
  const scale = (v: number) => ((w - labelW - 130) * v) / max;
  const parts = [`<text x="${x}" y="${y + 16}" font-size="16" font-weight="bold">${esc(title)}</text>`];
  rows.forEach((r, i) => {
    const yy = y + 28 + i * (bar + 6);
    const len = scale(fin(r.value));
    parts.push(`<text x="${x + labelW - 8}" y="${yy + 14}" font-size="13" text-anchor="end">${esc(r.label)}</text>`);
    parts.push(`<rect x="${x + labelW}" y="${yy}" width="${len.toFixed(1)}" height="${bar}" fill="${r.color}"/>`);
    if (r.lo !== undefined && r.hi !== undefined && Number.isFinite(r.lo) && Number.isFinite(r.hi)) {
      const [a, b] = [x + labelW + scale(r.lo), x + labelW + scale(r.hi)];
      parts.push(`<line x1="${a.toFixed(1)}" x2="${b.toFixed(1)}" y1="${yy + bar / 2}" y2="${yy + bar / 2}" stroke="black" stroke-width="1.5"/>`);
      for (const e of [a, b]) parts.push(`<line x1="${e.toFixed(1)}" x2="${e.toFixed(1)}" y1="${yy + 4}" y2="${yy + bar - 4}" stroke="black" stroke-width="1.5"/>`);
    }
    const end = Math.max(len, r.hi !== undefined && Number.isFinite(r.hi) ? scale(r.hi) : 0);
    parts.push(`<text x="${x + labelW + end + 6}" y="${yy + 14}" font-size="13">${Number.isFinite(r.value) ? `${round(r.value, 2)} ${unit}` : 'n/a'}</text>`);
  });
  return { svg: parts.join('\n'), h: 28 + rows.length * (bar + 6) + 16 };
}

const esc = (t: string): string => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The comparison as one SVG: throughput (1 and 4 streams), latency (ping, UDP RR), docker run. */
export function chartSvg(r: Results): string {
  const W = 1000;
  let y = 50;
  const parts: string[] = [];
  const add = (p: { svg: string; h: number }) => {
    parts.push(p.svg);
    y += p.h;
  };
  const ps = r.paths;
  const mm = (xs: number[]) => (xs.length ? { lo: Math.min(...xs), hi: Math.max(...xs) } : {});
  add(panel(20, y, W, 'TCP throughput, 1 stream (median, whisker min–max)', 'Gbit/s', ps.map((p) => ({ label: p.label, value: med(p.tcp1Gbps), color: COLORS[p.kind], ...mm(p.tcp1Gbps) }))));
  add(panel(20, y, W, 'TCP throughput, 4 streams (median, whisker min–max)', 'Gbit/s', ps.map((p) => ({ label: p.label, value: med(p.tcp4Gbps), color: COLORS[p.kind], ...mm(p.tcp4Gbps) }))));
  if (ps.some((p) => p.tcp1Cpu?.length)) add(panel(20, y, W, 'CPU per Gbit/s, TCP 1 stream (whole machine, median; lower is better)', 'cores', ps.map((p) => ({ label: p.label, value: med(nums((p.tcp1Cpu ?? []).map((c) => c.coresPerGbps))), color: COLORS[p.kind] }))));
  add(panel(20, y, W, 'ping latency (avg, lower is better)', 'ms', ps.map((p) => ({ label: p.label, value: avg(p.pingMs), color: COLORS[p.kind] }))));
  add(panel(20, y, W, 'UDP request/response (median, lower is better)', 'µs', ps.map((p) => ({ label: p.label, value: med(p.udpUs), color: COLORS[p.kind] }))));
  const runColor = (n: string): string => (n.startsWith('overlay-flannel') ? COLORS.product : n.startsWith('swarm') ? COLORS.swarm : COLORS.reference);
  add(panel(20, y, W, 'docker run --rm wall time (median, whisker min–max, lower is better)', 'ms', Object.entries(r.dockerRun).map(([n, xs]) => ({ label: n, value: med(xs), color: runColor(n), ...mm(xs) }))));
  const head = `<text x="20" y="28" font-size="18" font-weight="bold">overlay-flannel benchmark ${r.date.slice(0, 16)}Z${r.quick ? ' (--quick)' : ''} — ${r.machine.cpus} × ${r.machine.cpu}, kernel ${r.machine.kernel}</text>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y + 10}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${head}\n${parts.join('\n')}</svg>\n`;
}

/** Write the chart as `<base>.svg` and render `<base>.png` with headless Chromium; returns the PNG path or an error text. */
export async function writeChart(r: Results, base: string): Promise<{ png?: string; error?: string }> {
  const svg = chartSvg(r);
  writeFileSync(`${base}.svg`, svg);
  const height = Number(/height="(\d+)"/.exec(svg)?.[1] ?? 1000);
  const tmp = mkdtempSync(join(tmpdir(), 'of-bench-chart-'));
  const html = join(tmp, 'chart.html');
  writeFileSync(html, `<!doctype html><html><body style="margin:0">${svg}</body></html>`);
  const res = await run('/usr/bin/chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', `--screenshot=${base}.png`, `--window-size=1000,${height}`, `file://${html}`], {
    check: false,
    timeoutMs: 90_000,
    // Chromium's profile and caches go to the scratch folder, removed below.
    env: { ...process.env, HOME: tmp },
  }).finally(() => rmSync(tmp, { recursive: true, force: true }));
  if (res.code !== 0) return { error: `chromium exited ${res.code}: ${res.stderr.slice(-300)}` };
  return { png: `${base}.png` };
}
