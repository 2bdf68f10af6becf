/**
 * lease-keeper-v6.test.ts — dual-stack and IPv6-only leases against a real etcd: flanneld's key
 * (`10.1.x.0-24&fd00:…::-64`) and bytes (PublicIPv6, BackendV6Data), a flanneld-written dual-stack
 * lease seen as taken in both families and reused by its PublicIP, concurrent acquirers getting
 * distinct subnets in both families, an IPv6-only overlay told apart by PublicIPv6, the lease
 * watcher reading both subnets, and a lost lease re-acquired with both subnets again.
 * One etcd for the file; every test has its own prefix.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatCidr } from '../../src/domain/ipv4';
import { formatCidr6 } from '../../src/domain/ipv6';
import { encodeLeaseAttrs, type LeaseAttrs } from '../../src/domain/lease';
import { parseNetworkConfig, type NetworkConfig } from '../../src/domain/network-config';
import { overlayKeys, type KeeperEvent, type Store } from '../../src/store';
import type { EtcdServer } from '../helpers/etcd-server';
import { randomPrefix, record, withEtcdStore } from '../helpers/store-fixtures';
import { waitFor } from '../helpers/wait';

const DUAL = parseNetworkConfig('{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:10::/48","Backend":{"Type":"vxlan"}}');
const ONLY6 = parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:20::/48","Backend":{"Type":"vxlan"}}');
// What flanneld v0.28 writes for a dual-stack vxlan host (pkg/backend/vxlan newSubnetAttrs).
const FLANNELD_DUAL = '{"PublicIP":"192.0.2.3","PublicIPv6":"2001:db8::3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"},"BackendV6Data":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:45"}}';

let etcd: EtcdServer;
let store: Store;
withEtcdStore((e, s) => {
  etcd = e;
  store = s;
});

const mac = (n: number, v6: boolean) => `0e:2a:${v6 ? '06' : '04'}:00:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;
/** Dual-stack vxlan attrs for host n (PublicIP 192.0.2.n, PublicIPv6 2001:db8::n). */
const dualAttrs = (n: number): LeaseAttrs => ({
  publicIP: `192.0.2.${n}`,
  publicIPv6: `2001:db8::${n.toString(16)}`,
  backendType: 'vxlan',
  vxlan: { vni: 1, vtepMac: mac(n, false) },
  vxlan6: { vni: 1, vtepMac: mac(n, true) },
});
/** IPv6-only vxlan attrs: PublicIP zero, no BackendData (flannel creates no v4 device). */
const only6Attrs = (n: number): LeaseAttrs => ({ publicIP: '0.0.0.0', publicIPv6: `2001:db8::${n.toString(16)}`, backendType: 'vxlan', vxlan6: { vni: 1, vtepMac: mac(n, true) } });

const keeperOf = (prefix: string, attrs: LeaseAttrs, ttlSec = 60) => store.overlay(prefix).keeper({ publicIP: attrs.publicIP, attrsFor: () => attrs, ttlSec, renewMarginSec: 20 });

async function subnetKeys(prefix: string): Promise<string[]> {
  return (await store.client.getAll().prefix(`${prefix}/subnets`).keys()).map((k) => k.slice(`${prefix}/subnets/`.length)).sort();
}

describe('dual-stack leases in flanneld format', () => {
  it('writes key a.b.c.d-N&v6::-M and flanneld\'s exact bytes, with an etcd lease', async () => {
    const prefix = randomPrefix();
    const attrs = dualAttrs(3);
    const keeper = keeperOf(prefix, attrs);
    const lease = await keeper.acquire(DUAL);
    assert.ok(lease.subnet6, 'a dual-stack lease has a v6 subnet');
    const keys = await subnetKeys(prefix);
    assert.equal(keys.length, 1);
    assert.match(keys[0], /^10\.1\.\d+\.0-24&fd00:10:0:[0-9a-f]+::-64$/);
    assert.equal(keys[0], `${formatCidr(lease.subnet).replace('/', '-')}&${formatCidr6(lease.subnet6).replace('/', '-')}`);
    const viaCtl = (await etcd.etcdctl(['get', '--print-value-only', `${prefix}/subnets/${keys[0]}`])).stdout;
    assert.equal(viaCtl, `${FLANNELD_DUAL.replace('192.0.2.3', '192.0.2.3').replace('c6:d2:32:6f:8f:44', mac(3, false)).replace('c6:d2:32:6f:8f:45', mac(3, true))}\n`);
    assert.notEqual(lease.etcdLease, '0');
    await keeper.stop();
  });

  it('a flanneld dual-stack lease blocks both its subnets, and is reused (both kept) by its PublicIP', async () => {
    const prefix = randomPrefix();
    const grant = await etcd.etcdctl(['lease', 'grant', '300']);
    const leaseId = /lease ([0-9a-f]+) granted/.exec(grant.stdout)![1];
    // The first subnets of both ranges, so that a blind allocator would collide with them.
    await etcd.etcdctl(['put', '--lease', leaseId, `${prefix}/subnets/10.1.1.0-24&fd00:10:0:1::-64`, FLANNELD_DUAL]);
    const small = parseNetworkConfig('{"Network":"10.1.0.0/16","SubnetMax":"10.1.2.0","EnableIPv6":true,"IPv6Network":"fd00:10::/48","IPv6SubnetMax":"fd00:10:0:2::","Backend":{"Type":"vxlan"}}');
    const other = keeperOf(prefix, dualAttrs(50));
    const theirs = await other.acquire(small);
    assert.deepEqual([formatCidr(theirs.subnet), formatCidr6(theirs.subnet6!)], ['10.1.2.0/24', 'fd00:10:0:2::/64']);
    const mineAttrs = { ...dualAttrs(3), publicIP: '192.0.2.3' };
    const mine = keeperOf(prefix, mineAttrs);
    const lease = await mine.acquire(small);
    assert.deepEqual([formatCidr(lease.subnet), formatCidr6(lease.subnet6!)], ['10.1.1.0/24', 'fd00:10:0:1::/64']);
    const kv = (await store.client.get(`${prefix}/subnets/10.1.1.0-24&fd00:10:0:1::-64`).exec()).kvs[0];
    assert.equal(kv.value.toString('utf8'), encodeLeaseAttrs(mineAttrs));
    assert.notEqual(String(kv.lease), BigInt(`0x${leaseId}`).toString(), 'a reused lease gets a NEW etcd lease');
    await Promise.all([other.stop(), mine.stop()]);
  });

  it('12 concurrent dual-stack acquirers get 12 distinct subnets in each family', async () => {
    const prefix = randomPrefix();
    const keepers = Array.from({ length: 12 }, (_, i) => keeperOf(prefix, dualAttrs(i + 10)));
    const leases = await Promise.all(keepers.map((k) => k.acquire(DUAL, AbortSignal.timeout(30_000))));
    assert.equal(new Set(leases.map((l) => formatCidr(l.subnet))).size, 12);
    assert.equal(new Set(leases.map((l) => formatCidr6(l.subnet6!))).size, 12);
    assert.equal((await subnetKeys(prefix)).length, 12);
    await Promise.all(keepers.map((k) => k.stop()));
  });

  it('the lease watcher reads both subnets and the v6 attributes', async () => {
    const prefix = randomPrefix();
    const keeper = keeperOf(prefix, dualAttrs(7));
    const lease = await keeper.acquire(DUAL);
    const watcher = store.overlay(prefix).leases();
    const seen = await watcher.listOnce();
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0].subnet6, lease.subnet6);
    assert.equal(seen[0].attrs.publicIPv6, '2001:db8::7');
    assert.deepEqual(seen[0].attrs.vxlan6, { vni: 1, vtepMac: mac(7, true) });
    await Promise.all([watcher.stop(), keeper.stop()]);
  });

  it('a deleted key emits lost, then acquired again with the same two subnets', async () => {
    const prefix = randomPrefix();
    const keeper = keeperOf(prefix, dualAttrs(41));
    const events = record<KeeperEvent>(keeper, 'event');
    const lease = await keeper.acquire(DUAL);
    await etcd.etcdctl(['del', overlayKeys(prefix).leaseKey(lease.subnet, lease.subnet6)]);
    await waitFor(async () => events.length >= 3, { what: 'acquired, lost, acquired', timeoutMs: 15_000 });
    assert.deepEqual(events.map((e) => e.type), ['acquired', 'lost', 'acquired']);
    const again = keeper.current()!;
    assert.deepEqual([again.subnet, again.subnet6], [lease.subnet, lease.subnet6]);
    await keeper.stop();
  });
});

describe('IPv6-only leases', () => {
  const only6Keeper = (prefix: string, n: number, cfg: NetworkConfig = ONLY6) => ({ keeper: keeperOf(prefix, only6Attrs(n)), cfg });

  it('keys 0.0.0.0-0&v6::-M, PublicIP 0.0.0.0, no BackendData; hosts are told apart by PublicIPv6', async () => {
    const prefix = randomPrefix();
    const a = only6Keeper(prefix, 1);
    const b = only6Keeper(prefix, 2);
    const la = await a.keeper.acquire(a.cfg);
    const lb = await b.keeper.acquire(b.cfg);
    assert.notDeepEqual(la.subnet6, lb.subnet6, 'flanneld would hand the second host the first one\'s lease (it matches PublicIP 0.0.0.0)');
    const keys = await subnetKeys(prefix);
    assert.equal(keys.length, 2);
    for (const k of keys) assert.match(k, /^0\.0\.0\.0-0&fd00:20:0:[0-9a-f]+::-64$/);
    const value = (await store.client.get(`${prefix}/subnets/${keys[0]}`).string())!;
    assert.match(value, /^\{"PublicIP":"0\.0\.0\.0","PublicIPv6":"2001:db8::[12]","BackendType":"vxlan","BackendV6Data":\{"VNI":1,"VtepMAC":"0e:2a:06:00:00:0[12]"\}\}$/);
    // A restart of host 1 finds its own lease by PublicIPv6.
    await a.keeper.stop();
    const again = only6Keeper(prefix, 1);
    assert.deepEqual((await again.keeper.acquire(again.cfg)).subnet6, la.subnet6);
    await Promise.all([b.keeper.stop(), again.keeper.stop()]);
  });

  it('another host writing over our IPv6-only lease makes us give it up (not fight over PublicIP 0.0.0.0)', async () => {
    const prefix = randomPrefix();
    const a = only6Keeper(prefix, 5);
    const events = record<KeeperEvent>(a.keeper, 'event');
    const la = await a.keeper.acquire(a.cfg);
    const key = overlayKeys(prefix).leaseKey(la.subnet, la.subnet6);
    await store.client.put(key).value(encodeLeaseAttrs(only6Attrs(6)));
    await waitFor(async () => events.some((e) => e.type === 'lost'), { what: 'lost', timeoutMs: 10_000 });
    const lost = events.find((e) => e.type === 'lost');
    assert.match(lost && lost.type === 'lost' ? lost.reason : '', /taken over by 2001:db8::6/);
    await waitFor(async () => events.filter((e) => e.type === 'acquired').length >= 2, { what: 'acquired again', timeoutMs: 10_000 });
    assert.notDeepEqual(a.keeper.current()!.subnet6, la.subnet6);
    assert.equal(await store.client.get(key).string(), encodeLeaseAttrs(only6Attrs(6)), 'the other host\'s value is left alone');
    await a.keeper.stop();
  });
});
