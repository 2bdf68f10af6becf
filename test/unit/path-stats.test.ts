// Path probes' pure parts (domain/path-stats.ts): the datagram both ways and what it rejects,
// RTT across the 32-bit wrap, and a window's state, median RTT and loss, in a table; and the
// probe targets of the agents (reconcile/path-prober.ts pathTargets): vxlan and wireguard only, own .0 apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeProbe, encodeProbe, LOST_IN_A_ROW, PathWindow, PROBE_BYTES, rttOf, WINDOW } from '../../src/domain/path-stats';
import { pathTargets } from '../../src/reconcile/path-prober';
import { parseCidr } from '../../src/domain/ipv4';
import type { Lease } from '../../src/domain/lease';

test('probe datagrams: both ways; anything else is dropped', () => {
  const req = encodeProbe({ kind: 'request', seq: 4_000_000_000, sentMs: 123_456 });
  assert.equal(req.length, PROBE_BYTES);
  assert.deepEqual(decodeProbe(req), { kind: 'request', seq: 4_000_000_000, sentMs: 123_456 });
  assert.deepEqual(decodeProbe(encodeProbe({ kind: 'reply', seq: 1, sentMs: 2 })), { kind: 'reply', seq: 1, sentMs: 2 });
  const wrongKind = Buffer.from(req);
  wrongKind.writeUInt8(9, 4);
  const wrongMagic = Buffer.from(req);
  wrongMagic.writeUInt8(0, 0);
  for (const b of [Buffer.alloc(0), req.subarray(0, 15), Buffer.concat([req, Buffer.alloc(1)]), wrongKind, wrongMagic]) assert.equal(decodeProbe(b), null);
  assert.equal(rttOf(2 ** 32 - 5, 2 ** 32 + 3), 8, 'across the wrap');
  assert.equal(rttOf(100, 107), 7);
});

test('a window: state, median RTT and loss', () => {
  // outcomes: a number = reply RTT (ms), null = lost
  const cases: [string, (number | null)[], { state: string; rttMs: number | null; loss: number | null; lastRttMs: number | null }][] = [
    ['nothing yet', [], { state: 'unknown', rttMs: null, loss: null, lastRttMs: null }],
    ['one reply', [0.5], { state: 'reachable', rttMs: 0.5, loss: 0, lastRttMs: 0.5 }],
    ['median, not mean', [1, 9, 2], { state: 'reachable', rttMs: 2, loss: 0, lastRttMs: 2 }],
    ['two lost after replies: still reachable', [1, 1, null, null], { state: 'reachable', rttMs: 1, loss: 0.5, lastRttMs: 1 }],
    [`${LOST_IN_A_ROW} lost in a row: unreachable`, [1, null, null, null], { state: 'unreachable', rttMs: 1, loss: 0.75, lastRttMs: 1 }],
    ['never answered, 2 lost: unknown', [null, null], { state: 'unknown', rttMs: null, loss: 1, lastRttMs: null }],
    ['back at the first reply', [null, null, null, null, 3], { state: 'reachable', rttMs: 3, loss: 0.8, lastRttMs: 3 }],
  ];
  for (const [what, outcomes, want] of cases) {
    const w = new PathWindow();
    outcomes.forEach((o, i) => (o === null ? w.lost() : w.replied(o, 1000 + i)));
    const s = w.summary();
    assert.deepEqual({ state: s.state, rttMs: s.rttMs, loss: s.loss, lastRttMs: s.lastRttMs }, want, what);
  }
  const w = new PathWindow();
  for (let i = 0; i < WINDOW + 5; i++) w.lost();
  w.replied(2, 99);
  assert.equal(w.summary().probes, WINDOW, 'the window is bounded');
  assert.equal(w.summary().lastReplyAt, 99);
});

test('pathTargets: vxlan and wireguard overlays only; this host\'s .0 to every other lease\'s .0 of its backend', () => {
  const lease = (subnet: string, ip: string, backendType = 'vxlan'): Lease => ({ subnet: parseCidr(subnet), attrs: { publicIP: ip, backendType }, etcdLease: '1' });
  const own = lease('10.5.1.0/24', '192.0.2.1');
  const wgOwn = lease('10.8.1.0/24', '192.0.2.1', 'wireguard');
  const agent = (type: string, leases: Lease[], mine: Lease | null) => ({ config: { backend: { type } }, lease: () => mine, dataplane: { knownLeases: () => leases } });
  const agents = new Map([
    ['default', agent('vxlan', [own, lease('10.5.2.0/24', '192.0.2.2'), lease('10.5.3.0/24', '192.0.2.3', '')], own)],
    ['gw', agent('host-gw', [lease('10.6.2.0/24', '192.0.2.2', 'host-gw')], null)],
    ['waiting', agent('vxlan', [lease('10.7.2.0/24', '192.0.2.2')], null)],
    ['wg', agent('wireguard', [wgOwn, lease('10.8.2.0/24', '192.0.2.2', 'wireguard'), lease('10.8.3.0/24', '192.0.2.3', 'vxlan')], wgOwn)],
  ]);
  assert.deepEqual(pathTargets(agents as never), [
    { overlay: 'default', own: '10.5.1.0', peers: [{ subnet: '10.5.2.0/24', publicIP: '192.0.2.2', address: '10.5.2.0' }] },
    { overlay: 'waiting', own: null, peers: [{ subnet: '10.7.2.0/24', publicIP: '192.0.2.2', address: '10.7.2.0' }] },
    { overlay: 'wg', own: '10.8.1.0', peers: [{ subnet: '10.8.2.0/24', publicIP: '192.0.2.2', address: '10.8.2.0' }] },
  ]);
});
