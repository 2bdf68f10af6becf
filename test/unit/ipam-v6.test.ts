// IPAM for Docker --ipv6 networks: the v6 pool is this host's v6 lease; addresses from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { FakeKernel } from '../fakes/fake-kernel';
import { OverlayPluginDriver } from '../../src/driver/plugin-driver';
import type { OverlayDirectory, OverlayHandle } from '../../src/driver/overlays';
import { isPoolId6, parsePoolId6 } from '../../src/driver/overlays';
import { SerialQueue } from '../../src/util/serial-queue';
import { parseCidr } from '../../src/domain/ipv4';
import { parseCidr6, parseIPv6 } from '../../src/domain/ipv6';
import { checkRequestedAddress6, pickAddress6, routedGateway6 } from '../../src/domain/addresses-v6';
import { parseIPv4 } from '../../src/domain/ipv4';
import { memoryAddresses6 } from '../fakes/fake-addresses6';

const log = pino({ level: 'silent' });

function overlay(name: string, subnet6?: string, addresses6 = memoryAddresses6()): OverlayHandle {
  return {
    name,
    prefix: `/p/${name}`,
    lease: () => ({ subnet: parseCidr('10.9.5.0/24'), ...(subnet6 ? { subnet6: parseCidr6(subnet6) } : {}), attrs: { publicIP: '192.0.2.1', backendType: 'vxlan' }, etcdLease: '1' }),
    network: () => parseCidr('10.9.0.0/16'),
    mtu: () => 1450,
    whenReady: async () => undefined,
    vxlan: () => null,
    addresses: { allocate: async () => 0, release: async () => false },
    addresses6,
  };
}

function driver(addresses6 = memoryAddresses6(), subnet6 = 'fd00:10:0:5::/64') {
  const m = new Map([['default', overlay('default', subnet6, addresses6)], ['v4only', overlay('v4only')]]);
  const dir: OverlayDirectory = { byName: async (n) => m.get(n || 'default')!, all: () => [...m.values()] };
  return new OverlayPluginDriver(new FakeKernel(), new SerialQueue(), dir, log);
}

const pool6 = (options: Record<string, string> = {}, pool = '') => ({ addressSpace: 'overlay-flannel-local', pool, subPool: '', options, v6: true });

test('RequestPool V6=true returns the v6 lease with gateway ::1; the pool id names overlay and v6 subnet', async () => {
  const p = await driver().requestPool(pool6());
  assert.deepEqual(p, { poolId: 'overlay-flannel/default/fd00:10:0:5::/64', pool: 'fd00:10:0:5::/64', data: { 'com.docker.network.gateway': 'fd00:10:0:5::1/64' } });
  assert.ok(isPoolId6(p.poolId));
  assert.ok(!isPoolId6('overlay-flannel/default/10.9.5.0/24'));
  assert.equal(parsePoolId6(p.poolId).overlay, 'default');
  // --subnet equal to the lease is accepted, another is refused
  assert.equal((await driver().requestPool(pool6({}, 'fd00:10:0:5::/64'))).pool, 'fd00:10:0:5::/64');
  await assert.rejects(driver().requestPool(pool6({}, 'fd00:10:0:6::/64')), /not this host's IPv6 subnet/);
});

test('RequestPool V6=true on a v4-only overlay is refused naming config set --ipv6-network', async () => {
  await assert.rejects(driver().requestPool(pool6({ network: 'v4only' })), (e: Error) => {
    assert.match(e.message, /overlay "v4only" has no IPv6 half/);
    assert.match(e.message, /overlay-flannel config set --ipv6-network/);
    return true;
  });
});

test('RequestAddress on the v6 pool: random in the lease, --ip6 honoured, duplicates and reserved refused, release frees', async () => {
  const d = driver();
  const poolId = (await d.requestPool(pool6())).poolId;
  assert.equal((await d.requestAddress({ poolId, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } })).address, 'fd00:10:0:5::1/64');
  const a = (await d.requestAddress({ poolId, address: '', options: {} })).address;
  assert.match(a, /^fd00:10:0:5:[0-9a-f:]+\/64$/);
  const b = (await d.requestAddress({ poolId, address: '', options: {} })).address;
  assert.notEqual(a, b);
  assert.equal((await d.requestAddress({ poolId, address: 'fd00:10:0:5::77', options: {} })).address, 'fd00:10:0:5::77/64');
  await assert.rejects(d.requestAddress({ poolId, address: 'fd00:10:0:5::77', options: {} }), /already in use/);
  await assert.rejects(d.requestAddress({ poolId, address: 'fd00:10:0:6::77', options: {} }), /not in this host's IPv6 subnet/);
  await assert.rejects(d.requestAddress({ poolId, address: 'fd00:10:0:5::', options: {} }), /reserved/);
  await d.releaseAddress(poolId, 'fd00:10:0:5::77/64');
  assert.equal((await d.requestAddress({ poolId, address: 'fd00:10:0:5::77', options: {} })).address, 'fd00:10:0:5::77/64');
  await d.releasePool(poolId);
  // a pool of a v6 subnet that is no longer the lease gets no address
  await assert.rejects(d.requestAddress({ poolId: 'overlay-flannel/default/fd00:10:0:9::/64', address: '', options: {} }), /no longer fd00:10:0:9::\/64/);
});

test('RequestAddress v6 goes through the overlay\'s v6 records (one owner per request); a restarted driver releases what the old one handed out', async () => {
  const records = memoryAddresses6(); // etcd's part, outliving the process
  const before = driver(records);
  const poolId = (await before.requestPool(pool6())).poolId;
  const a = (await before.requestAddress({ poolId, address: '', options: {} })).address;
  const b = (await before.requestAddress({ poolId, address: 'fd00:10:0:5::b', options: {} })).address;
  assert.equal(records.held.size, 2, 'both recorded; the gateway never is');
  assert.notEqual(records.held.get(parseIPv6(a.split('/')[0]!)), records.held.get(parseIPv6('fd00:10:0:5::b')), 'one owner per RequestAddress');
  assert.match(records.held.get(parseIPv6('fd00:10:0:5::b'))!, /^docker\/[0-9a-f]{12}$/);
  const after = driver(records); // a restarted plugin: no memory of its own
  await assert.rejects(after.requestAddress({ poolId, address: 'fd00:10:0:5::b', options: {} }), /already in use/);
  await after.releaseAddress(poolId, a);
  await after.releaseAddress(poolId, b);
  await after.releaseAddress(poolId, 'fd00:10:0:5::1/64'); // the gateway: nothing to release
  assert.equal(records.held.size, 0);
  // a pool whose v6 subnet is no longer this host's lease still releases its records
  records.held.set(parseIPv6('fd00:10:0:9::4'), 'docker/old');
  await driver(records).releaseAddress('overlay-flannel/default/fd00:10:0:9::/64', 'fd00:10:0:9::4/64');
  assert.equal(records.held.size, 0);
});

test('pickAddress6: never reserved or taken, bounded, refuses tiny subnets', () => {
  const s = parseCidr6('fd00::/64');
  const zeros = () => new Uint8Array(16);
  // all-zero randomness lands on ::0 (reserved) every time: bounded failure, not a loop
  assert.throws(() => pickAddress6(s, new Set(), zeros), /no free IPv6 address/);
  const seq = [0n, 1n, 2n];
  let i = 0;
  const r = () => {
    const b = new Uint8Array(16);
    const v = seq[Math.min(i++, seq.length - 1)];
    b[15] = Number(v);
    return b;
  };
  assert.equal(pickAddress6(s, new Set(), r), 2n + s.base);
  assert.throws(() => pickAddress6(parseCidr6('fd00::/120'), new Set(), zeros), /at least 32 host bits/);
  assert.equal(checkRequestedAddress6(s, 'fd00::2'), s.base + 2n);
  assert.throws(() => checkRequestedAddress6(s, 'fd00::1'), /reserved/);
});

test('routedGateway6 follows the v4 link-local gateway of the network', () => {
  assert.equal(routedGateway6(parseIPv4('169.254.1.1')), 'fe80::a9fe:101');
  assert.equal(routedGateway6(parseIPv4('169.254.1.2')), 'fe80::a9fe:102');
});

test('RequestPool on an IPv6-only overlay (EnableIPv4 false): v4 and v6 refused, naming Docker 20.10 and the dual-stack fix', async () => {
  const v6only: OverlayHandle = { ...overlay('edge', 'fd00:10:0:5::/64'), lease: () => null, network: () => null, ipv6Only: () => true };
  const dir: OverlayDirectory = { byName: async () => v6only, all: () => [v6only] };
  const d = new OverlayPluginDriver(new FakeKernel(), new SerialQueue(), dir, log);
  for (const v6 of [false, true]) {
    await assert.rejects(d.requestPool({ ...pool6({ network: 'edge' }), v6 }), (e: Error) => {
      assert.match(e.message, /^overlay "edge" is IPv6-only \(EnableIPv4 false\): it leases no IPv4 subnets, and Docker asks every network for an IPv4 pool \(Docker 20\.10 has no IPv6-only networks\)/);
      assert.match(e.message, /make it dual-stack: overlay-flannel config set --name edge --network CIDR --ipv6-network CIDR/);
      return true;
    });
  }
});
