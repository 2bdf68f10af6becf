/**
 * Issue 8, etcd and host faults, on one 2-host Docker lab with the managed plugin (fault-lab.ts
 * startFaultLab, shared with docker-faults.test.ts: etcd and a registry on the LAN, h1 and h2 with
 * dockerd, no live-restore, the plugin pushed to the registry and installed on both). Each scenario
 * runs continuous traffic (a ping every 20 ms from c1 on h1 to c2 on h2, see etcd-host-lab.ts) and
 * ends with the address audit (every container's address unique and recorded; no record without a
 * container).
 *   1. etcd killed for 60 s and restarted on its data dir: traffic never stops, `docker run`
 *      fails with an error naming etcd (or works), everything recovers by itself, no lease lost.
 *      The plugin runs with LEASE_TTL=90 and LEASE_RENEW_MARGIN=75 (a renewal every 15 s): any
 *      outage shorter than the margin is survived whatever its phase.
 *   2. h2 lost (its LAN link cut) after the operator shortened its LEASE_TTL to 20 s: its lease
 *      expires, h1 removes its neighbour/FDB/route; back on the LAN, h2 gets the same subnet and
 *      VtepMAC and h1 programs it again.
 *   3. h2 rebooted (dockerd, containerd, containers and the plugin SIGKILLed, runtime state gone),
 *      with stale kernel entries and stale etcd address records left behind: after dockerd starts
 *      again the plugin removes the stale entries and releases the orphan records (the address
 *      audit), keeps a young one (grace period), and the --restart=always containers are reachable.
 * The probe and the audit are etcd-host-lab.ts's, not probe-stream.ts / address-audit.ts: this
 * file's gap is the network's (missing probes at ping's pace plus RTT growth, the wall-clock gap
 * reported beside it), and its audit checks addresses and records only (no veth check).
 * Figures go to t.diagnostic and test-artifacts/faults-etcd-host.json (the README's Reliability table).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DockerHost } from '../helpers/docker-lab';
import type { EtcdServer } from '../helpers/etcd-server';
import type { Host } from '../helpers/netns-lab';
import { run } from '../helpers/run';
import { sleep, waitFor } from '../helpers/wait';
import * as L from '../lab/docker-plugin-lab';
import * as F from './etcd-host-lab';
import { requireDockerLab, ROOT, startFaultLab, type FaultLab } from './fault-lab';

requireDockerLab();
const ARTIFACT = join(ROOT, 'test-artifacts/faults-etcd-host.json');
const OUTAGE_MS = 60_000;
const SHORT_TTL = 20;

describe('etcd and host faults on two Docker hosts with the managed plugin', { timeout: 600_000 }, () => {
  const figures: Record<string, unknown> = { overlay: '', startedAt: new Date().toISOString() };
  let fl: FaultLab | undefined;
  let ov: FaultLab['ov'];
  let net: string;
  let etcd: EtcdServer;
  let h1: Host, h2: Host;
  let d1: DockerHost, d2: DockerHost;
  let subnet: Map<DockerHost, string>;

  const run2 = (d: DockerHost, name: string, extra: string[] = []) =>
    d.docker(['run', '-d', '--init', '--name', name, '--network', net, ...extra, 'ofbox:1', 'sleep', '3600'], { timeoutMs: 120_000 });
  const ipOf = async (d: DockerHost, name: string) => (await L.endpointOf(d, name, net)).ip;
  const audit = async (what: string) => {
    assert.deepEqual(await F.addressProblems(etcd, ov.prefix, [{ d: d1, subnet: subnet.get(d1)! }, { d: d2, subnet: subnet.get(d2)! }], net), [], `address audit after ${what}`);
  };
  const logSince = (d: DockerHost, offset: number) => d.logs().slice(offset);

  before(async () => {
    fl = await startFaultLab({ pluginSettings: ['LEASE_TTL=90', 'LEASE_RENEW_MARGIN=75'] });
    ({ ov, net, etcd, lease: subnet } = fl);
    [h1, h2] = fl.hosts;
    [d1, d2] = fl.docker;
    figures.overlay = ov.network;
    for (const [d, name, extra] of [[d1, 'c1', []], [d2, 'c2', ['--restart=always']], [d2, 'c3', ['--restart=always']]] as const) {
      const r = await run2(d, name, [...extra]);
      assert.equal(r.code, 0, `run ${name}: ${r.stderr}`);
    }
    await L.pingOk(d1, 'c1', await ipOf(d2, 'c2'));
  });

  after(async () => {
    mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
    writeFileSync(ARTIFACT, `${JSON.stringify({ ...figures, finishedAt: new Date().toISOString() }, null, 2)}\n`);
    await fl?.stop();
  });

  it('1. etcd down for 60 s: no probe lost, docker run fails naming etcd, recovery by itself, no lease lost', async (t) => {
    await audit('setup');
    const leases0 = await F.storedLeases(etcd, ov.prefix);
    const pids0 = [await L.pluginPids(h1), await L.pluginPids(h2)];
    const logAt = [d1.logs().length, d2.logs().length];
    const probe = F.startProbe(await F.containerPid(d1, 'c1'), await ipOf(d2, 'c2'), { maxSeconds: 150 });
    await waitFor(async () => probe.answered().length > 10, { timeoutMs: 10_000, what: 'probe answers before the outage' });
    await etcd.kill();
    const down = Date.now();
    const r = await run2(d1, 'during', []);
    const outage = { code: r.code, ms: F.since(down), stderr: r.stderr.trim().split('\n').slice(-1)[0] ?? '' };
    t.diagnostic(`docker run during the outage: exit ${outage.code} after ${outage.ms} ms: ${outage.stderr}`);
    if (r.code !== 0) assert.match(r.stderr, /etcd at http:\/\/192\.0\.2\.254:\d+ (refused the connection|did not answer|is unreachable|is unavailable|dropped the connection)/, 'the failure names etcd and its endpoint');
    await d1.docker(['rm', '-f', 'during']);
    // The outage lasts OUTAGE_MS; meanwhile the plugins must stay the same processes.
    while (Date.now() - down < OUTAGE_MS) {
      await sleep(Math.min(2_000, OUTAGE_MS - (Date.now() - down)));
      assert.deepEqual([await L.pluginPids(h1), await L.pluginPids(h2)], pids0, 'plugin processes unchanged during the outage');
    }
    await etcd.start();
    const back = Date.now();
    const recover = async (d: DockerHost, name: string) => {
      await waitFor(async () => {
        const x = await run2(d, name);
        if (x.code !== 0) await d.docker(['rm', '-f', name]);
        return x.code === 0;
      }, { timeoutMs: 60_000, intervalMs: 200, what: `docker run ${name} after etcd's return` });
      return F.since(back);
    };
    const [recoveryH1, recoveryH2] = await Promise.all([recover(d1, 'r1'), recover(d2, 'r2')]);
    const res = await probe.stop();
    const leases1 = await F.storedLeases(etcd, ov.prefix);
    figures.etcdOutage = { outageMs: back - down, probesJudged: res.judged, lostProbes: res.lost, longestGapMs: res.longestGapMs, longestWallGapMs: res.longestWallGapMs, maxRttMs: res.maxRttMs, dockerRunDuringOutage: outage, recoveryMs: { h1: recoveryH1, h2: recoveryH2 } };
    t.diagnostic(`etcd outage ${back - down} ms: ${res.judged} probes, ${res.lost} lost, longest gap ${res.longestGapMs} ms (wall clock ${res.longestWallGapMs} ms), max RTT ${res.maxRttMs} ms; docker run works again ${recoveryH1} ms (h1) / ${recoveryH2} ms (h2) after etcd's return`);
    assert.equal(res.lost, 0, 'no probe lost during the etcd outage');
    assert.ok(res.longestGapMs < 1_000, `longest gap ${res.longestGapMs} ms`);
    assert.ok(res.maxRttMs < 1_000, `max RTT ${res.maxRttMs} ms`);
    assert.ok(res.judged > (OUTAGE_MS / 20) * 0.5, `${res.judged} probes sent`);
    assert.ok(recoveryH1 < 30_000 && recoveryH2 < 30_000, 'recovered within 30 s of etcd\'s return');
    for (const ip of [h1.ip, h2.ip]) {
      assert.equal(leases1.get(ip)?.subnet, leases0.get(ip)!.subnet, `${ip} keeps its subnet`);
      assert.equal(leases1.get(ip)?.createRevision, leases0.get(ip)!.createRevision, `${ip}'s lease key was never re-created`);
    }
    // The subnet lease must survive (its TTL is 90 s); the name lease (NAME_TTL 30 s) may not, and
    // then the names must come back by themselves: c1 and c2 are in etcd again.
    [d1, d2].forEach((d, i) => assert.doesNotMatch(logSince(d, logAt[i]!), /subnet lease lost|"msg":"lease lost/, `no subnet lease lost on ${d.host.ns}`));
    await waitFor(async () => {
      const names = await F.storedNames(etcd, ov.prefix);
      return names.has('c1') && names.has('c2');
    }, { timeoutMs: 30_000, what: 'the name records of c1 and c2 back in etcd after the outage' });
    assert.deepEqual([await L.pluginPids(h1), await L.pluginPids(h2)], pids0, 'no plugin restart');
    await d1.dockerOk(['rm', '-f', 'r1']);
    await d2.dockerOk(['rm', '-f', 'r2']);
    await audit('the etcd outage');
  });

  it(`2. h2 lost with LEASE_TTL=${SHORT_TTL}: its lease expires, h1 removes its entries; back, it gets its subnet and MAC again and h1 re-learns it`, async (t) => {
    // The operator shortens h2's lease TTL (disable, set, enable: the plugin re-puts its lease with the new TTL).
    await d2.dockerOk(['plugin', 'disable', '-f', 'overlay-flannel'], { timeoutMs: 60_000 });
    await d2.dockerOk(['plugin', 'set', 'overlay-flannel', `LEASE_TTL=${SHORT_TTL}`, 'LEASE_RENEW_MARGIN=10']);
    await d2.dockerOk(['plugin', 'enable', 'overlay-flannel'], { timeoutMs: 60_000 });
    const ttl = await waitFor(async () => {
      const { stdout } = await etcd.etcdctl(['get', `${ov.prefix}/subnets/${subnet.get(d2)!.replace('/', '-')}`, '-w', 'json']);
      const lease = /"lease":(\d+)/.exec(stdout)?.[1]; // an int64: JSON.parse would round it
      if (!lease) return false;
      const tl = JSON.parse((await etcd.etcdctl(['lease', 'timetolive', BigInt(lease).toString(16), '-w', 'json'])).stdout) as { 'granted-ttl': number };
      return tl['granted-ttl'] === SHORT_TTL && tl['granted-ttl'];
    }, { timeoutMs: 30_000, intervalMs: 300, what: `h2's lease on an etcd lease of ${SHORT_TTL} s` });
    assert.equal(ttl, SHORT_TTL);
    const before2 = (await F.storedLeases(etcd, ov.prefix)).get(h2.ip)!;
    assert.equal(before2.subnet, subnet.get(d2));
    const peer = { subnet: before2.subnet, vtepMac: before2.vtepMac, publicIP: h2.ip };
    assert.deepEqual(await F.peerEntries(h1, ov.vni, peer), { neigh: true, fdb: true, route: true }, 'h1 has h2\'s entries before');
    await L.pingOk(d1, 'c1', await ipOf(d2, 'c2'));
    const probe = F.startProbe(await F.containerPid(d1, 'c1'), await ipOf(d2, 'c2'), { maxSeconds: 120 });
    await waitFor(async () => probe.answered().length > 10, { timeoutMs: 10_000, what: 'probe answers before the cut' });
    const lan = (await fl!.lab.lan()).ns;
    const key = `${ov.prefix}/subnets/${before2.subnet.replace('/', '-')}`;
    const watch = F.watchKey(etcd, key, (await F.etcdRevision(etcd)) + 1);
    const entriesOnH1 = () => F.peerEntries(h1, ov.vni, peer);
    let cut = 0;
    let up = 0;
    let after2: F.StoredLease;
    let expiredMs: number, removedMs: number, leaseBackMs: number, relearnMs: number;
    try {
      await run('ip', ['-n', lan, 'link', 'set', 'p2', 'down']);
      cut = Date.now();
      await waitFor(async () => {
        const e = await entriesOnH1();
        return !e.neigh && !e.fdb && !e.route;
      }, { timeoutMs: (SHORT_TTL + 30) * 1000, intervalMs: 100, what: 'h2\'s entries gone from h1' });
      removedMs = F.since(cut);
      const deleted = await waitFor(async () => watch.events.find((e) => e.type === 'DELETE'), { timeoutMs: 10_000, what: `DELETE of ${key} (expiry)` });
      expiredMs = deleted.at - cut;
      await run('ip', ['-n', lan, 'link', 'set', 'p2', 'up']);
      up = Date.now();
      // Both timed from the moment h2 is back on the LAN, independently.
      [leaseBackMs, relearnMs] = await Promise.all([
        waitFor(async () => watch.events.find((e) => e.type === 'PUT' && e.at >= up), { timeoutMs: 30_000, intervalMs: 20, what: 'h2\'s lease back' }).then((e) => e.at - up),
        waitFor(async () => {
          const e = await entriesOnH1();
          return e.neigh && e.fdb && e.route;
        }, { timeoutMs: 30_000, intervalMs: 100, what: 'h1 re-learned h2' }).then(() => F.since(up)),
      ]);
      after2 = (await F.storedLeases(etcd, ov.prefix)).get(h2.ip)!;
    } finally {
      watch.stop();
    }
    await waitFor(async () => probe.answered().some((a) => a > up), { timeoutMs: 30_000, what: 'probe answers after h2 came back' });
    const trafficMs = Math.min(...probe.answered().filter((a) => a > up)) - up;
    const res = await probe.stop();
    figures.hostLost = { leaseTtlSec: SHORT_TTL, cutMs: up - cut, leaseExpiredAfterCutMs: expiredMs, entriesRemovedAfterCutMs: removedMs, leaseBackMs, relearnedMs: relearnMs, trafficBackMs: trafficMs, lostProbes: res.lost, longestGapMs: res.longestGapMs, longestWallGapMs: res.longestWallGapMs, sameSubnet: after2.subnet === before2.subnet, sameVtepMac: after2.vtepMac === before2.vtepMac };
    t.diagnostic(`host lost: lease expired ${expiredMs} ms and h1's entries removed ${removedMs} ms after the cut; back: lease in ${leaseBackMs} ms, re-learned in ${relearnMs} ms, traffic in ${trafficMs} ms; ${res.lost} probes lost, longest gap ${res.longestGapMs} ms`);
    assert.ok(expiredMs <= (SHORT_TTL + 10) * 1000, `expiry ${expiredMs} ms after the cut, TTL ${SHORT_TTL} s`);
    assert.ok(removedMs - expiredMs < 5_000, `h1 removed the entries ${removedMs - expiredMs} ms after the expiry`);
    assert.equal(after2.subnet, before2.subnet, 'h2 got its subnet back');
    assert.equal(after2.vtepMac, before2.vtepMac, 'h2 got its VtepMAC back');
    assert.notEqual(after2.createRevision, before2.createRevision, 'the lease key was re-created (it had expired)');
    assert.ok(res.lost > 0, 'probes were lost while h2 was cut off (the cut was real)');
    await L.pingOk(d1, 'c1', await ipOf(d2, 'c2'));
    await L.pingOk(d2, 'c2', await ipOf(d1, 'c1'));
    await audit('the host loss');
  });

  it('3. h2 rebooted with stale kernel entries and stale records: both reconciled, --restart=always containers reachable', async (t) => {
    const before3 = (await F.storedLeases(etcd, ov.prefix)).get(h2.ip)!;
    const h1Lease = (await F.storedLeases(etcd, ov.prefix)).get(h1.ip)!;
    const ipsBefore = await Promise.all(['c2', 'c3'].map((c) => ipOf(d2, c)));
    const probe = F.startProbe(await F.containerPid(d1, 'c1'), await ipOf(d2, 'c2'), { maxSeconds: 120 });
    await waitFor(async () => probe.answered().length > 10, { timeoutMs: 10_000, what: 'probe answers before the crash' });
    const logAt = d2.logs().length;
    await d2.crash(await L.pluginPids(h2));
    const crashed = Date.now();
    assert.deepEqual(await L.pluginPids(h2), [], 'no plugin process left on h2');
    // Stale kernel state: a peer that no longer exists, and h1's FDB entry missing.
    const dev = `flannel.${ov.vni}`;
    const taken = new Set([before3.subnet, h1Lease.subnet]);
    const ghost = Array.from({ length: 200 }, (_, i) => ov.network.replace(/\.0\.0\/16$/, `.${250 - i}.0/24`)).find((s) => !taken.has(s))!;
    const ghostNext = ghost.split('/')[0]!;
    const ghostMac = `0e:${randomBytes(5).toString('hex').match(/../g)!.join(':')}`;
    const ip2 = (...a: string[]) => run('ip', ['-n', h2.ns, ...a]);
    await ip2('neigh', 'replace', ghostNext, 'lladdr', ghostMac, 'dev', dev, 'nud', 'permanent');
    await run('bridge', ['-n', h2.ns, 'fdb', 'append', ghostMac, 'dst', '192.0.2.99', 'dev', dev, 'self', 'permanent']);
    await ip2('route', 'replace', ghost, 'via', ghostNext, 'dev', dev, 'onlink');
    await run('bridge', ['-n', h2.ns, 'fdb', 'del', h1Lease.vtepMac, 'dst', h1.ip, 'dev', dev, 'self']);
    const ghostPeer = { subnet: ghost, vtepMac: ghostMac, publicIP: '192.0.2.99' };
    assert.deepEqual(await F.peerEntries(h2, ov.vni, ghostPeer), { neigh: true, fdb: true, route: true }, 'stale entries in place');
    // Stale records in h2's lease: three left from before the crash (an hour old) and one just written.
    const used = new Set(await L.addressRecords(etcd, ov.prefix, before3.subnet));
    const base = before3.subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
    const free = Array.from({ length: 50 }, (_, i) => `${base}.${200 + i}`).filter((a) => !used.has(a));
    const [old1, old2, old3, young] = free;
    const put = (ip: string, createdAt: Date) =>
      etcd.etcdctl(['put', `${ov.prefix}/overlay-flannel/addresses/${before3.subnet.replace('/', '-')}/${ip}`, JSON.stringify({ owner: `docker/${randomBytes(6).toString('hex')}`, createdAt: createdAt.toISOString() })]);
    for (const a of [old1!, old2!, old3!]) await put(a, new Date(Date.now() - 3_600_000));
    await put(young!, new Date());
    const started = Date.now();
    await d2.start();
    const dockerdReadyMs = F.since(started);
    const ips = await waitFor(async () => {
      const c = await F.containersOn(d2, net);
      return c.has('c2') && c.has('c3') && c;
    }, { timeoutMs: 60_000, intervalMs: 300, what: 'c2 and c3 restarted on h2' });
    await L.pingOk(d1, 'c1', ips.get('c2')!, 60_000);
    const connectedMs = F.since(started);
    await waitFor(async () => {
      const g = await F.peerEntries(h2, ov.vni, ghostPeer);
      const h = await F.peerEntries(h2, ov.vni, { subnet: h1Lease.subnet, vtepMac: h1Lease.vtepMac, publicIP: h1.ip });
      return !g.neigh && !g.fdb && !g.route && h.neigh && h.fdb && h.route;
    }, { timeoutMs: 30_000, intervalMs: 200, what: 'stale entries gone and h1\'s entries back on h2' });
    const kernelMs = F.since(started);
    await waitFor(async () => {
      const recs = await L.addressRecords(etcd, ov.prefix, before3.subnet);
      return ![old1, old2, old3].some((a) => recs.includes(a!));
    }, { timeoutMs: 60_000, intervalMs: 300, what: 'the stale records released' });
    const recordsMs = F.since(started);
    const recs = await L.addressRecords(etcd, ov.prefix, before3.subnet);
    assert.ok(recs.includes(young!), `the young orphan record ${young} is kept (grace period): ${recs.join(' ')}`);
    const releasedLines = logSince(d2, logAt).split('\n').filter((l) => /released an address record no Docker endpoint holds/.test(l));
    for (const a of [old1, old2, old3]) assert.ok(releasedLines.some((l) => l.includes(a!)), `the plugin logged the release of ${a}`);
    const res = await probe.stop();
    const after3 = (await F.storedLeases(etcd, ov.prefix)).get(h2.ip)!;
    assert.equal(after3.subnet, before3.subnet, 'h2 kept its subnet');
    assert.equal(after3.vtepMac, before3.vtepMac, 'h2 kept its VtepMAC');
    const steady = F.startProbe(await F.containerPid(d1, 'c1'), ips.get('c2')!, { maxSeconds: 30 });
    await waitFor(async () => steady.answered().length >= 150, { timeoutMs: 20_000, what: '150 answers from c2 after the reboot' });
    const st = await steady.stop();
    const released = [old1, old2, old3, ...ipsBefore].filter((a) => releasedLines.some((l) => l.includes(`"${a}"`) || l.includes(`\\"${a}\\"`)));
    figures.hostReboot = { downMs: started - crashed, dockerdReadyMs, containerAddresses: { before: ipsBefore, after: [ips.get('c2'), ips.get('c3')] }, auditReleased: released, connectedAfterStartMs: connectedMs, kernelReconciledMs: kernelMs, orphanRecordsReleasedMs: recordsMs, orphansReleased: 3, youngOrphanKept: true, probesToOldAddressOfC2: { lost: res.lost, longestGapMs: res.longestGapMs, longestWallGapMs: res.longestWallGapMs }, afterReboot: { probes: st.judged, lost: st.lost, longestGapMs: st.longestGapMs, longestWallGapMs: st.longestWallGapMs } };
    t.diagnostic(`reboot: dockerd ready in ${dockerdReadyMs} ms; from its start: c2 reachable in ${connectedMs} ms, kernel reconciled by ${kernelMs} ms, stale records released by ${recordsMs} ms (audit released ${released.join(' ')}); c2/c3 ${ipsBefore.join('/')} → ${ips.get('c2')}/${ips.get('c3')}; afterwards ${st.judged} probes, ${st.lost} lost`);
    assert.equal(st.lost, 0, 'no probe lost after the reboot');
    assert.ok(st.longestGapMs < 1_000, `longest gap after the reboot ${st.longestGapMs} ms`);
    // Cleanup of the young orphan (the audit keeps it for its grace period), then the audit.
    await etcd.etcdctl(['del', `${ov.prefix}/overlay-flannel/addresses/${before3.subnet.replace('/', '-')}/${young}`]);
    await audit('the reboot');
  });
});
