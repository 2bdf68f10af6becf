// The plugin driver's use cases against the fake kernel and an in-memory address allocator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { FakeKernel } from '../fakes/fake-kernel';
import { KernelError } from '../../src/kernel';
import { OverlayPluginDriver } from '../../src/driver/plugin-driver';
import { OverlayDirectory, OverlayHandle, parsePoolId } from '../../src/driver/overlays';
import { SerialQueue } from '../../src/util/serial-queue';
import { Cidr, formatCidr, formatIPv4, parseCidr } from '../../src/domain/ipv4';
import type { JoinResult } from '../../src/driver/types';
import { freeAddresses, checkRequestedAddress } from '../../src/domain/addresses';
import { bridgeName, vethNames } from '../../src/domain/names';
import { memoryAddresses6 } from '../fakes/fake-addresses6';

const log = pino({ level: 'silent' });
const NID = 'a'.repeat(64);
const EID = 'e1'.repeat(32);

function fakeOverlay(name: string, subnet: string, network: string): OverlayHandle {
  const taken = new Set<number>();
  return {
    name,
    prefix: `/p/${name}`,
    lease: () => ({ subnet: parseCidr(subnet), attrs: { publicIP: '192.0.2.1', backendType: 'vxlan' }, etcdLease: '1' }),
    network: () => parseCidr(network),
    mtu: () => 1450,
    whenReady: async () => undefined,
    vxlan: () => null,
    addresses: {
      async allocate(s: Cidr, _owner: string, requested?: string) {
        const ip = requested ? checkRequestedAddress(s, requested) : freeAddresses(s, taken).next().value!;
        if (taken.has(ip)) throw new Error(`address ${formatIPv4(ip)} is already in use`);
        taken.add(ip);
        return ip;
      },
      async release(_s: Cidr, ip: number | string) {
        return taken.delete(typeof ip === 'number' ? ip : Number(ip));
      },
    },
    addresses6: memoryAddresses6(),
  };
}

function setup() {
  const kernel = new FakeKernel();
  const overlays = new Map([['default', fakeOverlay('default', '10.9.5.0/24', '10.9.0.0/16')], ['blue', fakeOverlay('blue', '10.10.7.0/24', '10.10.0.0/16')]]);
  const dir: OverlayDirectory = {
    async byName(n) {
      const o = overlays.get(n || 'default');
      if (!o) throw new Error(`unknown overlay ${n}`);
      return o;
    },
    all: () => [...overlays.values()],
  };
  return { kernel, dir, driver: new OverlayPluginDriver(kernel, new SerialQueue(), dir, log) };
}

const createNetworkArgs = (pool: string, nid = NID, space = 'overlay-flannel-local') => ({
  networkId: nid,
  options: { generic: {}, enableIPv6: false, internal: false },
  ipv4Data: [{ addressSpace: space, pool, gateway: pool.replace('.0/', '.1/') }],
  ipv6Data: [],
});

test('RequestPool returns this host lease with its gateway; the pool id names overlay and subnet', async () => {
  const { driver } = setup();
  const p = await driver.requestPool({ addressSpace: 'x', pool: '', subPool: '', options: {}, v6: false });
  assert.deepEqual(p, { poolId: 'overlay-flannel/default/10.9.5.0/24', pool: '10.9.5.0/24', data: { 'com.docker.network.gateway': '10.9.5.1/24' } });
  const blue = await driver.requestPool({ addressSpace: 'x', pool: '', subPool: '', options: { network: 'blue' }, v6: false });
  assert.equal(blue.pool, '10.10.7.0/24');
  assert.deepEqual(parsePoolId(blue.poolId).overlay, 'blue');
  await assert.rejects(driver.requestPool({ addressSpace: 'x', pool: '10.9.6.0/24', subPool: '', options: {}, v6: false }), /not this host's subnet/);
  await assert.rejects(driver.requestPool({ addressSpace: 'x', pool: '', subPool: '', options: {}, v6: true }), /IPv6/);
});

test('RequestAddress: gateway, next free, requested, taken; ReleaseAddress frees', async () => {
  const { driver } = setup();
  const poolId = 'overlay-flannel/default/10.9.5.0/24';
  assert.equal((await driver.requestAddress({ poolId, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } })).address, '10.9.5.1/24');
  assert.equal((await driver.requestAddress({ poolId, address: '', options: {} })).address, '10.9.5.2/24');
  assert.equal((await driver.requestAddress({ poolId, address: '10.9.5.77', options: {} })).address, '10.9.5.77/24');
  await assert.rejects(driver.requestAddress({ poolId, address: '10.9.5.77', options: {} }), /already in use/);
  await assert.rejects(driver.requestAddress({ poolId, address: '10.9.6.5', options: {} }), /not in this host's subnet/);
  await assert.rejects(driver.requestAddress({ poolId: 'bogus', address: '', options: {} }), /not made by overlay-flannel/);
  await driver.releaseAddress(poolId, '10.9.5.1'); // gateway: nothing to do
});

test('RequestAddress never allocates from a pool that is not this host lease (unknown overlay, another subnet)', async () => {
  const { driver } = setup();
  await assert.rejects(driver.requestAddress({ poolId: 'overlay-flannel/default/10.9.6.0/24', address: '', options: {} }), /changed from 10.9.6.0\/24 to 10.9.5.0\/24/);
  const noLease = { ...fakeOverlay('green', '10.11.1.0/24', '10.11.0.0/16'), lease: () => null, notReadyReason: () => 'no lease yet: etcd refused the connection' };
  let allocated = 0;
  noLease.addresses = { allocate: async () => ++allocated, release: async () => true };
  const dir: OverlayDirectory = { byName: async () => noLease, all: () => [noLease] };
  const d = new OverlayPluginDriver(new FakeKernel(), new SerialQueue(), dir, log);
  await assert.rejects(d.requestAddress({ poolId: 'overlay-flannel/green/10.11.1.0/24', address: '', options: {} }), /no lease on this host right now \(no lease yet: etcd refused the connection\); retry/);
  assert.equal(allocated, 0);
});

const netArgs = (pool: string, generic: Record<string, string>, nid = NID) => ({ ...createNetworkArgs(pool, nid), options: { generic, enableIPv6: false, internal: false } });
const addrsOf = async (kernel: FakeKernel, name: string): Promise<string[]> => (await kernel.listAddresses((await kernel.getLink(name))!.index)).map((a) => `${a.address}/${a.prefixLen}`).sort();

test('CreateNetwork: routed (default) and bridge records; bad data path, default IPAM and a second network are refused', async () => {
  for (const [generic, addrs, forwarding] of [
    [{}, ['10.9.5.1/24', '169.254.1.1/32'], false],
    [{ datapath: 'routed' }, ['10.9.5.1/24', '169.254.1.1/32'], false],
    [{ datapath: 'bridge' }, ['10.9.5.1/24'], true],
    [{ 'overlay-flannel.datapath': 'Bridge' }, ['10.9.5.1/24'], true],
  ] as const) {
    const { kernel, driver } = setup();
    await driver.createNetwork(netArgs('10.9.5.0/24', generic));
    const br = (await kernel.getLink(bridgeName(NID)))!;
    assert.equal(br.mtu, 1450);
    assert.deepEqual(await addrsOf(kernel, bridgeName(NID)), addrs, JSON.stringify(generic));
    assert.equal(kernel.forwarding.has(br.index), forwarding);
    await driver.createNetwork(netArgs('10.9.5.0/24', generic)); // idempotent for the same network
    assert.deepEqual(await addrsOf(kernel, bridgeName(NID)), addrs);
  }
  const { driver } = setup();
  await assert.rejects(driver.createNetwork(netArgs('10.9.5.0/24', { datapath: 'fast' })), /-o datapath=fast: unknown data path; use -o datapath=routed/);
  await driver.createNetwork(createNetworkArgs('10.9.5.0/24'));
  await assert.rejects(driver.createNetwork(createNetworkArgs('172.17.0.0/16', 'b'.repeat(64), 'LocalDefault')), /-d overlay-flannel --ipam-driver overlay-flannel NAME/);
  await assert.rejects(driver.createNetwork(createNetworkArgs('10.9.5.0/24', 'c'.repeat(64))), /already has a Docker network on this host/);
});

test('-o multicast=false: the bridge records it (alias), Join hands no multicast routes, a restarted driver reads it back; a bad value is refused', async () => {
  for (const [generic, alias, routes] of [
    [{}, undefined, true],
    [{ multicast: 'true' }, undefined, true],
    [{ multicast: 'false' }, 'overlay-flannel multicast=off', false],
    [{ multicast: 'false', datapath: 'bridge' }, 'overlay-flannel multicast=off', false],
  ] as const) {
    const { kernel, driver, dir } = setup();
    await driver.createNetwork(netArgs('10.9.5.0/24', generic));
    assert.equal((await kernel.getLink(bridgeName(NID)))!.alias, alias, JSON.stringify(generic));
    await driver.createEndpoint(endpointArgs('10.9.5.2/24'));
    const fresh = new OverlayPluginDriver(kernel, new SerialQueue(), dir, log); // a plugin restart: only the kernel remembers
    const got = shown(await fresh.join(joinArgs)).routes;
    assert.equal(got.includes('224.0.0.0/4 on-link') && got.includes('255.255.255.255/32 on-link'), routes, JSON.stringify(generic));
    if (!routes) assert.ok(!got.some((r) => r.startsWith('224.') || r.startsWith('255.')));
  }
  const { driver } = setup();
  await assert.rejects(driver.createNetwork(netArgs('10.9.5.0/24', { multicast: 'sometimes' })), /-o multicast=sometimes: use -o multicast=true/);
});

const endpointArgs = (address: string, nid = NID) => ({ networkId: nid, endpointId: EID, address, addressIPv6: '', macAddress: '', options: {} });
const joinArgs = { networkId: NID, endpointId: EID, sandboxKey: '/var/run/docker/netns/x', options: {} };
/** Join's domain answer, readable: addresses dotted, routes "dst via hop" or "dst on-link". */
const shown = (j: JoinResult) => ({
  veth: j.containerVeth,
  gateway: j.gateway === null ? null : formatIPv4(j.gateway),
  routes: j.routes.map((r) => `${formatCidr(r.destination)} ${r.nextHop === null ? 'on-link' : `via ${formatIPv4(r.nextHop)}`}`),
});

test('routed: CreateEndpoint makes a veth off any bridge with forwarding and a /32 host route; Join gives the link-local gateway', async () => {
  const { kernel, driver } = setup();
  await driver.createNetwork(createNetworkArgs('10.9.5.0/24'));
  const v = vethNames(EID);
  assert.deepEqual(await driver.createEndpoint(endpointArgs('10.9.5.2/24')), {});
  const host = (await kernel.getLink(v.host))!;
  assert.equal(host.master, 0);
  assert.ok(kernel.forwarding.has(host.index));
  assert.deepEqual((await kernel.listRoutes(host.index)).map((r) => r.dst), ['10.9.5.2/32']);
  assert.deepEqual(shown(await driver.join(joinArgs)), {
    veth: v.container,
    gateway: '169.254.1.1',
    routes: ['169.254.1.1/32 on-link', '10.9.5.0/25 via 169.254.1.1', '10.9.5.128/25 via 169.254.1.1', '10.9.0.0/16 via 169.254.1.1', '224.0.0.0/4 on-link', '255.255.255.255/32 on-link'],
  });
  assert.deepEqual(await driver.endpointOperInfo(NID, EID), { bridge: bridgeName(NID), hostVeth: v.host, datapath: 'routed' });
  await driver.deleteEndpoint(NID, EID);
  assert.equal(await kernel.getLink(v.host), null);
  await driver.deleteNetwork(NID);
  assert.equal(await kernel.getLink(bridgeName(NID)), null);
});

test('routed: each network of a host has its own link-local gateway (a container can be on two); a network keeps its own across a restart; a freed one is taken again', async () => {
  const { kernel, driver } = setup();
  const NID2 = 'b'.repeat(64);
  const EID2 = 'e2'.repeat(32);
  await driver.createNetwork(createNetworkArgs('10.9.5.0/24'));
  await driver.createNetwork(createNetworkArgs('10.10.7.0/24', NID2));
  assert.deepEqual(await addrsOf(kernel, bridgeName(NID)), ['10.9.5.1/24', '169.254.1.1/32']);
  assert.deepEqual(await addrsOf(kernel, bridgeName(NID2)), ['10.10.7.1/24', '169.254.1.2/32']);
  await driver.createEndpoint(endpointArgs('10.9.5.2/24'));
  await driver.createEndpoint({ ...endpointArgs('10.10.7.2/24', NID2), endpointId: EID2 });
  const j1 = shown(await driver.join(joinArgs));
  const j2 = shown(await driver.join({ ...joinArgs, networkId: NID2, endpointId: EID2 })); // the same sandbox
  assert.deepEqual([j1.gateway, j1.routes[0]], ['169.254.1.1', '169.254.1.1/32 on-link']);
  assert.ok(j1.routes.includes('224.0.0.0/4 on-link') && j1.routes.includes('255.255.255.255/32 on-link'), 'the first network carries multicast');
  // The second network of the same container: its own gateway, and no second multicast route (EEXIST).
  assert.deepEqual(j2, { veth: vethNames(EID2).container, gateway: '169.254.1.2', routes: ['169.254.1.2/32 on-link', '10.10.7.0/25 via 169.254.1.2', '10.10.7.128/25 via 169.254.1.2', '10.10.0.0/16 via 169.254.1.2'] });
  const other = shown(await driver.join({ ...joinArgs, networkId: NID2, endpointId: EID2, sandboxKey: '/var/run/docker/netns/other' }));
  assert.ok(other.routes.includes('224.0.0.0/4 on-link'), 'another container gets them');
  // A new process (plugin restart) reads the gateways from the bridges and changes nothing.
  const again = new OverlayPluginDriver(kernel, new SerialQueue(), { byName: async () => fakeOverlay('blue', '10.10.7.0/24', '10.10.0.0/16'), all: () => [fakeOverlay('blue', '10.10.7.0/24', '10.10.0.0/16')] }, log);
  await again.createNetwork(createNetworkArgs('10.10.7.0/24', NID2));
  assert.equal(shown(await again.join({ ...joinArgs, networkId: NID2, endpointId: EID2 })).gateway, '169.254.1.2');
  assert.deepEqual(await addrsOf(kernel, bridgeName(NID2)), ['10.10.7.1/24', '169.254.1.2/32']);
  await driver.deleteEndpoint(NID, EID);
  await driver.deleteNetwork(NID);
  await driver.createNetwork(createNetworkArgs('10.9.5.0/24', 'c'.repeat(64)));
  assert.deepEqual(await addrsOf(kernel, bridgeName('c'.repeat(64))), ['10.9.5.1/24', '169.254.1.1/32'], 'the freed .1 is taken again');
});

test('bridge: CreateEndpoint, Join, DeleteEndpoint: veth on the bridge, Join answer per protocol', async () => {
  const { kernel, driver } = setup();
  await driver.createNetwork(netArgs('10.9.5.0/24', { datapath: 'bridge' }));
  const v = vethNames(EID);
  assert.deepEqual(await driver.createEndpoint(endpointArgs('10.9.5.2/24')), {});
  const host = (await kernel.getLink(v.host))!;
  assert.equal(host.master, (await kernel.getLink(bridgeName(NID)))!.index);
  assert.deepEqual(await kernel.listRoutes(host.index), []);
  assert.deepEqual(shown(await driver.join(joinArgs)), { veth: v.container, gateway: '10.9.5.1', routes: ['10.9.0.0/16 via 10.9.5.1', '224.0.0.0/4 on-link', '255.255.255.255/32 on-link'] });
  await driver.leave();
  await driver.deleteEndpoint(NID, EID);
  assert.equal(await kernel.getLink(v.host), null);
  await driver.deleteEndpoint(NID, EID); // unknown: fine
  await driver.deleteNetwork(NID);
  assert.equal(await kernel.getLink(bridgeName(NID)), null);
  await driver.deleteNetwork(NID);
});

test('after a reboot (bridge gone) CreateEndpoint rebuilds the record from the address, routed; an unknown network is refused', async () => {
  const { kernel, driver } = setup();
  await driver.createEndpoint(endpointArgs('10.10.7.9/24'));
  assert.deepEqual(await addrsOf(kernel, bridgeName(NID)), ['10.10.7.1/24', '169.254.1.1/32']);
  assert.deepEqual((await kernel.listRoutes((await kernel.getLink(vethNames(EID).host))!.index)).map((r) => r.dst), ['10.10.7.9/32']);
  await assert.rejects(driver.createEndpoint(endpointArgs('192.168.1.9/24', 'f'.repeat(64))), /not known to overlay-flannel/);
});

test('RequestPool refuses an overlay that already has a network here (Docker would re-request the pool forever); the other overlay and --subnet replays pass', async () => {
  const { driver } = setup();
  const args = (options: Record<string, string>, pool = '') => ({ addressSpace: 'x', pool, subPool: '', options, v6: false });
  await driver.requestPool(args({}));
  await driver.createNetwork(createNetworkArgs('10.9.5.0/24'));
  await assert.rejects(driver.requestPool(args({})), /overlay "default" already has a Docker network on this host \(bridge ofb-/);
  await driver.requestPool(args({ network: 'blue' }));
  await driver.requestPool(args({}, '10.9.5.0/24'));
  await driver.deleteNetwork(NID);
  await driver.requestPool(args({}));
});

test('Join repairs the endpoint links only when this process did not create them (plugin restarted in between)', async () => {
  const { kernel, driver } = setup();
  await driver.createNetwork(createNetworkArgs('10.9.5.0/24'));
  await driver.createEndpoint(endpointArgs('10.9.5.2/24'));
  const v = vethNames(EID);
  const calls = kernel.writes.filter((c) => c.startsWith('ensureVethPair')).length;
  await driver.join(joinArgs); // same process: nothing to redo
  assert.equal(kernel.writes.filter((c) => c.startsWith('ensureVethPair')).length, calls);
  await kernel.deleteLink(v.host); // lost while the plugin was down
  const restarted = new OverlayPluginDriver(kernel, new SerialQueue(), { byName: async () => fakeOverlay('default', '10.9.5.0/24', '10.9.0.0/16'), all: () => [fakeOverlay('default', '10.9.5.0/24', '10.9.0.0/16')] }, log);
  await restarted.join(joinArgs);
  assert.ok(await kernel.getLink(v.host), 'the veth pair is back');
});

/** Make the next call of `method` do its work and then fail (a step that fails half-way). */
function failAfterWork(kernel: FakeKernel, method: 'ensureVethPair' | 'setForwarding' | 'replaceRoute'): void {
  const real = kernel[method].bind(kernel) as (...a: unknown[]) => Promise<unknown>;
  let once = true;
  (kernel as unknown as Record<string, unknown>)[method] = async (...a: unknown[]) => {
    const r = await real(...a);
    if (!once) return r;
    once = false;
    throw new KernelError(`${method}: EBUSY (injected)`, 'EBUSY');
  };
}

test('CreateEndpoint undoes what it made when any step fails (routed and bridge): no veth or host route left, the bridge kept, a retry succeeds', async () => {
  const rows: ['routed' | 'bridge', 'ensureVethPair' | 'setForwarding' | 'replaceRoute'][] = [
    ['routed', 'ensureVethPair'],
    ['routed', 'setForwarding'],
    ['routed', 'replaceRoute'],
    ['bridge', 'ensureVethPair'],
  ];
  const v = vethNames(EID);
  for (const [mode, step] of rows) {
    const where = `${mode}, ${step} failing`;
    const { kernel, driver } = setup();
    await driver.createNetwork(netArgs('10.9.5.0/24', { datapath: mode }));
    failAfterWork(kernel, step);
    await assert.rejects(driver.createEndpoint(endpointArgs('10.9.5.2/24')), /EBUSY \(injected\)/, where);
    assert.equal(await kernel.getLink(v.host), null, `${where}: host end removed`);
    assert.equal(await kernel.getLink(v.container), null, `${where}: container end removed`);
    assert.deepEqual((await kernel.listRoutes()).filter((r) => r.dst === '10.9.5.2/32'), [], `${where}: no host route`);
    assert.ok(await kernel.getLink(bridgeName(NID)), `${where}: the bridge (the network's record) stays`);
    assert.equal(driver.endpointAddress(EID.slice(0, 12)), undefined, `${where}: the endpoint is not remembered`);
    await driver.createEndpoint(endpointArgs('10.9.5.2/24'));
    assert.ok(await kernel.getLink(v.host), `${where}: a retry makes the pair`);
    if (mode === 'routed') assert.deepEqual((await kernel.listRoutes()).filter((r) => r.dst === '10.9.5.2/32').length, 1, `${where}: and the route`);
  }
});

test('a failing undo does not hide the cause: CreateEndpoint rejects with the step that failed', async () => {
  const { kernel, driver } = setup();
  await driver.createNetwork(createNetworkArgs('10.9.5.0/24'));
  failAfterWork(kernel, 'replaceRoute');
  kernel.failNext('deleteLink', new KernelError('delete link: EBUSY (undo)', 'EBUSY'));
  await assert.rejects(driver.createEndpoint(endpointArgs('10.9.5.2/24')), /replaceRoute: EBUSY \(injected\)/);
  // The pair the undo could not delete is what the address audit sweeps; DeleteEndpoint removes it too.
  await driver.deleteEndpoint(NID, EID);
  assert.equal(await kernel.getLink(vethNames(EID).host), null);
});
