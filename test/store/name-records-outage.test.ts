/**
 * name-records-outage.test.ts — DNS name records (src/store/name-records.ts) through an etcd
 * outage longer than the names' TTL, and at scale: 10,000 records re-registered, listed by a
 * watcher (time and heap measured) and revoked at once. Its own etcd, since it stops it.
 * The numbers are printed as `# measured …` lines.
 */
import assert from 'node:assert/strict';
import { nameRecord } from '../helpers/name-records';
import { after, before, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { NameRecord } from '../../src/domain/name-record';
import { openStore, type NameWatcher } from '../../src/store';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import { captureLogger, randomPrefix, testLogger } from '../helpers/store-fixtures';
import { waitFor } from '../helpers/wait';

let etcd: EtcdServer;
before(async () => {
  etcd = await startEtcd();
});
after(async () => etcd?.cleanup());

const TTL = 4;
const rec = (host: string, endpointId: string, containerName: string, ip: string): NameRecord =>
  nameRecord({ networkId: 'net1', networkName: 'appnet', containerName, endpointId, aliases: [`${containerName}-alias`], ipv4: [ip], host });
const names = (w: NameWatcher) => w.records().map((r) => `${r.endpointId}@${r.host}`).sort();
const measured = (what: string, value: string) => console.log(`# measured ${what}: ${value}`);

it('an etcd outage longer than the TTL: the watcher keeps its set, then catches up; registries re-register', { timeout: 90_000 }, async () => {
  const prefix = randomPrefix();
  const { logger, lines } = captureLogger('info');
  const store = openStore({ etcdEndpoints: [etcd.endpoint], etcdPrefix: prefix }, logger);
  try {
    const ov = store.overlay();
    const w = ov.nameWatcher();
    const removals: string[] = [];
    w.on('remove', (r) => removals.push(r.endpointId));
    await w.start();
    const h1 = ov.nameRegistry({ host: '192.0.2.81', ttlSec: TTL });
    const h2 = ov.nameRegistry({ host: '192.0.2.82', ttlSec: TTL });
    await h1.put(rec('192.0.2.81', 'a', 'a', '10.1.30.2'));
    await h2.put(rec('192.0.2.82', 'b', 'b', '10.1.31.2'));
    await waitFor(async () => w.size === 2, { what: 'both names' });

    await etcd.stop();
    const downAt = Date.now();
    await waitFor(async () => w.problem !== null, { what: 'the watcher noticing the outage', timeoutMs: 15_000 });
    await assert.rejects(h1.put(rec('192.0.2.81', 'c', 'c', '10.1.30.3')), (e: Error & { code?: string }) => e.code === 'UNAVAILABLE' && /held and written when etcd answers/.test(e.message));
    // Past the TTL with etcd down: the known names still resolve.
    await waitFor(async () => Date.now() - downAt > (TTL + 2) * 1000 && names(w).join() === 'a@192.0.2.81,b@192.0.2.82', { what: 'the set kept past the TTL', timeoutMs: (TTL + 6) * 1000 });
    assert.deepEqual(removals, []);
    assert.ok(h1.lease.stats.keepAliveFailures >= 1, JSON.stringify(h1.lease.stats));

    await etcd.start();
    const upAt = Date.now();
    await etcd.etcdctl(['put', ov.keys.nameKey('net1', 'z'), JSON.stringify({ v: 1, network: { id: 'net1', name: 'appnet' }, container: { name: 'z' }, endpointId: 'z', aliases: [], ipv4: ['10.1.32.2'], host: '192.0.2.83', updatedAt: new Date().toISOString() })]);
    await waitFor(async () => names(w).join() === 'a@192.0.2.81,b@192.0.2.82,c@192.0.2.81,z@192.0.2.83', { what: 'the watcher caught up', timeoutMs: 20_000 });
    measured(`watcher caught up after an etcd outage of ${Math.round((upAt - downAt) / 1000)} s (TTL ${TTL} s)`, `${Date.now() - upAt} ms after the restart`);
    // Every record of a registry is bound to that registry's current lease (re-granted or kept).
    await waitFor(
      async () => {
        const kvs = (await store.client.getAll().prefix(ov.keys.namesRoot).exec()).kvs;
        const leaseOf = (ep: string) => String(kvs.find((kv) => kv.key.toString().endsWith(`/${ep}`))?.lease);
        return leaseOf('a') === h1.lease.id && leaseOf('c') === h1.lease.id && leaseOf('b') === h2.lease.id;
      },
      { what: 'records bound to the current leases', timeoutMs: 15_000 },
    );
    // Old leases expire holding nothing: no name goes.
    await new Promise((r) => setTimeout(r, (TTL + 2) * 1000));
    assert.deepEqual(removals, []);
    assert.equal(w.size, 4);
    assert.ok(lines.some((l) => /name lease keep-alive failed/.test(String(l.msg))), 'the outage was logged');
    await Promise.all([h1.stop(), h2.stop(), w.stop()]);
  } finally {
    await store.close();
  }
});

it('10,000 names: re-registered, listed by a watcher (heap and time measured), revoked at once', { timeout: 180_000 }, async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const prefix = randomPrefix();
  const store = openStore({ etcdEndpoints: [etcd.endpoint], etcdPrefix: prefix }, testLogger());
  try {
    const ov = store.overlay();
    const N = 10_000;
    const records = Array.from({ length: N }, (_, i) => rec(`192.0.2.${(i % 10) + 100}`, `ep${i}`, `c${i}`, `10.1.${40 + Math.floor(i / 250)}.${(i % 250) + 2}`));
    const byHost = new Map<string, NameRecord[]>();
    for (const r of records) byHost.set(r.host, [...(byHost.get(r.host) ?? []), r]);
    const regs = [...byHost.keys()].map((host) => ov.nameRegistry({ host, ttlSec: 30 }));
    let t = Date.now();
    for (const [i, reg] of regs.entries()) await reg.replaceAll(byHost.get([...byHost.keys()][i]!)!);
    measured(`replaceAll of ${N} names by 10 registries (1000 each, one after another)`, `${Date.now() - t} ms`);

    t = Date.now();
    const listed = await store.client.getAll().prefix(ov.keys.namesRoot).exec();
    const listMs = Date.now() - t;
    assert.equal(listed.kvs.length, N);
    const bytes = listed.kvs.reduce((n, kv) => n + kv.key.length + kv.value.length, 0);
    measured(`plain list of ${N} names`, `${listMs} ms, ${(bytes / 1e6).toFixed(2)} MB of keys and values`);

    gc();
    gc();
    const heap0 = process.memoryUsage().heapUsed;
    let w: NameWatcher | null = ov.nameWatcher();
    t = Date.now();
    await w.start();
    const startMs = Date.now() - t;
    assert.equal(w.size, N);
    gc();
    gc();
    const delta = process.memoryUsage().heapUsed - heap0;
    measured(`watcher start (list + decode + index) of ${N} names`, `${startMs} ms`);
    measured(`watcher heap for ${N} names`, `+${(delta / 1e6).toFixed(1)} MB (${Math.round(delta / N)} B/record)`);
    assert.ok(delta > 0 && delta < 40e6, `heap delta ${delta}`);

    const stopAt = Date.now();
    await regs[0]!.stop();
    const perHost = byHost.get([...byHost.keys()][0]!)!.length;
    await waitFor(async () => w!.size === N - perHost, { what: 'one host revoked', timeoutMs: 5000, intervalMs: 20 });
    measured(`revoke of one host's ${perHost} names seen by the watcher`, `${Date.now() - stopAt} ms`);
    await Promise.all(regs.slice(1).map((r) => r.stop()));
    await waitFor(async () => w!.size === 0, { what: 'all revoked', timeoutMs: 15_000 });
    await w.stop();
    w = null;
  } finally {
    await store.close();
  }
});
