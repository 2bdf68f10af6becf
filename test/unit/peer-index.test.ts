// The full sync's plan made while the dumps are read (domain/peer-index.ts) equals planPeers over
// whole states: a table of the cases that matter, then many seeded random kernel states.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerIndex } from '../../src/domain/peer-index';
import { planPeers, PeerState } from '../../src/domain/peers';

/** Feed `observed` to a planner of `index` in dump order (neighbours, FDB + flood, routes). */
function streamed(index: PeerIndex, observed: PeerState): ReturnType<typeof planPeers> {
  const p = index.plan();
  for (const n of observed.neighbours) p.neighbour(n);
  for (const f of observed.fdb) p.fdb(f);
  for (const d of observed.flood) p.flood(d);
  for (const r of observed.routes) p.route(r.dst, r.gateway, r.dev, r.onlink);
  return p.finish();
}

const peer = (i: number, mac = `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, ip = `192.0.2.${i % 250}`): PeerState => ({
  neighbours: [{ ip: `10.1.${i}.0`, mac }],
  fdb: [{ mac, dst: ip }],
  routes: [{ dst: `10.1.${i}.0/24`, gateway: `10.1.${i}.0`, dev: 'vxlan', onlink: true }],
  flood: i % 3 === 0 ? [ip] : [],
});
const merged = (states: PeerState[]): PeerState => ({
  neighbours: states.flatMap((s) => s.neighbours),
  fdb: states.flatMap((s) => s.fdb),
  routes: states.flatMap((s) => s.routes),
  flood: states.flatMap((s) => s.flood),
});

test('table: in step, missing, changed, foreign and duplicate kernel entries give planPeers\' ops in its order', () => {
  const states = [1, 2, 3, 4].map((i) => peer(i));
  const index = new PeerIndex(states);
  assert.equal(index.exact, true);
  const inStep = merged(states);
  const cases: Record<string, PeerState> = {
    'in step': inStep,
    'empty kernel': { neighbours: [], fdb: [], routes: [], flood: [] },
    'changed MAC, gateway, dst; foreign entries': {
      neighbours: [{ ip: '10.1.1.0', mac: '02:00:00:00:00:99' }, { ip: '10.1.9.0', mac: '02:00:00:00:00:09' }, ...inStep.neighbours.slice(1)],
      fdb: [{ mac: '02:00:00:00:00:01', dst: '192.0.2.200' }, { mac: '02:00:00:00:00:77', dst: '192.0.2.77' }, ...inStep.fdb.slice(1)],
      routes: [{ dst: '10.1.2.0/24', gateway: '10.1.2.1', dev: 'vxlan', onlink: true }, { dst: '10.1.8.0/24', gateway: '192.0.2.8', dev: 'public', onlink: false }, inStep.routes[0], ...inStep.routes.slice(2)],
      flood: ['192.0.2.99', '192.0.2.99', '192.0.2.3'],
    },
    'listed twice: the last neighbour/route counts, any exact FDB entry': {
      neighbours: [...inStep.neighbours, { ip: '10.1.3.0', mac: '02:00:00:00:00:55' }, { ip: '10.1.4.0', mac: '02:00:00:00:00:55' }, inStep.neighbours[3]],
      fdb: [...inStep.fdb, { mac: '02:00:00:00:00:02', dst: '192.0.2.222' }, inStep.fdb[1]],
      routes: [...inStep.routes, { dst: '10.1.1.0/24', gateway: '10.1.1.0', dev: 'public', onlink: false }],
      flood: inStep.flood,
    },
  };
  for (const [name, observed] of Object.entries(cases)) {
    assert.deepEqual(streamed(index, observed), planPeers(merged(states), observed), name);
  }
  assert.deepEqual(streamed(index, inStep), [], 'in step: nothing to do (marks of the earlier plans forgotten)');
  assert.equal(planPeers(merged(states), inStep).length, 0);
});

test('two desired entries with one key (one VtepMAC on two leases): not exact, the caller uses planPeers', () => {
  assert.equal(new PeerIndex([peer(1, '02:00:00:00:00:aa'), peer(2, '02:00:00:00:00:aa')]).exact, false);
  assert.equal(new PeerIndex([peer(1), peer(1)]).exact, false);
  assert.equal(new PeerIndex([peer(1, undefined, '192.0.2.9'), peer(2, undefined, '192.0.2.9')]).exact, true, 'one PublicIP for two leases is fine');
});

test('sameStates: only the very state objects, in order', () => {
  const states = [peer(1), peer(2)];
  const index = new PeerIndex(states);
  assert.equal(index.sameStates([states[0], states[1]]), true);
  assert.equal(index.sameStates([states[1], states[0]]), false);
  assert.equal(index.sameStates([states[0], peer(2)]), false, 'an equal but new object (a changed lease) needs a new index');
  assert.equal(index.sameStates([states[0]]), false);
});

test('seeded random kernel states: the same plan as planPeers (500 rounds)', () => {
  let seed = 23;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let round = 0; round < 500; round++) {
    const states = Array.from({ length: 1 + rnd(12) }, (_, i) => peer(i * 3 + rnd(3)));
    const uniq = new Map(states.map((s) => [s.neighbours[0].ip, s]));
    const want = [...uniq.values()];
    const index = new PeerIndex(want);
    const all = merged(want);
    const pick = <T>(xs: T[]): T[] => xs.filter(() => rnd(4) !== 0);
    const observed: PeerState = {
      neighbours: [...pick(all.neighbours), ...(rnd(2) ? [{ ip: `10.1.${rnd(40)}.0`, mac: `02:00:00:00:01:${rnd(9)}0` }] : [])],
      fdb: [...pick(all.fdb), ...(rnd(2) ? [{ mac: `02:00:00:00:00:${rnd(40).toString(16).padStart(2, '0')}`, dst: `192.0.2.${rnd(40)}` }] : [])],
      routes: [...pick(all.routes), ...(rnd(2) ? [{ dst: `10.1.${rnd(40)}.0/24`, gateway: `10.1.${rnd(40)}.0`, dev: 'vxlan' as const, onlink: rnd(2) === 0 }] : [])],
      flood: [...pick(all.flood), ...(rnd(3) ? [] : [`192.0.2.${rnd(40)}`])],
    };
    assert.deepEqual(streamed(index, observed), planPeers(all, observed), `round ${round}`);
  }
});

test('compactPeerState: the same entries in exact-length arrays, one frozen empty array, the route dst shared with the key', async () => {
  const { compactPeerState } = await import('../../src/domain/peer-index');
  const key = ['10.1.7.0', '24'].join('/'); // a string of its own, as leaseId's
  const pushed: PeerState = { neighbours: [], fdb: [], routes: [], flood: [] };
  const p = peer(7);
  pushed.neighbours.push(...p.neighbours);
  pushed.fdb.push(...p.fdb);
  pushed.routes.push({ ...p.routes[0]!, dst: `10.1.7.0/${24}` });
  const c = compactPeerState(pushed, key);
  assert.deepEqual(c, { ...p, flood: [] });
  assert.equal(c.neighbours[0], pushed.neighbours[0], 'the wants themselves, not copies');
  assert.ok(Object.isFrozen(c.flood), 'an absent kind is the shared frozen empty array');
  assert.equal(compactPeerState({ neighbours: [], fdb: [], routes: [], flood: [] }).flood, c.flood);
  assert.throws(() => (c.flood as string[]).push('192.0.2.1'), TypeError, 'nobody can grow the shared empty array');
  const two = compactPeerState({ ...p, flood: ['192.0.2.1', '192.0.2.2'] });
  assert.deepEqual(two.flood, ['192.0.2.1', '192.0.2.2']);
  assert.deepEqual(new PeerIndex([c]).plan().finish(), planPeers(c, { neighbours: [], fdb: [], routes: [], flood: [] }), 'the index plans a compact state as any');
});
