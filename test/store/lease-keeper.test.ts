/**
 * lease-keeper.test.ts — the host's lease against a real etcd: flanneld's exact bytes, concurrent
 * acquirers (one process and several), reuse by PublicIP, reservations, renewal, and a deleted key.
 * One etcd for the file; every test has its own prefix.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatCidr, parseCidr } from '../../src/domain/ipv4';
import { encodeLeaseAttrs, type LeaseAttrs } from '../../src/domain/lease';
import { parseNetworkConfig } from '../../src/domain/network-config';
import { overlayKeys, type KeeperEvent, type Store } from '../../src/store';
import type { EtcdServer } from '../helpers/etcd-server';
import { run } from '../helpers/run';
import { nextEvent, randomPrefix, record, vxlanAttrsFor } from '../helpers/store-fixtures';
import { withEtcdStore } from '../helpers/store-fixtures';
import { waitFor } from '../helpers/wait';

const FLANNELD_VXLAN = '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}';
const CONFIG_TEXT = '{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan"}}';
const config = parseNetworkConfig(CONFIG_TEXT);

let etcd: EtcdServer;
let store: Store;

withEtcdStore((e, s) => {
  etcd = e;
  store = s;
});

const keeperOf = (prefix: string, publicIP: string, extra: { ttlSec?: number; renewMarginSec?: number; attrs?: LeaseAttrs } = {}) =>
  store.overlay(prefix).keeper({
    publicIP,
    attrsFor: extra.attrs ? () => extra.attrs! : vxlanAttrsFor(publicIP),
    ttlSec: extra.ttlSec ?? 60,
    renewMarginSec: extra.renewMarginSec ?? 20,
  });

async function rawKv(key: string): Promise<{ value: string; lease: string } | null> {
  const r = await store.client.get(key).exec();
  const kv = r.kvs[0];
  return kv ? { value: kv.value.toString('utf8'), lease: String(kv.lease) } : null;
}

describe('flanneld format', () => {
  it('writes the exact bytes flanneld writes, under key a.b.c.d-N, with an etcd lease', async () => {
    const prefix = randomPrefix();
    const attrs: LeaseAttrs = { publicIP: '192.168.64.3', backendType: 'vxlan', vxlan: { vni: 1, vtepMac: 'c6:d2:32:6f:8f:44' } };
    const keeper = keeperOf(prefix, '192.168.64.3', { attrs });
    const lease = await keeper.acquire(config);
    const key = `${prefix}/subnets/${formatCidr(lease.subnet).replace('/', '-')}`;
    assert.match(key, /\/subnets\/10\.1\.\d+\.0-24$/);
    // What etcdctl sees, byte for byte.
    const viaCtl = (await etcd.etcdctl(['get', '--print-value-only', key])).stdout;
    assert.equal(viaCtl, `${FLANNELD_VXLAN}\n`);
    const kv = await rawKv(key);
    assert.equal(kv?.value, FLANNELD_VXLAN);
    assert.equal(kv?.lease, lease.etcdLease);
    assert.notEqual(lease.etcdLease, '0');
    const ttl = await store.client.leaseClient.leaseTimeToLive({ ID: lease.etcdLease });
    assert.ok(Number(ttl.TTL) > 50 && Number(ttl.TTL) <= 60, `TTL ${ttl.TTL}`);
    await keeper.stop();
    assert.ok(await rawKv(key), 'stop() must not delete the lease');
  });

  it('writes a host-gw lease as flanneld does', async () => {
    const prefix = randomPrefix();
    const attrs: LeaseAttrs = { publicIP: '192.0.2.7', backendType: 'host-gw' };
    const keeper = keeperOf(prefix, '192.0.2.7', { attrs });
    const lease = await keeper.acquire(parseNetworkConfig('{"Network":"10.9.0.0/16","Backend":{"Type":"host-gw"}}'));
    const kv = await rawKv(overlayKeys(prefix).leaseKey(lease.subnet));
    assert.equal(kv?.value, '{"PublicIP":"192.0.2.7","PublicIPv6":null,"BackendType":"host-gw"}');
    await keeper.stop();
  });

  it('sees a lease flanneld wrote (key 10.1.15.0-24) as taken, and reuses it when it carries our PublicIP', async () => {
    const prefix = randomPrefix();
    const grant = await etcd.etcdctl(['lease', 'grant', '300']);
    const leaseId = /lease ([0-9a-f]+) granted/.exec(grant.stdout)![1];
    await etcd.etcdctl(['put', '--lease', leaseId, `${prefix}/subnets/10.1.15.0-24`, FLANNELD_VXLAN]);
    const other = keeperOf(prefix, '192.0.2.50');
    assert.notEqual(formatCidr((await other.acquire(config)).subnet), '10.1.15.0/24');
    const attrs: LeaseAttrs = { publicIP: '192.168.64.3', backendType: 'vxlan', vxlan: { vni: 1, vtepMac: '0e:2a:00:00:00:01' } };
    const mine = keeperOf(prefix, '192.168.64.3', { attrs });
    const lease = await mine.acquire(config);
    assert.equal(formatCidr(lease.subnet), '10.1.15.0/24');
    assert.notEqual(lease.etcdLease, BigInt(`0x${leaseId}`).toString(), 'a reused lease gets a NEW etcd lease');
    assert.equal((await rawKv(`${prefix}/subnets/10.1.15.0-24`))?.value, encodeLeaseAttrs(attrs));
    await Promise.all([other.stop(), mine.stop()]);
  });
});

describe('acquire', () => {
  it('20 concurrent acquirers in one process get 20 distinct subnets', async () => {
    const prefix = randomPrefix();
    const keepers = Array.from({ length: 20 }, (_, i) => keeperOf(prefix, `192.0.2.${i + 1}`));
    const leases = await Promise.all(keepers.map((k) => k.acquire(config, AbortSignal.timeout(20_000))));
    assert.equal(new Set(leases.map((l) => formatCidr(l.subnet))).size, 20);
    const keys = await store.client.getAll().prefix(`${prefix}/subnets`).keys();
    assert.equal(keys.length, 20);
    await Promise.all(keepers.map((k) => k.stop()));
  });

  it('4 processes × 5 acquirers get 20 distinct subnets', async () => {
    const prefix = randomPrefix();
    const child = join(__dirname, 'acquire-child.ts');
    const outs = await Promise.all(
      [0, 1, 2, 3].map((p) =>
        run(process.execPath, ['--import', 'tsx', child], {
          timeoutMs: 60_000,
          env: {
            ...process.env,
            ETCD_ENDPOINT: etcd.endpoint,
            PREFIX: prefix,
            CONFIG: CONFIG_TEXT,
            IPS: [1, 2, 3, 4, 5].map((i) => `198.51.100.${p * 10 + i}`).join(','),
          },
        }),
      ),
    );
    const all = outs.flatMap((o) => JSON.parse(o.stdout.trim()) as Array<{ publicIP: string; subnet: string }>);
    assert.equal(all.length, 20);
    assert.equal(new Set(all.map((a) => a.subnet)).size, 20, JSON.stringify(all));
    assert.equal((await store.client.getAll().prefix(`${prefix}/subnets`).keys()).length, 20);
  });

  it('previousSubnet is tried first when free, and skipped when taken', async () => {
    const prefix = randomPrefix();
    const prev = parseCidr('10.1.200.0/24');
    const opts = (ip: string) => ({ publicIP: ip, attrsFor: vxlanAttrsFor(ip), ttlSec: 60, renewMarginSec: 20, previousSubnet: () => prev });
    const a = store.overlay(prefix).keeper(opts('192.0.2.80'));
    assert.deepEqual((await a.acquire(config)).subnet, prev);
    const b = store.overlay(prefix).keeper(opts('192.0.2.81'));
    assert.notDeepEqual((await b.acquire(config)).subnet, prev);
    await Promise.all([a.stop(), b.stop()]);
  });

  it('a restarted keeper with the same PublicIP keeps its subnet, on a new etcd lease', async () => {
    const prefix = randomPrefix();
    const a = keeperOf(prefix, '192.0.2.10');
    const first = await a.acquire(config);
    await a.stop();
    const b = keeperOf(prefix, '192.0.2.10');
    const second = await b.acquire(config);
    assert.deepEqual(second.subnet, first.subnet);
    assert.notEqual(second.etcdLease, first.etcdLease);
    await b.stop();
  });

  it('reuses our reservation and keeps it lease-less; never takes another host\'s reservation', async () => {
    const prefix = randomPrefix();
    const small = parseNetworkConfig('{"Network":"10.2.0.0/22","Backend":{"Type":"vxlan"}}'); // 10.2.1, .2, .3
    await etcd.etcdctl(['put', `${prefix}/subnets/10.2.2.0-24`, '{"PublicIP":"192.0.2.99","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:2a:00:00:00:99"}}']);
    await etcd.etcdctl(['put', `${prefix}/subnets/10.2.3.0-24`, '{"PublicIP":"192.0.2.30","PublicIPv6":null,"BackendType":"host-gw"}']);
    const mine = keeperOf(prefix, '192.0.2.30');
    const lease = await mine.acquire(small);
    assert.equal(formatCidr(lease.subnet), '10.2.3.0/24');
    assert.equal(lease.etcdLease, '0');
    const kv = await rawKv(`${prefix}/subnets/10.2.3.0-24`);
    assert.equal(kv?.lease, '0', 'a reservation stays lease-less');
    assert.equal(kv?.value, encodeLeaseAttrs(vxlanAttrsFor('192.0.2.30')(small)), 're-put with current attrs');

    const other = keeperOf(prefix, '192.0.2.31');
    assert.equal(formatCidr((await other.acquire(small)).subnet), '10.2.1.0/24');
    const third = keeperOf(prefix, '192.0.2.32');
    await assert.rejects(third.acquire(small, AbortSignal.timeout(1500)), /no free subnet in 10\.2\.0\.0\/22/);
    assert.match((await rawKv(`${prefix}/subnets/10.2.2.0-24`))!.value, /192\.0\.2\.99/);
    await Promise.all([mine.stop(), other.stop(), third.stop()]);
  });
});

describe('maintenance', () => {
  it('renews before expiry with a new etcd lease, and the key outlives the first TTL', async () => {
    const prefix = randomPrefix();
    const keeper = keeperOf(prefix, '192.0.2.40', { ttlSec: 3, renewMarginSec: 2 });
    const first = await keeper.acquire(config);
    const renewed = await nextEvent<Extract<KeeperEvent, { type: 'renewed' }>>(keeper, 'renewed', 5000);
    assert.notEqual(renewed.lease.etcdLease, first.etcdLease);
    await nextEvent(keeper, 'renewed', 5000);
    const key = overlayKeys(prefix).leaseKey(first.subnet);
    assert.equal((await rawKv(key))?.lease, keeper.current()!.etcdLease);
    await keeper.stop();
  });

  it('a deleted key emits lost, then acquired again', async () => {
    const prefix = randomPrefix();
    const keeper = keeperOf(prefix, '192.0.2.41');
    const events = record<KeeperEvent>(keeper, 'event');
    const lease = await keeper.acquire(config);
    await waitFor(async () => events.length === 1, { what: 'acquired event' });
    const key = overlayKeys(prefix).leaseKey(lease.subnet);
    await etcd.etcdctl(['del', key]);
    await waitFor(async () => events.length >= 3, { what: 'lost + acquired', timeoutMs: 10_000 });
    assert.deepEqual(events.map((e) => e.type), ['acquired', 'lost', 'acquired']);
    const again = keeper.current()!;
    assert.deepEqual(again.subnet, lease.subnet, 'the lost subnet is asked for again first (it is free)');
    assert.ok(await rawKv(overlayKeys(prefix).leaseKey(again.subnet)));
    await keeper.stop();
  });

  it('someone else rewriting our attributes gets ours written back', async () => {
    const prefix = randomPrefix();
    const keeper = keeperOf(prefix, '192.0.2.42');
    const lease = await keeper.acquire(config);
    const key = overlayKeys(prefix).leaseKey(lease.subnet);
    const ours = (await rawKv(key))!.value;
    // Before or after the keeper's own-key watch starts: its snapshot or its events see it.
    await etcd.etcdctl(['put', key, '{"PublicIP":"192.0.2.42","PublicIPv6":null,"BackendType":"host-gw"}']);
    await waitFor(async () => (await rawKv(key))?.value === ours, { what: 'our value back' });
    assert.notEqual((await rawKv(key))?.lease, '0');
    await keeper.stop();
  });
});
