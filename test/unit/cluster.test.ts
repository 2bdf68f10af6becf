// The whole-overlay view (domain/cluster.ts) and its events (domain/cluster-events.ts): host
// kinds, containers placed on the lease holding their address, problems, events by diff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildCluster, expiryWarningMs, type ClusterInput, type ClusterLeaseInput } from '../../src/domain/cluster';
import { clusterEvents, EventLog, type ClusterStep } from '../../src/domain/cluster-events';
import { nameRow, nameRows } from '../../src/domain/name-rows';
import { nameRecord } from '../helpers/name-records';

const NOW = Date.UTC(2030, 0, 1, 12);
const iso = (ms: number) => new Date(ms).toISOString();

const lease = (over: Partial<ClusterLeaseInput>): ClusterLeaseInput => ({
  overlay: 'default',
  subnet: '10.1.1.0/24',
  publicIP: '192.0.2.1',
  backend: 'vxlan',
  vtepMac: '0e:00:00:00:00:01',
  expiresAt: iso(NOW + 5000),
  lastSeen: iso(NOW - 1000),
  own: false,
  programmed: true,
  ...over,
});
const rec = (host: string, name: string, ip: string, network = 'appnet') =>
  nameRecord({ host, containerName: name, ipv4: [ip], networkId: network, networkName: network, endpointId: `${name}x${host.replace(/\./g, '')}` });
const row = (host: string, name: string, ip: string, network = 'appnet') => nameRow(rec(host, name, ip, network), NOW);

const input = (over: Partial<ClusterInput>): ClusterInput => ({ leases: [], names: [], etcd: { up: true, since: null, lastError: null }, namesStale: false, drift: [], nowMs: NOW, ...over });

test('hosts: plugin when it writes name records or is this host, else flanneld; containers counted per lease', () => {
  const c = buildCluster(
    input({
      leases: [
        lease({ subnet: '10.1.2.0/24', publicIP: '192.0.2.2' }),
        lease({ subnet: '10.1.1.0/24', publicIP: '192.0.2.1', own: true, programmed: null }),
        lease({ subnet: '10.1.3.0/24', publicIP: '192.0.2.3', vtepMac: '0e:00:00:00:00:03' }),
        lease({ overlay: 'blue', subnet: '10.9.2.0/24', publicIP: '192.0.2.2' }),
      ],
      // as the daemon hands them in: nameRows' order
      names: nameRows([rec('192.0.2.2', 'web', '10.1.2.5'), rec('192.0.2.2', 'db', '10.9.2.7', 'bluenet'), rec('192.0.2.2', 'api', '10.1.2.6')], NOW),
    }),
  );
  assert.deepEqual(
    c.hosts.map((h) => `${h.overlay} ${h.subnet} ${h.kind} ${h.containers}`),
    ['blue 10.9.2.0/24 plugin 1', 'default 10.1.1.0/24 plugin 0', 'default 10.1.2.0/24 plugin 2', 'default 10.1.3.0/24 flanneld 0'],
  );
  assert.deepEqual(
    c.containers.map((x) => `${x.name} ${x.host} ${x.overlay} ${x.subnet} ${x.network}`),
    // by network, then name (the name rows' order)
    ['api 192.0.2.2 default 10.1.2.0/24 appnet', 'web 192.0.2.2 default 10.1.2.0/24 appnet', 'db 192.0.2.2 blue 10.9.2.0/24 bluenet'],
  );
  assert.deepEqual(c.problems, []);
});

test('problems: etcd down first, stale names, expiring and expired leases, names without a lease, drift', () => {
  const c = buildCluster(
    input({
      leases: [
        lease({ subnet: '10.1.2.0/24', publicIP: '192.0.2.2', expiresAt: iso(NOW + 500), lastSeen: iso(NOW - 5500) }), // 0.5 s of 6 left
        lease({ subnet: '10.1.3.0/24', publicIP: '192.0.2.3', expiresAt: iso(NOW - 3000) }),
        lease({ subnet: '10.1.4.0/24', publicIP: '192.0.2.4', expiresAt: iso(NOW + 4000), lastSeen: iso(NOW - 2000) }), // fine
      ],
      names: [row('192.0.2.9', 'ghost', '10.1.9.2'), row('192.0.2.9', 'ghost2', '10.1.9.3')],
      etcd: { up: false, since: iso(NOW - 10_000), lastError: 'connect ECONNREFUSED 192.0.2.254:2379' },
      namesStale: true,
      drift: [{ overlay: 'default', lastDrift: 2, fullSyncs: 5 }, { overlay: 'blue', lastDrift: 0, fullSyncs: 5 }, { overlay: 'red', lastDrift: 7, fullSyncs: 1 }], // red: the catch-up
    }),
  );
  assert.deepEqual(
    c.problems.map((p) => `${p.severity} ${p.kind} ${p.host}`),
    ['error etcd-down null', 'error lease-expired 192.0.2.3', 'warning names-stale null', 'warning lease-expiring 192.0.2.2', 'warning names-without-lease 192.0.2.9', 'warning kernel-drift null'],
  );
  assert.match(c.problems[0]!.text, /ECONNREFUSED.*last known state/);
  assert.match(c.problems[1]!.text, /expired 3 s ago \(etcd unreachable: as last known\)/);
  assert.match(c.problems[4]!.text, /^2 name records of host 192\.0\.2\.9, which holds no lease/);
  assert.match(c.problems[5]!.text, /repaired 2 kernel entries/);
  // No records at all (NAMES=false): every peer is a flanneld host, no containers, no problem for it.
  const off = buildCluster(input({ leases: [lease({})], names: null }));
  assert.deepEqual([off.hosts[0]!.kind, off.containers.length, off.problems.length], ['flanneld', 0, 0]);
});

test('expiryWarningMs: a quarter of the lease life, 1 s to 5 min', () => {
  const cases: [number, number | null, number][] = [
    [NOW + 6000, NOW, 1500], // LEASE_TTL 6 s
    [NOW + 2000, NOW, 1000], // floor
    [NOW + 86_400_000, NOW, 300_000], // flanneld's 24 h: cap
    [NOW + 5000, null, 300_000], // never seen written: the cap
  ];
  for (const [exp, seen, want] of cases) assert.equal(expiryWarningMs(exp, seen), want, `${exp - NOW} ${seen}`);
});

const step = (leases: ClusterLeaseInput[], names: ReturnType<typeof row>[], stale = false, etcdUp: boolean | null = true): ClusterStep => ({
  cluster: buildCluster(input({ leases, names })),
  stale,
  etcdUp,
});

test('events: the baseline has none; joined, renewed, changed, lost; containers started and stopped; etcd down/up', () => {
  const a = lease({ subnet: '10.1.2.0/24', publicIP: '192.0.2.2' });
  const b = lease({ subnet: '10.1.3.0/24', publicIP: '192.0.2.3' });
  const at = iso(NOW);
  const s0 = step([a], [row('192.0.2.2', 'web', '10.1.2.5')]);
  assert.deepEqual(clusterEvents(null, s0, at), []);
  const s1 = step([{ ...a, expiresAt: iso(NOW + 9000) }, b], [row('192.0.2.2', 'web', '10.1.2.5'), row('192.0.2.3', 'api', '10.1.3.5')]);
  assert.deepEqual(clusterEvents(s0, s1, at).map((e) => `${e.kind} ${e.host}`), ['host-joined 192.0.2.3', 'lease-renewed 192.0.2.2', 'container-started 192.0.2.3']);
  const s2 = step([{ ...a, vtepMac: '0e:00:00:00:00:99', expiresAt: iso(NOW + 9000) }], [row('192.0.2.3', 'api', '10.1.3.5')]);
  const e2 = clusterEvents(s1, s2, at);
  assert.deepEqual(e2.map((e) => `${e.kind} ${e.host}`), ['lease-changed 192.0.2.2', 'host-lost 192.0.2.3', 'container-stopped 192.0.2.2']);
  assert.match(e2[0]!.text, /0e:00:00:00:00:01 → 192\.0\.2\.2 0e:00:00:00:00:99/);
  // Stale (etcd away): nothing is lost, only etcd's state changes.
  const s3 = step([], [], true, false);
  assert.deepEqual(clusterEvents(s2, s3, at).map((e) => e.kind), ['etcd-down']);
  assert.deepEqual(clusterEvents(s3, step([], []), at).map((e) => e.kind), ['etcd-up']);
});

test('events: many renewals in one step are one event; the log keeps the newest, newest first', () => {
  const many = Array.from({ length: 10 }, (_, i) => lease({ subnet: `10.1.${i + 10}.0/24`, publicIP: `192.0.2.${i + 10}` }));
  const later = many.map((l) => ({ ...l, expiresAt: iso(NOW + 60_000) }));
  const ev = clusterEvents(step(many, []), step(later, []), iso(NOW));
  assert.equal(ev.length, 1);
  assert.match(ev[0]!.text, /^10 leases renewed: 192\.0\.2\.10, 192\.0\.2\.11, 192\.0\.2\.12, …$/);
  const log = new EventLog(3);
  const e = (n: number) => ({ at: iso(NOW + n), kind: 'host-joined' as const, text: String(n), host: null });
  log.add([e(1), e(2)]);
  log.add([]);
  log.add([e(3), e(4)]);
  assert.deepEqual(log.list().map((x) => x.text), ['4', '3', '2']);
});
