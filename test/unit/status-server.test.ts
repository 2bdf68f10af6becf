// The status server through app.inject with fake agents: JSON shapes, /healthz, /metrics names,
// the API observer, the dataplane hook, the SSE stream and the page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import pino from 'pino';
import { buildStatusServer, StatusAgent, StatusMetrics, StatusSource } from '../../src/status/server';
import { parseCidr } from '../../src/domain/ipv4';
import { parseCidr6 } from '../../src/domain/ipv6';
import type { Lease } from '../../src/domain/lease';
import { setDataplaneObserver } from '../../src/reconcile/overlay-dataplane';

const silent = pino({ level: 'silent' });

function lease(subnet: string, publicIP: string, mac: string, expiresAt?: number): Lease {
  return { subnet: parseCidr(subnet), attrs: { publicIP, backendType: 'vxlan', vxlan: { vni: 7, vtepMac: mac } }, etcdLease: '1', ...(expiresAt !== undefined ? { expiresAt } : {}) };
}

class FakeAgent extends EventEmitter {
  state: StatusAgent['state'] = 'ready';
  lastConfigError: string | null = null;
  config = { network: parseCidr('10.5.0.0/16'), subnetLen: 24, backend: { type: 'vxlan', vni: 7 } };
  own = lease('10.5.1.0/24', '192.0.2.1', '0e:00:00:00:00:01', Date.UTC(2030, 0, 1));
  leases = [this.own, lease('10.5.2.0/24', '192.0.2.2', '0e:00:00:00:00:02')];
  dataplane = {
    knownLeases: () => this.leases,
    appliedPeers: () => new Map([['10.5.2.0/24', { neighbours: [{ ip: '10.5.2.0', mac: '0e:00:00:00:00:02' }], fdb: [{ mac: '0e:00:00:00:00:02', dst: '192.0.2.2' }], routes: [{ dst: '10.5.2.0/24', gateway: '10.5.2.0', dev: 'vxlan', onlink: true }] }]]),
    stats: { fullSyncs: 3, fastSyncs: 2, opsApplied: 6, errors: 0, lastDrift: 1 },
    deviceName: 'flannel.7',
    mtu: 1450,
  };
  lease(): Lease | null {
    return this.state === 'ready' ? this.own : null;
  }
  lastSeen(subnet: string): number | undefined {
    return subnet === '10.5.2.0/24' ? Date.UTC(2029, 5, 1) : undefined;
  }
  async leaseExpiry(l: Lease): Promise<number | undefined> {
    return l.attrs.publicIP === '192.0.2.2' ? Date.UTC(2029, 5, 2) : undefined;
  }
}

const etcdState = { up: true as boolean | null, lastOkAt: Date.UTC(2029, 0, 1), since: Date.UTC(2028, 0, 1), lastError: null as string | null };

function setup(agent = new FakeAgent(), serving: boolean | null = true) {
  const src: StatusSource = {
    defaultOverlay: 'default',
    overlays: () => [{ name: 'default', prefix: '/x/network', agent: agent as unknown as StatusAgent }],
    socketServing: () => serving,
    publicIP: '192.0.2.1',
    etcd: () => etcdState,
    containers: async () => ({ source: 'docker', dockerError: null, endpoints: [{ endpoint: 'abcdef012345', hostVeth: 'ofhabcdef012345', bridge: 'ofb-0123456789a', network: 'chat', networkId: '0123456789abcdef', address: '10.5.1.2', address6: 'fd00:5:0:1::2', container: 'web', containerId: 'c1' }] }),
  };
  const metrics = new StatusMetrics();
  const app = buildStatusServer(src, silent, { metrics, wireIntervalMs: 20 });
  return { app, agent, metrics };
}

test('/api/v1/overlays lists config, state, own lease and every lease', async () => {
  const { app } = setup();
  const r = await app.inject('/api/v1/overlays');
  assert.equal(r.statusCode, 200);
  const j = r.json();
  assert.equal(j.publicIP, '192.0.2.1');
  const o = j.overlays[0];
  assert.deepEqual(
    { name: o.name, prefix: o.prefix, state: o.state, network: o.config.network, subnetLen: o.config.subnetLen, backend: o.config.backend.type },
    { name: 'default', prefix: '/x/network', state: 'ready', network: '10.5.0.0/16', subnetLen: 24, backend: 'vxlan' },
  );
  assert.deepEqual(o.lease, { subnet: '10.5.1.0/24', publicIP: '192.0.2.1', backend: 'vxlan', vtepMac: '0e:00:00:00:00:01', expiresAt: '2030-01-01T00:00:00.000Z', lastSeen: null, own: true });
  assert.deepEqual(o.leases.map((l: { subnet: string; own: boolean }) => [l.subnet, l.own]), [['10.5.1.0/24', true], ['10.5.2.0/24', false]]);
  // a peer: expiry asked from etcd (through the agent), last seen from the watch
  assert.deepEqual([o.leases[1].expiresAt, o.leases[1].lastSeen], ['2029-06-02T00:00:00.000Z', '2029-06-01T00:00:00.000Z']);
  await app.close();
});

test('/api/v1/overlays on an IPv6-only overlay: its IPv6Network, and each lease by its v6 subnet (not all as 0.0.0.0/0)', async () => {
  const agent = new FakeAgent();
  const v6only = (n: number, publicIPv6: string): Lease => ({ subnet: parseCidr('0.0.0.0/0'), subnet6: parseCidr6(`fd00:5:0:${n}::/64`), attrs: { publicIP: '0.0.0.0', backendType: 'vxlan', publicIPv6 }, etcdLease: '1' });
  Object.assign(agent, { config: { enableIPv4: false, network: parseCidr('0.0.0.0/0'), subnetLen: 0, ipv6: { network: parseCidr6('fd00:5::/48'), subnetLen: 64 }, backend: { type: 'vxlan', vni: 7 } } });
  agent.own = v6only(1, '2001:db8::1');
  agent.leases = [agent.own, v6only(2, '2001:db8::2')];
  const { app } = setup(agent);
  const o = (await app.inject('/api/v1/overlays')).json().overlays[0];
  assert.deepEqual([o.config.network, o.config.subnetLen], ['fd00:5::/48', 64]);
  assert.deepEqual(o.leases.map((l: { subnet: string; own: boolean }) => [l.subnet, l.own]), [['fd00:5:0:1::/64', true], ['fd00:5:0:2::/64', false]]);
  await app.close();
});

test('/api/v1/containers and /api/v1/etcd', async () => {
  const { app } = setup();
  const c = (await app.inject('/api/v1/containers')).json();
  assert.equal(c.source, 'docker');
  assert.deepEqual([c.endpoints[0].container, c.endpoints[0].address, c.endpoints[0].address6, c.endpoints[0].network], ['web', '10.5.1.2', 'fd00:5:0:1::2', 'chat']);
  const e = (await app.inject('/api/v1/etcd')).json();
  assert.deepEqual(e, { up: true, lastOkAt: '2029-01-01T00:00:00.000Z', since: '2028-01-01T00:00:00.000Z', lastError: null });
  const all = (await app.inject('/api/v1/status')).json();
  assert.deepEqual(Object.keys(all).sort(), ['containers', 'etcd', 'kernel', 'names', 'overlays', 'publicIP']);
  await app.close();
});

test('/api/v1/kernel shows programmed peers and stats', async () => {
  const { app } = setup();
  const j = (await app.inject('/api/v1/kernel')).json();
  const k = j.overlays[0];
  assert.equal(k.device, 'flannel.7');
  assert.equal(k.mtu, 1450);
  assert.deepEqual(k.peers.map((p: { subnet: string }) => p.subnet), ['10.5.2.0/24']);
  assert.equal(k.peers[0].fdb[0].dst, '192.0.2.2');
  assert.deepEqual(k.stats, { fullSyncs: 3, fastSyncs: 2, opsApplied: 6, errors: 0, lastDrift: 1 });
  await app.close();
});

test('/healthz: 200 when ready and serving, else 503 with the reason', async () => {
  const a = setup();
  assert.equal((await a.app.inject('/healthz')).statusCode, 200);
  a.agent.state = 'waiting-for-config';
  a.agent.lastConfigError = 'missing';
  const r = await a.app.inject('/healthz');
  assert.equal(r.statusCode, 503);
  assert.match(r.json().reason, /waiting-for-config.*no overlay config/);
  // An agent that knows the cause (etcd refused the certificate): /healthz says it, as Docker's errors do.
  const cause = 'no lease yet: etcd at https://192.0.2.254:2379 refused this host\'s client certificate (ETCD_CERTFILE=/x.crt)';
  (a.agent as FakeAgent & { notReadyReason?: () => string }).notReadyReason = () => cause;
  a.agent.state = 'acquiring';
  const rc = await a.app.inject('/healthz');
  assert.equal(rc.statusCode, 503);
  assert.equal(rc.json().reason, `the default overlay is acquiring (${cause})`);
  await a.app.close();
  const b = setup(new FakeAgent(), false);
  const r2 = await b.app.inject('/healthz');
  assert.equal(r2.statusCode, 503);
  assert.match(r2.json().reason, /plugin socket/);
  await b.app.close();
});

test('/metrics: names, leases gauge, API observer, dataplane hook, renewals', async () => {
  const { app, metrics, agent } = setup();
  metrics.install();
  try {
    metrics.apiObserver.onCall('NetworkDriver.CreateEndpoint', 200, 12);
    metrics.apiObserver.onCall('NetworkDriver.CreateEndpoint', 503, 40);
    metrics.dataplaneObserver.onSync('full', 0.02, true);
    metrics.dataplaneObserver.onSync('fast', 0.001, false);
    metrics.dataplaneObserver.onOp('replaceRoute');
    agent.emit('renewed', agent.own);
    const r = await app.inject('/metrics');
    assert.equal(r.statusCode, 200);
    assert.match(String(r.headers['content-type']), /text\/plain/);
    const t = r.body;
    for (const line of [
      'overlay_flannel_leases{overlay="default"} 2',
      'overlay_flannel_reconcile_runs_total{kind="full"} 1',
      'overlay_flannel_reconcile_runs_total{kind="fast"} 1',
      'overlay_flannel_reconcile_errors_total 1',
      'overlay_flannel_kernel_ops_total{op="replaceRoute"} 1',
      'overlay_flannel_api_requests_total{call="NetworkDriver.CreateEndpoint",status="200"} 1',
      'overlay_flannel_api_requests_total{call="NetworkDriver.CreateEndpoint",status="503"} 1',
      'overlay_flannel_api_request_duration_seconds_count{call="NetworkDriver.CreateEndpoint"} 2',
      'overlay_flannel_reconcile_duration_seconds_count{kind="full"} 1',
      'overlay_flannel_lease_renewals_total{overlay="default"} 1',
      'overlay_flannel_etcd_up 1',
    ]) {
      assert.ok(t.includes(line), `missing ${line} in\n${t}`);
    }
    etcdState.up = false;
    assert.match((await app.inject('/metrics')).body, /overlay_flannel_etcd_up 0\n/);
    etcdState.up = true;
  } finally {
    setDataplaneObserver(null);
    await app.close();
  }
});

test('/api/v1/events streams a snapshot, then another when peers change; / serves the page', async () => {
  const { app, agent } = setup();
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = app.address()!.port;
  const ac = new AbortController();
  try {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/events`, { signal: ac.signal });
    assert.match(String(res.headers.get('content-type')), /text\/event-stream/);
    const reader = res.body!.getReader();
    let buf = '';
    const nextEvent = async (): Promise<{ overlays: { leases: { subnet: string }[] }[] }> => {
      for (;;) {
        const i = buf.indexOf('\n\n');
        if (i >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          // Only the "status" events here (the "cluster" and "containers" ones: status-cluster.test.ts).
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (data && block.startsWith('event: status\n')) return JSON.parse(data.slice(6));
          continue;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        buf += Buffer.from(value).toString();
      }
    };
    assert.equal((await nextEvent()).overlays[0].leases.length, 2);
    agent.leases = [...agent.leases, lease('10.5.3.0/24', '192.0.2.3', '0e:00:00:00:00:03')];
    agent.emit('peers', { type: 'added' });
    const ev = await nextEvent();
    assert.deepEqual(ev.overlays[0].leases.map((l) => l.subnet), ['10.5.1.0/24', '10.5.2.0/24', '10.5.3.0/24']);
    const page = await fetch(`http://127.0.0.1:${port}/`);
    assert.match(String(page.headers.get('content-type')), /text\/html/);
    const html = await page.text();
    assert.match(html, /EventSource\('api\/v1\/events'\)/);
    assert.match(html, /"subnet":"10.5.3.0\/24"/, 'the first snapshot (the cluster view\'s hosts) is inlined');
    assert.match(html, /"container":"web"/, 'the containers are inlined');
    assert.match(html, /<meta name="viewport" content="width=device-width/);
    assert.doesNotMatch(html, /https?:\/\//, 'no external resources');
  } finally {
    ac.abort();
    await app.close();
  }
});
