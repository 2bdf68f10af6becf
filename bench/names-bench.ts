/**
 * names-bench.ts — `npm run bench:names`: cross-host DNS names (issue 16, "Speed and size") on
 * real dockerds, beside swarm's own DNS and Docker's same-host answers, in one run.
 *
 *   npm run bench:names               full run (≈ 6 min here; root; not part of npm test)
 *   npm run bench:names -- --quick    5 runs, fewer queries, 2000 records (development)
 *   npm run bench:names -- --records 100000 --memory-only   (issue 23) N records in the memory
 *       phase; --memory-only skips phases 1 and 2 (phase 3's latency round with the records stays).
 *       The memory phase's waits scale with N (their 10,000-record bounds × N / 10,000).
 *
 * Lab: names-lab.ts (h1, h2 with NAMES=true and swarm; h3 with NAMES=false; fake upstream DNS).
 * Every client is names-probe.ts in a container's network namespace asking 127.0.0.11, Docker's
 * embedded DNS, the way the container's own resolver does (no `docker exec` in any timing).
 *  1. run → resolvable: a probe in `cli` (h1) asks NAME every 10 ms from before `docker run -d
 *     --name NAME` on h2 until an answer has an address; ms after `docker run` returned (negative:
 *     before it returned). Then rm → gone: asks until the answer has no address, ms after `docker
 *     rm -f` returned. Interleaved per run with the same for swarm (`swc` on h1, container on h2
 *     on the attachable swarm overlay) and with a container run on h1 itself (Docker's own
 *     same-host records: the floor any design can reach).
 *  2. answer latency: sequential queries, 8 ms apart (the resolver's per-container budget is
 *     200/s; the run checks its 'limited' counter stayed 0), rounds interleaved across probes:
 *     `cli` → `far` (h2, our resolver), `loc` (h1, Docker answers), the external name (forwarded
 *     through our queue to the upstream); `swc` → `swfar` (swarm), the external name; `cli3` (h3,
 *     NAMES=false) → the external name (forwarded, nothing queued: the reference).
 *  3. memory: 10,000 synthetic records (names-records.ts, the product's writer, 20 fake hosts) on
 *     NET; VmRSS/VmHWM of the plugin's node process on h1 and h2 (and h3, which holds none: the drift) before, after the table holds them
 *     (its metric), and after they are revoked; the answer latency is measured again with them.
 *     Beside them names-heap.ts, the same watcher + table code alone with forced GCs: live heap.
 * Output: tables on stdout (ratios against the same-run references), JSON in
 * bench/results/names-<date>.json. Failures and timeouts are counted and printed, never numbers.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { DOCKER, DOCKERD, type DockerHost } from '../test/helpers/docker-lab';
import { waitFor } from '../test/helpers/wait';
import { pluginPids } from '../test/lab/docker-plugin-lab';
import { IMAGE, MAIN, ROOT } from './lab';
import { buildNamesLab, memoryOf, Probe, STATUS, teardownNamesLab, type NamesLab } from './names-lab';
import { machine, renderNames, writeNamesJson, type NamesResults } from './names-report';

const log = (l: string): void => console.error(`[bench:names ${new Date().toISOString().slice(11, 19)}] ${l}`);
const now = (): bigint => process.hrtime.bigint();
const ms = (a: bigint, b: bigint): number => Math.round(Number(a - b) / 1e4) / 100;

/** One `docker run -d` on `d` while `probe` waits for the name, then `docker rm -f` while it waits for it to go. */
type RunSample = { runMs?: number; upMs?: number; upFromStartMs?: number; goneMs?: number; error?: string };
async function runAndRemove(probe: Probe, d: DockerHost, net: string, name: string): Promise<RunSample> {
  const up = probe.ask({ op: 'until', name, want: 'present', intervalMs: 10, deadlineMs: 15_000 }, 25_000);
  await sleep(30); // the probe has asked at least once before the container exists
  const t0 = now();
  const r = await d.docker(['run', '-d', '--init', '--name', name, '--network', net, IMAGE, 'sleep', '600'], { timeoutMs: 60_000 });
  const t1 = now();
  const out: RunSample = { runMs: ms(t1, t0) };
  const u = await up;
  if (r.code !== 0) return { error: `docker run: ${r.stderr.trim()}` };
  if (u.ok) {
    out.upMs = ms(BigInt(u.atNs as string), t1);
    out.upFromStartMs = ms(BigInt(u.atNs as string), t0);
  } else out.error = `not resolvable within 15 s (last answer: ${String(u.last)})`;
  const gone = probe.ask({ op: 'until', name, want: 'absent', intervalMs: 10, deadlineMs: 15_000 }, 25_000);
  await sleep(30);
  await d.docker(['rm', '-f', name], { timeoutMs: 60_000 });
  const t2 = now();
  const g = await gone;
  if (g.ok) out.goneMs = ms(BigInt(g.atNs as string), t2);
  else out.error = `${out.error ? `${out.error}; ` : ''}still resolvable 15 s after rm (last answer: ${String(g.last)})`;
  return out;
}

/** The plugin's /metrics on a host (its status server listens on the host's loopback). */
async function metrics(b: NamesLab, i: number): Promise<string> {
  return (await b.h[i]!.execOk('busybox', ['wget', '-qO-', `http://${STATUS}/metrics`], { timeoutMs: 15_000 })).stdout;
}
const metricSum = (text: string, name: string, label = ''): number =>
  text
    .split('\n')
    .filter((l) => l.startsWith(name) && l.includes(label))
    .reduce((a, l) => a + Number(l.split(' ').pop()), 0);

/** A node child in the LAN namespace (where etcd is) that prints JSON lines. */
function lanChild(b: NamesLab, args: string[]) {
  const child = spawn('nsenter', [`--net=/var/run/netns/${b.lan.ns}`, process.execPath, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const o = { child, lines: [] as Array<Record<string, unknown>>, err: '' };
  child.stderr.on('data', (x: Buffer) => void (o.err = (o.err + x.toString()).slice(-2000)));
  createInterface({ input: child.stdout }).on('line', (l) => o.lines.push(JSON.parse(l) as Record<string, unknown>));
  const line = (pred: (l: Record<string, unknown>) => boolean, what: string, timeoutMs = 130_000) =>
    waitFor(async () => o.lines.find(pred), { timeoutMs, intervalMs: 200, what }).catch((e: unknown) => {
      throw new Error(`${e instanceof Error ? e.message : String(e)}; its output: ${JSON.stringify(o.lines.slice(-3))} ${o.err} (exit ${child.exitCode})`);
    });
  return { ...o, line };
}

/** Median of 5 samples 500 ms apart (the daemon's RSS moves with its GC). */
async function settledMemory(pid: number): Promise<{ rssKb: number; hwmKb: number }> {
  const xs: Array<{ rssKb: number; hwmKb: number }> = [];
  for (let i = 0; i < 5; i++) {
    xs.push(memoryOf(pid, (p) => readFileSync(p, 'utf8')));
    await sleep(500);
  }
  const rss = xs.map((x) => x.rssKb).sort((a, c) => a - c);
  return { rssKb: rss[2]!, hwmKb: xs[4]!.hwmKb };
}

async function main(): Promise<number> {
  const quick = process.argv.includes('--quick');
  const memoryOnly = process.argv.includes('--memory-only');
  const ri = process.argv.indexOf('--records');
  const records = ri > 0 ? Number(process.argv[ri + 1]) : undefined;
  if (records !== undefined && !(Number.isInteger(records) && records >= 100 && records <= 200_000)) throw new Error('--records N: an integer in 100..200000');
  if (process.getuid?.() !== 0) throw new Error('npm run bench:names needs root (namespaces, dockerd)');
  const missing = [DOCKERD, DOCKER, '/bin/busybox', '/usr/bin/python3', MAIN].filter((f) => !existsSync(f));
  if (missing.length) throw new Error(`missing ${missing.join(', ')} (apt-get install docker.io busybox-static python3-minimal; npm run build)`);
  const S = quick ? { runs: 5, queries: 60, rounds: 2, records: 2000, nameTtl: 10 } : { runs: 20, queries: 150, rounds: 4, records: 10_000, nameTtl: 10 };
  if (records !== undefined) S.records = records;
  if (memoryOnly) Object.assign(S, { runs: 0, rounds: 0 });
  const scale = Math.max(1, S.records / 10_000); // the memory phase's bounds grow with the records
  const started = Date.now();
  const res: NamesResults = { date: new Date().toISOString(), quick, machine: machine(), settings: { ...S, gapMs: 8, pollMs: 10 }, notes: [], lifecycle: {}, latency: {}, errors: [] };
  let aborted = false;
  const probes: Probe[] = [];
  let tearing: Promise<void> | undefined;
  const teardown = () => (tearing ??= (async () => {
    for (const p of probes) p.stop();
    log('teardown');
    await teardownNamesLab(log);
  })());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => {
    aborted = true;
    void teardown().finally(() => process.exit(130));
  });
  try {
    const b = await buildNamesLab(log, S.nameTtl);
    res.notes.push(...b.notes);
    const [d1, d2] = b.d;
    const n = b.names;
    log('probes in cli (h1), swc (h1), cli3 (h3)');
    const pCli = await Probe.start(d1, n.cli);
    probes.push(pCli);
    const pSw = b.swarm ? await Probe.start(d1, n.swc) : undefined;
    if (pSw) probes.push(pSw);
    const pCli3 = await Probe.start(b.d[2], n.cli3);
    probes.push(pCli3);
    const present = async (p: Probe, name: string, what: string) => {
      const r = await p.ask({ op: 'until', name, want: 'present', intervalMs: 100, deadlineMs: 30_000 }, 40_000);
      if (!r.ok) throw new Error(`${what}: ${name} not resolvable from ${p.label} (${String(r.last)})`);
    };
    await present(pCli, n.far, 'our resolver');
    await present(pCli, n.loc, 'same host');
    await present(pCli, b.ext, 'forwarded');
    await present(pCli3, b.ext, 'forwarded (NAMES=false)');
    if (pSw) await present(pSw, n.swfar, 'swarm');

    // 1. run → resolvable, rm → gone (one warm-up each, not counted)
    const kinds: Array<{ key: string; probe: Probe; d: DockerHost; net: string }> = [
      { key: 'overlay-flannel (h2 → h1)', probe: pCli, d: d2, net: b.net },
      ...(pSw ? [{ key: 'swarm (h2 → h1)', probe: pSw, d: d2, net: b.swnet }] : []),
      { key: 'same host (Docker itself, h1)', probe: pCli, d: d1, net: b.net },
    ];
    for (const k of kinds) res.lifecycle[k.key] = { runMs: [], upMs: [], upFromStartMs: [], goneMs: [], errors: [] };
    log(`run → resolvable, rm → gone: ${S.runs} interleaved runs × ${kinds.length}`);
    for (let i = memoryOnly ? 0 : -1; i < S.runs; i++) {
      for (const [j, k] of kinds.entries()) {
        const r = await runAndRemove(k.probe, k.d, k.net, `r${i + 1}k${j}-${b.tag}`);
        if (i < 0) continue;
        const L = res.lifecycle[k.key]!;
        if (r.runMs !== undefined) L.runMs.push(r.runMs);
        if (r.upMs !== undefined) L.upMs.push(r.upMs);
        if (r.upFromStartMs !== undefined) L.upFromStartMs.push(r.upFromStartMs);
        if (r.goneMs !== undefined) L.goneMs.push(r.goneMs);
        if (r.error) L.errors.push(r.error);
      }
    }

    // 2. answer latency
    const plan: Array<{ probe: Probe; names: Array<{ key: string; name: string; expect: string }> }> = [
      { probe: pCli, names: [{ key: 'overlay name of h2 (our resolver)', name: n.far, expect: b.ip[n.far]! }, { key: 'same-host name (Docker answers)', name: n.loc, expect: b.ip[n.loc]! }, { key: 'external name, NAMES=true (forwarded through the queue)', name: b.ext, expect: '203.0.113.7' }] },
      ...(pSw ? [{ probe: pSw, names: [{ key: 'swarm: name of h2 (swarm DNS)', name: n.swfar, expect: b.ip[n.swfar]! }, { key: 'swarm: external name (forwarded)', name: b.ext, expect: '203.0.113.7' }] }] : []),
      { probe: pCli3, names: [{ key: 'external name, NAMES=false on h3 (forwarded, reference)', name: b.ext, expect: '203.0.113.7' }] },
    ];
    const limitedBefore = metricSum(await metrics(b, 0), 'overlay_flannel_name_queries_total', 'verdict="limited"');
    const latencyRound = async (p: (typeof plan)[number], suffix = '') => {
      const r = await p.probe.ask({ op: 'latency', names: p.names.map(({ name, expect }) => ({ name, expect })), count: S.queries, gapMs: 8 }, 300_000);
      for (const [i, x] of (r.results as Array<{ us: number[]; wrong: number; timeouts: number; lastWrong: string }>).entries()) {
        const key = `${p.names[i]!.key}${suffix}`;
        const o = (res.latency[key] ??= { us: [], wrong: 0, timeouts: 0 });
        o.us.push(...x.us);
        o.wrong += x.wrong;
        o.timeouts += x.timeouts;
        if (x.wrong) o.lastWrong = x.lastWrong;
      }
    };
    log(`answer latency: ${S.rounds} rounds × ${S.queries} queries per name`);
    for (let r = 0; r < S.rounds; r++) for (let i = 0; i < plan.length; i++) await latencyRound(plan[(i + r) % plan.length]!);
    res.limitedDuringLatency = metricSum(await metrics(b, 0), 'overlay_flannel_name_queries_total', 'verdict="limited"') - limitedBefore;

    // 3. memory with synthetic records
    log(`memory: ${S.records} synthetic name records`);
    // h3 (NAMES=false) holds none of them: its RSS over the same window is the drift of an idle daemon.
    const pids: number[] = [];
    for (const h of b.h) {
      const pid = (await pluginPids(h))[0];
      if (!pid) throw new Error(`the plugin process of ${h.ns} not found`);
      pids.push(pid);
    }
    const mem = () => Promise.all(pids.map((p) => settledMemory(p)));
    const recCount = async (i: number) => metricSum(await metrics(b, i), 'overlay_flannel_name_records{');
    const base = [await recCount(0), await recCount(1)];
    await sleep(2000);
    const before = await mem();
    const heap = lanChild(b, ['--expose-gc', '--import', 'tsx', join(ROOT, 'bench/names-heap.ts'), b.etcd.endpoint, b.prefix, String(S.records)]);
    await heap.line((l) => l.phase === 'ready', 'the standalone watcher + table listed', 130_000 * scale);
    const tw = Date.now();
    const w = lanChild(b, ['--import', 'tsx', join(ROOT, 'bench/names-records.ts'), b.etcd.endpoint, b.prefix, b.net, String(S.records), '20']);
    const writer = w.child;
    try {
      const written = await w.line((l) => 'written' in l, `the writer's ${S.records} records`, 130_000 * scale);
      for (const i of [0, 1]) await waitFor(async () => (await recCount(i)) >= base[i]! + S.records, { timeoutMs: 120_000 * scale, intervalMs: 500, what: `h${i + 1}'s table holding the synthetic records` });
      const loadedMs = Date.now() - tw;
      await sleep(3000);
      const after = await mem();
      log('answer latency with the records loaded');
      await latencyRound(plan[0]!, ` (+${S.records} records)`);
      writer.stdin.write('stop\n');
      await w.line((l) => 'stopped' in l, 'the writer revoking its leases', 60_000 * scale);
      for (const i of [0, 1]) await waitFor(async () => (await recCount(i)) <= base[i]!, { timeoutMs: 60_000 * scale, intervalMs: 500, what: `h${i + 1}'s table dropping the synthetic records` });
      await sleep(3000);
      const removed = await mem();
      const label = ['h1', 'h2', 'h3 (NAMES=false: holds none, drift)'];
      const standalone = await Promise.all(['ready', 'loaded', 'removed'].map((ph) => heap.line((l) => l.phase === ph, `the standalone process's ${ph} line`, 60_000 * scale)));
      res.memory = { standalone: standalone as unknown as NonNullable<NamesResults['memory']>['standalone'], records: S.records, writtenMs: written.ms as number, retrying: written.retrying as number, tablesLoadedMs: loadedMs, hosts: label.map((host, i) => ({ host, pid: pids[i]!, before: before[i]!, after: after[i]!, removed: removed[i]! })) };
    } finally {
      writer.stdin.end();
      for (const c of [writer, heap.child]) setTimeout(() => c.kill('SIGKILL'), 5000).unref();
    }
    res.upstreamQueries = b.upstream.queries().length;
  } catch (e) {
    res.errors.push(`run aborted: ${e instanceof Error ? e.message : String(e)}`);
    log(`failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  } finally {
    await teardown();
  }
  if (aborted) return 130;
  res.durationS = Math.round((Date.now() - started) / 1000);
  const file = writeNamesJson(res, join(ROOT, 'bench/results'));
  console.log(renderNames(res));
  console.log(`\nresults: ${file}`);
  return res.errors.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  },
);
