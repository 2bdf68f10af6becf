// Dual-stack vxlan (issue 21) against the fake kernel: flannel-v6.<VNI> beside flannel.<VNI>, the v6
// peer entries of domain/peers-v6.ts added, changed and removed with the leases; a v4-only overlay
// makes no v6 object at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { FakeKernel } from '../fakes/fake-kernel';
import { OverlayDataplane } from '../../src/reconcile/overlay-dataplane';
import { SerialQueue } from '../../src/util/serial-queue';
import { parseNetworkConfig } from '../../src/domain/network-config';
import { parseCidr } from '../../src/domain/ipv4';
import { parseCidr6 } from '../../src/domain/ipv6';
import { Lease } from '../../src/domain/lease';
import { vtepMacFor } from '../../src/domain/mac';
import { desiredPeersV6, vxlanV6DeviceName } from '../../src/domain/peers-v6';
import type { PublicInterface } from '../../src/host/public-interface';

const log = pino({ level: 'silent' });
const dual = parseNetworkConfig('{"Network":"10.7.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:7::/48","Backend":{"Type":"vxlan","VNI":9}}');
const v4only = parseNetworkConfig('{"Network":"10.7.0.0/16","Backend":{"Type":"vxlan","VNI":9}}');
const mac6 = (n: number) => `02:00:00:00:06:${String(n).padStart(2, '0')}`;
const L = (n: number, over: Partial<Lease['attrs']> = {}, v6 = true): Lease => ({
  subnet: parseCidr(`10.7.${n}.0/24`),
  ...(v6 ? { subnet6: parseCidr6(`fd00:7:0:${n}::/64`) } : {}),
  attrs: {
    publicIP: `192.0.2.${n}`,
    backendType: 'vxlan',
    vxlan: { vni: 9, vtepMac: `02:00:00:00:00:${String(n).padStart(2, '0')}` },
    ...(v6 ? { publicIPv6: `2001:db8::${n}`, vxlan6: { vni: 9, vtepMac: mac6(n) } } : {}),
    ...over,
  },
  etcdLease: '1',
});

async function setup(config = dual, pubV6 = true) {
  const kernel = new FakeKernel();
  const eth = kernel.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.1/24', cidr6: '2001:db8::1/64' });
  const pub: PublicInterface = { link: eth, address: '192.0.2.1', publicIP: '192.0.2.1', networks: [parseCidr('192.0.2.0/24')], ...(pubV6 ? { address6: '2001:db8::1', publicIPv6: '2001:db8::1' } : {}) };
  const dp = new OverlayDataplane(kernel, new SerialQueue(), log, config, pub);
  const own = L(1);
  dp.setLeases([own, L(2), L(3)]);
  await dp.attach(own);
  await dp.idle();
  return { kernel, dp, own };
}

async function v6Entries(kernel: FakeKernel) {
  const dev = (await kernel.getVxlan('flannel-v6.9'))!;
  return {
    dev,
    neigh: (await kernel.listNeighbours(dev.index, 6)).map((n) => `${n.ip} ${n.mac}`).sort(),
    fdb: (await kernel.listFdb(dev.index)).map((f) => `${f.mac} ${f.dst}`).sort(),
    routes: (await kernel.listRoutes(dev.index, 6)).filter((r) => r.gateway).map((r) => `${r.dst} via ${r.gateway}${r.onlink ? ' onlink' : ''}`).sort(),
  };
}
const want = (ns: number[]) => ({
  neigh: ns.map((n) => `fd00:7:0:${n}:: ${mac6(n)}`),
  fdb: ns.map((n) => `${mac6(n)} 2001:db8::${n}`),
  routes: ns.map((n) => `fd00:7:0:${n}::/64 via fd00:7:0:${n}:: onlink`),
});

test('dual-stack: flannel-v6.<VNI> over the v6 address, MTU parent − 70, the /128, and each peer\'s neighbour, FDB and route', async () => {
  const { kernel } = await setup();
  const e = await v6Entries(kernel);
  assert.deepEqual([e.dev.local, e.dev.vni, e.dev.mtu, e.dev.mac, e.dev.learning], ['2001:db8::1', 9, 1430, vtepMacFor(9, '2001:db8::1'), false]);
  assert.deepEqual((await kernel.listAddresses(e.dev.index, 6)).map((a) => `${a.address}/${a.prefixLen}`), ['fd00:7:0:1::/128']);
  assert.deepEqual({ neigh: e.neigh, fdb: e.fdb, routes: e.routes }, want([2, 3]));
  assert.equal(kernel.acceptRa('flannel-v6.9'), 0, 'accept_ra=0 as flanneld');
  assert.equal(kernel.acceptRa('flannel.9'), 1, 'the v4 device is left alone');
  const v4 = (await kernel.getVxlan('flannel.9'))!;
  assert.deepEqual((await kernel.listNeighbours(v4.index)).map((n) => n.ip).sort(), ['10.7.2.0', '10.7.3.0'], 'the v4 half as before');
});

test('dual-stack: a lease added, changed (new VtepMAC, new PublicIPv6) and removed moves the v6 entries with it', async () => {
  const { kernel, dp } = await setup();
  dp.leaseAdded(L(4));
  await dp.idle();
  assert.deepEqual((({ neigh, fdb, routes }) => ({ neigh, fdb, routes }))(await v6Entries(kernel)), want([2, 3, 4]));
  dp.leaseAdded(L(3, { publicIPv6: '2001:db8::33', vxlan6: { vni: 9, vtepMac: '02:00:00:00:06:33' } }));
  await dp.idle();
  const e = await v6Entries(kernel);
  assert.ok(e.neigh.includes('fd00:7:0:3:: 02:00:00:00:06:33') && !e.neigh.includes(`fd00:7:0:3:: ${mac6(3)}`));
  assert.ok(e.fdb.includes('02:00:00:00:06:33 2001:db8::33') && !e.fdb.some((f) => f.startsWith(mac6(3))), 'the old FDB entry is removed (flanneld leaks it)');
  dp.leaseRemoved(L(2));
  await dp.idle();
  const after = await v6Entries(kernel);
  assert.ok(!after.neigh.some((n) => n.startsWith('fd00:7:0:2::')) && !after.fdb.some((f) => f.endsWith('2001:db8::2')) && !after.routes.some((r) => r.startsWith('fd00:7:0:2::')));
});

test('dual-stack: a full sync repairs a deleted v6 route and removes an entry no lease asks for', async () => {
  const { kernel, dp } = await setup();
  const { dev } = await v6Entries(kernel);
  await kernel.deleteRoute('fd00:7:0:2::/64');
  await kernel.replaceNeighbour({ ifindex: dev.index, ip: 'fd00:7:0:9::', mac: '02:00:00:00:06:99', permanent: true });
  await dp.requestSync('full');
  const e = await v6Entries(kernel);
  assert.deepEqual({ neigh: e.neigh, fdb: e.fdb, routes: e.routes }, want([2, 3]));
});

test('accept_ra: set again on a recreated flannel-v6; a host where it cannot be set still gets the device and its peers', async () => {
  const { kernel, dp } = await setup();
  await kernel.deleteLink('flannel-v6.9');
  await dp.requestSync('full');
  assert.equal(kernel.acceptRa('flannel-v6.9'), 0, 'the repaired device');
  const other = new FakeKernel();
  const eth = other.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.1/24', cidr6: '2001:db8::1/64' });
  other.failNext('disableAcceptRa', new Error('EROFS'));
  const d2 = new OverlayDataplane(other, new SerialQueue(), log, dual, { link: eth, address: '192.0.2.1', publicIP: '192.0.2.1', networks: [parseCidr('192.0.2.0/24')], address6: '2001:db8::1', publicIPv6: '2001:db8::1' });
  d2.setLeases([L(1), L(2)]);
  await d2.attach(L(1));
  await d2.idle();
  assert.equal(other.acceptRa('flannel-v6.9'), 1, 'the failed write changed nothing');
  assert.deepEqual((({ neigh, fdb, routes }) => ({ neigh, fdb, routes }))(await v6Entries(other)), want([2]));
});

test('dual-stack: v4-only and half-built leases get no v6 entries; a host without a v6 address makes no flannel-v6', async () => {
  const { kernel, dp } = await setup();
  dp.leaseAdded(L(5, {}, false));
  dp.leaseAdded(L(6, { publicIPv6: undefined }));
  await dp.idle();
  assert.deepEqual((({ neigh, fdb, routes }) => ({ neigh, fdb, routes }))(await v6Entries(kernel)), want([2, 3]));
  const bare = await setup(dual, false);
  assert.equal(await bare.kernel.getVxlan('flannel-v6.9'), null);
  assert.ok(await bare.kernel.getVxlan('flannel.9'), 'the v4 half still runs');
});

test('v4-only overlay: no flannel-v6 device and no v6 call at all', async () => {
  const { kernel } = await setup(v4only);
  assert.equal(await kernel.getVxlan('flannel-v6.9'), null);
  assert.ok(!kernel.writes.some((w) => /fd00:|2001:db8:|flannel-v6/.test(w)), kernel.writes.join('\n'));
});

test('desiredPeersV6: skips our own, v4-only and incomplete leases, with reasons for the incomplete', () => {
  const { state, skipped } = desiredPeersV6({ ownSubnet6: parseCidr6('fd00:7:0:1::/64'), leases: [L(1), L(2), L(5, {}, false), L(6, { vxlan6: undefined }), L(7, { backendType: 'host-gw' })] });
  assert.deepEqual(state.neighbours, [{ ip: 'fd00:7:0:2::', mac: mac6(2) }]);
  assert.deepEqual(state.fdb, [{ mac: mac6(2), dst: '2001:db8::2' }]);
  assert.deepEqual(state.routes, [{ dst: 'fd00:7:0:2::/64', gateway: 'fd00:7:0:2::', dev: 'vxlan', onlink: true }]);
  assert.deepEqual(skipped.map((s) => s.subnet), ['fd00:7:0:6::/64', 'fd00:7:0:7::/64']);
  assert.match(skipped[0].reason, /without BackendV6Data/);
  assert.equal(vxlanV6DeviceName(9), 'flannel-v6.9');
  assert.equal(vxlanV6DeviceName(99999), 'fl6.99999');
});

// IPv6-only (EnableIPv4 false): flannel-v6.<VNI> is the whole data plane. Leases carry flannel's zero
// v4 part (0.0.0.0/0), PublicIP 0.0.0.0 and no BackendData, as flanneld writes them.
const v6only = parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:7::/48","Backend":{"Type":"vxlan","VNI":9}}');
const L6 = (n: number, over: Partial<Lease['attrs']> = {}): Lease => ({
  subnet: parseCidr('0.0.0.0/0'),
  subnet6: parseCidr6(`fd00:7:0:${n}::/64`),
  attrs: { publicIP: '0.0.0.0', backendType: 'vxlan', publicIPv6: `2001:db8::${n}`, vxlan6: { vni: 9, vtepMac: mac6(n) }, ...over },
  etcdLease: '1',
});

async function setup6(leases = [L6(1), L6(2), L6(3)]) {
  const kernel = new FakeKernel();
  const eth = kernel.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.1/24', cidr6: '2001:db8::1/64' });
  const pub: PublicInterface = { link: eth, address: '192.0.2.1', publicIP: '192.0.2.1', networks: [parseCidr('192.0.2.0/24')], address6: '2001:db8::1', publicIPv6: '2001:db8::1' };
  const dp = new OverlayDataplane(kernel, new SerialQueue(), log, v6only, pub, { ipMasq: true, notrack: true });
  dp.setLeases(leases);
  await dp.attach(leases[0]);
  await dp.idle();
  return { kernel, dp };
}

test('IPv6-only: flannel-v6.<VNI> with its /128 and every IPv6-only peer (each its own lease, not one 0.0.0.0/0); no flannel.<VNI>', async () => {
  const { kernel, dp } = await setup6();
  assert.equal(await kernel.getVxlan('flannel.9'), null, 'no v4 device');
  const e = await v6Entries(kernel);
  assert.deepEqual([e.dev.local, e.dev.mtu, e.dev.mac], ['2001:db8::1', 1430, vtepMacFor(9, '2001:db8::1')]);
  assert.deepEqual((await kernel.listAddresses(e.dev.index, 6)).map((a) => `${a.address}/${a.prefixLen}`), ['fd00:7:0:1::/128']);
  assert.deepEqual({ neigh: e.neigh, fdb: e.fdb, routes: e.routes }, want([2, 3]));
  assert.deepEqual([dp.deviceName, dp.mtu, dp.vtepMac()], ['flannel-v6.9', 1430, null]);
  assert.equal(dp.knownLeases().length, 3);
});

test('IPv6-only: a lease added, a flanneld dual-stack one too, and removals move only their own entries', async () => {
  const { kernel, dp } = await setup6();
  dp.leaseAdded(L6(4));
  dp.leaseAdded(L(5)); // a dual-stack flanneld host in the same IPv6Network: its v6 half is programmed
  await dp.idle();
  assert.deepEqual((({ neigh, fdb, routes }) => ({ neigh, fdb, routes }))(await v6Entries(kernel)), want([2, 3, 4, 5]));
  dp.leaseRemoved(L6(3));
  await dp.idle();
  assert.deepEqual((({ neigh, fdb, routes }) => ({ neigh, fdb, routes }))(await v6Entries(kernel)), want([2, 4, 5]));
  assert.equal(await kernel.getVxlan('flannel.9'), null);
});

test('IPv6-only: no v4 firewall rule (its Network is 0.0.0.0/0), the v6 ones for IPv6Network; removed on detach', async () => {
  const { kernel, dp } = await setup6();
  assert.ok(!kernel.writes.some((w) => /0\.0\.0\.0|10\.|192\.0\.2/.test(w)), kernel.writes.join('\n'));
  assert.deepEqual([...kernel.masquerade.keys()], ['fd00:7::/48']);
  assert.deepEqual([...kernel.masquerade.values()], ['fd00:7:0:1::/64']);
  assert.deepEqual([...kernel.notrack.keys()], ['fd00:7::/48']);
  await dp.detach();
  assert.deepEqual([...kernel.masquerade.keys()], []);
});
