/**
 * The orphan-record decision of the address audit (src/domain/orphan-addresses.ts), as a table:
 * records of one lease, the addresses Docker's endpoints hold, the time, the grace period and
 * what earlier audits saw → which records are released, which wait, what is remembered. Then the
 * AddressAudit that carries the decision out, over fakes of the etcd records and of Docker.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { orphanAddresses, orphanVeths, type AuditedRecord } from '../../src/domain/orphan-addresses';
import { formatIPv4, parseCidr, parseIPv4, type Cidr } from '../../src/domain/ipv4';
import { AddressAudit } from '../../src/reconcile/address-audit';
import { addNetwork, type DockerEndpoints, type EndpointsPort } from '../../src/docker/endpoint-addresses';
import { formatIPv6, parseCidr6, parseIPv6, type Cidr6 } from '../../src/domain/ipv6';
import type { DetailedAddress6Record, DetailedAddressRecord } from '../../src/store';
import { captureLogger, testLogger } from '../helpers/store-fixtures';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const GRACE = 120_000;
const ip = (s: string): number => parseIPv4(s);
const rec = (a: string, ageMs: number | null): AuditedRecord => ({ ip: ip(a), createdAt: ageMs === null ? null : NOW - ageMs });
const names = (rs: AuditedRecord[]): string[] => rs.map((r) => formatIPv4(r.ip));

const table: Array<{
  name: string;
  records: AuditedRecord[];
  held: string[];
  firstSeen?: Array<[string, number]>; // ip, ms before NOW
  release: string[];
  waiting: string[];
  remembered: string[];
}> = [
  { name: 'no records', records: [], held: ['10.1.2.3'], release: [], waiting: [], remembered: [] },
  { name: 'every record held', records: [rec('10.1.2.2', 3_600_000), rec('10.1.2.3', 1)], held: ['10.1.2.2', '10.1.2.3'], release: [], waiting: [], remembered: [] },
  { name: 'old record without endpoint is released', records: [rec('10.1.2.2', 3_600_000), rec('10.1.2.3', 10)], held: ['10.1.2.3'], release: ['10.1.2.2'], waiting: [], remembered: ['10.1.2.2'] },
  { name: 'young record without endpoint waits (in-flight RequestAddress)', records: [rec('10.1.2.4', 5_000)], held: [], release: [], waiting: ['10.1.2.4'], remembered: ['10.1.2.4'] },
  { name: 'exactly the grace period old is released', records: [rec('10.1.2.5', GRACE)], held: [], release: ['10.1.2.5'], waiting: [], remembered: ['10.1.2.5'] },
  { name: 'one ms younger than the grace period waits', records: [rec('10.1.2.5', GRACE - 1)], held: [], release: [], waiting: ['10.1.2.5'], remembered: ['10.1.2.5'] },
  { name: 'createdAt in the future (clock skew) counts as now', records: [rec('10.1.2.6', -3_600_000)], held: [], release: [], waiting: ['10.1.2.6'], remembered: ['10.1.2.6'] },
  { name: 'no createdAt, first audit: waits and is remembered', records: [rec('10.1.2.7', null)], held: [], release: [], waiting: ['10.1.2.7'], remembered: ['10.1.2.7'] },
  { name: 'no createdAt, seen orphaned a grace period ago: released', records: [rec('10.1.2.7', null)], held: [], firstSeen: [['10.1.2.7', GRACE]], release: ['10.1.2.7'], waiting: [], remembered: ['10.1.2.7'] },
  { name: 'no createdAt, seen orphaned recently: waits', records: [rec('10.1.2.7', null)], held: [], firstSeen: [['10.1.2.7', 1_000]], release: [], waiting: ['10.1.2.7'], remembered: ['10.1.2.7'] },
  { name: 'held again: forgotten', records: [rec('10.1.2.8', null)], held: ['10.1.2.8'], firstSeen: [['10.1.2.8', GRACE * 2]], release: [], waiting: [], remembered: [] },
  { name: 'record gone: forgotten', records: [], held: [], firstSeen: [['10.1.2.9', GRACE * 2]], release: [], waiting: [], remembered: [] },
  {
    name: 'mixed lease',
    records: [rec('10.1.2.2', 7_200_000), rec('10.1.2.3', 7_200_000), rec('10.1.2.4', 2_000), rec('10.1.2.5', null)],
    held: ['10.1.2.3', '10.9.9.9'],
    release: ['10.1.2.2'],
    waiting: ['10.1.2.4', '10.1.2.5'],
    remembered: ['10.1.2.2', '10.1.2.4', '10.1.2.5'],
  },
];

for (const row of table) {
  test(`orphanAddresses: ${row.name}`, () => {
    const firstSeen = new Map((row.firstSeen ?? []).map(([a, ago]) => [ip(a), NOW - ago] as [number, number]));
    const d = orphanAddresses(row.records, new Set(row.held.map(ip)), NOW, GRACE, firstSeen);
    assert.deepEqual(names(d.release), row.release);
    assert.deepEqual(names(d.waiting), row.waiting);
    assert.deepEqual([...d.firstSeen.keys()].map(formatIPv4).sort(), [...row.remembered].sort());
    for (const [k, v] of d.firstSeen) assert.equal(v, firstSeen.get(k) ?? NOW, `first seen of ${formatIPv4(k)} kept, or now`);
  });
}

test('orphanAddresses: a negative grace period is a clear error', () => {
  assert.throws(() => orphanAddresses([], new Set<number>(), NOW, -1), /graceMs must be ≥ 0/);
});

// ---- AddressAudit (src/reconcile/address-audit.ts) over fakes of etcd and Docker ----

/** Records of one lease in memory, with mod revisions, as AddressStore keeps them in etcd. */
function fakeRecords(rows: Array<{ ip: string; owner: string; ageMs: number | null }>) {
  let rev = 10n;
  const m = new Map(rows.map((r) => [ip(r.ip), { owner: r.owner, createdAt: r.ageMs === null ? null : NOW - r.ageMs, rev: rev++ }]));
  return {
    m,
    port: {
      async listDetailed(subnet: Cidr): Promise<DetailedAddressRecord[]> {
        return [...m].sort(([a], [b]) => a - b).map(([k, v]) => ({ subnet, ip: k, owner: v.owner, createdAt: v.createdAt, modRevision: v.rev }));
      },
      async releaseIfUnchanged(_s: Cidr, k: number, modRevision: bigint): Promise<boolean> {
        if (m.get(k)?.rev !== modRevision) return false;
        m.delete(k);
        return true;
      },
    },
  };
}

const fakeDocker = (held: string[], opts: { fail?: boolean } = {}): EndpointsPort => ({
  async ping() {},
  async endpoints() {
    if (opts.fail) throw new Error('connect ENOENT /var/run/docker.sock');
    return { addressesBySubnet: new Map([['10.1.2.0/24', new Set(held)]]), endpointIds: new Set<string>() };
  },
});

test('AddressAudit: releases old orphans, keeps held and young records, logs each release', async () => {
  const subnet = parseCidr('10.1.2.0/24');
  const recs = fakeRecords([
    { ip: '10.1.2.2', owner: 'docker/aaa', ageMs: 3_600_000 },
    { ip: '10.1.2.3', owner: 'docker/bbb', ageMs: 3_600_000 },
    { ip: '10.1.2.4', owner: 'docker/ccc', ageMs: 1_000 },
  ]);
  const { logger, lines } = captureLogger('warn');
  const audit = new AddressAudit(() => [{ name: 'default', subnet: () => subnet, records: recs.port }], fakeDocker(['10.1.2.3']), logger, { intervalMs: 0, graceMs: GRACE, now: () => NOW });
  const r = await audit.runOnce();
  assert.deepEqual(r.released.map((x) => [x.address, x.owner]), [['10.1.2.2', 'docker/aaa']]);
  assert.equal(r.waiting, 1);
  assert.deepEqual([...recs.m.keys()].map(formatIPv4), ['10.1.2.3', '10.1.2.4']);
  assert.ok(lines.some((l) => /released an address record no Docker endpoint holds/.test(String(l.msg)) && l.address === '10.1.2.2'), JSON.stringify(lines));
});

test('AddressAudit: Docker not answering skips the round and releases nothing; no lease, nothing audited', async () => {
  const subnet = parseCidr('10.1.2.0/24');
  const recs = fakeRecords([{ ip: '10.1.2.2', owner: 'docker/aaa', ageMs: 3_600_000 }]);
  const audit = new AddressAudit(
    () => [
      { name: 'default', subnet: () => subnet, records: recs.port },
      { name: 'blue', subnet: () => null, records: recs.port },
    ],
    fakeDocker([], { fail: true }),
    testLogger(),
    { intervalMs: 0, graceMs: GRACE, now: () => NOW },
  );
  const r = await audit.runOnce();
  assert.deepEqual(r.skipped, ['default/10.1.2.0/24']);
  assert.deepEqual(r.released, []);
  assert.equal(recs.m.size, 1);
});

test('AddressAudit: 20 orphans are released several at a time, reported in address order; a failing delete stops the rest and skips the lease', async () => {
  const subnet = parseCidr('10.1.2.0/24');
  const rows = Array.from({ length: 20 }, (_, i) => ({ ip: `10.1.2.${i + 10}`, owner: `docker/${i}`, ageMs: 3_600_000 }));
  const recs = fakeRecords([...rows, { ip: '10.1.2.200', owner: 'docker/held', ageMs: 3_600_000 }]);
  let inFlight = 0;
  let most = 0;
  let failAt: number | null = null;
  const port = {
    listDetailed: recs.port.listDetailed,
    async releaseIfUnchanged(s: Cidr, k: number, rev: bigint): Promise<boolean> {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      if (failAt !== null && k === ip(`10.1.2.${failAt}`)) throw new Error('etcd went away');
      return recs.port.releaseIfUnchanged(s, k, rev);
    },
  };
  const audit = new AddressAudit(() => [{ name: 'default', subnet: () => subnet, records: port }], fakeDocker(['10.1.2.200']), testLogger(), { intervalMs: 0, graceMs: GRACE, now: () => NOW });
  const r = await audit.runOnce();
  assert.deepEqual(r.released.map((x) => x.address), rows.map((x) => x.ip), 'every orphan, in address order');
  assert.ok(most > 1 && most <= 8, `deletes in flight at once: ${most}`);
  assert.deepEqual([...recs.m.keys()].map(formatIPv4), ['10.1.2.200']);
  // A second lease's worth: the delete of .14 fails, so the round skips the lease; those done are reported.
  for (const x of rows) recs.m.set(ip(x.ip), { owner: x.owner, createdAt: NOW - 3_600_000, rev: 99n });
  failAt = 14;
  const r2 = await audit.runOnce();
  assert.deepEqual(r2.skipped, ['default/10.1.2.0/24']);
  assert.ok(!r2.released.some((x) => x.address === '10.1.2.14'));
  assert.ok(r2.released.length >= 4 && r2.released.length < 20, `released before the failure stopped the rest: ${r2.released.length}`);
  assert.equal(recs.m.size, 21 - r2.released.length, 'what is reported released is exactly what was deleted');
});

test('orphanVeths: veths whose endpoint Docker does not know go once first seen a grace period ago', () => {
  const ep = (c: string): string => c.repeat(64);
  const known = new Set([ep('a'), ep('b')]);
  const rows: [string, string[], Map<string, number>, { remove: string[]; waiting: string[] }][] = [
    ['owned veths stay', ['ofhaaaaaaaaaaaa', 'ofhbbbbbbbbbbbb'], new Map(), { remove: [], waiting: [] }],
    ['a new orphan waits', ['ofhcccccccccccc'], new Map(), { remove: [], waiting: ['ofhcccccccccccc'] }],
    ['seen alone less than the grace ago: waits', ['ofhcccccccccccc'], new Map([['ofhcccccccccccc', NOW - GRACE + 1]]), { remove: [], waiting: ['ofhcccccccccccc'] }],
    ['seen alone a grace ago: removed', ['ofhcccccccccccc', 'ofhaaaaaaaaaaaa'], new Map([['ofhcccccccccccc', NOW - GRACE]]), { remove: ['ofhcccccccccccc'], waiting: [] }],
  ];
  for (const [what, veths, seen, want] of rows) {
    const d = orphanVeths(veths, known, NOW, GRACE, seen);
    assert.deepEqual({ remove: d.remove, waiting: d.waiting }, want, what);
    assert.ok([...d.firstSeen.keys()].every((v) => !['ofhaaaaaaaaaaaa', 'ofhbbbbbbbbbbbb'].includes(v)), `${what}: owned veths are not tracked`);
  }
  // An endpoint that came back between two rounds clears its veth's first sighting.
  assert.equal(orphanVeths(['ofhaaaaaaaaaaaa'], known, NOW, GRACE, new Map([['ofhaaaaaaaaaaaa', 0]])).firstSeen.size, 0);
});

test('AddressAudit: removes a host veth no endpoint of any network owned for the grace period; no decision without Docker', async () => {
  const recs = fakeRecords([]);
  let now = NOW;
  let lease: Cidr | null = parseCidr('10.1.2.0/24');
  const links = new Set(['ofhaaaaaaaaaaaa', 'ofhbbbbbbbbbbbb', 'ofhdddddddddddd']);
  const removed: string[] = [];
  const veths = { hostVeths: async () => [...links], remove: async (n: string) => void (links.delete(n), removed.push(n)) };
  let fail = false;
  const docker: EndpointsPort = {
    async ping() {},
    async endpoints() {
      if (fail) throw new Error('Docker went away');
      // 'a' is on a network of the current lease, 'b' on a network left on an older subnet.
      return { addressesBySubnet: new Map([['10.1.2.0/24', new Set<string>()], ['10.9.7.0/24', new Set(['10.9.7.2'])]]), endpointIds: new Set(['a'.repeat(64), 'b'.repeat(64)]) };
    },
  };
  const audit = new AddressAudit(() => [{ name: 'default', subnet: () => lease, records: recs.port }], docker, testLogger(), { intervalMs: 0, graceMs: GRACE, now: () => now, veths });
  assert.deepEqual((await audit.runOnce()).removedVeths, [], 'first sighting: waits');
  now += GRACE;
  fail = true;
  const down = await audit.runOnce();
  assert.deepEqual([down.removedVeths, down.skipped], [[], ['default/10.1.2.0/24']], 'Docker not answering: no decision');
  fail = false;
  lease = null; // no lease held right now: the veths are still judged by every network's endpoints
  assert.deepEqual((await audit.runOnce()).removedVeths, ['ofhdddddddddddd']);
  assert.deepEqual([...links], ['ofhaaaaaaaaaaaa', 'ofhbbbbbbbbbbbb']);
});

// ---- IPv6 (issue 21): the same rule and the same audit for the v6 records of a --ipv6 network ----

const s6 = parseCidr6('fd00:10:0:5::/64');
const rec6 = (a: string, ageMs: number | null): AuditedRecord<bigint> => ({ ip: parseIPv6(a), createdAt: ageMs === null ? null : NOW - ageMs });

const table6: Array<{ name: string; records: AuditedRecord<bigint>[]; held: string[]; firstSeen?: Array<[string, number]>; release: string[]; waiting: string[] }> = [
  { name: 'old v6 orphan released, held kept', records: [rec6('fd00:10:0:5::2', 3_600_000), rec6('fd00:10:0:5:a:b:c:d', 3_600_000)], held: ['fd00:10:0:5:a:b:c:d'], release: ['fd00:10:0:5::2'], waiting: [] },
  { name: 'young v6 record waits', records: [rec6('fd00:10:0:5::3', 5_000)], held: [], release: [], waiting: ['fd00:10:0:5::3'] },
  { name: 'no createdAt, seen a grace ago (bigint first-seen key)', records: [rec6('fd00:10:0:5::4', null)], held: [], firstSeen: [['fd00:10:0:5::4', GRACE]], release: ['fd00:10:0:5::4'], waiting: [] },
  { name: 'nothing held in the v6 lease: an old record goes', records: [rec6('fd00:10:0:5::5', 3_600_000)], held: ['fd00:10:0:6::5'], release: ['fd00:10:0:5::5'], waiting: [] },
];
for (const row of table6) {
  test(`orphanAddresses (v6): ${row.name}`, () => {
    const firstSeen = new Map((row.firstSeen ?? []).map(([a, ago]) => [parseIPv6(a), NOW - ago] as [bigint, number]));
    const d = orphanAddresses(row.records, new Set(row.held.map((h) => parseIPv6(h))), NOW, GRACE, firstSeen);
    assert.deepEqual(d.release.map((r) => formatIPv6(r.ip)), row.release);
    assert.deepEqual(d.waiting.map((r) => formatIPv6(r.ip)), row.waiting);
    assert.deepEqual([...d.firstSeen.keys()].map(formatIPv6).sort(), [...row.release, ...row.waiting].sort());
  });
}

/** v6 records of one lease in memory, as Address6Store keeps them in etcd. */
function fakeRecords6(rows: Array<{ ip: string; owner: string; ageMs: number | null }>, opts: { failList?: boolean } = {}) {
  let rev = 50n;
  const m = new Map(rows.map((r) => [parseIPv6(r.ip), { owner: r.owner, createdAt: r.ageMs === null ? null : NOW - r.ageMs, rev: rev++ }]));
  return {
    m,
    port: {
      async listDetailed(subnet6: Cidr6): Promise<DetailedAddress6Record[]> {
        if (opts.failList) throw new Error('etcd: deadline exceeded');
        return [...m].map(([k, v]) => ({ subnet6, ip: k, owner: v.owner, createdAt: v.createdAt, modRevision: v.rev }));
      },
      async releaseIfUnchanged(_s: Cidr6, k: bigint, modRevision: bigint): Promise<boolean> {
        if (m.get(k)?.rev !== modRevision) return false;
        m.delete(k);
        return true;
      },
    },
  };
}

test('AddressAudit: a dual-stack lease has its v4 and v6 records judged apart, each against Docker\'s addresses of its family', async () => {
  const subnet = parseCidr('10.1.2.0/24');
  const recs = fakeRecords([
    { ip: '10.1.2.2', owner: 'docker/v4-gone', ageMs: 3_600_000 },
    { ip: '10.1.2.3', owner: 'docker/both', ageMs: 3_600_000 },
  ]);
  const recs6 = fakeRecords6([
    { ip: 'fd00:10:0:5::2', owner: 'docker/v6-gone', ageMs: 3_600_000 },
    { ip: 'fd00:10:0:5:1234::3', owner: 'docker/both', ageMs: 3_600_000 },
    { ip: 'fd00:10:0:5::9', owner: 'docker/young', ageMs: 1_000 },
  ]);
  const docker: EndpointsPort = {
    async ping() {},
    async endpoints() {
      // held in Docker's own spelling (not canonical): still the same address
      return { addressesBySubnet: new Map([['10.1.2.0/24', new Set(['10.1.2.3'])], ['fd00:10:0:5::/64', new Set(['fd00:10:0:5:1234:0:0:3'])]]), endpointIds: new Set<string>() };
    },
  };
  const { logger, lines } = captureLogger('warn');
  const audit = new AddressAudit(() => [{ name: 'default', subnet: () => subnet, records: recs.port, subnet6: () => s6, records6: recs6.port }], docker, logger, { intervalMs: 0, graceMs: GRACE, now: () => NOW });
  const r = await audit.runOnce();
  assert.deepEqual(r.released.map((x) => [x.subnet, x.address, x.owner]), [
    ['10.1.2.0/24', '10.1.2.2', 'docker/v4-gone'],
    ['fd00:10:0:5::/64', 'fd00:10:0:5::2', 'docker/v6-gone'],
  ]);
  assert.equal(r.waiting, 1);
  assert.deepEqual([...recs.m.keys()].map(formatIPv4), ['10.1.2.3']);
  assert.deepEqual([...recs6.m.keys()].map(formatIPv6).sort(), ['fd00:10:0:5:1234::3', 'fd00:10:0:5::9']);
  assert.ok(lines.some((l) => l.address === 'fd00:10:0:5::2' && l.subnet === 'fd00:10:0:5::/64'), JSON.stringify(lines));
  // Without the v6 network in Docker's picture, every old v6 record is an orphan; the young one still waits.
  const gone = new AddressAudit(() => [{ name: 'default', subnet: () => subnet, records: recs.port, subnet6: () => s6, records6: recs6.port }], fakeDocker(['10.1.2.3']), testLogger(), { intervalMs: 0, graceMs: GRACE, now: () => NOW });
  assert.deepEqual((await gone.runOnce()).released.map((x) => x.address), ['fd00:10:0:5:1234::3']);
  assert.deepEqual([...recs6.m.keys()].map(formatIPv6), ['fd00:10:0:5::9']);
});

test('AddressAudit: the v6 records failing to read skip only the v6 half; no v6 lease, no v6 read', async () => {
  const subnet = parseCidr('10.1.2.0/24');
  const recs = fakeRecords([{ ip: '10.1.2.2', owner: 'docker/aaa', ageMs: 3_600_000 }]);
  const broken = fakeRecords6([{ ip: 'fd00:10:0:5::2', owner: 'docker/x', ageMs: 3_600_000 }], { failList: true });
  const audit = new AddressAudit(() => [{ name: 'default', subnet: () => subnet, records: recs.port, subnet6: () => s6, records6: broken.port }], fakeDocker([]), testLogger(), { intervalMs: 0, graceMs: GRACE, now: () => NOW });
  const r = await audit.runOnce();
  assert.deepEqual(r.skipped, ['default/fd00:10:0:5::/64']);
  assert.deepEqual(r.released.map((x) => x.address), ['10.1.2.2'], 'the v4 half is audited as before');
  assert.equal(broken.m.size, 1);
  let reads = 0;
  const counting = { ...broken.port, listDetailed: async (_s: Cidr6) => (reads++, []) as DetailedAddress6Record[] };
  await new AddressAudit(() => [{ name: 'default', subnet: () => subnet, records: recs.port, subnet6: () => null, records6: counting }], fakeDocker([]), testLogger(), { intervalMs: 0, graceMs: GRACE, now: () => NOW }).runOnce();
  assert.equal(reads, 0);
});

test('addNetwork: v4 subnets hold the endpoints\' IPv4Address, v6 subnets (canonical spelling) their IPv6Address', () => {
  const out: DockerEndpoints = { addressesBySubnet: new Map(), endpointIds: new Set() };
  addNetwork(out, {
    Id: 'n1',
    Name: 'net6',
    IPAM: { Config: [{ Subnet: '10.1.2.0/24' }, { Subnet: 'fd00:10:0:5:0::/64' }] },
    Containers: {
      c1: { EndpointID: 'e1', IPv4Address: '10.1.2.3/24', IPv6Address: 'fd00:10:0:5::3/64' },
      c2: { EndpointID: 'e2', IPv4Address: '10.1.2.4/24', IPv6Address: '' },
    },
  });
  addNetwork(out, { Id: 'n2', Name: 'odd', IPAM: { Config: [{ Subnet: 'not:a:subnet' }] }, Containers: { c3: { EndpointID: 'e3', IPv6Address: 'fd00::9/64' } } });
  assert.deepEqual(
    [...out.addressesBySubnet].map(([k, v]) => [k, [...v]]),
    [
      ['10.1.2.0/24', ['10.1.2.3', '10.1.2.4']],
      ['fd00:10:0:5::/64', ['fd00:10:0:5::3']],
    ],
  );
  assert.deepEqual([...out.endpointIds], ['e1', 'e2', 'e3']);
});
