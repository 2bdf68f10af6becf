// The fast path plan (src/domain/fastpath.ts) and how the daemon gathers it (src/reconcile/fastpath-keeper.ts),
// as tables; the netdev table itself is tested against the kernel in test/kernel/nft-fastpath.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endpointChains, fastpathPlan, overlayChains, setChanges, type FastpathOverlayInput } from '../../src/domain/fastpath';
import { formatIPv4, parseCidr } from '../../src/domain/ipv4';
import { formatIPv6, parseCidr6 } from '../../src/domain/ipv6';
import { planSets } from '../../src/domain/fastpath';
import pino from 'pino';
import { FastpathKeeper, gatherFastpath } from '../../src/reconcile/fastpath-keeper';
import type { FastpathResult } from '../../src/kernel';
import { OverlayError } from '../../src/errors';
import { SerialQueue } from '../../src/util/serial-queue';
import type { OverlayHandle } from '../../src/driver/overlays';
import type { LinkInfo, RouteEntry } from '../../src/kernel/types';

const overlay = (name: string, vni: number, network: string, subnet: string, vxlanIndex = 10, peers: string[] = []): FastpathOverlayInput => ({
  name,
  vni,
  network: parseCidr(network),
  subnet: parseCidr(subnet),
  vxlanDevice: `flannel.${vni}`,
  vxlanIndex,
  peerRoutes: peers.map((p) => parseCidr(p)),
});
const route = (dst: string, oif: number, oifName: string) => ({ dst: parseCidr(dst), oif, oifName });


/** An OverlayHandle as gatherFastpath reads it (name, Networks, lease, vxlan); the rest is never touched. */
function fakeHandle(h: Pick<OverlayHandle, 'name' | 'network' | 'lease' | 'vxlan'> & Partial<Pick<OverlayHandle, 'network6'>>): OverlayHandle {
  return { prefix: `/p/${h.name}`, mtu: () => 1450, whenReady: async () => undefined, addresses: {} as never, addresses6: {} as never, ...h } as OverlayHandle;
}
test('fastpathPlan: an overlay takes the /32 host routes of its subnet on our veths, nothing else', () => {
  const rows: [string, ReturnType<typeof route>[], string[]][] = [
    ['none', [], []],
    ['one endpoint', [route('10.1.5.2/32', 21, 'ofhaaaa')], ['10.1.5.2=ofhaaaa#21']],
    ['sorted by address', [route('10.1.5.9/32', 23, 'ofhcccc'), route('10.1.5.3/32', 22, 'ofhbbbb')], ['10.1.5.3=ofhbbbb#22', '10.1.5.9=ofhcccc#23']],
    ['not our veth (another plugin, a user route)', [route('10.1.5.4/32', 30, 'eth0'), route('10.1.5.5/32', 31, 'vethx')], []],
    ['another host subnet of the same Network', [route('10.1.6.2/32', 24, 'ofhdddd')], []],
    ['not a host route', [route('10.1.5.0/25', 25, 'ofheeee')], []],
    ['the subnet .0 itself', [route('10.1.5.0/32', 26, 'ofhffff')], []],
  ];
  for (const [what, routes, want] of rows) {
    const { plan, skipped } = fastpathPlan([overlay('default', 1, '10.1.0.0/16', '10.1.5.0/24')], routes, 'ofh');
    assert.deepEqual(skipped, [], what);
    assert.deepEqual(plan.overlays[0]!.endpoints.map((e) => `${formatIPv4(e.address)}=${e.veth}#${e.vethIndex}`), want, what);
  }
});

test('fastpathPlan: the peer set holds the routed peer subnets of this host\'s subnet length, once, sorted', () => {
  const rows: [string[], string[]][] = [
    [[], []],
    [['10.1.9.0/24', '10.1.7.0/24'], ['10.1.7.0', '10.1.9.0']],
    [['10.1.7.0/24', '10.1.7.0/24'], ['10.1.7.0']],
    // a lease of another length (the config's SubnetLen changed) is left to its route
    [['10.1.7.0/24', '10.1.8.0/25', '10.1.8.128/25'], ['10.1.7.0']],
    [['10.1.5.0/24'], []], // this host's own subnet is never a peer
  ];
  for (const [peers, want] of rows) {
    const { plan } = fastpathPlan([overlay('default', 1, '10.1.0.0/16', '10.1.5.0/24', 10, peers)], [], 'ofh');
    assert.deepEqual(plan.overlays[0]!.peers.map(formatIPv4), want, peers.join(' '));
  }
});

test('fastpathPlan: overlays whose Networks overlap are left to routing, the others kept', () => {
  const { plan, skipped } = fastpathPlan(
    [overlay('a', 1, '10.0.0.0/8', '10.9.1.0/24'), overlay('b', 2, '10.5.0.0/16', '10.5.1.0/24'), overlay('c', 3, '172.16.0.0/16', '172.16.1.0/24')],
    [],
    'ofh',
  );
  assert.deepEqual(plan.overlays.map((o) => o.name), ['c']);
  assert.deepEqual(skipped.map((s) => s.overlay), ['a', 'b']);
  assert.match(skipped[0]!.reason, /overlaps overlay "b" \(10\.5\.0\.0\/16\)/);
});

test('fastpathPlan: the digest follows the overlay-level part only; endpoint chains are named after what they depend on', () => {
  const base = [overlay('x', 7, '10.2.0.0/16', '10.2.3.0/24', 10), overlay('y', 8, '10.3.0.0/16', '10.3.3.0/24', 11)];
  const routes = [route('10.2.3.2/32', 40, 'ofh1'), route('10.3.3.2/32', 41, 'ofh2')];
  const d = (o: FastpathOverlayInput[], r: ReturnType<typeof route>[]) => fastpathPlan(o, r, 'ofh').plan.digest;
  const same = d(base, routes);
  assert.equal(d([...base].reverse(), [...routes].reverse()), same, 'input order');
  assert.equal(d(base, routes.slice(1)), same, 'an endpoint gone: changed in place, not a rewrite');
  assert.equal(d([overlay('x', 7, '10.2.0.0/16', '10.2.3.0/24', 10, ['10.2.8.0/24']), base[1]!], routes), same, 'a new peer: in place');
  assert.notEqual(d([overlay('x', 7, '10.2.0.0/16', '10.2.3.0/24', 12), base[1]!], routes), same, 'vxlan device recreated (new ifindex)');
  assert.notEqual(d([overlay('x', 7, '10.2.0.0/16', '10.2.4.0/24', 10), base[1]!], routes), same, 'new subnet');
  assert.notEqual(d(base.slice(1), routes), same, 'an overlay gone');
  const { plan } = fastpathPlan(base, routes, 'ofh');
  assert.deepEqual(overlayChains(plan), ['from-7', 'from-8', `plan-${plan.digest}`, 'to-7', 'to-8']);
  assert.deepEqual([...endpointChains(plan)], [['ofh1.40.7', { vni: 7, veth: 'ofh1', v6: false }], ['ofh2.41.8', { vni: 8, veth: 'ofh2', v6: false }]]);
  const recreated = fastpathPlan(base, [route('10.2.3.2/32', 42, 'ofh1'), routes[1]!], 'ofh').plan;
  assert.deepEqual([...endpointChains(recreated).keys()], ['ofh1.42.7', 'ofh2.41.8'], 'a recreated veth gets a new chain');
});

test('setChanges: keys to delete and entries to add; a changed value is both', () => {
  const m = (...e: [number, number | undefined][]) => new Map(e);
  const rows: [Map<number, number | undefined>, Map<number, number | undefined>, number[], [number, number | undefined][]][] = [
    [m(), m(), [], []],
    [m(), m([1, 10]), [], [[1, 10]]],
    [m([1, 10]), m(), [1], []],
    [m([1, 10], [2, 20]), m([1, 10], [2, 21], [3, 30]), [2], [[2, 21], [3, 30]]],
    [m([5, undefined]), m([5, undefined], [6, undefined]), [], [[6, undefined]]],
  ];
  for (const [have, want, remove, add] of rows) assert.deepEqual(setChanges(have, want), { remove, add }, JSON.stringify([[...have], [...want]]));
});

test('gatherFastpath: vxlan overlays with a lease and an up device; host-gw, DirectRouting, not ready and down devices left out', async () => {
  const handle = (name: string, vxlan: ReturnType<OverlayHandle['vxlan']>, network: string | null, subnet: string | null): OverlayHandle =>
    fakeHandle({
      name,
      network: () => (network ? parseCidr(network) : null),
      lease: () => (subnet ? ({ subnet: parseCidr(subnet) } as never) : null),
      vxlan: () => vxlan,
    });
  const links: LinkInfo[] = [
    { index: 10, name: 'flannel.1', kind: 'vxlan', mtu: 1450, mac: '', up: true, master: 0 },
    { index: 11, name: 'flannel.2', kind: 'vxlan', mtu: 1450, mac: '', up: true, master: 0 },
    { index: 12, name: 'flannel.3', kind: 'vxlan', mtu: 1450, mac: '', up: false, master: 0 },
    { index: 20, name: 'ofhaaaa', kind: 'veth', mtu: 1450, mac: '', up: true, master: 0 },
  ];
  const routes: RouteEntry[] = [
    { dst: '10.1.5.2/32', oif: 20, onlink: false },
    { dst: '10.1.6.0/24', gateway: '10.1.6.0', oif: 10, onlink: true },
    { dst: '10.1.7.0/24', gateway: '192.0.2.7', oif: 3, onlink: false }, // DirectRouting-style: not via the vxlan device
    { dst: '10.1.8.0/24', gateway: '10.1.8.0', oif: 11, onlink: true }, // another device
  ];
  const { plan, skipped } = await gatherFastpath(
    [
      handle('ready', { vni: 1, device: 'flannel.1', directRouting: false }, '10.1.0.0/16', '10.1.5.0/24'),
      handle('direct', { vni: 2, device: 'flannel.2', directRouting: true }, '10.2.0.0/16', '10.2.5.0/24'),
      handle('down', { vni: 3, device: 'flannel.3', directRouting: false }, '10.3.0.0/16', '10.3.5.0/24'),
      handle('hostgw', null, '10.4.0.0/16', '10.4.5.0/24'),
      handle('nolease', { vni: 5, device: 'flannel.5', directRouting: false }, '10.5.0.0/16', null),
    ],
    { listLinks: async () => links, listRoutes: async () => routes },
  );
  assert.deepEqual(plan.overlays.map((o) => [o.name, o.vxlanIndex, o.endpoints.map((e) => e.veth), o.peers.map(formatIPv4)]), [['ready', 10, ['ofhaaaa'], ['10.1.6.0']]]);
  assert.deepEqual(skipped.map((s) => s.overlay), ['direct']);
});

test('FastpathKeeper: a failing write is logged once per kind and retried; recovery is logged; kicks coalesce', async () => {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const results: (FastpathResult | Error)[] = [
    new OverlayError('UNSUPPORTED', 'no netdev'),
    new OverlayError('UNSUPPORTED', 'no netdev'),
    new OverlayError('KERNEL', 'EBUSY'),
    'updated',
    'present',
  ];
  let calls = 0;
  const plan = fastpathPlan([overlay('default', 1, '10.1.0.0/16', '10.1.5.0/24')], [], 'ofh').plan;
  const keeper = new FastpathKeeper(
    async () => ({ plan, skipped: [] }),
    async () => {
      const r = results[calls++]!;
      if (r instanceof Error) throw r;
      return r;
    },
    new SerialQueue(),
    log,
    3_600_000,
  );
  for (let i = 0; i < results.length; i++) {
    keeper.kick();
    keeper.kick(); // coalesced with the one waiting
    await new Promise((r) => setTimeout(r, 5));
  }
  keeper.stop();
  assert.equal(calls, results.length);
  const warns = lines.filter((l) => l.level === 40).map((l) => l.msg);
  assert.deepEqual(warns, ['fast path unavailable; overlay packets are routed (correct, a little slower)', 'could not write the fast path; overlay packets are routed meanwhile; retrying']);
  assert.ok(lines.some((l) => l.msg === 'fast path written again after the earlier problem'));
  assert.equal(lines.filter((l) => l.msg.startsWith('fast path (nftables netdev table overlay-flannel) covers')).length, 1);
});

const v6 = (network: string, subnet: string, index = 30, peers: string[] = []) => ({ network: parseCidr6(network), subnet: parseCidr6(subnet), device: 'flannel-v6.1', index, mtu: 1430, peerRoutes: peers.map((p) => parseCidr6(p)) });
const route6 = (dst: string, oif: number, oifName: string) => ({ dst: parseCidr6(dst), oif, oifName });

test('fastpathPlan, v6 half: endpoints are /128 host routes of the v6 subnet on our veths; peers the routed v6 subnets of its length', () => {
  const rows: [string, ReturnType<typeof route6>[], string[], string[], string[]][] = [
    ['none', [], [], [], []],
    ['one endpoint, one peer', [route6('fd00:1:0:5::2/128', 21, 'ofhaaaa')], ['fd00:1:0:9::/64'], ['fd00:1:0:5::2=ofhaaaa#21'], ['fd00:1:0:9::']],
    ['sorted, deduplicated', [route6('fd00:1:0:5::9/128', 23, 'ofhcccc'), route6('fd00:1:0:5::3/128', 22, 'ofhbbbb')], ['fd00:1:0:9::/64', 'fd00:1:0:7::/64', 'fd00:1:0:7::/64'], ['fd00:1:0:5::3=ofhbbbb#22', 'fd00:1:0:5::9=ofhcccc#23'], ['fd00:1:0:7::', 'fd00:1:0:9::']],
    ['not our veth; another subnet; not a /128; the subnet address itself', [route6('fd00:1:0:5::4/128', 30, 'eth0'), route6('fd00:1:0:6::2/128', 24, 'ofhdddd'), route6('fd00:1:0:5::/80', 25, 'ofheeee'), route6('fd00:1:0:5::/128', 26, 'ofhffff')], [], [], []],
    ['a peer of another length, and our own subnet, are left to their routes', [], ['fd00:1:0:8::/80', 'fd00:1:0:5::/64'], [], []],
  ];
  for (const [what, routes6, peers, endpoints, wantPeers] of rows) {
    const { plan, skipped } = fastpathPlan([{ ...overlay('default', 1, '10.1.0.0/16', '10.1.5.0/24'), v6: v6('fd00:1::/48', 'fd00:1:0:5::/64', 30, peers) }], [], 'ofh', routes6);
    assert.deepEqual(skipped, [], what);
    const o = plan.overlays[0]!;
    assert.deepEqual(o.v6!.endpoints.map((e) => `${formatIPv6(e.address)}=${e.veth}#${e.vethIndex}`), endpoints, what);
    assert.deepEqual(o.v6!.peers.map(formatIPv6), wantPeers, what);
  }
});

test('fastpathPlan, v6 half: chains, sets, digest; a v4-only overlay has none; overlapping IPv6Networks keep v4 only', () => {
  const dual = { ...overlay('x', 7, '10.2.0.0/16', '10.2.3.0/24', 10), v6: v6('fd00:2::/48', 'fd00:2:0:3::/64', 30) };
  const v4only = overlay('y', 8, '10.3.0.0/16', '10.3.3.0/24', 11);
  const r6 = [route6('fd00:2:0:3::2/128', 40, 'ofh1'), route6('fd00:2:0:3::5/128', 42, 'ofh3')];
  const { plan } = fastpathPlan([dual, v4only], [route('10.2.3.2/32', 40, 'ofh1'), route('10.3.3.2/32', 41, 'ofh2')], 'ofh', r6);
  assert.deepEqual(overlayChains(plan), ['from-7', 'from-8', 'from6-7', `plan-${plan.digest}`, 'to-7', 'to-8', 'to6-7']);
  assert.deepEqual(planSets(plan), ['endpoints-7', 'peers-7', 'endpoints6-7', 'peers6-7', 'endpoints-8', 'peers-8']);
  // a veth with only a v6 host route still gets its chain (ofh3); one with both, one chain
  assert.deepEqual([...endpointChains(plan)], [['ofh1.40.7', { vni: 7, veth: 'ofh1', v6: true }], ['ofh3.42.7', { vni: 7, veth: 'ofh3', v6: true }], ['ofh2.41.8', { vni: 8, veth: 'ofh2', v6: false }]]);
  const d = (o: FastpathOverlayInput[]) => fastpathPlan(o, [], 'ofh', r6).plan.digest;
  assert.notEqual(d([dual, v4only]), d([overlay('x', 7, '10.2.0.0/16', '10.2.3.0/24', 10), v4only]), 'gaining or losing the v6 half rewrites the table');
  assert.notEqual(d([dual, v4only]), d([{ ...dual, v6: v6('fd00:2::/48', 'fd00:2:0:3::/64', 31) }, v4only]), 'flannel-v6 recreated');
  assert.notEqual(d([dual, v4only]), d([{ ...dual, v6: { ...dual.v6, mtu: 1380 } }, v4only]), 'flannel-v6 MTU changed (the to6- length check)');
  assert.equal(d([dual, v4only]), d([{ ...dual, v6: v6('fd00:2::/48', 'fd00:2:0:3::/64', 30, ['fd00:2:0:9::/64']) }, v4only]), 'a new v6 peer: in place');
  const overlapping = fastpathPlan([dual, { ...v4only, v6: v6('fd00:2:0:8000::/49', 'fd00:2:0:8001::/64', 31) }], [], 'ofh');
  assert.deepEqual(overlapping.plan.overlays.map((o) => [o.name, o.v6 !== undefined]), [['x', false], ['y', false]]);
  assert.deepEqual(overlapping.skipped.map((s) => s.overlay), ['x', 'y']);
  assert.match(overlapping.skipped[0]!.reason, /IPv6Network fd00:2::\/48 overlaps overlay "y" \(fd00:2:0:8000::\/49\): its IPv6 half is left to routing/);
});

test('setChanges: v6 keys (bigints) as v4 ones', () => {
  const have = new Map<bigint, number | undefined>([[1n << 100n, 5], [2n, 6]]);
  const want = new Map<bigint, number | undefined>([[1n << 100n, 5], [3n, 7]]);
  assert.deepEqual(setChanges(have, want), { remove: [2n], add: [[3n, 7]] });
});

test('gatherFastpath: a dual-stack overlay with flannel-v6 up gets its v6 half from the v6 routes; without the device, v4 only', async () => {
  const handle = (name: string, vni: number, subnet6: string | null): OverlayHandle =>
    fakeHandle({
      name,
      network: () => parseCidr(`10.${vni}.0.0/16`),
      network6: () => parseCidr6(`fd00:${vni}::/48`),
      lease: () => ({ subnet: parseCidr(`10.${vni}.5.0/24`), ...(subnet6 ? { subnet6: parseCidr6(subnet6) } : {}) }) as never,
      vxlan: () => ({ vni, device: `flannel.${vni}`, directRouting: false }),
    });
  const links: LinkInfo[] = [
    { index: 10, name: 'flannel.1', kind: 'vxlan', mtu: 1450, mac: '', up: true, master: 0 },
    { index: 11, name: 'flannel-v6.1', kind: 'vxlan', mtu: 1430, mac: '', up: true, master: 0 },
    { index: 12, name: 'flannel.2', kind: 'vxlan', mtu: 1450, mac: '', up: true, master: 0 },
    { index: 13, name: 'flannel-v6.2', kind: 'vxlan', mtu: 1430, mac: '', up: false, master: 0 },
    { index: 20, name: 'ofhaaaa', kind: 'veth', mtu: 1450, mac: '', up: true, master: 0 },
  ];
  const families: (number | undefined)[] = [];
  const routes4: RouteEntry[] = [{ dst: '10.1.5.2/32', oif: 20, onlink: false }];
  const routes6: RouteEntry[] = [
    { dst: 'fd00:1:0:5::2/128', oif: 20, onlink: false },
    { dst: 'fd00:1:0:5::/128', oif: 11, onlink: false }, // the kernel's route for flannel-v6's own address
    { dst: 'fd00:1:0:6::/64', gateway: 'fd00:1:0:6::', oif: 11, onlink: true },
    { dst: 'fd00:1:0:7::/64', gateway: 'fe80::1', oif: 3, onlink: false }, // not through flannel-v6
  ];
  const { plan } = await gatherFastpath([handle('dual', 1, 'fd00:1:0:5::/64'), handle('v6down', 2, 'fd00:2:0:5::/64')], {
    listLinks: async () => links,
    listRoutes: async (_oif?: number, family?: 4 | 6) => {
      families.push(family);
      return family === 6 ? routes6 : routes4;
    },
  });
  assert.deepEqual(families, [undefined, 6]);
  const [dual, down] = plan.overlays;
  assert.deepEqual([dual!.v6!.device, dual!.v6!.index, dual!.v6!.mtu, dual!.v6!.endpoints.map((e) => `${formatIPv6(e.address)}=${e.veth}`), dual!.v6!.peers.map(formatIPv6)], ['flannel-v6.1', 11, 1430, ['fd00:1:0:5::2=ofhaaaa'], ['fd00:1:0:6::']]);
  assert.equal(down!.v6, undefined, 'flannel-v6 down: v4 only');
});
