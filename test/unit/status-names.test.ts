// The status server's name records: GET /api/v1/names (rows, age, state) and the
// overlay_flannel_name_records gauge, with a fake names part.
import { test } from 'node:test';
import { nameRecord } from '../helpers/name-records';
import assert from 'node:assert/strict';
import pino from 'pino';
import { buildStatusServer, StatusMetrics, type StatusSource } from '../../src/status/server';
import type { StatusNames } from '../../src/status/names-view';
import type { NameRecord } from '../../src/domain/name-record';

const rec = (over: Partial<NameRecord>): NameRecord =>
  nameRecord({ aliases: ['web'], ipv4: ['10.5.1.2'], updatedAt: new Date(Date.now() - 42_000).toISOString(), ...over });

function setup(names: StatusNames | null) {
  const src: StatusSource = { defaultOverlay: 'default', overlays: () => [], socketServing: () => true, names: () => names };
  const metrics = new StatusMetrics();
  return buildStatusServer(src, pino({ level: 'silent' }), { metrics });
}

test('/api/v1/names lists every record (sorted, with its age) and the names state', async () => {
  let stale = false;
  const records = [
    rec({ containerName: 'zeta', host: '192.0.2.2', endpointId: 'e2'.repeat(32), containerId: 'c'.repeat(64) }),
    rec({}),
    rec({ networkId: 'backnet', networkName: 'backnet', containerName: 'db', endpointId: 'e3'.repeat(32), aliases: [], ipv6: ['2001:db8::3'] }),
  ];
  const app = setup({
    records: () => records,
    state: () => ({ records: records.length, localRecords: 2, etcdStale: stale, problem: stale ? 'etcd at http://192.0.2.9:2379 is unreachable' : null, notWriting: null, lease: '7587' }),
  });
  try {
    const r = await app.inject('/api/v1/names');
    assert.equal(r.statusCode, 200);
    const body = r.json();
    assert.equal(body.enabled, true);
    assert.deepEqual(body.state, { records: 3, localRecords: 2, etcdStale: false, problem: null, notWriting: null, lease: '7587' });
    assert.deepEqual(body.records.map((x: { network: string; name: string }) => `${x.network}/${x.name}`), ['appnet/web-1', 'appnet/zeta', 'backnet/db']);
    const web = body.records[0];
    assert.deepEqual([web.aliases, web.addresses, web.host, web.containerId], [['web'], ['10.5.1.2'], '192.0.2.1', null]);
    assert.ok(web.ageSec >= 41 && web.ageSec <= 50, `age ${web.ageSec}`);
    assert.deepEqual(body.records[2].addresses, ['10.5.1.2', '2001:db8::3']);
    stale = true;
    assert.equal((await app.inject('/api/v1/names')).json().state.etcdStale, true);
  } finally {
    await app.close();
  }
});

test('/api/v1/names with NAMES=false says so; the gauge counts records per network', async () => {
  const off = setup(null);
  try {
    assert.deepEqual((await off.inject('/api/v1/names')).json(), { enabled: false, state: null, resolver: null, records: [] });
    assert.ok(!/overlay_flannel_name_records\{/.test((await off.inject('/metrics')).body));
  } finally {
    await off.close();
  }
  const records = [rec({}), rec({ endpointId: 'e2'.repeat(32), host: '192.0.2.2' }), rec({ networkId: 'backnet', networkName: 'backnet', endpointId: 'e3'.repeat(32) })];
  const on = setup({ records: () => records, state: () => ({ records: 3, localRecords: 1, etcdStale: false, problem: null, notWriting: null, lease: null }) });
  try {
    const t = (await on.inject('/metrics')).body;
    assert.ok(t.includes('overlay_flannel_name_records{network="appnet"} 2'), t);
    assert.ok(t.includes('overlay_flannel_name_records{network="backnet"} 1'), t);
  } finally {
    await on.close();
  }
});
