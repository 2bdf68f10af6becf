// Multicast decisions as tables (issue 17): the option, Join's routes, who is flooded, the netdev plan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { floodsTo, multicastJoinRoutes, multicastOption, multicastPlan, type MulticastOverlayInput } from '../../src/domain/multicast';
import { formatCidr, parseCidr } from '../../src/domain/ipv4';
import { vtepMacFor } from '../../src/domain/mac';
import type { Lease } from '../../src/domain/lease';

test('-o multicast: on by default, true/false spellings, anything else refused naming the key', () => {
  const cases: [Record<string, string | undefined>, boolean | 'throws'][] = [
    [{}, true],
    [{ multicast: '' }, true],
    [{ multicast: 'false' }, false],
    [{ multicast: 'OFF' }, false],
    [{ multicast: ' 0 ' }, false],
    [{ multicast: 'true' }, true],
    [{ 'overlay-flannel.multicast': 'no' }, false],
    [{ multicast: 'yes', 'overlay-flannel.multicast': 'no' }, true],
    [{ multicast: 'maybe' }, 'throws'],
  ];
  for (const [generic, want] of cases) {
    if (want === 'throws') assert.throws(() => multicastOption(generic), /-o multicast=maybe.*multicast=false/, JSON.stringify(generic));
    else assert.equal(multicastOption(generic), want, JSON.stringify(generic));
  }
});

test('Join routes: 224.0.0.0/4 and 255.255.255.255/32 on-link when on, none when off', () => {
  assert.deepEqual(multicastJoinRoutes(true).map((r) => [formatCidr(r.destination), r.nextHop]), [['224.0.0.0/4', null], ['255.255.255.255/32', null]]);
  assert.deepEqual(multicastJoinRoutes(false), []);
});

test('floodsTo: a lease with the VtepMAC overlay-flannel derives is ours; flanneld, other VNIs, host-gw are not', () => {
  const lease = (ip: string, mac: string | null, type = 'vxlan'): Lease => ({
    subnet: parseCidr('10.1.2.0/24'),
    attrs: mac ? { publicIP: ip, backendType: type, vxlan: { vni: 1, vtepMac: mac } } : { publicIP: ip, backendType: type },
    etcdLease: '1',
  });
  const cases: [string, Lease, number, boolean][] = [
    ['ours', lease('192.0.2.2', vtepMacFor(1, '192.0.2.2')), 1, true],
    ['flanneld (random MAC)', lease('192.0.2.2', '0a:58:0a:01:02:00'), 1, false],
    ['ours, but for another public IP', lease('192.0.2.3', vtepMacFor(1, '192.0.2.2')), 1, false],
    ['ours, but another VNI', lease('192.0.2.2', vtepMacFor(2, '192.0.2.2')), 1, false],
    ['host-gw', lease('192.0.2.2', null, 'host-gw'), 1, false],
  ];
  for (const [name, l, vni, want] of cases) assert.equal(floodsTo(l, vni), want, name);
});

const vx = { name: 'flannel.1', index: 10 };
const br = { name: 'ofb-abc', index: 11 };
const v = (n: number) => ({ name: `ofh${n}`, index: 100 + n });
const input = (network: MulticastOverlayInput['network']): MulticastOverlayInput => ({ overlay: 'default', vni: 1, vxlan: vx, network });
const show = (p: ReturnType<typeof multicastPlan>) => p.chains.map((c) => `${c.name} on ${c.device.name}: dup ${c.dups.map((d) => d.name).join(',') || '-'} then ${c.verdict}`);

test('plan: routed copies to the vxlan device and the other local veths, never back to the vxlan device', () => {
  const p = multicastPlan([input({ mode: 'routed', enabled: true, bridge: br, veths: [v(2), v(1), v(3)] })]);
  assert.deepEqual(show(p), [
    'in-1 on flannel.1: dup ofh1,ofh2,ofh3 then drop',
    'ofh1.101.1 on ofh1: dup flannel.1,ofh2,ofh3 then drop',
    'ofh2.102.1 on ofh2: dup flannel.1,ofh1,ofh3 then drop',
    'ofh3.103.1 on ofh3: dup flannel.1,ofh1,ofh2 then drop',
  ]);
  for (const c of p.chains) {
    assert.ok(!c.dups.some((d) => d.name === c.device.name), `${c.name} never copies to its own device`);
    if (c.device.name === vx.name) assert.ok(!c.dups.some((d) => d.name === vx.name), 'loop guard');
  }
});

test('plan: bridge data path copies to the vxlan device and lets the bridge flood; from peers into the bridge device', () => {
  assert.deepEqual(show(multicastPlan([input({ mode: 'bridge', enabled: true, bridge: br, veths: [v(1), v(2)] })])), [
    'in-1 on flannel.1: dup ofb-abc then drop',
    'ofh1.101.1 on ofh1: dup flannel.1 then continue',
    'ofh2.102.1 on ofh2: dup flannel.1 then continue',
  ]);
});

test('plan: multicast off or no network keeps only the guard on the vxlan device (peers\' floods stop there)', () => {
  for (const network of [null, { mode: 'routed' as const, enabled: false, bridge: br, veths: [v(1)] }]) {
    assert.deepEqual(show(multicastPlan([input(network)])), ['in-1 on flannel.1: dup - then drop']);
  }
  assert.deepEqual(multicastPlan([]), { chains: [], digest: '' });
});

test('plan digest: equal inputs give equal digests; a recreated veth (new ifindex) or a new member changes it', () => {
  const a = multicastPlan([input({ mode: 'routed', enabled: true, bridge: br, veths: [v(1), v(2)] })]);
  const b = multicastPlan([input({ mode: 'routed', enabled: true, bridge: br, veths: [v(2), v(1)] })]);
  const c = multicastPlan([input({ mode: 'routed', enabled: true, bridge: br, veths: [v(1), { name: 'ofh2', index: 999 }] })]);
  const d = multicastPlan([input({ mode: 'routed', enabled: true, bridge: br, veths: [v(1), v(2), v(3)] })]);
  assert.equal(a.digest, b.digest);
  assert.notEqual(a.digest, c.digest);
  assert.notEqual(a.digest, d.digest);
  assert.match(a.digest, /^[0-9a-f]{16}$/);
});
