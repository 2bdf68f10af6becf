// Multicast decisions as tables (issue 17): the option, Join's routes, who is flooded, the netdev plan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeChains, floodsTo, multicastJoinRoutes, multicastOption, multicastPlan, type MulticastChain, type MulticastOverlayInput, type MulticastPlan } from '../../src/domain/multicast';
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

/**
 * What the table does with one IPv4 packet arriving on `device` (nftables semantics: a base chain
 * on that device's ingress; rules in order; a jump runs the chain and comes back unless it ended in
 * a verdict): the devices it is copied to, and whether it is dropped.
 */
function simulate(plan: MulticastPlan, device: string, kind: 'groups' | 'broadcast' | 'unicast'): { copies: string[]; dropped: boolean } {
  const byName = new Map(plan.chains.map((c) => [c.name, c]));
  const copies: string[] = [];
  const iif = [vx, br, ...[1, 2, 3].map(v)].find((d) => d.name === device)!;
  const run = (chain: MulticastChain, depth: number): 'drop' | 'continue' => {
    assert.ok(depth < 5, 'no jump loops');
    for (const r of chain.rules) {
      const hit = r.match === 'any' || (r.match === 'not-from' ? r.from.index !== iif.index : r.match === kind);
      if (!hit) continue;
      copies.push(...r.dups.map((d) => d.name));
      if (r.then === 'drop') return 'drop';
      if (typeof r.then === 'object' && run(byName.get(r.then.jump)!, depth + 1) === 'drop') return 'drop';
    }
    return 'continue';
  };
  let dropped = false;
  for (const c of plan.chains) if (c.device?.name === device && run(c, 0) === 'drop') dropped = true;
  return { copies: copies.sort(), dropped };
}

test('routed: a container\'s packet goes to the vxlan device and every other local veth, once; from a peer to every local veth, never back', () => {
  const p = multicastPlan([input({ mode: 'routed', enabled: true, bridge: br, veths: [v(2), v(1), v(3)] })]);
  const cases: [string, 'groups' | 'broadcast' | 'unicast', string[], boolean][] = [
    ['ofh1', 'groups', ['flannel.1', 'ofh2', 'ofh3'], true],
    ['ofh2', 'broadcast', ['flannel.1', 'ofh1', 'ofh3'], true],
    ['flannel.1', 'groups', ['ofh1', 'ofh2', 'ofh3'], true],
    ['flannel.1', 'broadcast', ['ofh1', 'ofh2', 'ofh3'], true],
    ['ofh1', 'unicast', [], false],
    ['flannel.1', 'unicast', [], false],
  ];
  for (const [dev, kind, copies, dropped] of cases) assert.deepEqual(simulate(p, dev, kind), { copies, dropped }, `${kind} from ${dev}`);
});

test('bridge data path: copied to the vxlan device and on into the bridge; from a peer into the bridge device only', () => {
  const p = multicastPlan([input({ mode: 'bridge', enabled: true, bridge: br, veths: [v(1), v(2)] })]);
  assert.deepEqual(simulate(p, 'ofh1', 'groups'), { copies: ['flannel.1'], dropped: false });
  assert.deepEqual(simulate(p, 'ofh2', 'broadcast'), { copies: ['flannel.1'], dropped: false });
  assert.deepEqual(simulate(p, 'flannel.1', 'groups'), { copies: ['ofb-abc'], dropped: true });
  assert.deepEqual(simulate(p, 'ofh1', 'unicast'), { copies: [], dropped: false });
});

test('multicast off or no network: the guard on the vxlan device drops what peers send; the veths are untouched', () => {
  for (const network of [null, { mode: 'routed' as const, enabled: false, bridge: br, veths: [v(1)] }]) {
    const p = multicastPlan([input(network)]);
    assert.deepEqual(simulate(p, 'flannel.1', 'broadcast'), { copies: [], dropped: true });
    assert.deepEqual(simulate(p, 'ofh1', 'groups'), { copies: [], dropped: false });
    assert.deepEqual(p.chains.map((c) => c.name), ['in-1']);
  }
  assert.deepEqual(multicastPlan([]), { chains: [], digest: '' });
});

test('plan shape: jump targets exist before the chains that jump; the size grows linearly with the veths', () => {
  const size = (n: number) => multicastPlan([input({ mode: 'routed', enabled: true, bridge: br, veths: Array.from({ length: n }, (_, i) => v(i)) })]).chains.reduce((k, c) => k + c.rules.reduce((m, r) => m + 1 + r.dups.length, 0), 0);
  assert.equal(size(200) - size(100), size(100) - size(0), 'linear');
  const p = multicastPlan([input({ mode: 'routed', enabled: true, bridge: br, veths: [v(1), v(2)] })]);
  const seen = new Set<string>();
  for (const c of p.chains) {
    for (const r of c.rules) if (typeof r.then === 'object') assert.ok(seen.has(r.then.jump), `${c.name} jumps to ${r.then.jump}, created before it`);
    seen.add(c.name);
  }
  assert.match(describeChains(p.chains), /^local-1: iif!=ofh1#101>dup ofh1#101,continue \| iif!=ofh2#102>dup ofh2#102,continue \| any>drop$/m);
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
