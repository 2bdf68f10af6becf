// The driver's IPv6 half of a Docker --ipv6 network (network-v6.ts) against the fake kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { FakeKernel } from '../fakes/fake-kernel';
import { OverlayPluginDriver } from '../../src/driver/plugin-driver';
import type { OverlayDirectory, OverlayHandle } from '../../src/driver/overlays';
import { SerialQueue } from '../../src/util/serial-queue';
import { parseCidr } from '../../src/domain/ipv4';
import { parseCidr6 } from '../../src/domain/ipv6';
import { bridgeName, vethNames } from '../../src/domain/names';
import { joinResponse } from '../../src/api/routes';
import { memoryAddresses6 } from '../fakes/fake-addresses6';

const log = pino({ level: 'silent' });
const NID = 'b'.repeat(64);
const EID = 'e6'.repeat(32);

function overlay(subnet6?: string): OverlayHandle {
  return {
    name: 'default',
    prefix: '/p/default',
    lease: () => ({ subnet: parseCidr('10.9.5.0/24'), ...(subnet6 ? { subnet6: parseCidr6(subnet6) } : {}), attrs: { publicIP: '192.0.2.1', backendType: 'vxlan' }, etcdLease: '1' }),
    network: () => parseCidr('10.9.0.0/16'),
    network6: () => parseCidr6('fd00:10::/48'),
    mtu: () => 1450,
    whenReady: async () => undefined,
    vxlan: () => null,
    addresses: { allocate: async () => 0, release: async () => false },
    addresses6: memoryAddresses6(),
  };
}

function setup(subnet6: string | undefined = 'fd00:10:0:5::/64') {
  const kernel = new FakeKernel();
  const o = overlay(subnet6);
  const dir: OverlayDirectory = { byName: async () => o, all: () => [o] };
  return { kernel, driver: new OverlayPluginDriver(kernel, new SerialQueue(), dir, log) };
}

const net = (generic: Record<string, string> = {}, pool6 = 'fd00:10:0:5::/64') => ({
  networkId: NID,
  options: { generic, enableIPv6: true, internal: false },
  ipv4Data: [{ addressSpace: 'overlay-flannel-local', pool: '10.9.5.0/24', gateway: '10.9.5.1/24' }],
  ipv6Data: [{ addressSpace: 'overlay-flannel-local', pool: pool6, gateway: 'fd00:10:0:5::1/64' }],
});
const ep = { networkId: NID, endpointId: EID, address: '10.9.5.2/24', addressIPv6: 'fd00:10:0:5::2/64', macAddress: '', options: {} };
const join = { networkId: NID, endpointId: EID, sandboxKey: '/var/run/docker/netns/x', options: {} };

test('routed --ipv6: host veth holds the link-local v6 gateway and a /128 route; Join gives GatewayIPv6 and v6 routes; v6 forwarding on', async () => {
  const { kernel, driver } = setup();
  await driver.createNetwork(net());
  assert.equal(kernel.ipv6Forwarding, false, 'not before the first v6 endpoint');
  await driver.createEndpoint(ep);
  assert.equal(kernel.ipv6Forwarding, true);
  assert.deepEqual([driver.endpointAddress(EID.slice(0, 12)), driver.endpointAddress(EID.slice(0, 12), 6)], ['10.9.5.2', 'fd00:10:0:5::2'], 'the status page\'s remembered addresses, both families');
  const host = (await kernel.getLink(vethNames(EID).host))!;
  assert.deepEqual((await kernel.listAddresses(host.index, 6)).map((a) => `${a.address}/${a.prefixLen}`).filter((a) => a.startsWith('fe80::a9fe')), ['fe80::a9fe:101/64']);
  assert.ok((await kernel.listRoutes(host.index, 6)).some((r) => r.dst === 'fd00:10:0:5::2/128'), 'host route to the container');
  const r = await driver.join(join);
  assert.equal(r.gateway6, 'fe80::a9fe:101');
  assert.deepEqual(r.routes6, [
    { destination: 'fe80::a9fe:101/128', nextHop: null },
    { destination: 'fd00:10:0:5::/65', nextHop: 'fe80::a9fe:101' },
    { destination: 'fd00:10:0:5:8000::/65', nextHop: 'fe80::a9fe:101' },
    { destination: 'fd00:10::/48', nextHop: 'fe80::a9fe:101' },
  ]);
  const wire = joinResponse(r);
  assert.equal(wire.GatewayIPv6, 'fe80::a9fe:101');
  assert.deepEqual(wire.StaticRoutes.slice(-4)[0], { Destination: 'fe80::a9fe:101/128', RouteType: 1 });
  assert.deepEqual(wire.StaticRoutes.slice(-1)[0], { Destination: 'fd00:10::/48', RouteType: 0, NextHop: 'fe80::a9fe:101' });
});

test('bridge --ipv6: the bridge holds ::1 of the v6 lease, Join gives it as GatewayIPv6', async () => {
  const { kernel, driver } = setup();
  await driver.createNetwork(net({ datapath: 'bridge' }));
  const br = (await kernel.getLink(bridgeName(NID)))!;
  assert.ok((await kernel.listAddresses(br.index, 6)).some((a) => a.address === 'fd00:10:0:5::1' && a.prefixLen === 64));
  await driver.createEndpoint(ep);
  const r = await driver.join(join);
  assert.equal(r.gateway6, 'fd00:10:0:5::1');
  assert.deepEqual(r.routes6, [{ destination: 'fd00:10::/48', nextHop: 'fd00:10:0:5::1' }]);
});

test('a v4-only network has no v6 half; an IPv6 pool that is not the v6 lease is refused', async () => {
  const { driver } = setup();
  await assert.rejects(driver.createNetwork(net({}, 'fd00:10:0:9::/64')), /not this host's IPv6 lease/);
  const v4 = setup();
  await v4.driver.createNetwork({ ...net(), options: { generic: {}, enableIPv6: false, internal: false }, ipv6Data: [] });
  await v4.driver.createEndpoint({ ...ep, addressIPv6: '' });
  const r = await v4.driver.join(join);
  assert.equal(r.gateway6, undefined);
  assert.equal(joinResponse(r).GatewayIPv6, undefined);
  assert.equal(v4.kernel.ipv6Forwarding, false);
});

test('bridge --ipv6 after a reboot (bridge gone): CreateEndpoint rebuilds the bridge with its v6 gateway too', async () => {
  const { kernel, driver } = setup();
  await driver.createNetwork(net({ datapath: 'bridge' }));
  await kernel.deleteLink(bridgeName(NID));
  await driver.createEndpoint(ep);
  const br = (await kernel.getLink(bridgeName(NID)))!;
  assert.ok((await kernel.listAddresses(br.index, 6)).some((a) => a.address === 'fd00:10:0:5::1'), 'the v6 gateway is back');
  assert.equal((await driver.join(join)).gateway6, 'fd00:10:0:5::1');
});
