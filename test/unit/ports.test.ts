// Published ports: the DNAT rule set (pure) and the driver's Program/RevokeExternalConnectivity against the fake kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { FakeKernel } from '../fakes/fake-kernel';
import { OverlayPluginDriver } from '../../src/driver/plugin-driver';
import type { OverlayDirectory, OverlayHandle } from '../../src/driver/overlays';
import { SerialQueue } from '../../src/util/serial-queue';
import { parseCidr } from '../../src/domain/ipv4';
import { isPortCommentOf, portRules, portRuleText, type PortBinding } from '../../src/domain/port-rules';
import { dnatTarget, portRuleExpressions } from '../../src/kernel/nft-ports';
import { memoryAddresses6 } from '../fakes/fake-addresses6';

const EID = 'e1'.repeat(32);
const NID = 'a'.repeat(64);
const bind = (p: Partial<PortBinding>): PortBinding => ({ proto: 6, ip: '', port: 80, hostIP: '', hostPort: 8080, hostPortEnd: 8080, ...p });

test('port rules: tcp on any local address, udp on one HostIP, one rule per chain, comments carry the endpoint', () => {
  const { rules, skipped } = portRules(EID, '10.9.5.2/24', [bind({}), bind({ proto: 17, port: 53, hostPort: 5353, hostPortEnd: 5353, hostIP: '192.0.2.1' })]);
  assert.deepEqual(skipped, []);
  assert.deepEqual(rules.map(portRuleText), [
    '-A PREROUTING -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 8080 -m comment --comment "overlay-flannel port e1e1e1e1e1e1 tcp *:8080 > 10.9.5.2:80" -j DNAT --to-destination 10.9.5.2:80',
    '-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 8080 -m comment --comment "overlay-flannel port e1e1e1e1e1e1 tcp *:8080 > 10.9.5.2:80" -j DNAT --to-destination 10.9.5.2:80',
    '-A PREROUTING -d 192.0.2.1/32 -p udp -m udp --dport 5353 -m comment --comment "overlay-flannel port e1e1e1e1e1e1 udp 192.0.2.1:5353 > 10.9.5.2:53" -j DNAT --to-destination 10.9.5.2:53',
    '-A OUTPUT -d 192.0.2.1/32 -p udp -m udp --dport 5353 -m comment --comment "overlay-flannel port e1e1e1e1e1e1 udp 192.0.2.1:5353 > 10.9.5.2:53" -j DNAT --to-destination 10.9.5.2:53',
  ]);
  assert.ok(rules.every((r) => isPortCommentOf(r.comment, EID)));
  assert.ok(!isPortCommentOf('overlay-flannel port e1e1e1e1e1e2 tcp *:1 > 1.2.3.4:1', EID));
  assert.ok(!isPortCommentOf('overlay-flannel masq 10.9.0.0/16', EID));
});

test('port rules: 0.0.0.0 = any, host port range uses its first port, IPv6 and duplicate bindings skipped', () => {
  const { rules, skipped } = portRules(EID, '10.9.5.2', [
    bind({ hostIP: '0.0.0.0', hostPort: 8000, hostPortEnd: 8010 }),
    bind({ hostIP: '::', hostPort: 8000, hostPortEnd: 8010 }),
    bind({ hostPort: 8000, hostPortEnd: 8010 }),
    bind({ proto: 17, port: 7000, hostPort: 9000, hostPortEnd: 9000 }),
  ]);
  assert.equal(skipped.length, 1);
  assert.deepEqual(
    rules.filter((r) => r.chain === 'PREROUTING').map((r) => [r.proto, r.hostIP, r.hostPort, r.toAddress, r.toPort]),
    [
      [6, null, 8000, '10.9.5.2', 80],
      [17, null, 9000, '10.9.5.2', 7000],
    ],
  );
});

test('port rules: ephemeral host ports (-P) and sctp are refused clearly', () => {
  assert.throws(() => portRules(EID, '10.9.5.2', [bind({ hostPort: 0, hostPortEnd: 0 })]), /ephemeral host ports \(-P.*not supported yet/);
  assert.throws(() => portRules(EID, '10.9.5.2', [bind({ proto: 132 })]), /sctp are not supported/);
  assert.deepEqual(portRules(EID, '10.9.5.2', []).rules, []);
});

test('DNAT target and matches are encoded as iptables-nft writes them', () => {
  const t = dnatTarget('10.9.5.2', 80).toString('hex');
  // nf_nat_range: flags MAP_IPS|PROTO_SPECIFIED, min/max address (16 bytes each), min/max port (network order)
  assert.ok(t.includes('03000000' + '0a090502' + '00'.repeat(12) + '0a090502' + '00'.repeat(12) + '0050' + '0050'), t);
  assert.ok(t.includes(Buffer.from('DNAT\0').toString('hex')));
  const { rules } = portRules(EID, '10.9.5.2', [bind({})]);
  const pre = Buffer.concat(portRuleExpressions(rules[0]!)).toString('latin1');
  assert.ok(pre.includes('addrtype\0') && pre.includes('meta\0') && pre.includes('payload\0') && !pre.includes('bitwise\0'));
  const out = Buffer.concat(portRuleExpressions(rules[1]!)).toString('latin1');
  assert.ok(out.includes('bitwise\0'), 'OUTPUT excludes 127.0.0.0/8');
});

function setup() {
  const kernel = new FakeKernel();
  const o: OverlayHandle = {
    name: 'default',
    prefix: '/p/default',
    lease: () => ({ subnet: parseCidr('10.9.5.0/24'), attrs: { publicIP: '192.0.2.1', backendType: 'vxlan' }, etcdLease: '1' }),
    network: () => parseCidr('10.9.0.0/16'),
    mtu: () => 1450,
    whenReady: async () => undefined,
    vxlan: () => null,
    addresses: { allocate: async () => 2, release: async () => true },
    addresses6: memoryAddresses6(),
  };
  const dir: OverlayDirectory = { byName: async () => o, all: () => [o] };
  return { kernel, driver: new OverlayPluginDriver(kernel, new SerialQueue(), dir, pino({ level: 'silent' })) };
}

test('Program/RevokeExternalConnectivity: rules from the CreateEndpoint address, idempotent, removed by Revoke and DeleteEndpoint', async () => {
  const { kernel, driver } = setup();
  await driver.createNetwork({ networkId: NID, options: { generic: {}, enableIPv6: false, internal: false }, ipv4Data: [{ addressSpace: 'x', pool: '10.9.5.0/24', gateway: '10.9.5.1/24' }], ipv6Data: [] });
  await driver.createEndpoint({ networkId: NID, endpointId: EID, address: '10.9.5.2/24', addressIPv6: '', macAddress: '', options: {} });
  const args = { networkId: NID, endpointId: EID, portMap: [bind({}), bind({ proto: 17, port: 53, hostPort: 5353, hostPortEnd: 5353 })], exposedPorts: [] };
  await driver.programExternalConnectivity(args);
  assert.equal(kernel.ports.get(EID.slice(0, 12))?.length, 4);
  assert.match(kernel.ports.get(EID.slice(0, 12))![2]!, /-p udp .*--dport 5353 .*--to-destination 10\.9\.5\.2:53$/);
  const writes = kernel.writes.length;
  await driver.programExternalConnectivity(args);
  assert.equal(kernel.writes.length, writes, 'second Program changes nothing');
  await driver.revokeExternalConnectivity(NID, EID);
  assert.equal(kernel.ports.size, 0);
  await driver.revokeExternalConnectivity(NID, EID); // unknown: fine
  await driver.programExternalConnectivity(args);
  await driver.leave();
  await driver.deleteEndpoint(NID, EID);
  assert.equal(kernel.ports.size, 0, 'DeleteEndpoint removes them too');
});

test('ProgramExternalConnectivity: unknown endpoint address, no nat table, -P are errors; no ports is a no-op', async () => {
  const { kernel, driver } = setup();
  await driver.programExternalConnectivity({ networkId: NID, endpointId: EID, portMap: [], exposedPorts: [] });
  await assert.rejects(driver.programExternalConnectivity({ networkId: NID, endpointId: EID, portMap: [bind({})], exposedPorts: [] }), /address is not known .*restart the container/);
  await driver.createNetwork({ networkId: NID, options: { generic: {}, enableIPv6: false, internal: false }, ipv4Data: [{ addressSpace: 'x', pool: '10.9.5.0/24', gateway: '10.9.5.1/24' }], ipv6Data: [] });
  await driver.createEndpoint({ networkId: NID, endpointId: EID, address: '10.9.5.2/24', addressIPv6: '', macAddress: '', options: {} });
  await assert.rejects(driver.programExternalConnectivity({ networkId: NID, endpointId: EID, portMap: [bind({ hostPort: 0, hostPortEnd: 0 })], exposedPorts: [] }), /ephemeral/);
  kernel.natChain = false;
  await assert.rejects(driver.programExternalConnectivity({ networkId: NID, endpointId: EID, portMap: [bind({})], exposedPorts: [] }), /no nftables "ip nat" table.*\n.*iptables -t nat -I PREROUTING/s);
});

test('a host port another endpoint already publishes is refused (Docker allocates none for a remote driver)', async () => {
  const { kernel, driver } = setup();
  const EID2 = 'e2'.repeat(32);
  await driver.createNetwork({ networkId: NID, options: { generic: {}, enableIPv6: false, internal: false }, ipv4Data: [{ addressSpace: 'x', pool: '10.9.5.0/24', gateway: '10.9.5.1/24' }], ipv6Data: [] });
  for (const [e, a] of [[EID, '10.9.5.2/24'], [EID2, '10.9.5.3/24']]) await driver.createEndpoint({ networkId: NID, endpointId: e!, address: a!, addressIPv6: '', macAddress: '', options: {} });
  await driver.programExternalConnectivity({ networkId: NID, endpointId: EID, portMap: [bind({ hostIP: '192.0.2.1' })], exposedPorts: [] });
  await assert.rejects(
    driver.programExternalConnectivity({ networkId: NID, endpointId: EID2, portMap: [bind({})], exposedPorts: [] }),
    /already published by endpoint e1e1e1e1e1e1 \(tcp 192\.0\.2\.1:8080\)/,
  );
  await driver.programExternalConnectivity({ networkId: NID, endpointId: EID2, portMap: [bind({ proto: 17 }), bind({ hostIP: '192.0.2.9' })], exposedPorts: [] });
  assert.equal(kernel.ports.get(EID2.slice(0, 12))?.length, 4);
  await driver.revokeExternalConnectivity(NID, EID);
  await driver.programExternalConnectivity({ networkId: NID, endpointId: EID2, portMap: [bind({})], exposedPorts: [] });
});
