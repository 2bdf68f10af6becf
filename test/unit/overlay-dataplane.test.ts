// The overlay dataplane against the fake kernel: first sync, fast path, stale entries, drift, MAC change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { FakeKernel } from '../fakes/fake-kernel';
import { OverlayDataplane } from '../../src/reconcile/overlay-dataplane';
import { SerialQueue } from '../../src/util/serial-queue';
import { parseNetworkConfig } from '../../src/domain/network-config';
import { parseCidr } from '../../src/domain/ipv4';
import { Lease } from '../../src/domain/lease';
import { vtepMacFor } from '../../src/domain/mac';
import type { PublicInterface } from '../../src/host/public-interface';

const log = pino({ level: 'silent' });
const cfg = parseNetworkConfig('{"Network":"10.7.0.0/16","Backend":{"Type":"vxlan","VNI":9}}');
const L = (third: number, host: number, mac = `02:00:00:00:00:${String(third).padStart(2, '0')}`): Lease => ({
  subnet: parseCidr(`10.7.${third}.0/24`),
  attrs: { publicIP: `192.0.2.${host}`, backendType: 'vxlan', vxlan: { vni: 9, vtepMac: mac } },
  etcdLease: '1',
});

async function setup() {
  const kernel = new FakeKernel();
  const eth = kernel.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.1/24' });
  const pub: PublicInterface = { link: eth, address: '192.0.2.1', publicIP: '192.0.2.1', networks: [parseCidr('192.0.2.0/24')] };
  const dp = new OverlayDataplane(kernel, new SerialQueue(), log, cfg, pub);
  const own = L(1, 1, vtepMacFor(9, '192.0.2.1'));
  dp.setLeases([own, L(2, 2), L(3, 3)]);
  await dp.attach(own);
  await dp.idle();
  const vx = (await kernel.getVxlan('flannel.9'))!;
  return { kernel, dp, vx, own };
}

test('attach creates flannel.<VNI> as flannel does and programs every remote lease', async () => {
  const { kernel, vx } = await setup();
  assert.equal(vx.mtu, 1450);
  assert.equal(vx.mac, vtepMacFor(9, '192.0.2.1'));
  assert.equal(vx.local, '192.0.2.1');
  assert.equal(vx.learning, false);
  assert.deepEqual((await kernel.listAddresses(vx.index)).map((a) => `${a.address}/${a.prefixLen}`), ['10.7.1.0/32']);
  assert.deepEqual((await kernel.listNeighbours(vx.index)).map((n) => n.ip).sort(), ['10.7.2.0', '10.7.3.0']);
  assert.deepEqual((await kernel.listFdb(vx.index)).map((f) => f.dst).sort(), ['192.0.2.2', '192.0.2.3']);
  const routes = (await kernel.listRoutes(vx.index)).filter((r) => r.gateway);
  assert.deepEqual(routes.map((r) => [r.dst, r.gateway, r.onlink]).sort(), [['10.7.2.0/24', '10.7.2.0', true], ['10.7.3.0/24', '10.7.3.0', true]]);
});

test('fast path adds and removes one peer without listing the kernel', async () => {
  const { kernel, dp, vx } = await setup();
  dp.leaseAdded(L(4, 4));
  await dp.idle();
  assert.ok((await kernel.listRoutes(vx.index)).some((r) => r.dst === '10.7.4.0/24'));
  dp.leaseRemoved(L(2, 2));
  await dp.idle();
  assert.ok(!(await kernel.listRoutes(vx.index)).some((r) => r.dst === '10.7.2.0/24'));
  assert.ok(!(await kernel.listFdb(vx.index)).some((f) => f.dst === '192.0.2.2'));
  assert.ok(!(await kernel.listNeighbours(vx.index)).some((n) => n.ip === '10.7.2.0'));
  assert.ok(dp.stats.fastSyncs >= 2);
});

test('a full sync removes stale entries nobody asks for and repairs drift; a second one changes nothing', async () => {
  const { kernel, dp, vx } = await setup();
  await kernel.replaceNeighbour({ ifindex: vx.index, ip: '10.7.99.0', mac: '02:99:00:00:00:00', permanent: true });
  await kernel.replaceFdb({ ifindex: vx.index, mac: '02:99:00:00:00:00', dst: '192.0.2.99', permanent: true });
  await kernel.replaceRoute({ dst: '10.7.99.0/24', gateway: '10.7.99.0', oif: vx.index, onlink: true });
  await kernel.deleteRoute('10.7.3.0/24'); // drift
  await dp.requestSync('full');
  await dp.idle();
  const routes = (await kernel.listRoutes(vx.index)).filter((r) => r.gateway).map((r) => r.dst).sort();
  assert.deepEqual(routes, ['10.7.2.0/24', '10.7.3.0/24']);
  assert.deepEqual((await kernel.listNeighbours(vx.index)).map((n) => n.ip).sort(), ['10.7.2.0', '10.7.3.0']);
  assert.equal(dp.stats.lastDrift, 4);
  const writes = kernel.writes.length;
  await dp.requestSync('full');
  await dp.idle();
  assert.equal(dp.stats.lastDrift, 0);
  const peerWrites = kernel.writes.slice(writes).filter((w) => /Neighbour|Fdb|Route/.test(w));
  assert.deepEqual(peerWrites, [], 'a second full sync writes no peer entry');
});

test('a full sync counts drift only: a change it catches up with (flooding, a pending lease, a snapshot) is not drift', async () => {
  const { kernel, dp, vx, own } = await setup();
  const ours = (third: number) => L(third, third, vtepMacFor(9, `192.0.2.${third}`)); // overlay-flannel peers get flood entries
  dp.setLeases([own, ours(2), ours(3)]);
  await dp.idle();
  dp.setFlooding(true); // every such peer gets flood entries in one full sync
  await dp.idle();
  assert.ok((await kernel.listFdb(vx.index)).some((f) => f.mac === '00:00:00:00:00:00'), 'flood entries written');
  assert.equal(dp.stats.lastDrift, 0, 'flooding on is catch-up');
  // A lease event whose fast sync is overtaken by a full sync, and one real drift at the same time.
  await kernel.deleteRoute('10.7.3.0/24');
  dp.leaseAdded(L(4, 4));
  await dp.requestSync('full');
  await dp.idle();
  assert.ok((await kernel.listRoutes(vx.index)).some((r) => r.dst === '10.7.4.0/24'));
  assert.equal(dp.stats.lastDrift, 1, 'only the deleted route is drift');
  dp.setLeases([own, ours(2), ours(3), L(4, 4), ours(5)]);
  await dp.idle();
  assert.equal(dp.stats.lastDrift, 0, 'a new snapshot with one more lease is catch-up');
  // Pending changes and drift in one full sync: the drift is the second plan, against what we wrote.
  await kernel.deleteRoute('10.7.2.0/24');
  await kernel.deleteNeighbour(vx.index, '10.7.3.0');
  dp.setLeases([own, ours(2), ours(3), L(4, 4), ours(5), ours(6)]);
  await dp.idle();
  assert.ok((await kernel.listRoutes(vx.index)).some((r) => r.dst === '10.7.2.0/24'), 'the deleted route is back');
  assert.ok((await kernel.listRoutes(vx.index)).some((r) => r.dst === '10.7.6.0/24'), 'the new lease is programmed');
  assert.equal(dp.stats.lastDrift, 2, 'the deleted route and neighbour are drift, the new lease is not');
});

test('a changed VtepMAC replaces the neighbour and drops the old FDB entry', async () => {
  const { kernel, dp, vx } = await setup();
  dp.leaseAdded(L(2, 2, '02:bb:bb:bb:bb:bb'));
  await dp.idle();
  const fdb = (await kernel.listFdb(vx.index)).filter((f) => f.dst === '192.0.2.2');
  assert.deepEqual(fdb.map((f) => f.mac), ['02:bb:bb:bb:bb:bb']);
  assert.equal((await kernel.listNeighbours(vx.index)).find((n) => n.ip === '10.7.2.0')?.mac, '02:bb:bb:bb:bb:bb');
});

test('a deleted vxlan device is recreated by the next full sync with all peers', async () => {
  const { kernel, dp } = await setup();
  await kernel.deleteLink('flannel.9');
  await dp.requestSync('full');
  await dp.idle();
  const vx = (await kernel.getVxlan('flannel.9'))!;
  assert.ok(vx);
  assert.equal((await kernel.listFdb(vx.index)).length, 2);
  assert.equal((await kernel.listRoutes(vx.index)).filter((r) => r.gateway).length, 2);
});

test('a kernel failure is retried with a full sync', async () => {
  const { kernel, dp, vx } = await setup();
  kernel.failNext('replaceRoute', new Error('boom'));
  dp.leaseAdded(L(5, 5));
  await dp.idle();
  assert.ok(dp.stats.errors >= 1);
  assert.ok((await kernel.listRoutes(vx.index)).some((r) => r.dst === '10.7.5.0/24'));
});

test('the FORWARD accept rules of the overlay are ensured on attach and again by full syncs (when the chain appears later)', async () => {
  const { kernel, dp } = await setup();
  assert.deepEqual([...kernel.forwardAccept], ['10.7.0.0/16']);
  kernel.forwardAccept.clear();
  kernel.forwardChain = false; // no nftables FORWARD chain: nothing to do, and the sync still succeeds
  await dp.requestSync('full');
  assert.deepEqual([...kernel.forwardAccept], []);
  assert.equal(dp.stats.errors, 0);
  kernel.forwardChain = true; // dockerd created it since
  await dp.requestSync('full');
  assert.deepEqual([...kernel.forwardAccept], ['10.7.0.0/16']);
});

test('alloc: no device, no peer entries for any lease, the operator\'s routes are left alone; forwarding, FORWARD accepts and masquerade as host-gw', async () => {
  const kernel = new FakeKernel();
  const eth = kernel.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.1/24' });
  const pub: PublicInterface = { link: eth, address: '192.0.2.1', publicIP: '192.0.2.1', networks: [parseCidr('192.0.2.0/24')] };
  const alloc = parseNetworkConfig('{"Network":"10.7.0.0/16","Backend":{"Type":"alloc"}}');
  const dp = new OverlayDataplane(kernel, new SerialQueue(), log, alloc, pub, { ipMasq: true, notrack: true });
  const own: Lease = { subnet: parseCidr('10.7.1.0/24'), attrs: { publicIP: '192.0.2.1', backendType: '' }, etcdLease: '1' };
  const allocPeer: Lease = { subnet: parseCidr('10.7.2.0/24'), attrs: { publicIP: '192.0.2.2', backendType: '' }, etcdLease: '1' };
  const hostgwPeer: Lease = { subnet: parseCidr('10.7.4.0/24'), attrs: { publicIP: '192.0.2.4', backendType: 'host-gw' }, etcdLease: '1' };
  // What the README asks the operator to add: a route to each other host's subnet (here one, as if by hand).
  await kernel.replaceRoute({ dst: '10.7.2.0/24', gateway: '192.0.2.2', oif: eth.index, onlink: false });
  const before = kernel.writes.length;
  dp.setLeases([own, allocPeer, L(3, 3), hostgwPeer]);
  await dp.attach(own);
  await dp.idle();
  dp.leaseAdded(L(5, 5));
  dp.leaseRemoved(allocPeer);
  await dp.idle();
  await dp.requestSync('full');
  assert.equal(dp.stats.errors, 0);
  assert.ok(dp.stats.fullSyncs >= 2 && dp.stats.fastSyncs >= 1, JSON.stringify(dp.stats));
  assert.equal(dp.deviceName, null);
  assert.equal(dp.mtu, 1500); // flannel's alloc: the public interface's MTU
  assert.equal(await kernel.getVxlan('flannel.1'), null);
  assert.deepEqual(dp.appliedPeers(), new Map());
  const routes = (await kernel.listRoutes()).filter((r) => r.gateway).map((r) => `${r.dst} via ${r.gateway}`);
  assert.deepEqual(routes, ['10.7.2.0/24 via 192.0.2.2']);
  const peerWrites = kernel.writes.slice(before).filter((w) => /Neighbour|Fdb|Route|Vxlan|Address/.test(w));
  assert.deepEqual(peerWrites, []);
  assert.ok(kernel.forwarding.has(eth.index), 'forwarding on the public interface');
  assert.deepEqual([...kernel.forwardAccept], ['10.7.0.0/16']);
  assert.equal(kernel.masquerade.get('10.7.0.0/16'), '10.7.1.0/24'); // containers leaving the overlay still get the host's address
  // NOTRACK: the overlay's inner rules only; no vxlan socket to exempt.
  const notrack = kernel.notrack.get('10.7.0.0/16') ?? [];
  assert.ok(notrack.length === 2 && notrack.every((r) => !/udp/.test(r)), notrack.join('\n'));
});
