// The peer planner as tables: desired entries per backend, op order, idempotence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { desiredPeers, planPeers, PeerState, PeerOp } from '../../src/domain/peers';
import { parseNetworkConfig } from '../../src/domain/network-config';
import { parseCidr } from '../../src/domain/ipv4';
import { Lease } from '../../src/domain/lease';
import { vtepMacFor } from '../../src/domain/mac';

const vxlan = parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan"}}').backend;
const direct = parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","DirectRouting":true}}').backend;
const hostgw = parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"Type":"host-gw"}}').backend;
const alloc = parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"Type":"alloc"}}').backend;
const L = (subnet: string, ip: string, mac = '02:00:00:00:00:0' + subnet.split('.')[2].slice(-1), type = 'vxlan'): Lease => ({
  subnet: parseCidr(subnet),
  attrs: type === 'vxlan' ? { publicIP: ip, backendType: type, vxlan: { vni: 1, vtepMac: mac } } : { publicIP: ip, backendType: type },
  etcdLease: '1',
});
const own = parseCidr('10.1.1.0/24');
const onLink = (ip: string) => ip.startsWith('192.0.2.');
const empty: PeerState = { neighbours: [], fdb: [], routes: [], flood: [] };

test('vxlan: neighbour, FDB and onlink route per remote lease; own lease skipped', () => {
  const { state, skipped } = desiredPeers({ backend: vxlan, ownSubnet: own, leases: [L('10.1.1.0/24', '192.0.2.1'), L('10.1.2.0/24', '192.0.2.2')], onLink });
  assert.deepEqual(skipped, []);
  assert.deepEqual(state, {
    neighbours: [{ ip: '10.1.2.0', mac: '02:00:00:00:00:02' }],
    fdb: [{ mac: '02:00:00:00:00:02', dst: '192.0.2.2' }],
    routes: [{ dst: '10.1.2.0/24', gateway: '10.1.2.0', dev: 'vxlan', onlink: true }],
    flood: [],
  });
});

test('DirectRouting: plain route for on-link peers, vxlan for the others', () => {
  const { state } = desiredPeers({ backend: direct, ownSubnet: own, leases: [L('10.1.2.0/24', '192.0.2.2'), L('10.1.3.0/24', '203.0.113.3')], onLink });
  assert.deepEqual(state.routes, [
    { dst: '10.1.2.0/24', gateway: '192.0.2.2', dev: 'public', onlink: false },
    { dst: '10.1.3.0/24', gateway: '10.1.3.0', dev: 'vxlan', onlink: true },
  ]);
  assert.equal(state.fdb.length, 1);
});

test('host-gw: route via PublicIP; off-link peers and other backends are skipped with a reason', () => {
  const { state, skipped } = desiredPeers({
    backend: hostgw,
    ownSubnet: own,
    leases: [L('10.1.2.0/24', '192.0.2.2', '', 'host-gw'), L('10.1.3.0/24', '203.0.113.3', '', 'host-gw'), L('10.1.4.0/24', '192.0.2.4')],
    onLink,
  });
  assert.deepEqual(state.routes, [{ dst: '10.1.2.0/24', gateway: '192.0.2.2', dev: 'public', onlink: false }]);
  assert.deepEqual(skipped.map((s) => s.subnet), ['10.1.3.0/24', '10.1.4.0/24']);
  assert.match(skipped[0].reason, /not on-link/);
  assert.match(skipped[1].reason, /backend is "vxlan"/);
});

test('alloc: no entries for any lease (alloc, host-gw, vxlan, on-link or not), and nothing to warn about', () => {
  const leases = [L('10.1.2.0/24', '192.0.2.2', '', ''), L('10.1.3.0/24', '192.0.2.3', '', 'host-gw'), L('10.1.4.0/24', '192.0.2.4'), L('10.1.5.0/24', '203.0.113.5', '', '')];
  assert.deepEqual(desiredPeers({ backend: alloc, ownSubnet: own, leases, onLink }), { state: empty, skipped: [] });
});

test('vxlan and host-gw overlays skip alloc leases (no BackendType) and say so', () => {
  for (const backend of [vxlan, hostgw]) {
    const { state, skipped } = desiredPeers({ backend, ownSubnet: own, leases: [L('10.1.2.0/24', '192.0.2.2', '', '')], onLink });
    assert.deepEqual(state, empty);
    assert.deepEqual(skipped.map((s) => s.subnet), ['10.1.2.0/24']);
    assert.match(skipped[0].reason, new RegExp(`backend is alloc \\(no BackendType\\), this overlay uses ${backend.type}`));
  }
});

const kinds = (ops: PeerOp[]) => ops.map((o) => o.op);

test('plan from empty writes neighbour, FDB, route in that order; applying it again plans nothing', () => {
  const { state } = desiredPeers({ backend: vxlan, ownSubnet: own, leases: [L('10.1.2.0/24', '192.0.2.2'), L('10.1.3.0/24', '192.0.2.3')], onLink });
  const ops = planPeers(state, empty);
  assert.deepEqual(kinds(ops), ['setNeighbour', 'setNeighbour', 'setFdb', 'setFdb', 'setRoute', 'setRoute']);
  assert.deepEqual(planPeers(state, state), []);
});

test('a vanished lease is removed in reverse order: route, FDB, neighbour', () => {
  const { state: before } = desiredPeers({ backend: vxlan, ownSubnet: own, leases: [L('10.1.2.0/24', '192.0.2.2')], onLink });
  assert.deepEqual(planPeers(empty, before), [
    { op: 'deleteRoute', dst: '10.1.2.0/24' },
    { op: 'deleteFdb', mac: '02:00:00:00:00:02', dst: '192.0.2.2' },
    { op: 'deleteNeighbour', ip: '10.1.2.0' },
  ]);
});

test('a changed VtepMAC drops the old FDB entry (flannel leaks it) and replaces the neighbour', () => {
  const { state: before } = desiredPeers({ backend: vxlan, ownSubnet: own, leases: [L('10.1.2.0/24', '192.0.2.2', '02:aa:00:00:00:01')], onLink });
  const { state: after } = desiredPeers({ backend: vxlan, ownSubnet: own, leases: [L('10.1.2.0/24', '192.0.2.2', '02:bb:00:00:00:02')], onLink });
  assert.deepEqual(planPeers(after, before), [
    { op: 'deleteFdb', mac: '02:aa:00:00:00:01', dst: '192.0.2.2' },
    { op: 'setNeighbour', entry: { ip: '10.1.2.0', mac: '02:bb:00:00:00:02' } },
    { op: 'setFdb', entry: { mac: '02:bb:00:00:00:02', dst: '192.0.2.2' } },
  ]);
});

test('a moved host (same MAC, new PublicIP) rewrites its FDB entry; a changed gateway rewrites the route', () => {
  const have: PeerState = {
    neighbours: [{ ip: '10.1.2.0', mac: '02:00:00:00:00:02' }],
    fdb: [{ mac: '02:00:00:00:00:02', dst: '192.0.2.9' }],
    routes: [{ dst: '10.1.2.0/24', gateway: '192.0.2.2', dev: 'public', onlink: false }],
    flood: [],
  };
  const { state } = desiredPeers({ backend: vxlan, ownSubnet: own, leases: [L('10.1.2.0/24', '192.0.2.2')], onLink });
  assert.deepEqual(kinds(planPeers(state, have)), ['deleteFdb', 'setFdb', 'setRoute']);
});

// Flooding (issue 17): only overlay-flannel peers (VtepMAC derived from VNI and PublicIP) get an
// all-zeros FDB entry, and only when asked; flanneld peers (random VtepMAC) never do.
const ours = (subnet: string, ip: string): Lease => L(subnet, ip, vtepMacFor(1, ip));
test('flood entries: ours only, when asked, DirectRouting peers too, host-gw never', () => {
  const leases = [ours('10.1.1.0/24', '192.0.2.1'), ours('10.1.2.0/24', '192.0.2.2'), L('10.1.3.0/24', '192.0.2.3', '0a:11:22:33:44:55'), ours('10.1.4.0/24', '203.0.113.4')];
  const cases: { name: string; backend: typeof vxlan; flood: boolean | undefined; want: string[] }[] = [
    { name: 'vxlan, flooding on', backend: vxlan, flood: true, want: ['192.0.2.2', '203.0.113.4'] },
    { name: 'vxlan, flooding off', backend: vxlan, flood: false, want: [] },
    { name: 'vxlan, not said', backend: vxlan, flood: undefined, want: [] },
    { name: 'DirectRouting: the vxlan device still replicates', backend: direct, flood: true, want: ['192.0.2.2', '203.0.113.4'] },
  ];
  for (const c of cases) {
    const { state } = desiredPeers({ backend: c.backend, ownSubnet: own, leases, onLink, ...(c.flood === undefined ? {} : { flood: c.flood }) });
    assert.deepEqual(state.flood, c.want, c.name);
  }
  const hg = desiredPeers({ backend: hostgw, ownSubnet: own, leases: [L('10.1.2.0/24', '192.0.2.2', undefined, 'host-gw')], onLink, flood: true });
  assert.deepEqual(hg.state.flood, [], 'host-gw has no vxlan device');
});

test('flood entries follow leases: a new peer is added after its FDB entry, a gone one removed before it', () => {
  const one = desiredPeers({ backend: vxlan, ownSubnet: own, leases: [ours('10.1.2.0/24', '192.0.2.2')], onLink, flood: true }).state;
  const two = desiredPeers({ backend: vxlan, ownSubnet: own, leases: [ours('10.1.2.0/24', '192.0.2.2'), ours('10.1.3.0/24', '192.0.2.3')], onLink, flood: true }).state;
  assert.deepEqual(kinds(planPeers(two, one)), ['setNeighbour', 'setFdb', 'setFlood', 'setRoute']);
  assert.deepEqual(planPeers(one, two).slice(0, 2), [{ op: 'deleteRoute', dst: '10.1.3.0/24' }, { op: 'deleteFlood', dst: '192.0.2.3' }]);
  assert.deepEqual(planPeers(two, two), [], 'idempotent');
  const off = desiredPeers({ backend: vxlan, ownSubnet: own, leases: [ours('10.1.2.0/24', '192.0.2.2')], onLink, flood: false }).state;
  assert.deepEqual(planPeers(off, one), [{ op: 'deleteFlood', dst: '192.0.2.2' }], 'turning it off removes only the flood entry');
});
