// The multicast keeper reads its plan from the kernel's record (fake kernel): bridges, host routes,
// bridge ports, the multicast=off alias; and turns flooding on only where a network has multicast on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { FakeKernel } from '../fakes/fake-kernel';
import { gatherMulticast, MulticastKeeper, type MulticastOverlaySource } from '../../src/reconcile/multicast-keeper';
import { parseCidr } from '../../src/domain/ipv4';
import { MULTICAST_OFF_ALIAS, type MulticastChain } from '../../src/domain/multicast';
import { SerialQueue } from '../../src/util/serial-queue';
import { waitFor } from '../helpers/wait';

const log = pino({ level: 'silent' });

async function world(opts: { mode: 'routed' | 'bridge'; off?: boolean }) {
  const k = new FakeKernel();
  k.addDevice('eth0', { cidr: '192.0.2.1/24' });
  const vx = k.addDevice('flannel.7', { mtu: 1450 });
  const br = await k.ensureBridge('ofb-aaaaaaaaaaa', 1450);
  await k.ensureOnlyAddress(br.index, '10.7.3.1/24');
  if (opts.mode === 'routed') await k.ensureOnlyAddress(br.index, '169.254.1.1/32', '169.254.0.0/16');
  if (opts.off) await k.setLinkAlias(br.name, MULTICAST_OFF_ALIAS);
  for (const [n, ip] of [['ofh1', '10.7.3.2'], ['ofh2', '10.7.3.3']] as const) {
    const v = await k.ensureVethPair(n, `ofc${n.slice(3)}`, 1450, opts.mode === 'bridge' ? br.name : undefined);
    if (opts.mode === 'routed') await k.replaceRoute({ dst: `${ip}/32`, oif: v.index, onlink: false });
  }
  const other = await k.ensureVethPair('ofh9', 'ofc9', 1450); // another subnet's endpoint: not ours
  await k.replaceRoute({ dst: '10.8.1.2/32', oif: other.index, onlink: false });
  const flooding: boolean[] = [];
  const overlay: MulticastOverlaySource = {
    name: 'default',
    vxlan: () => ({ vni: 7, device: 'flannel.7', directRouting: false }),
    lease: () => ({ subnet: parseCidr('10.7.3.0/24') }),
    setFlooding: (on) => flooding.push(on),
  };
  return { k, vx, overlay, flooding };
}

/** Base chains only: device → what its packets are copied to, directly or through the chains it jumps to. */
const show = (chains: MulticastChain[]) => {
  const byName = new Map(chains.map((c) => [c.name, c]));
  const dups = (c: MulticastChain): string[] => c.rules.flatMap((r) => [...r.dups.map((d) => d.name), ...(typeof r.then === 'object' ? dups(byName.get(r.then.jump)!) : [])]);
  return chains.filter((c) => c.device).map((c) => `${c.device!.name}: ${[...new Set(dups(c))].join(',') || '-'}`);
};

test('gather: routed network → the veths with host routes in the subnet; flooding on', async () => {
  const { k, overlay } = await world({ mode: 'routed' });
  const g = await gatherMulticast([overlay], k);
  assert.deepEqual(show(g.plan.chains), ['flannel.7: ofh1,ofh2', 'ofh1: flannel.7,ofh1,ofh2', 'ofh2: flannel.7,ofh1,ofh2'] /* self excluded by iif at run time */);
  assert.deepEqual([...g.flooding], [['default', true]]);
});

test('gather: bridge network → its ports; the vxlan chain copies into the bridge', async () => {
  const { k, overlay } = await world({ mode: 'bridge' });
  const g = await gatherMulticast([overlay], k);
  assert.deepEqual(show(g.plan.chains), ['flannel.7: ofb-aaaaaaaaaaa', 'ofh1: flannel.7', 'ofh2: flannel.7']);
});

test('gather: multicast=off (the bridge alias) → the guard only, flooding off; host-gw is skipped with a reason', async () => {
  const { k, overlay } = await world({ mode: 'routed', off: true });
  const hostgw: MulticastOverlaySource = { name: 'hg', vxlan: () => null, lease: () => ({ subnet: parseCidr('10.9.1.0/24') }) };
  const g = await gatherMulticast([overlay, hostgw], k);
  assert.deepEqual(show(g.plan.chains), ['flannel.7: -']);
  assert.deepEqual([...g.flooding], [['default', false]]);
  assert.deepEqual(g.skipped.map((s) => s.overlay), ['hg']);
});

test('keeper: writes the table, then sets flooding; a second check writes nothing', async () => {
  const { k, overlay, flooding } = await world({ mode: 'routed' });
  const keeper = new MulticastKeeper(() => gatherMulticast([overlay], k), (p) => k.ensureMulticast(p), () => [overlay], new SerialQueue(), log, 60_000);
  keeper.start();
  try {
    await waitFor(async () => flooding.length === 1, { timeoutMs: 5000, what: 'first check' });
    assert.deepEqual(flooding, [true]);
    assert.equal(k.multicast?.chains.length, 5, 'local, out, in and one per veth');
    const writes = k.writes.filter((w) => w.startsWith('ensureMulticast')).length;
    keeper.kick();
    await waitFor(async () => flooding.length === 2, { timeoutMs: 5000, what: 'second check' });
    assert.equal(k.writes.filter((w) => w.startsWith('ensureMulticast')).length, writes, 'nothing rewritten');
  } finally {
    keeper.stop();
  }
});
