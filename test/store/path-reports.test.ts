/**
 * path-reports.test.ts — path reports (src/store/path-reports.ts) against a real etcd: a host's
 * record on an etcd lease of its own, seen by a watcher; writes bounded by the publish rule; a dead
 * host's record gone within its TTL; a clean stop revoking at once; a broken value skipped with a
 * warning while the others stay. One etcd for the file, a prefix per test.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openStore, type Store } from '../../src/store';
import type { PathReport } from '../../src/domain/path-report';
import type { EtcdServer } from '../helpers/etcd-server';
import { captureLogger, randomPrefix, withEtcdStore } from '../helpers/store-fixtures';
import { waitFor } from '../helpers/wait';

let etcd: EtcdServer;
let store: Store;
withEtcdStore((e, s) => {
  etcd = e;
  store = s;
});

const report = (host: string, state: 'reachable' | 'unreachable' = 'reachable'): PathReport => ({
  host,
  version: '0.1.0',
  at: Date.now(),
  overlays: [{ overlay: 'default', peers: [{ peer: '192.0.2.9', subnet: '10.1.9.0/24', state, rttMs: state === 'reachable' ? 0.5 : null, loss: state === 'reachable' ? 0 : 1, lastReplyAt: null }] }],
});

describe('path reports in etcd', { timeout: 60_000 }, () => {
  it('a record on its own lease, seen by the watcher; writes bounded; a dead host\'s record goes within the TTL', async () => {
    const ov = store.overlay(randomPrefix('paths'));
    const w = ov.pathWatcher();
    await w.start();
    const pub = ov.pathPublisher('192.0.2.1', 2);
    await pub.offer(report('192.0.2.1'));
    const key = ov.keys.pathsRoot + '192.0.2.1';
    assert.ok(!key.startsWith(ov.keys.subnetsPrefix), 'not under subnets');
    const kv = (await store.client.get(key).exec()).kvs[0]!;
    assert.ok(kv && String(kv.lease) !== '0', 'on an etcd lease');
    await waitFor(async () => (w.reports().length === 1 ? true : undefined), { timeoutMs: 5000, intervalMs: 50, what: 'the watcher sees the report' });
    assert.equal(w.reports()[0]!.host, '192.0.2.1');
    // A change within 3 s of the last write waits; so does an unchanged report.
    await pub.offer(report('192.0.2.1', 'unreachable'));
    await pub.offer(report('192.0.2.1'));
    assert.equal(pub.stats.puts, 1, 'one put for three offers within 3 s');
    // The host dies (no keep-alive, no revoke): its record goes within the lease's TTL.
    pub.lease.release();
    const t0 = Date.now();
    await waitFor(async () => (w.reports().length === 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 100, what: 'the dead host\'s report gone' });
    const goneMs = Date.now() - t0;
    assert.ok(goneMs < 2000 + 2500, `gone after ${goneMs} ms (TTL 2 s)`);
    console.log(`# measured a dead host's path report gone after ${goneMs} ms (TTL 2 s)`);
    await w.stop();
  });

  it('stop() revokes: the record goes at once', async () => {
    const ov = store.overlay(randomPrefix('paths'));
    const w = ov.pathWatcher();
    await w.start();
    const pub = ov.pathPublisher('192.0.2.2', 30);
    await pub.offer(report('192.0.2.2'));
    await waitFor(async () => (w.reports().length === 1 ? true : undefined), { timeoutMs: 5000, intervalMs: 50, what: 'the report seen' });
    const t0 = Date.now();
    await pub.stop();
    await waitFor(async () => (w.reports().length === 0 ? true : undefined), { timeoutMs: 3000, intervalMs: 20, what: 'the report gone on stop' });
    console.log(`# measured a stopped host's path report gone after ${Date.now() - t0} ms`);
    await w.stop();
  });

  it('a broken value is skipped with a warning; the others stay', async () => {
    const prefix = randomPrefix('paths');
    const { logger, lines } = captureLogger('warn');
    const local = openStore({ etcdEndpoints: [etcd.endpoint], etcdPrefix: prefix }, logger);
    try {
      const ov = local.overlay();
      await etcd.etcdctl(['put', ov.keys.pathsRoot + '192.0.2.7', '{"v":1,']);
      await etcd.etcdctl(['put', ov.keys.pathsRoot + '192.0.2.8', JSON.stringify({ v: 1, host: '192.0.2.99', version: 'x', at: 1, overlays: [] })]);
      await etcd.etcdctl(['put', ov.keys.pathsRoot + 'not-an-ip', '{}']);
      const pub = ov.pathPublisher('192.0.2.3', 30);
      await pub.offer(report('192.0.2.3'));
      const w = ov.pathWatcher();
      await w.start();
      assert.deepEqual(w.reports().map((r) => r.host), ['192.0.2.3']);
      assert.equal(w.skipped, 3);
      const reasons = lines.filter((l) => l.msg === 'path report skipped: its value is broken').map((l) => `${l.key} ${l.reason}`).sort();
      assert.deepEqual(reasons, [
        `${ov.keys.pathsRoot}192.0.2.7 not JSON`,
        `${ov.keys.pathsRoot}192.0.2.8 host 192.0.2.99 does not match its key (192.0.2.8)`,
        `${ov.keys.pathsRoot}not-an-ip the key does not end in an IPv4 address`,
      ]);
      await pub.stop();
      await w.stop();
    } finally {
      await local.close();
    }
  });
});
