/**
 * workloads.ts — the data-plane workloads of the overlay benchmark, run the same way on every
 * path: TCP throughput (iperf3), UDP request/response (udp-echo.ts) and ping latency.
 *
 * Design note (docs/performance.md §1–§2): every tool is the
 * HOST's binary entered into the path's network namespace with `nsenter --net=` (a container's is
 * /proc/<pid>/ns/net), so the container runtime and image play no part and every path runs the
 * very same program. Clients are pinned to core 0 and servers to core 1 with taskset. Servers run
 * for the whole run under `timeout` (bounded even if this process dies) and are stopped by
 * {@link Servers.stopAll}. Every client command has a timeout; a failed measurement throws (the
 * caller records it as missing, never as 0).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { run } from '../test/helpers/run';
import { waitFor } from '../test/helpers/wait';
import type { Endpoint } from './hand-paths';
import { ROOT } from './lab';

export const IPERF_PORT = 5201;
export const ECHO_PORT = 7777;
const CLIENT_CORE = '0';
const SERVER_CORE = '1';
const UDP_ECHO = join(ROOT, 'bench/udp-echo.ts');

/** One measured path: two endpoints on h1 and h2. */
export interface Path {
  id: string;
  label: string;
  /** What the path is to the comparison: the product, the peer users would pick, or a reference. */
  kind: 'product' | 'swarm' | 'reference';
  /** a (h1) is the client, b (h2) the server. */
  a: Endpoint;
  b: Endpoint;
}

const nsenter = (netns: string, cmd: string[]): [string, string[]] => ['nsenter', [`--net=${netns}`, ...cmd]];

/** Long-running iperf3 and echo servers in the paths' server namespaces. */
export class Servers {
  private readonly procs: ChildProcess[] = [];
  /** Namespaces with an iperf3 server: its `-s` socket is dual-stack, so the v4 and v6 rows of one --ipv6 network share it. */
  private readonly iperfIn = new Set<string>();

  /** Start an iperf3 server (unless `p.b`'s namespace has one) and a UDP echo server of `p.b.ip`'s family in `p.b`, each alive at most `lifetimeS`; wait until they listen. */
  async start(p: Path, lifetimeS: number): Promise<void> {
    const v6 = p.b.ip.includes(':');
    const iperfNeeded = !this.iperfIn.has(p.b.netns);
    await Promise.all([
      iperfNeeded &&
        this.spawnReady(p.b.netns, ['timeout', String(lifetimeS), 'taskset', '-c', SERVER_CORE, 'iperf3', '-s', '--forceflush', '-p', String(IPERF_PORT)], /Server listening/, `iperf3 server of ${p.id}`).then(() => this.iperfIn.add(p.b.netns)),
      this.spawnReady(
        p.b.netns,
        ['timeout', String(lifetimeS), 'taskset', '-c', SERVER_CORE, process.execPath, '--import', 'tsx', UDP_ECHO, 'server', String(ECHO_PORT), String(lifetimeS), ...(v6 ? ['6'] : [])],
        /listening/,
        `UDP echo server of ${p.id}`,
      ),
    ]);
  }

  private async spawnReady(netns: string, cmd: string[], ready: RegExp, what: string): Promise<void> {
    const [c, args] = nsenter(netns, cmd);
    const child = spawn(c, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    this.procs.push(child);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
    child.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`${what} exited: ${out}`);
        return ready.test(out);
      },
      { timeoutMs: 30_000, intervalMs: 50, what, bail: (e) => e instanceof Error && / exited: /.test(e.message) },
    );
  }

  /** SIGTERM every server (timeout passes it on), SIGKILL after 3 s. */
  async stopAll(): Promise<void> {
    const live = this.procs.filter((p) => p.exitCode === null && p.signalCode === null);
    for (const p of live) p.kill('SIGTERM');
    const gone = Promise.all(live.map((p) => new Promise((r) => p.once('close', r))));
    const timer = new Promise((r) => setTimeout(r, 3_000));
    await Promise.race([gone, timer]);
    for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    this.procs.length = 0;
    this.iperfIn.clear();
  }
}

/** iperf3 TCP throughput a → b in Gbit/s (receiver side), `streams` parallel streams for `seconds`. */
export async function iperf(p: Path, seconds: number, streams: number): Promise<number> {
  const cmd = ['taskset', '-c', CLIENT_CORE, 'iperf3', '-c', p.b.ip, '-p', String(IPERF_PORT), '-t', String(seconds), '-P', String(streams), '-J'];
  let last = '';
  for (let attempt = 0; attempt < 2; attempt++) {
    const [c, args] = nsenter(p.a.netns, cmd);
    const r = await run(c, args, { check: false, timeoutMs: (seconds + 20) * 1000 });
    try {
      const j = JSON.parse(r.stdout) as { error?: string; end?: { sum_received?: { bits_per_second?: number } } };
      const bps = j.end?.sum_received?.bits_per_second;
      if (typeof bps === 'number' && bps > 0) return bps / 1e9;
      last = j.error ?? r.stdout.slice(0, 300);
    } catch {
      last = `${r.stderr}${r.stdout}`.slice(0, 300);
    }
    // "the server is busy": the previous test's teardown is still running on the server.
    await new Promise((res) => setTimeout(res, 1_000));
  }
  throw new Error(`iperf3 on ${p.id} failed: ${last}`);
}

/** `count` pings a → b at `intervalMs`; the RTT of each answered probe in ms (unanswered ones are missing). */
export async function ping(p: Path, count: number, intervalMs = 20): Promise<{ rttMs: number[]; lost: number }> {
  const [c, args] = nsenter(p.a.netns, ['ping', '-n', '-c', String(count), '-i', String(intervalMs / 1000), '-W', '1', p.b.ip]);
  const r = await run(c, args, { check: false, timeoutMs: count * intervalMs + 30_000 });
  const rttMs = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (!rttMs.length) throw new Error(`ping on ${p.id}: no answer: ${r.stdout.slice(-300)}${r.stderr}`);
  return { rttMs, lost: count - rttMs.length };
}

/** `count` sequential UDP request/response probes a → b (udp-echo.ts); RTTs in µs. */
export async function udpRR(p: Path, count: number): Promise<{ rttUs: number[]; lost: number }> {
  const [c, args] = nsenter(p.a.netns, ['taskset', '-c', CLIENT_CORE, process.execPath, '--import', 'tsx', UDP_ECHO, 'client', p.b.ip, String(ECHO_PORT), String(count)]);
  const r = await run(c, args, { cwd: ROOT, check: false, timeoutMs: count * 1_000 + 30_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    const j = JSON.parse(line) as { rttUs: number[]; lost: number };
    if (!j.rttUs.length) throw new Error('every probe lost');
    return j;
  } catch (e) {
    throw new Error(`UDP echo on ${p.id} failed: ${e instanceof Error ? e.message : String(e)}: ${r.stderr.slice(-300)}`);
  }
}

/** Until `a` reaches `b` with one ping (deadline `timeoutMs`): proves a path before measuring it. */
export async function reachable(p: Path, timeoutMs = 20_000): Promise<void> {
  const [c, args] = nsenter(p.a.netns, ['ping', '-n', '-c', '1', '-W', '1', p.b.ip]);
  await waitFor(async () => (await run(c, args, { check: false, timeoutMs: 5_000 })).code === 0, { timeoutMs, intervalMs: 200, what: `${p.id}: ${p.a.ip} → ${p.b.ip}` });
}
