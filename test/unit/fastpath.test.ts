// The fast path plan (src/domain/fastpath.ts) and how the daemon gathers it (src/reconcile/fastpath-keeper.ts),
// as tables; the netdev table itself is tested against the kernel in test/kernel/nft-fastpath.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endpointChains, fastpathPlan, overlayChains, setChanges, type FastpathOverlayInput } from '../../src/domain/fastpath';
import { formatIPv4, parseCidr } from '../../src/domain/ipv4';
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
  assert.deepEqual([...endpointChains(plan)], [['ofh1.40.7', { vni: 7, veth: 'ofh1' }], ['ofh2.41.8', { vni: 8, veth: 'ofh2' }]]);
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
    ({
      name,
      prefix: `/p/${name}`,
      network: () => (network ? parseCidr(network) : null),
      lease: () => (subnet ? ({ subnet: parseCidr(subnet) } as never) : null),
      vxlan: () => vxlan,
      mtu: () => 1450,
      whenReady: async () => undefined,
      addresses: {} as never,
      addresses6: {} as never,
    }) as OverlayHandle;
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
