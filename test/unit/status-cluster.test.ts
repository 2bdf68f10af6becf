// The status server's whole-overlay view (GET /api/v1/cluster, the page's inlined data, the
// "cluster" and "containers" events) over a generated overlay: hosts and kinds, containers,
// events as hosts and containers come and go, and an etcd outage kept as the last state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { buildStatusServer, ClusterTracker, StatusMetrics } from '../../src/status/server';
import { generatedOverlay, hostIP, makeLease, makeRecord } from '../helpers/cluster-source';

const silent = pino({ level: 'silent' });

test('/api/v1/cluster: every host with its kind and containers, every container with its lease', async () => {
  const g = generatedOverlay(4, 6);
  const app = buildStatusServer(g.src, silent, { metrics: new StatusMetrics() });
  try {
    const c = (await app.inject('/api/v1/cluster')).json();
    assert.deepEqual(Object.keys(c).sort(), ['containers', 'counts', 'events', 'generatedAt', 'hosts', 'matrix', 'problems', 'stale', 'staleSince', 'thisHost']);
    assert.deepEqual(c.counts, { hosts: 4, pluginHosts: 3, flanneldHosts: 1, containers: 6 });
    assert.deepEqual(
      c.hosts.map((h: { publicIP: string; kind: string; containers: number; own: boolean; programmed: boolean | null }) => `${h.publicIP} ${h.kind} ${h.containers} ${h.own} ${h.programmed}`),
      // 2 per host on hosts 1 and 2, the rest on this host, none on the last (flanneld)
      [`${hostIP(0)} plugin 2 true null`, `${hostIP(1)} plugin 2 false true`, `${hostIP(2)} plugin 2 false true`, `${hostIP(3)} flanneld 0 false true`],
    );
    const web = c.containers.find((x: { name: string }) => x.name === 'svc1-0');
    assert.deepEqual(web, { name: 'svc1-0', aliases: ['api1'], addresses: ['10.20.1.2'], network: 'appnet', host: hostIP(1), overlay: 'default', subnet: '10.20.1.0/24' });
    assert.equal(c.stale, false);
    assert.deepEqual(c.problems, []);
    assert.equal(c.thisHost, hostIP(0));
  } finally {
    await app.close();
  }
});

test('events: a host joins, a container starts and stops, a host goes; the log is newest first', async () => {
  const g = generatedOverlay(3, 2);
  const tracker = new ClusterTracker(g.src);
  const app = buildStatusServer(g.src, silent, { metrics: new StatusMetrics(), cluster: tracker });
  try {
    await tracker.step(); // the baseline
    g.leases.push(makeLease(7, Date.now() + 3_600_000));
    g.records.push(makeRecord(7, 0));
    await tracker.step();
    g.records.splice(0, 1);
    g.leases.splice(2, 1);
    const c = (await app.inject('/api/v1/cluster')).json();
    assert.deepEqual(
      c.events.map((e: { kind: string; host: string }) => `${e.kind} ${e.host}`),
      [`container-stopped ${hostIP(1)}`, `host-lost ${hostIP(2)}`, `container-started ${hostIP(7)}`, `host-joined ${hostIP(7)}`],
    );
  } finally {
    await app.close();
  }
});

test('etcd away: the last state is kept and marked stale, expiries as last known; the page and the stream carry the view', async () => {
  const g = generatedOverlay(3, 3, 4000);
  const tracker = new ClusterTracker(g.src);
  const app = buildStatusServer(g.src, silent, { metrics: new StatusMetrics(), cluster: tracker });
  await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const before = (await app.inject('/api/v1/cluster')).json();
    g.etcd.up = false;
    g.etcd.since = Date.now();
    g.etcd.lastError = 'etcd at http://192.0.2.254:2379 is unreachable';
    g.names.stale = true;
    // The peers' expiries can no longer be asked: the view keeps the last ones.
    for (let i = 0; i < g.leases.length; i++) g.leases[i] = { ...g.leases[i]!, expiresAt: undefined };
    const c = (await app.inject('/api/v1/cluster')).json();
    assert.equal(c.stale, true);
    assert.equal(c.staleSince, new Date(g.etcd.since).toISOString());
    assert.deepEqual(c.hosts.map((h: { expiresAt: string }) => h.expiresAt), before.hosts.map((h: { expiresAt: string }) => h.expiresAt));
    assert.equal(c.containers.length, 3);
    assert.deepEqual(c.problems.map((p: { kind: string }) => p.kind).slice(0, 2), ['etcd-down', 'names-stale']);
    assert.equal(c.events[0].kind, 'etcd-down');
    const html = (await app.inject('/')).body;
    assert.match(html, /"stale":true/);
    assert.match(html, /"rows":\[\["svc0-0","api0","10\.20\.0\.2",\d+,\d+\],\["svc1-0","api1","10\.20\.1\.2",\d+,\d+\]/, 'containers inlined as compact rows');
    assert.doesNotMatch(html, /"neighbours"/, 'the kernel peers are not inlined (the hosts carry "programmed")');
    const port = app.address()!.port;
    const ac = new AbortController();
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/events`, { signal: ac.signal });
    const reader = res.body!.getReader();
    let buf = '';
    const deadline = Date.now() + 5000;
    while (!/event: containers\n/.test(buf) && Date.now() < deadline) buf += Buffer.from((await reader.read()).value ?? []).toString();
    ac.abort();
    assert.deepEqual([...buf.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]), ['status', 'cluster', 'containers']);
    const cluster = JSON.parse(/event: cluster\ndata: (.*)\n/.exec(buf)![1]!);
    assert.equal(cluster.stale, true);
    assert.equal(cluster.containers, undefined, 'containers come in their own event');
  } finally {
    await app.close();
  }
});
