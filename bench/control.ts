/**
 * control.ts — the control-plane workloads of the overlay benchmark, on the lab of lab.ts.
 *
 * - `docker run --rm` wall time of a trivial container (`true`) on h1, per network, interleaved.
 * - Plugin enable → first cross-host ping: the plugin on h2 is disabled, h2's lease of the
 *   measured network's overlay (the default one: overlay-bench.ts measures this only there) is deleted from etcd (so h1 drops its route: checked, the path must go dark), then
 *   `docker plugin enable` on h2 starts at t0 while a ping from h1's container to h2's (host ping in
 *   the container's namespace, a probe every 10 ms) waits for the first answer.
 * - Container start → reachability: t0 before `docker run -d` on h1; the time `docker run`
 *   returned, and the time of the first answer to a 10 ms ping from the h2 container (started
 *   as soon as the address is known).
 * - Plugin API latency under 20 concurrent `docker run`: the plugin's own debug log line per call
 *   ("plugin call", fastify's reply.elapsedTime rounded to 0.1 ms), which dockerd writes to its log
 *   with the plugin's output. Only the lines written during the burst are read.
 * Every wait has a deadline; containers made here are removed here.
 */
import { readFileSync, statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { DockerHost } from '../test/helpers/docker-lab';
import { run } from '../test/helpers/run';
import { waitFor } from '../test/helpers/wait';
import { endpointOf, leases } from '../test/lab/docker-plugin-lab';
import { IMAGE, type BenchContainer, type BenchLab } from './lab';
import { interleave } from './stats';

const netnsOf = (pid: number): string => `/proc/${pid}/ns/net`;

/** Ping from a namespace every 10 ms until the first answer (deadline `deadlineS`); resolves with performance.now() of the exit, or rejects. */
async function firstAnswer(netns: string, ip: string, deadlineS: number): Promise<number> {
  const r = await run('nsenter', [`--net=${netns}`, 'ping', '-n', '-q', '-c', '1', '-i', '0.01', '-w', String(deadlineS), ip], { check: false, timeoutMs: (deadlineS + 10) * 1000 });
  const at = performance.now();
  if (r.code !== 0) throw new Error(`no answer from ${ip} within ${deadlineS} s: ${r.stdout.trim().split('\n').pop()}`);
  return at;
}

/** Wall time (ms) of `docker run --rm --network NET ofbox:1 true` on `d`, `reps` per network, interleaved. */
export async function dockerRunWalls(d: DockerHost, nets: string[], reps: number): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = Object.fromEntries(nets.map((n) => [n, []]));
  for (const n of nets) await d.docker(['run', '--rm', '--network', n, IMAGE, 'true'], { timeoutMs: 60_000 }); // warm-up, not counted
  for (const n of interleave(nets, reps)) {
    const t0 = performance.now();
    const r = await d.docker(['run', '--rm', '--network', n, IMAGE, 'true'], { timeoutMs: 60_000 });
    const ms = performance.now() - t0;
    if (r.code !== 0) throw new Error(`docker run --network ${n} failed: ${r.stderr.trim()}`);
    out[n]!.push(ms);
  }
  return out;
}

/** One sample of "plugin enable on h2 → first ping h1 → h2 answered"; ms from t0, and when enable returned. */
export async function enableToPing(b: BenchLab, from: BenchContainer, to: BenchContainer): Promise<{ pingMs: number; enableMs: number }> {
  await b.d2.dockerOk(['plugin', 'disable', '-f', 'overlay-flannel'], { timeoutMs: 60_000 });
  const prefix = b.prefixes[from.net] ?? b.prefix;
  const held = await leases(b.etcd, prefix);
  const sub = held.get(b.h2.ip);
  if (!sub) throw new Error(`h2 (${b.h2.ip}) holds no lease under ${prefix}`);
  await b.etcd.etcdctl(['del', `${prefix}/subnets/${sub.replace('/', '-')}`]);
  // h1 must have dropped its route to h2's subnet: the path goes dark (else nothing is measured).
  await waitFor(async () => (await run('nsenter', [`--net=${netnsOf(from.pid)}`, 'ping', '-n', '-c', '1', '-W', '1', to.ip], { check: false, timeoutMs: 5_000 })).code !== 0, {
    timeoutMs: 20_000,
    intervalMs: 200,
    what: `h1 losing its path to ${to.ip} after h2's lease was deleted`,
  });
  const t0 = performance.now();
  const answered = firstAnswer(netnsOf(from.pid), to.ip, 30);
  await b.d2.dockerOk(['plugin', 'enable', 'overlay-flannel'], { timeoutMs: 60_000 });
  const enableMs = performance.now() - t0;
  const pingMs = (await answered) - t0;
  return { pingMs, enableMs };
}

/** One sample of "docker run -d on h1 → reachable from `peer` on h2"; ms from t0. */
export async function startToReach(b: BenchLab, net: string, peer: BenchContainer, name: string): Promise<{ runMs: number; reachMs: number }> {
  try {
    const t0 = performance.now();
    await b.d1.dockerOk(['run', '-d', '--init', '--name', name, '--network', net, IMAGE, 'sleep', '600'], { timeoutMs: 60_000 });
    const runMs = performance.now() - t0;
    const { ip } = await endpointOf(b.d1, name, net);
    const reachMs = (await firstAnswer(netnsOf(peer.pid), ip, 20)) - t0;
    return { runMs, reachMs };
  } finally {
    await b.d1.docker(['rm', '-f', name], { timeoutMs: 60_000 });
  }
}

/** Plugin calls ("plugin call" debug lines) in a dockerd log text: call → durations in ms. */
export function pluginCalls(log: string): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const raw of log.split('\n')) {
    if (!raw.includes('plugin call')) continue;
    const line = raw.replace(/\\"/g, '"');
    const call = /"call":"([^"]+)"/.exec(line)?.[1];
    const ms = /"ms":([\d.]+)/.exec(line)?.[1];
    if (call && ms !== undefined) (out[call] ??= []).push(Number(ms));
  }
  return out;
}

/** `count` concurrent `docker run -d` on `net` (h1); the plugin's own durations per call and the burst's wall time. */
export async function apiUnderBurst(b: BenchLab, net: string, count: number): Promise<{ calls: Record<string, number[]>; wallMs: number }> {
  const from = statSync(b.d1.logFile).size;
  const names = Array.from({ length: count }, (_, i) => `burst${i}`);
  const t0 = performance.now();
  try {
    const rs = await Promise.all(names.map((n) => b.d1.docker(['run', '-d', '--init', '--name', n, '--network', net, IMAGE, 'sleep', '600'], { timeoutMs: 180_000 })));
    const failed = rs.filter((r) => r.code !== 0);
    if (failed.length) throw new Error(`${failed.length} of ${count} concurrent docker run failed: ${failed[0]!.stderr.trim()}`);
    const wallMs = performance.now() - t0;
    // dockerd copies the plugin's output to its log asynchronously: wait for every Join's line.
    const calls = await waitFor(
      async () => {
        const c = pluginCalls(readFileSync(b.d1.logFile).subarray(from).toString('utf8'));
        return (c['NetworkDriver.Join']?.length ?? 0) >= count && c;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: `${count} Join lines in h1's dockerd log (LOG_LEVEL=debug)` },
    );
    return { calls, wallMs };
  } finally {
    await b.d1.docker(['rm', '-f', ...names], { timeoutMs: 180_000 });
  }
}
