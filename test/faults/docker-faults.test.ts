/**
 * Issue 8, Docker-side faults: one two-host lab (fault-lab.ts: real dockerds, the managed plugin
 * from a LAN registry, real etcd) for the whole file; h1's dockerd runs with --live-restore, h2's
 * without. c1 (h1) pings c2 (h2) every 20 ms during each fault (probe-stream.ts), and every
 * scenario ends with an address audit (address-audit.ts: unique addresses, each recorded in etcd,
 * no record or veth without a container). Scenarios:
 *   1. SIGKILL of the plugin in the middle of 20 concurrent `docker run`;
 *   2. 10,000 hostile requests on the plugin socket;
 *   3. security basics of the running plugin (socket mode, capabilities);
 *   4. dockerd restarts: with --live-restore (h1), and without it for --restart=always containers (h2).
 * Figures go to t.diagnostic and test-artifacts/faults-docker.json (README, "Reliability").
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { DockerHost } from '../helpers/docker-lab';
import type { RunResult } from '../helpers/run';
import { waitFor } from '../helpers/wait';
import * as L from '../lab/docker-plugin-lab';
import { auditAddresses, type AuditResult } from './address-audit';
import { pluginPid, recordFigures, requireDockerLab, rssKiB, startFaultLab, type FaultLab } from './fault-lab';
import { hostileRequests, isErrAnswer, OVER_LIMIT, overLimitOutcome } from './hostile-requests';
import { ProbeStream } from './probe-stream';

requireDockerLab();
const FIGURES = 'faults-docker';

describe('Docker-side faults on two hosts with continuous traffic', { timeout: 900_000 }, () => {
  let fl: FaultLab;
  let d1: DockerHost, d2: DockerHost;
  const ip: Record<string, string> = {};

  const audit = (): Promise<AuditResult> =>
    auditAddresses({ etcd: fl.etcd, prefix: fl.ov.prefix, net: fl.net, hosts: [d1, d2].map((d) => ({ d, lease: fl.lease.get(d)! })) });

  /** Audit until Docker, etcd and the kernels agree (deadline `ms`), problems `ignore` aside; returns the time it took. */
  async function auditClean(what: string, ms = 90_000, ignore: (problem: string) => boolean = () => false): Promise<{ ms: number; result: AuditResult }> {
    const t0 = Date.now();
    let last: AuditResult | undefined;
    try {
      const result = await waitFor(async () => {
        last = await audit();
        return last.problems.every(ignore) && last;
      }, { timeoutMs: ms, intervalMs: 1000, what });
      return { ms: Date.now() - t0, result };
    } catch {
      assert.fail(`${what}: the audit still finds problems after ${ms} ms:\n${last?.problems.join('\n')}\n--- h1 dockerd ---\n${fl.logTail(d1, 30)}`);
    }
  }

  const runArgs = (name: string, extra: string[] = []): string[] => ['run', '-d', '--init', '--name', name, ...extra, '--network', fl.net, 'ofbox:1', 'sleep', '3600'];

  before(async () => {
    // The plugin's orphan audit every 10 s (default 5 min), so scenario 1 can wait for it (grace 2 min).
    fl = await startFaultLab({ liveRestore: [true, false], pluginSettings: ['ADDRESS_AUDIT_INTERVAL=10'] });
    [d1, d2] = fl.docker;
    await d1.dockerOk(runArgs('c1'), { timeoutMs: 120_000 });
    await d2.dockerOk(runArgs('c2', ['--restart=always']), { timeoutMs: 120_000 });
    ip.c1 = (await L.endpointOf(d1, 'c1', fl.net)).ip;
    ip.c2 = (await L.endpointOf(d2, 'c2', fl.net)).ip;
    await L.pingOk(d1, 'c1', ip.c2);
  });

  after(async () => {
    await fl?.stop();
  });

  it('1. plugin SIGKILL during 20 concurrent docker run: clean outcomes, no duplicate or leaked address, traffic gap < 1 s', async (t) => {
    const [h1] = fl.hosts;
    const lease = fl.lease.get(d1)!;
    const stream = await ProbeStream.start(d1, 'c1', ip.c2!);
    const oldPid = await pluginPid(h1);
    const before = (await L.addressRecords(fl.etcd, fl.ov.prefix, lease)).length;
    const names = Array.from({ length: 20 }, (_, i) => `k${i}`);
    const started = Date.now();
    let settled = 0;
    const runs = names.map((n) => d1.docker(runArgs(n), { timeoutMs: 180_000 }).finally(() => settled++));
    // "In the middle": once a few runs have their address recorded, the others still on their way.
    await waitFor(async () => (await L.addressRecords(fl.etcd, fl.ov.prefix, lease)).length >= before + 4, { timeoutMs: 90_000, intervalMs: 50, what: '4 new address records' });
    const recordsAtKill = (await L.addressRecords(fl.etcd, fl.ov.prefix, lease)).length - before;
    const settledAtKill = settled;
    process.kill(oldPid, 'SIGKILL');
    const killedAt = Date.now();
    assert.ok(settledAtKill < names.length, 'the plugin was killed while runs were still going');
    const newPid = await waitFor(async () => {
      const p = await L.pluginPids(h1);
      return p.length === 1 && p[0] !== oldPid && p[0];
    }, { timeoutMs: 60_000, intervalMs: 50, what: 'Docker to restart the plugin' });
    const restartMs = Date.now() - killedAt;
    const results: RunResult[] = await Promise.all(runs);
    const runsMs = Date.now() - started;
    await stream.moreAnswers(25);
    const probe = await stream.stop();
    const ok = results.filter((r) => r.code === 0).length;
    const failures = results.map((r, i) => ({ r, name: names[i]! })).filter(({ r }) => r.code !== 0);
    for (const { r, name } of failures) {
      assert.ok(!r.timedOut, `docker run ${name} hung (timed out)`);
      assert.match(r.stderr, /\S/, `docker run ${name} failed (exit ${r.code}) without a message`);
    }
    // A successful run has a running container with an address of this host's lease.
    for (const [i, r] of results.entries()) {
      if (r.code !== 0) continue;
      const { ip: a } = await L.endpointOf(d1, names[i]!, fl.net);
      assert.ok(L.inCidr(a, lease), `${names[i]} got ${a}, in ${lease}`);
    }
    // A run whose RequestAddress was recorded in etcd (or whose CreateEndpoint made its veth) but
    // not yet answered when the plugin died leaves a record (a veth) no container holds: Docker
    // resends, gets an error and never releases it. At most one of each per failed run, and the
    // plugin's own audit must remove them once its 2 min grace is over. Everything else must
    // agree at once.
    const leftover = (p: string): boolean => /record\(s\) without a container|veth\(s\) without an endpoint/.test(p);
    const first = await auditClean('audit with the surviving containers (leftovers of the kill aside)', 90_000, leftover);
    const count = (re: RegExp): number => first.result.problems.filter((p) => re.test(p)).flatMap((p) => p.split(': ').pop()!.trim().split(/\s+/)).length;
    const leaked = { records: count(/record\(s\) without a container/), veths: count(/veth\(s\) without an endpoint/) };
    assert.ok(leaked.records <= failures.length && leaked.veths <= failures.length, `leftovers ${JSON.stringify(leaked)} after ${failures.length} failed run(s): ${first.result.problems.join('; ')}`);
    const anyLeft = leaked.records + leaked.veths > 0;
    const running = anyLeft ? await auditClean('leftovers of the kill removed by the plugin\'s audit', 200_000) : first;
    await d1.dockerOk(['rm', '-f', ...names], { timeoutMs: 120_000 });
    const cleaned = await auditClean('audit after removing every k* container');
    assert.deepEqual(cleaned.result.records, { [h1.ns]: 1, [fl.hosts[1].ns]: 1 }, 'only c1 and c2 keep a record');
    assert.deepEqual(cleaned.result.veths, { [h1.ns]: 1, [fl.hosts[1].ns]: 1 }, 'only c1 and c2 keep a veth');
    const figures = {
      runs: names.length,
      succeeded: ok,
      failedCleanly: failures.length,
      failureMessages: [...new Set(failures.map(({ r }) => r.stderr.trim().split('\n').pop()!.replace(/[0-9a-f]{12,}/g, '<id>').slice(0, 200)))],
      recordsAtKill,
      runsDoneAtKill: settledAtKill,
      pluginRestartMs: restartMs,
      runsWallMs: runsMs,
      leftoversOfKill: leaked,
      auditCleanAfterRunsMs: first.ms + (anyLeft ? running.ms : 0),
      auditCleanAfterRemoveMs: cleaned.ms,
      probe,
    };
    t.diagnostic(JSON.stringify(figures));
    recordFigures(FIGURES, 'pluginKill', figures);
    assert.ok(probe.longestGapMs < 1000, `longest gap of ${stream.label}: ${probe.longestGapMs} ms (≥ 1 s)\n${stream.tail()}`);
  });

  it('2. 10,000 hostile requests on the plugin socket: every answer an "Err", same process, bounded RSS, docker run works after', async (t) => {
    const [h1] = fl.hosts;
    const sock = await L.pluginSocket(d1);
    const pid = await pluginPid(h1);
    const rssBefore = rssKiB(pid);
    const keysBefore = await L.etcdKeys(fl.etcd, fl.ov.prefix);
    const reqs = hostileRequests(10_000);
    const t0 = Date.now();
    const answers = await L.pool(reqs.map((r) => () => r.send(sock)), 32);
    const ms = Date.now() - t0;
    const rssAfter = rssKiB(pid);
    const labelled = answers.map((a, i) => ({ a, label: reqs[i]!.label }));
    const bad = labelled.filter(({ a, label }) => (OVER_LIMIT.has(label) ? overLimitOutcome(a) === 'wrong' : !isErrAnswer(a)));
    const overLimit = { requests: 0, answered413: 0, closedBeforeAnswerRead: 0 };
    for (const { a, label } of labelled) {
      if (!OVER_LIMIT.has(label)) continue;
      overLimit.requests++;
      if (overLimitOutcome(a) === '413') overLimit.answered413++;
      if (overLimitOutcome(a) === 'closed') overLimit.closedBeforeAnswerRead++;
    }
    const byStatus: Record<string, number> = {};
    for (const a of answers) byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
    const figures = { requests: reqs.length, wallMs: ms, perSecond: Math.round((reqs.length * 1000) / ms), byStatus, overLimit, rssBeforeMiB: Math.round(rssBefore / 1024), rssAfterMiB: Math.round(rssAfter / 1024), rssGrowthMiB: Math.round((rssAfter - rssBefore) / 1024) };
    t.diagnostic(JSON.stringify(figures));
    recordFigures(FIGURES, 'hostileInput', figures);
    assert.deepEqual(bad.slice(0, 8).map(({ a, label }) => `${label}: ${a.status} ${a.body.slice(0, 200)}`), [], `${bad.length} answers were not a non-2xx "Err"`);
    // Over the limit: every body gets its 413, the plugin drains before it closes (hostile-requests.ts).
    assert.equal(overLimit.answered413, overLimit.requests, `over-limit bodies answered 413: ${JSON.stringify(overLimit)}`);
    assert.deepEqual(await L.pluginPids(h1), [pid], 'the same plugin process serves');
    assert.ok(rssAfter - rssBefore < 64 * 1024, `RSS grew by ${Math.round((rssAfter - rssBefore) / 1024)} MiB (≥ 64 MiB)`);
    assert.deepEqual(await L.etcdKeys(fl.etcd, fl.ov.prefix), keysBefore, 'no etcd key was written by the requests');
    await d1.dockerOk(runArgs('c5'), { timeoutMs: 120_000 });
    await L.pingOk(d1, 'c5', ip.c2!);
    await d1.dockerOk(['rm', '-f', 'c5'], { timeoutMs: 60_000 });
    await auditClean('audit after the hostile requests');
  });

  it('3. security: the plugin socket is 0600 root, the plugin asks for CAP_NET_ADMIN only and holds no CAP_SYS_ADMIN', async () => {
    const [h1] = fl.hosts;
    for (const d of [d1, d2]) {
      const st = statSync(await L.pluginSocket(d));
      assert.ok(st.isSocket());
      assert.equal((st.mode & 0o777).toString(8), '600', `socket mode on ${d.host.ns}`);
      assert.deepEqual([st.uid, st.gid], [0, 0], 'owned by root');
      const caps = JSON.parse((await d.dockerOk(['plugin', 'inspect', '-f', '{{json .Config.Linux.Capabilities}}', 'overlay-flannel'])).stdout) as string[];
      assert.deepEqual(caps, ['CAP_NET_ADMIN']);
    }
    // What Docker granted: its default set plus NET_ADMIN (bit 12); never SYS_ADMIN (bit 21).
    const status = (await import('node:fs')).readFileSync(`/proc/${await pluginPid(h1)}/status`, 'utf8');
    const eff = BigInt(`0x${/^CapEff:\s+([0-9a-f]+)$/m.exec(status)![1]}`);
    assert.equal((eff >> 12n) & 1n, 1n, 'CAP_NET_ADMIN is effective');
    assert.equal((eff >> 21n) & 1n, 0n, 'CAP_SYS_ADMIN is not');
  });

  it('4a. dockerd restart with --live-restore (h1): containers stay connected, the plugin survives, a new container works', async (t) => {
    const [h1] = fl.hosts;
    const stream = await ProbeStream.start(d1, 'c1', ip.c2!);
    const pidBefore = await pluginPid(h1);
    const t0 = Date.now();
    await d1.restart();
    const dockerdMs = Date.now() - t0;
    const pidAfter = await pluginPid(h1);
    await stream.moreAnswers(25);
    const probe = await stream.stop();
    assert.equal((await d1.dockerOk(['inspect', '-f', '{{.State.Running}}', 'c1'])).stdout.trim(), 'true', 'c1 kept running');
    assert.equal((await L.endpointOf(d1, 'c1', fl.net)).ip, ip.c1, 'c1 kept its address');
    await d1.dockerOk(runArgs('c6'), { timeoutMs: 120_000 });
    await L.pingOk(d1, 'c6', ip.c2!);
    const recoverMs = Date.now() - t0;
    await d1.dockerOk(['rm', '-f', 'c6'], { timeoutMs: 60_000 });
    const { ms } = await auditClean('audit after the live-restore restart');
    const figures = { dockerdRestartMs: dockerdMs, pluginProcess: pidAfter === pidBefore ? 'same' : 'restarted', newContainerWorksAfterMs: recoverMs, auditCleanMs: ms, probe };
    t.diagnostic(JSON.stringify(figures));
    recordFigures(FIGURES, 'dockerdRestartLiveRestore', figures);
    assert.ok(probe.longestGapMs < 1000, `longest gap ${probe.longestGapMs} ms\n${stream.tail()}`);
  });

  it('4b. dockerd restart without live-restore (h2): --restart=always containers come back connected, recorded, no duplicates', async (t) => {
    const extra = ['r1', 'r2'];
    for (const n of extra) await d2.dockerOk(runArgs(n, ['--restart=always']), { timeoutMs: 120_000 });
    await auditClean('audit before the restart');
    const t0 = Date.now();
    await d2.restart();
    const dockerdMs = Date.now() - t0;
    const back = await waitFor(async () => {
      const eps = await Promise.all(['c2', ...extra].map((n) => L.endpointOf(d2, n, fl.net)));
      return eps.every((e) => e.ip !== '') && eps;
    }, { timeoutMs: 120_000, intervalMs: 500, what: 'c2, r1, r2 running on NET again' });
    ip.c2 = back[0]!.ip;
    await L.pingOk(d1, 'c1', ip.c2, 60_000);
    await L.pingOk(d2, 'r1', ip.c1!, 60_000);
    const recoverMs = Date.now() - t0;
    const { ms, result } = await auditClean('audit after the restart without live-restore');
    assert.equal(result.containers[fl.hosts[1].ns], 3, 'c2, r1 and r2 on h2');
    const figures = { dockerdRestartMs: dockerdMs, containersBackConnectedMs: recoverMs, auditCleanMs: ms, restarted: 3 };
    t.diagnostic(JSON.stringify(figures));
    recordFigures(FIGURES, 'dockerdRestartNoLiveRestore', figures);
  });
});
