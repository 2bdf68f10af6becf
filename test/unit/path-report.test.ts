// Path reports (domain/path-report.ts): the codec round-trips, a broken value is refused with a
// reason (never a throw), and the write rule keeps etcd writes bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { changedEnough, encodePathReport, MIN_PUBLISH_MS, parsePathReport, publishDue, REFRESH_MS, type PathReport } from '../../src/domain/path-report';

const T = Date.UTC(2030, 0, 1, 12);
const report = (peers: Partial<PathReport['overlays'][0]['peers'][0]>[] = [{}], over: Partial<PathReport> = {}): PathReport => ({
  host: '192.0.2.1',
  version: '0.1.0',
  at: T,
  overlays: [{ overlay: 'default', peers: peers.map((p, i) => ({ peer: `192.0.2.${i + 2}`, subnet: `10.1.${i + 2}.0/24`, state: 'reachable', rttMs: 0.2, loss: 0, lastReplyAt: T - 500, ...p })) }],
  ...over,
});

test('encode → parse round-trips, and the key host must agree', () => {
  const r = report([{}, { state: 'unreachable', rttMs: null, loss: 1, lastReplyAt: null }]);
  const back = parsePathReport(encodePathReport(r), '192.0.2.1');
  assert.deepEqual(back, { ok: true, report: r });
  assert.deepEqual(parsePathReport(encodePathReport(r), '192.0.2.9'), { ok: false, reason: 'host 192.0.2.1 does not match its key (192.0.2.9)' });
});

test('broken values: refused with a reason, never thrown', () => {
  const good = JSON.parse(encodePathReport(report()));
  const peer0 = good.overlays[0].peers[0];
  const cases: [string, unknown, RegExp][] = [
    ['not JSON', '{', /^not JSON$/],
    ['an array', '[]', /not a JSON object/],
    ['a newer version', { ...good, v: 2 }, /version 2 \(this reader knows 1\)/],
    ['host not IPv4', { ...good, host: 'h1' }, /host "h1" is not an IPv4/],
    ['version not a string', { ...good, version: 7 }, /version string 7/],
    ['overlays not a list', { ...good, overlays: {} }, /overlays must be a list/],
    ['too many overlays', { ...good, overlays: Array.from({ length: 17 }, () => good.overlays[0]) }, /at most 16/],
    ['overlay name empty', { ...good, overlays: [{ overlay: '', peers: [] }] }, /overlays\[0\]\.overlay/],
    ['peer not IPv4', { ...good, overlays: [{ overlay: 'default', peers: [{ ...peer0, peer: 'x' }] }] }, /peers\[0\]\.peer "x"/],
    ['subnet not a CIDR', { ...good, overlays: [{ overlay: 'default', peers: [{ ...peer0, subnet: '10.1.2.0' }] }] }, /subnet "10\.1\.2\.0" is not a CIDR/],
    ['unknown state', { ...good, overlays: [{ overlay: 'default', peers: [{ ...peer0, state: 'up' }] }] }, /state "up" is not one of/],
    ['negative RTT', { ...good, overlays: [{ overlay: 'default', peers: [{ ...peer0, rttMs: -1 }] }] }, /rttMs -1/],
    ['loss above 1', { ...good, overlays: [{ overlay: 'default', peers: [{ ...peer0, loss: 2 }] }] }, /loss 2/],
    ['RTT a string', { ...good, overlays: [{ overlay: 'default', peers: [{ ...peer0, rttMs: '1' }] }] }, /rttMs "1"/],
    ['at missing', { ...good, at: undefined }, /at missing/],
  ];
  for (const [what, value, reason] of cases) {
    const got = parsePathReport(typeof value === 'string' ? value : JSON.stringify(value));
    assert.equal(got.ok, false, what);
    assert.match((got as { reason: string }).reason, reason, what);
  }
  assert.throws(() => encodePathReport(report([{ rttMs: -5 }])), RangeError);
});

test('changedEnough: state, peers and big RTT moves count; jitter does not', () => {
  const cases: [string, PathReport, boolean][] = [
    ['same', report(), false],
    ['RTT jitter 0.2 → 0.9 ms (under 1 ms)', report([{ rttMs: 0.9 }]), false],
    ['RTT 0.2 → 5 ms', report([{ rttMs: 5 }]), true],
    ['RTT 20 → 25 ms: under 50 %', report([{ rttMs: 25 }]), false],
    ['state changed', report([{ state: 'unreachable' }]), true],
    ['RTT gone', report([{ rttMs: null }]), true],
    ['a peer more', report([{}, {}]), true],
    ['a new version', report([{}], { version: '0.2.0' }), true],
    ['loss and last reply only', report([{ loss: 0.1, lastReplyAt: T }]), false],
  ];
  for (const [what, next, want] of cases) {
    const prev = what.startsWith('RTT 20') ? report([{ rttMs: 20 }]) : report();
    assert.equal(changedEnough(prev, next), want, what);
  }
});

test('publishDue: first at once, at most one per 3 s, at least one per 10 s', () => {
  const last = { report: report(), atMs: T };
  const cut = report([{ state: 'unreachable' }]);
  const cases: [string, typeof last | null, PathReport, number, boolean][] = [
    ['nothing written yet', null, report(), T, true],
    ['changed, 1 s after the last write', last, cut, T + 1000, false],
    ['changed, 3 s after', last, cut, T + MIN_PUBLISH_MS, true],
    ['unchanged, 5 s after', last, report(), T + 5000, false],
    ['unchanged, 10 s after: the refresh', last, report(), T + REFRESH_MS, true],
  ];
  for (const [what, l, next, now, want] of cases) assert.equal(publishDue(l, next, now), want, what);
});
