// The Docker inspect → name record mapping of src/domain/endpoint-names.ts, and which driver
// names are ours: tables of containers as `docker inspect` shows them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isOurDriver, nameRecordsOf, sameNameRecord, type InspectedContainer } from '../../src/domain/endpoint-names';
import { encodeNameRecord, parseNameRecord } from '../../src/domain/name-record';

const CID = 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00';
const EP1 = 'e1'.repeat(32);
const EP2 = 'e2'.repeat(32);
const NOW = '2026-12-02T22:00:00.000Z';
const HOST = '192.0.2.11';
const OURS = new Set(['net-ours-1', 'net-ours-2']);
const isOurs = (id: string) => OURS.has(id);

function container(over: Partial<InspectedContainer> = {}, networks?: InspectedContainer['NetworkSettings']): InspectedContainer {
  return {
    Id: CID,
    Name: '/web-1',
    State: { Running: true },
    NetworkSettings: networks !== undefined ? networks : {
      Networks: {
        appnet: { NetworkID: 'net-ours-1', EndpointID: EP1, IPAddress: '10.1.16.5', GlobalIPv6Address: '', Aliases: ['web', 'c0ffee00c0ff'] },
        bridge: { NetworkID: 'net-bridge', EndpointID: EP2, IPAddress: '172.17.0.2', Aliases: null },
      },
    },
    ...over,
  };
}

test('driver names of ours: plain, tagged, full plugin references; others not', () => {
  const table: Array<[string, boolean]> = [
    ['overlay-flannel', true],
    ['overlay-flannel:latest', true],
    ['Overlay-Flannel:LATEST', true],
    ['192.0.2.254:5000/overlay-flannel:latest', true],
    ['registry.example/org/overlay-flannel:1.2.3', true],
    ['localhost:5000/overlay-flannel', true],
    ['bridge', false],
    ['overlay', false],
    ['overlay-flannel-fork:latest', false],
    ['org/my-overlay-flannel', false],
    ['overlay-flannel.evil/other:latest', false],
    ['', false],
  ];
  for (const [driver, ours] of table) assert.equal(isOurDriver(driver), ours, driver);
});

test('a running container: one record per endpoint on our networks, keyed by the network name', () => {
  const m = nameRecordsOf(container(), isOurs, HOST, NOW);
  assert.deepEqual(m.skipped, []);
  assert.deepEqual(m.records, [
    {
      networkId: 'appnet',
      networkName: 'appnet',
      containerName: 'web-1',
      containerId: CID,
      endpointId: EP1,
      aliases: ['web', 'c0ffee00c0ff'],
      ipv4: ['10.1.16.5'],
      ipv6: [],
      host: HOST,
      updatedAt: NOW,
    },
  ]);
  // What the mapping makes, the codec accepts unchanged.
  const r = m.records[0]!;
  assert.deepEqual(parseNameRecord(encodeNameRecord(r)), { ok: true, record: r });
});

test('two networks of ours, IPv6, aliases deduplicated and the container name left out', () => {
  const m = nameRecordsOf(
    container({}, {
      Networks: {
        appnet: { NetworkID: 'net-ours-1', EndpointID: EP1, IPAddress: '10.1.16.5', Aliases: ['web', 'web', 'web-1', '/api'] },
        backnet: { NetworkID: 'net-ours-2', EndpointID: EP2, IPAddress: '10.2.16.9', GlobalIPv6Address: '2001:db8::9', Aliases: [] },
      },
    }),
    isOurs,
    HOST,
    NOW,
  );
  assert.deepEqual(m.records.map((r) => [r.networkId, r.aliases, r.ipv4, r.ipv6]), [
    ['appnet', ['web', 'api'], ['10.1.16.5'], []],
    ['backnet', [], ['10.2.16.9'], ['2001:db8::9']],
  ]);
});

test('no records: stopped, not joined, foreign networks only, no networks', () => {
  const cases: Array<[string, InspectedContainer]> = [
    ['stopped', container({ State: { Running: false } })],
    ['no state', container({ State: null })],
    ['not joined yet (no endpoint id)', container({}, { Networks: { appnet: { NetworkID: 'net-ours-1', EndpointID: '', IPAddress: '' } } })],
    ['only the bridge network', container({}, { Networks: { bridge: { NetworkID: 'net-bridge', EndpointID: EP2, IPAddress: '172.17.0.2' } } })],
    ['no NetworkSettings', container({}, null)],
    ['Networks null', container({}, { Networks: null })],
  ];
  for (const [what, c] of cases) {
    const m = nameRecordsOf(c, isOurs, HOST, NOW);
    assert.deepEqual(m.records, [], what);
    assert.deepEqual(m.skipped, [], what);
  }
});

test('bad input is skipped with a reason naming it; the rest is kept', () => {
  const cases: Array<[string, InspectedContainer, RegExp, number]> = [
    ['no IPv4', container({}, { Networks: { appnet: { NetworkID: 'net-ours-1', EndpointID: EP1, IPAddress: '' } } }), /no IPv4 address/, 0],
    ['IPv4 with a prefix', container({}, { Networks: { appnet: { NetworkID: 'net-ours-1', EndpointID: EP1, IPAddress: '10.1.16.5/24' } } }), /no IPv4 address/, 0],
    ['endpoint id with a slash', container({}, { Networks: { appnet: { NetworkID: 'net-ours-1', EndpointID: 'a/b', IPAddress: '10.1.16.5' } } }), /endpoint id "a\/b" is not an id/, 0],
    ['bad container name', container({ Name: '/-bad name' }), /container name "\/-bad name" is not a Docker name/, 0],
    ['bad alias dropped alone', container({}, { Networks: { appnet: { NetworkID: 'net-ours-1', EndpointID: EP1, IPAddress: '10.1.16.5', Aliases: ['ok', 'not ok', '*'] } } }), /alias "not ok" is not a Docker name/, 1],
    ['bad IPv6 dropped alone', container({}, { Networks: { appnet: { NetworkID: 'net-ours-1', EndpointID: EP1, IPAddress: '10.1.16.5', GlobalIPv6Address: 'zz::1::2' } } }), /^$/, 1],
  ];
  for (const [what, c, reason, records] of cases) {
    const m = nameRecordsOf(c, isOurs, HOST, NOW);
    assert.equal(m.records.length, records, what);
    if (reason.source === '^$') assert.deepEqual(m.skipped, [], what);
    else assert.match(m.skipped.map((s) => `${s.network}: ${s.reason}`).join('\n'), reason, what);
    for (const r of m.records) assert.ok(parseNameRecord(encodeNameRecord(r)).ok, what);
  }
  const alias = nameRecordsOf(cases[4]![1], isOurs, HOST, NOW);
  assert.deepEqual(alias.records[0]!.aliases, ['ok']);
  assert.equal(alias.skipped.length, 2);
});

test('more aliases than a record may hold: the first 64 are kept, and it says so', () => {
  const many = Array.from({ length: 70 }, (_, i) => `a${i}`);
  const m = nameRecordsOf(container({}, { Networks: { appnet: { NetworkID: 'net-ours-1', EndpointID: EP1, IPAddress: '10.1.16.5', Aliases: many } } }), isOurs, HOST, NOW);
  assert.equal(m.records[0]!.aliases.length, 64);
  assert.deepEqual(m.records[0]!.aliases.slice(0, 2), ['a0', 'a1']);
  assert.match(m.skipped[0]!.reason, /70 aliases: only the first 64/);
  assert.ok(parseNameRecord(encodeNameRecord(m.records[0]!)).ok);
});

test('sameNameRecord ignores only the write time', () => {
  const [r] = nameRecordsOf(container(), isOurs, HOST, NOW).records;
  assert.ok(r);
  assert.ok(sameNameRecord(r, { ...r, updatedAt: '2027-01-01T00:00:00.000Z' }));
  assert.ok(!sameNameRecord(r, { ...r, containerName: 'web-2' }));
  assert.ok(!sameNameRecord(r, { ...r, aliases: ['web'] }));
  assert.ok(!sameNameRecord(r, { ...r, ipv4: ['10.1.16.6'] }));
});
