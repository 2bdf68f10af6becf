/**
 * Regression check for issue 23 (ten thousand hosts): programming 2,000 peers in the fake kernel
 * costs a stated number of kernel calls — writes and dumps, counted, not timed — so a change that
 * makes the dataplane or the fast path scale badly (a dump per peer, a rewrite per lease, a
 * second pass over every peer) fails here, not only in `npm run bench:kernel`.
 *
 * The budgets, per peer lease (vxlan): 3 writes (neighbour, FDB, route) and nothing else; per full
 * sync: 3 dumps (neighbours, FDB, routes) and the device's few idempotent ensures; per lease event
 * on the fast path: its 3 writes and no dump; the fast path's table: 2 dumps (links, routes) and
 * one write whatever the number of peers; a restart over a programmed kernel: one full sync's dumps
 * and no peer write (it used to delete every entry before the lease snapshot and write it back).
 * Objects, counted: each lease's desired entries are planned once (PEERS states from empty), and a
 * full sync over unchanged leases plans none again (it reuses them: docs/performance.md §7).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeKernel } from '../fakes/fake-kernel';
import { OverlayDataplane } from '../../src/reconcile/overlay-dataplane';
import { gatherFastpath } from '../../src/reconcile/fastpath-keeper';
import { SerialQueue } from '../../src/util/serial-queue';
import { parseCidr, parseIPv4 } from '../../src/domain/ipv4';
import { scaleConfig, scaleFleet, scaleLease, scaleLog } from '../helpers/scale-peers';
import type { Kernel } from '../../src/kernel';
import { ELEMENTS_PER_MESSAGE, FastpathBatch } from '../../src/kernel/nft-fastpath-batch';

const PEERS = 2000;
/** Writes per peer lease: neighbour, FDB entry, route. */
const WRITES_PER_PEER = 3;
/** Writes of one device ensure (each full sync, and attach): the vxlan device, forwarding, its address. */
const DEVICE_WRITES = 3;
/** Dumps of one full sync: neighbours and FDB of the vxlan device, the route table. */
const DUMPS_PER_FULL_SYNC = 3;

const log = scaleLog;
const cfg = scaleConfig;
const lease = scaleLease;

const DUMPS: (keyof Kernel)[] = ['listLinks', 'listAddresses', 'listRoutes', 'listNeighbours', 'listFdb'];
/** Writes and dumps since the last call. */
function meter(kernel: FakeKernel): () => { writes: string[]; dumps: number } {
  let writes = kernel.writes.length;
  let dumps = 0;
  const count = (): number => DUMPS.reduce((n, m) => n + (kernel.calls.get(m) ?? 0), 0);
  dumps = count();
  return () => {
    const out = { writes: kernel.writes.slice(writes), dumps: count() - dumps };
    writes = kernel.writes.length;
    dumps = count();
    return out;
  };
}
const peerWrites = (w: string[]): string[] => w.filter((x) => /Neighbour|Fdb|Route/.test(x));

test(`programming ${PEERS} peers stays within its budget of kernel writes and dumps`, async () => {
  const { kernel, pub, dp, own, peers } = scaleFleet(PEERS);
  const since = meter(kernel);

  // From an empty kernel, in the daemon's order (overlay-agent.ts): attach with our lease (the
  // device only: no lease is known yet), then the watch's snapshot of every lease (a full sync).
  await dp.attach(own);
  await dp.idle();
  dp.setLeases([own, ...peers]);
  await dp.idle();
  const first = since();
  const budget = WRITES_PER_PEER * PEERS + 3 * DEVICE_WRITES;
  assert.equal(peerWrites(first.writes).length, WRITES_PER_PEER * PEERS, 'each peer written once');
  assert.ok(first.writes.length <= budget, `from empty: ${first.writes.length} writes, budget ${budget}`);
  assert.ok(first.dumps <= DUMPS_PER_FULL_SYNC, `from empty: ${first.dumps} dumps, budget ${DUMPS_PER_FULL_SYNC} (attach's sync lists nothing before the snapshot)`);
  assert.equal((await kernel.listRoutes()).filter((r) => r.gateway).length, PEERS, 'every peer routed');
  assert.ok(dp.stats.statesBuilt <= PEERS + 1, `from empty: ${dp.stats.statesBuilt} lease states planned, budget ${PEERS + 1} (one a lease)`);
  const built = dp.stats.statesBuilt;
  since();

  // The periodic full sync with nothing to do: no peer write, one dump per table.
  await dp.requestSync('full');
  await dp.idle();
  const steady = since();
  assert.deepEqual(peerWrites(steady.writes), [], 'a full sync in step writes no peer entry');
  assert.ok(steady.writes.length <= DEVICE_WRITES, `full sync: ${steady.writes.length} writes, budget ${DEVICE_WRITES}: ${steady.writes.join('; ')}`);
  assert.equal(steady.dumps, DUMPS_PER_FULL_SYNC, 'full sync: one dump per table');
  assert.equal(dp.stats.statesBuilt - built, 0, 'a full sync over unchanged leases plans no lease state again');

  // One new lease among 2,000, then one gone: the fast path, 3 writes each, no dump.
  dp.leaseAdded(lease(PEERS + 2));
  await dp.idle();
  const added = since();
  assert.deepEqual(added.writes.map((w) => w.split(' ')[0]), ['replaceNeighbour', 'replaceFdb', 'replaceRoute']);
  assert.equal(added.dumps, 0, 'a lease event lists nothing');
  assert.equal(dp.stats.statesBuilt - built, 1, 'a lease event plans its own lease only');
  dp.leaseRemoved(peers[0]!);
  await dp.idle();
  const removed = since();
  assert.deepEqual(removed.writes.map((w) => w.split(' ')[0]), ['deleteRoute', 'deleteFdb', 'deleteNeighbour']);
  assert.equal(removed.dumps, 0);

  // The fast path's table: its plan from 2 dumps, one write for every peer at once, none when unchanged.
  const source = { name: 'default', vxlan: () => ({ vni: 1, device: 'flannel.1', directRouting: false }), network: () => cfg.network, lease: () => ({ subnet: own.subnet }) };
  const { plan } = await gatherFastpath([source], kernel);
  assert.equal(plan.overlays[0]?.peers.length, PEERS, 'every peer route is in the plan');
  assert.equal(await kernel.ensureFastpath(plan), 'rewritten');
  const table = since();
  assert.equal(table.dumps, 2, 'links and routes, once each');
  assert.deepEqual(table.writes.map((w) => w.split(' ').slice(0, 2).join(' ')), ['ensureFastpath rewritten']);
  assert.equal(await kernel.ensureFastpath((await gatherFastpath([source], kernel)).plan), 'present');
  assert.deepEqual(since().writes, []);

  // The daemon restarts: a new dataplane over a kernel that holds every peer. attach() comes
  // before the lease snapshot; nothing may be deleted in between, nothing rewritten after.
  const again = new OverlayDataplane(kernel, new SerialQueue(), log, cfg, pub);
  await again.attach(own);
  await again.idle();
  const attached = since();
  assert.deepEqual(peerWrites(attached.writes), [], 'attach before the snapshot deletes no peer entry');
  again.setLeases([own, ...peers.slice(1), lease(PEERS + 2)]);
  await again.idle();
  const restarted = since();
  assert.deepEqual(peerWrites(restarted.writes), [], 'the snapshot finds every peer in place');
  assert.ok(attached.dumps + restarted.dumps <= DUMPS_PER_FULL_SYNC, `restart: ${attached.dumps + restarted.dumps} dumps, budget ${DUMPS_PER_FULL_SYNC}`);
});

test('the fast path writes 10,000 peers in messages of at most 1,000 elements', () => {
  const overlay = { name: 'default', vni: 1, network: parseCidr('10.0.0.0/10'), subnet: parseCidr('10.0.1.0/24'), vxlanDevice: 'flannel.1', vxlanIndex: 3, endpoints: [], peers: Array.from({ length: 10_000 }, (_, i) => (parseIPv4('10.0.2.0') + i * 256) >>> 0) };
  const b = new FastpathBatch();
  b.createTable('plan-x', [overlay]); // one attribute of 10,000 elements would not encode (16-bit length)
  // table, marker chain, set, map, 2 chains, 2 rules; then the peers' elements; the map is empty.
  assert.equal(b.size, 8 + Math.ceil(10_000 / ELEMENTS_PER_MESSAGE));
  b.deleteElements('peers-1', overlay.peers.slice(0, 2_500));
  assert.equal(b.size, 8 + 10 + 3);
});
