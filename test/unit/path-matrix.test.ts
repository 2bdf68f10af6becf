// The host × host path matrix (domain/path-matrix.ts) and its place in the whole-overlay view:
// rows from this host's probes and the others' reports, unknown without a report or with a stale
// one, and "path-unreachable" from A to B while both leases are live.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildMatrix, STALE_REPORT_MS, type MatrixCell, type MatrixInput } from '../../src/domain/path-matrix';
import { buildCluster } from '../../src/domain/cluster';
import type { PathReport } from '../../src/domain/path-report';

const NOW = Date.UTC(2030, 0, 1, 12);
const H = ['192.0.2.1', '192.0.2.2', '192.0.2.3'];
const hosts = (live = [true, true, true]) => H.map((ip, i) => ({ overlay: 'default', publicIP: ip, subnet: `10.1.${i + 1}.0/24`, live: live[i]!, own: i === 0 }));
const peer = (ip: string, state: 'reachable' | 'unreachable' | 'unknown', rttMs: number | null) => ({ peer: ip, subnet: `10.1.${ip.split('.')[3]}.0/24`, state, rttMs, loss: state === 'unreachable' ? 1 : 0, lastReplyAt: state === 'reachable' ? NOW - 1000 : state === 'unreachable' ? NOW - 20_000 : null });
/** A peer that never answered (a flanneld host: no echo). */
const silent = (ip: string) => ({ ...peer(ip, 'unreachable', null), lastReplyAt: null });
const rep = (host: string, at: number, peers: ReturnType<typeof peer>[]): PathReport => ({ host, version: '0.1.0', at, overlays: [{ overlay: 'default', peers }] });
const local = (s3: 'reachable' | 'unreachable') => [{ overlay: 'default', peers: [{ publicIP: '192.0.2.2', state: 'reachable' as const, rttMs: 0.3, loss: 0, lastReplyAt: NOW - 2000 }, { publicIP: '192.0.2.3', state: s3, rttMs: s3 === 'reachable' ? 0.4 : null, loss: s3 === 'reachable' ? 0 : 1, lastReplyAt: NOW - 20_000 }] }];
const show = (c: MatrixCell) => (c.state === 'self' ? '-' : c.state === 'reachable' ? `${c.rttMs}` : c.note ? `${c.state} (${c.note})` : c.state);
const grid = (i: MatrixInput) => buildMatrix(i).matrix[0]!.rows.map((r) => r.map(show));

test('matrix: full, a cut host, no report, a stale report, a host not probed', () => {
  const full = [rep(H[1]!, NOW - 2000, [peer(H[0]!, 'reachable', 0.5), peer(H[2]!, 'reachable', 0.6)]), rep(H[2]!, NOW - 1000, [peer(H[0]!, 'reachable', 0.7), peer(H[1]!, 'reachable', 0.8)])];
  const cases: [string, MatrixInput, string[][]][] = [
    ['healthy', { hosts: hosts(), reports: full, local: local('reachable'), thisHost: H[0]!, nowMs: NOW }, [['-', '0.3', '0.4'], ['0.5', '-', '0.6'], ['0.7', '0.8', '-']]],
    [
      'host 3 cut: its column unreachable, its report stale',
      { hosts: hosts(), reports: [rep(H[1]!, NOW - 1000, [peer(H[0]!, 'reachable', 0.5), peer(H[2]!, 'unreachable', null)]), rep(H[2]!, NOW - STALE_REPORT_MS - 1000, full[1]!.overlays[0]!.peers as never)], local: local('unreachable'), thisHost: H[0]!, nowMs: NOW },
      [['-', '0.3', 'unreachable'], ['0.5', '-', 'unreachable'], ['unknown (report stale)', 'unknown (report stale)', '-']],
    ],
    ['no report from host 3 (flanneld, or its record expired)', { hosts: hosts(), reports: [full[0]!], local: local('reachable'), thisHost: H[0]!, nowMs: NOW }, [['-', '0.3', '0.4'], ['0.5', '-', '0.6'], ['unknown (no report)', 'unknown (no report)', '-']]],
    [
      'host 2 probes only host 1',
      { hosts: hosts(), reports: [rep(H[1]!, NOW, [peer(H[0]!, 'reachable', 0.5)]), full[1]!], local: local('reachable'), thisHost: H[0]!, nowMs: NOW },
      [['-', '0.3', '0.4'], ['0.5', '-', 'unknown (not probed)'], ['0.7', '0.8', '-']],
    ],
    [
      'host 3 runs no echo (flanneld): never answered, no report: unknown (no echo), not unreachable',
      { hosts: hosts(), reports: [rep(H[1]!, NOW - 1000, [peer(H[0]!, 'reachable', 0.5), silent(H[2]!)])], local: [{ overlay: 'default', peers: [{ publicIP: H[1]!, state: 'reachable' as const, rttMs: 0.3, loss: 0, lastReplyAt: NOW - 2000 }, { publicIP: H[2]!, state: 'unreachable' as const, rttMs: null, loss: 1, lastReplyAt: null }] }], thisHost: H[0]!, nowMs: NOW },
      [['-', '0.3', 'unknown (no echo)'], ['0.5', '-', 'unknown (no echo)'], ['unknown (no report)', 'unknown (no report)', '-']],
    ],
    [
      'host 3 never answered but has a report (cut off since before this host started): unreachable',
      { hosts: hosts(), reports: [rep(H[1]!, NOW - 1000, [peer(H[0]!, 'reachable', 0.5), silent(H[2]!)]), rep(H[2]!, NOW - 1000, full[1]!.overlays[0]!.peers as never)], local: local('reachable'), thisHost: H[0]!, nowMs: NOW },
      [['-', '0.3', '0.4'], ['0.5', '-', 'unreachable'], ['0.7', '0.8', '-']],
    ],
    [
      'this host cut off etcd (and the LAN): its own row live, the others\' reports aged here: "etcd unreachable", not "report stale"',
      { hosts: hosts(), reports: full.map((r) => ({ ...r, at: NOW - STALE_REPORT_MS - 1000 })), local: [{ overlay: 'default', peers: [{ publicIP: H[1]!, state: 'unreachable' as const, rttMs: null, loss: 1, lastReplyAt: NOW - 20_000 }, { publicIP: H[2]!, state: 'unreachable' as const, rttMs: null, loss: 1, lastReplyAt: NOW - 20_000 }] }], thisHost: H[0]!, etcdDown: true, nowMs: NOW },
      [['-', 'unreachable', 'unreachable'], ['unknown (etcd unreachable)', '-', 'unknown (etcd unreachable)'], ['unknown (etcd unreachable)', 'unknown (etcd unreachable)', '-']],
    ],
    ['this host without a prober: its row unknown', { hosts: hosts(), reports: full, local: null, thisHost: H[0]!, nowMs: NOW }, [['-', 'unknown (no report)', 'unknown (no report)'], ['0.5', '-', '0.6'], ['0.7', '0.8', '-']]],
  ];
  for (const [what, input, want] of cases) assert.deepEqual(grid(input), want, what);
});

test('matrix: hosts sorted by subnet, one per public IP, versions and ages', () => {
  const m = buildMatrix({
    hosts: [...hosts()].reverse().concat([{ overlay: 'default', publicIP: H[1]!, subnet: '10.1.2.0/24', live: true, own: false }]),
    reports: [rep(H[1]!, NOW - 4000, [peer(H[0]!, 'reachable', 0.5)])],
    local: local('reachable'),
    thisHost: H[0]!,
    nowMs: NOW,
  }).matrix[0]!;
  assert.deepEqual(m.hosts.map((h) => [h.publicIP, h.version, h.reportAgeSec]), [[H[0], null, 0], [H[1], '0.1.0', 4], [H[2], null, null]]);
  assert.equal(m.rows[1]![0]!.ageSec, 4);
  assert.equal(m.rows[1]![0]!.lastReplyAgeSec, 1);
  assert.equal(m.rows[0]![1]!.lastReplyAgeSec, 2);
});

test('problems: A cannot reach B while both leases are live; not for a stale report or an expired lease', () => {
  const cut = rep(H[1]!, NOW - 1000, [peer(H[0]!, 'reachable', 0.5), peer(H[2]!, 'unreachable', null)]);
  const cases: [string, MatrixInput, string[]][] = [
    ['host 2 cannot reach host 3', { hosts: hosts(), reports: [cut], local: local('reachable'), thisHost: H[0]!, nowMs: NOW }, ['192.0.2.3 (10.1.3.0/24, overlay default) is unreachable through the overlay from 192.0.2.2 while both leases are live']],
    [
      'hosts 2 and 3 cannot reach host 1: one problem naming both',
      { hosts: hosts(), reports: [rep(H[1]!, NOW, [peer(H[0]!, 'unreachable', null)]), rep(H[2]!, NOW, [peer(H[0]!, 'unreachable', null)])], local: local('reachable'), thisHost: H[0]!, nowMs: NOW },
      ['192.0.2.1 (10.1.1.0/24, overlay default) is unreachable through the overlay from 192.0.2.2, 192.0.2.3 (2 hosts) while both leases are live'],
    ],
    ['host 3 runs no echo (flanneld, never answered, no report): no problem', { hosts: hosts(), reports: [rep(H[1]!, NOW - 1000, [silent(H[2]!)])], local: local('reachable'), thisHost: H[0]!, nowMs: NOW }, []],
    ['host 3\'s lease expired', { hosts: hosts([true, true, false]), reports: [cut], local: local('reachable'), thisHost: H[0]!, nowMs: NOW }, []],
    ['host 2\'s report stale', { hosts: hosts(), reports: [{ ...cut, at: NOW - STALE_REPORT_MS - 1 }], local: local('reachable'), thisHost: H[0]!, nowMs: NOW }, []],
    ['this host\'s own row: domain/cluster.ts says it', { hosts: hosts(), reports: [], local: local('unreachable'), thisHost: H[0]!, nowMs: NOW }, []],
  ];
  for (const [what, input, want] of cases) assert.deepEqual(buildMatrix(input).problems.map((p) => p.text), want, what);
});

test('buildCluster: the matrix and its problems join the view; no prober, no matrix', () => {
  const lease = (i: number) => ({ overlay: 'default', subnet: `10.1.${i + 1}.0/24`, publicIP: H[i]!, backend: 'vxlan', vtepMac: null, expiresAt: new Date(NOW + 60_000).toISOString(), lastSeen: new Date(NOW - 1000).toISOString(), own: i === 0, programmed: null });
  const base = { leases: [0, 1, 2].map(lease), names: [], etcd: null, namesStale: false, drift: [], nowMs: NOW };
  const c = buildCluster({ ...base, paths: { local: local('reachable'), reports: [rep(H[1]!, NOW - 1000, [peer(H[0]!, 'reachable', 0.5), peer(H[2]!, 'unreachable', null)])], thisHost: H[0]! } });
  assert.equal(c.matrix.length, 1);
  assert.deepEqual(c.matrix[0]!.hosts.map((h) => h.publicIP), H);
  assert.deepEqual(c.problems.map((p) => [p.kind, p.host]), [['path-unreachable', '192.0.2.3']]);
  assert.deepEqual(buildCluster(base).matrix, []);
  // Host 3 runs no echo (never answered this host, no report): its path "no echo", no problem, no event-worthy "unreachable".
  const quiet = buildCluster({ ...base, paths: { local: [{ overlay: 'default', peers: [{ publicIP: H[2]!, state: 'unreachable', rttMs: null, loss: 1, lastReplyAt: null }] }], reports: [], thisHost: H[0]! } });
  assert.deepEqual(quiet.problems, []);
  const withPath = buildCluster({ ...base, leases: base.leases.map((l, i) => (i === 2 ? { ...l, path: { state: 'unreachable' as const, rttMs: null, loss: 1, lastReplyAt: null } } : i === 1 ? { ...l, path: { state: 'unreachable' as const, rttMs: null, loss: 1, lastReplyAt: NOW - 9000 } } : l)), paths: { local: [], reports: [], thisHost: H[0]! } });
  assert.deepEqual(withPath.hosts.map((h) => h.path && `${h.path.state} ${h.path.note}`), [null, 'unreachable null', 'unknown no echo']);
  assert.deepEqual(withPath.problems.map((p) => [p.kind, p.host]), [['path-unreachable', H[1]]], 'host 2 answered before: unreachable is a problem; host 3 never did: none');
});
