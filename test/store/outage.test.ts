/**
 * outage.test.ts — etcd stopped for ~5 s and restarted on the same data dir while a keeper and a
 * lease watcher run: both log, retry with backoff and recover (events written after the restart
 * arrive, renewal succeeds, the lease is never reported lost), and a plain read works again at
 * once (no 5 s circuit-breaker lockout).
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { formatCidr } from '../../src/domain/ipv4';
import { parseNetworkConfig } from '../../src/domain/network-config';
import { openStore, type KeeperEvent, type LeaseEvent } from '../../src/store';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import { captureLogger, randomPrefix, vxlanAttrsFor } from '../helpers/store-fixtures';
import { waitFor } from '../helpers/wait';

const config = parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan"}}');
let etcd: EtcdServer;

before(async () => {
  etcd = await startEtcd();
});
after(async () => etcd?.cleanup());

it('keeper and watcher ride out a 5 s etcd outage', { timeout: 60_000 }, async () => {
  const prefix = randomPrefix();
  const { logger, lines } = captureLogger('info');
  const store = openStore({ etcdEndpoints: [etcd.endpoint], etcdPrefix: prefix }, logger);
  try {
    const ov = store.overlay();
    const w = ov.leases();
    const wEvents: Array<{ at: number; e: LeaseEvent }> = [];
    w.on('event', (e) => wEvents.push({ at: Date.now(), e }));
    await w.start();
    const keeper = ov.keeper({ publicIP: '192.0.2.70', attrsFor: vxlanAttrsFor('192.0.2.70'), ttlSec: 12, renewMarginSec: 8 });
    const kEvents: Array<{ at: number; e: KeeperEvent }> = [];
    keeper.on('event', (e) => kEvents.push({ at: Date.now(), e }));
    const lease = await keeper.acquire(config);

    await etcd.stop();
    await assert.rejects(ov.config.read(), (e: Error & { code?: string }) => e.code === 'UNAVAILABLE');
    await delay(5000);
    await etcd.start();
    const back = Date.now();

    // A unary call works again at once (etcd3's default breaker would refuse for 5 s).
    await waitFor(async () => (await ov.config.read()).state === 'missing', { what: 'a read after restart', timeoutMs: 2000, intervalMs: 50 });
    assert.ok(Date.now() - back < 2000);

    await etcd.etcdctl(['put', `${prefix}/subnets/10.1.200.0-24`, '{"PublicIP":"192.0.2.200","PublicIPv6":null,"BackendType":"host-gw"}']);
    await waitFor(async () => wEvents.some(({ e }) => e.type === 'added' && formatCidr(e.lease.subnet) === '10.1.200.0/24'), {
      what: 'an event written after the restart',
      timeoutMs: 15_000,
    });
    await waitFor(async () => kEvents.some(({ at, e }) => e.type === 'renewed' && at >= back), { what: 'a renewal after the restart', timeoutMs: 15_000 });

    assert.deepEqual(kEvents.map(({ e }) => e.type).filter((t) => t !== 'renewed'), ['acquired'], 'never lost');
    assert.deepEqual(keeper.current()?.subnet, lease.subnet);
    const kv = (await store.client.get(ov.keys.leaseKey(lease.subnet)).exec()).kvs[0];
    assert.equal(String(kv.lease), keeper.current()?.etcdLease);
    assert.ok(w.progress.stats.disconnects >= 1, JSON.stringify(w.progress.stats));
    assert.ok(lines.some((l) => l.level === 40 && /watch disconnected/.test(String(l.msg))), 'watch outage logged');
    assert.ok(lines.some((l) => l.level === 40 && /renewal failed/.test(String(l.msg))), 'renewal failure logged');
    assert.deepEqual(
      w.leases().map((l) => formatCidr(l.subnet)).sort(),
      [formatCidr(lease.subnet), '10.1.200.0/24'].sort(),
    );
  } finally {
    await store.close();
  }
});
