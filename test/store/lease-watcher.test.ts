/**
 * lease-watcher.test.ts — every host's lease, followed as flanneld follows them: snapshot, added,
 * removed with the old value (also on TTL expiry), malformed values skipped with one warning, and
 * recovery from a watch resumed at a compacted revision. One etcd for the file.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { formatCidr } from '../../src/domain/ipv4';
import { encodeLeaseAttrs, type Lease } from '../../src/domain/lease';
import { parseNetworkConfig } from '../../src/domain/network-config';
import { openStore, type LeaseEvent, type Store } from '../../src/store';
import type { EtcdServer } from '../helpers/etcd-server';
import { captureLogger, nextEvent, randomPrefix, record, startTcpProxy, vxlanAttrsFor } from '../helpers/store-fixtures';
import { withEtcdStore } from '../helpers/store-fixtures';
import { waitFor } from '../helpers/wait';

const FLANNELD_VXLAN = '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}';
const hostGw = (ip: string) => `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"host-gw"}`;
const config = parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan"}}');

let etcd: EtcdServer;
let store: Store;

withEtcdStore((e, s) => {
  etcd = e;
  store = s;
});

const view = (leases: Lease[]) =>
  leases.map((l) => `${formatCidr(l.subnet)} ${l.attrs.publicIP}`).sort();

describe('lease watcher', () => {
  it('snapshot, then added and removed (with the old value) in order; foreign keys ignored', async () => {
    const prefix = randomPrefix();
    await etcd.etcdctl(['put', `${prefix}/subnets/10.1.15.0-24`, FLANNELD_VXLAN]);
    await etcd.etcdctl(['put', `${prefix}/subnets/not-a-lease`, 'x']);
    await etcd.etcdctl(['put', `${prefix}/config`, '{}']);
    const w = store.overlay(prefix).leases();
    const events = record<LeaseEvent>(w, 'event');
    await w.start();
    assert.equal(events[0].type, 'snapshot');
    const snap = events[0] as Extract<LeaseEvent, { type: 'snapshot' }>;
    assert.deepEqual(view(snap.leases), ['10.1.15.0/24 192.168.64.3']);
    assert.deepEqual(snap.leases[0].attrs.vxlan, { vni: 1, vtepMac: 'c6:d2:32:6f:8f:44' });

    await etcd.etcdctl(['put', `${prefix}/subnets/10.1.16.0-24`, hostGw('192.0.2.16')]);
    await etcd.etcdctl(['del', `${prefix}/subnets/10.1.15.0-24`]);
    await waitFor(async () => events.length >= 3, { what: 'added + removed' });
    assert.equal(events[1].type, 'added');
    assert.equal(events[2].type, 'removed');
    const removed = (events[2] as Extract<LeaseEvent, { type: 'removed' }>).lease;
    assert.equal(encodeLeaseAttrs(removed.attrs), FLANNELD_VXLAN, 'removed carries the value it had');
    assert.deepEqual(view(w.leases()), ['10.1.16.0/24 192.0.2.16']);
    assert.equal(events.length, 3);
    await w.stop();
  });

  it('a short-TTL lease of a stopped keeper expires, and another host sees it removed with its value', async () => {
    const prefix = randomPrefix();
    const ov = store.overlay(prefix);
    const w = ov.leases();
    const events = record<LeaseEvent>(w, 'event');
    await w.start();
    const keeper = ov.keeper({ publicIP: '192.0.2.60', attrsFor: vxlanAttrsFor('192.0.2.60'), ttlSec: 2, renewMarginSec: 1 });
    const lease = await keeper.acquire(config);
    await keeper.stop();
    await waitFor(async () => w.leases().length === 1, { what: 'the lease to be seen' });
    const expiry = await w.expiryOf(w.leases()[0]);
    assert.ok(expiry !== undefined && expiry <= Date.now() + 2100, `expiry ${expiry}`);
    await waitFor(async () => events.some((e) => e.type === 'removed'), { what: 'removed on expiry', timeoutMs: 10_000 });
    assert.deepEqual(events.map((e) => e.type), ['snapshot', 'added', 'removed']);
    const removed = (events[2] as Extract<LeaseEvent, { type: 'removed' }>).lease;
    assert.deepEqual(removed.subnet, lease.subnet);
    assert.equal(encodeLeaseAttrs(removed.attrs), encodeLeaseAttrs(lease.attrs));
    assert.equal(removed.etcdLease, lease.etcdLease);
    assert.equal(w.leases().length, 0);
    await w.stop();
  });

  it('skips a malformed value with one warning per key+value and keeps working', async () => {
    const prefix = randomPrefix();
    const { logger, lines } = captureLogger('warn');
    const local = openStore({ etcdEndpoints: [etcd.endpoint], etcdPrefix: prefix }, logger);
    try {
      const w = local.overlay().leases();
      const events = record<LeaseEvent>(w, 'event');
      await etcd.etcdctl(['put', `${prefix}/subnets/10.1.20.0-24`, '{"PublicIP":"nope"']);
      await w.start();
      assert.deepEqual((events[0] as Extract<LeaseEvent, { type: 'snapshot' }>).leases, []);
      await etcd.etcdctl(['put', `${prefix}/subnets/10.1.20.0-24`, '{"PublicIP":"nope"']); // same again: no 2nd warning
      await etcd.etcdctl(['put', `${prefix}/subnets/10.1.21.0-24`, hostGw('192.0.2.21')]);
      await waitFor(async () => events.some((e) => e.type === 'added'), { what: 'added after garbage' });
      const warnings = () => lines.filter((l) => l.msg === 'skipping a lease value that does not parse');
      assert.equal(warnings().length, 1);
      // A good lease turning bad is removed (a snapshot would not list it either).
      await etcd.etcdctl(['put', `${prefix}/subnets/10.1.21.0-24`, 'garbage']);
      await waitFor(async () => events.some((e) => e.type === 'removed'), { what: 'removed when it turned bad' });
      assert.equal(warnings().length, 2);
      assert.deepEqual(w.leases(), []);
      await w.stop();
    } finally {
      await local.close();
    }
  });

  it('recovers from a watch resumed at a compacted revision with a snapshot that matches etcd', async () => {
    const prefix = randomPrefix();
    const proxy = await startTcpProxy({ host: etcd.host, port: etcd.port });
    const { logger, lines } = captureLogger('debug');
    const viaProxy = openStore({ etcdEndpoints: [proxy.endpoint], etcdPrefix: prefix }, logger);
    try {
      for (const n of [30, 31]) await etcd.etcdctl(['put', `${prefix}/subnets/10.1.${n}.0-24`, hostGw(`192.0.2.${n}`)]);
      const w = viaProxy.overlay().leases();
      const snapshots = record<Extract<LeaseEvent, { type: 'snapshot' }>>(w, 'snapshot');
      await w.start();
      assert.deepEqual(view(snapshots[0].leases), ['10.1.30.0/24 192.0.2.30', '10.1.31.0/24 192.0.2.31']);

      proxy.freeze(); // the watcher hears nothing from here on
      await etcd.etcdctl(['del', `${prefix}/subnets/10.1.30.0-24`]);
      await etcd.etcdctl(['put', `${prefix}/subnets/10.1.32.0-24`, hostGw('192.0.2.32')]);
      await etcd.etcdctl(['put', `${prefix}/subnets/10.1.31.0-24`, hostGw('192.0.2.131')]);
      await etcd.compact(); // the watcher's resume revision is now history
      const nextSnapshot = nextEvent<Extract<LeaseEvent, { type: 'snapshot' }>>(w, 'snapshot', 15_000);
      proxy.resetAndThaw(); // its stream breaks; it resumes at the old revision and is cancelled

      const snap = await nextSnapshot;
      const inEtcd = (await store.client.getAll().prefix(`${prefix}/subnets`).strings()) as Record<string, string>;
      assert.deepEqual(view(snap.leases), ['10.1.31.0/24 192.0.2.131', '10.1.32.0/24 192.0.2.32']);
      assert.equal(snap.leases.length, Object.keys(inEtcd).length);
      assert.ok(w.progress.stats.cancels >= 1, JSON.stringify(w.progress.stats));
      assert.ok(lines.some((l) => /compacted/.test(String(l.msg))), 'logged the re-list');

      // And it keeps working.
      const next = nextEvent<Extract<LeaseEvent, { type: 'added' }>>(w, 'added', 10_000); // listen before the put
      await etcd.etcdctl(['put', `${prefix}/subnets/10.1.33.0-24`, hostGw('192.0.2.33')]);
      const added = await next;
      assert.equal(formatCidr(added.lease.subnet), '10.1.33.0/24');
      await w.stop();
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });
});
