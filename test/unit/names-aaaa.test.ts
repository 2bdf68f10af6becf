// AAAA for cross-host names (issue 21 "names (AAAA)"), the whole pure path as one table: Docker's
// inspect JSON (GlobalIPv6Address) → nameRecordsOf → the stored text (encodeNameRecord, and old
// records written without "ipv6") → parseNameRecord → the table of another host → the verdict →
// planAnswer → the answer bytes, decoded with dns-packet. A v4-only container's AAAA is an empty
// NOERROR (Docker's own `ipv6Miss` answer for names it knows), never NXDOMAIN or SERVFAIL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dnsPacket from 'dns-packet';
import { nameRecordsOf, type InspectedEndpoint } from '../../src/domain/endpoint-names';
import { encodeNameRecord, parseNameRecord, type NameRecord } from '../../src/domain/name-record';
import { NameTable } from '../../src/domain/name-table';
import { decideQuery, planAnswer, QueryBudget } from '../../src/domain/dns-verdict';
import { encodeAddressAnswer } from '../../src/domain/dns-message';
import { dnsQuery, ipv4Udp } from '../helpers/dns-wire';

const H1 = '192.0.2.1', H2 = '192.0.2.2', NOW = '2026-12-04T21:00:00.000Z';
const CLIENT = '10.1.15.7', UPSTREAM = '192.0.2.254';
const ep = (n: number, o: Partial<InspectedEndpoint>): InspectedEndpoint => ({ NetworkID: 'n6', EndpointID: `ep${n}`, IPAddress: `10.1.16.${n}`, Aliases: [], ...o });

/** The records h2 writes for one container, as h1 reads them back from etcd. */
function storedOnH2(name: string, e: InspectedEndpoint): NameRecord[] {
  const m = nameRecordsOf({ Id: `${name}0123456789abcdef`, Name: `/${name}`, State: { Running: true }, NetworkSettings: { Networks: { net6: e } } }, () => true, H2, NOW);
  return m.records.map((r) => {
    const back = parseNameRecord(encodeNameRecord(r));
    assert.ok(back.ok, back.ok ? '' : back.reason);
    return back.record;
  });
}

/** h1's table: its client on net6 plus what h2 wrote. */
function h1Table(remote: NameRecord[]): NameTable {
  const t = new NameTable(H1);
  t.upsert({ networkId: 'net6', networkName: 'net6', containerName: 'client', endpointId: 'cl', aliases: [], ipv4: [CLIENT], ipv6: ['fd00:10:0:1::7'], host: H1, updatedAt: NOW });
  for (const r of remote) t.upsert(r);
  return t;
}

/** What the client gets for `name` (qtype 1 or 28): null when the query is not ours (it goes on to the upstream). */
function ask(t: NameTable, name: string, qtype: number): { rcode: string; answers: string[] } | null {
  const q = dnsQuery(name, qtype);
  if (decideQuery(t, ipv4Udp(CLIENT, UPSTREAM, 53, q), new QueryBudget(), 0) !== 'answer') return null;
  const plan = planAnswer(t, CLIENT, q);
  assert.equal(plan.kind, 'addresses');
  if (plan.kind !== 'addresses') return null;
  const enc = encodeAddressAnswer(plan.query, plan.addresses, { ttlSeconds: 10, overflow: 'trim' });
  assert.ok(enc.ok, enc.ok ? '' : enc.reason);
  if (!enc.ok) return null;
  const d = dnsPacket.decode(Buffer.from(enc.bytes));
  return { rcode: (d as unknown as { rcode: string }).rcode, answers: (d.answers ?? []).map((a) => `${a.type} ${(a as { data: string }).data}`) };
}

const OLD_V4_ONLY = JSON.stringify({ v: 1, network: { id: 'net6', name: 'net6' }, container: { name: 'old' }, endpointId: 'ep9', aliases: [], ipv4: ['10.1.16.9'], host: H2, updatedAt: NOW });

test('AAAA from cross-host names: the v6 address where Docker has one, an empty NOERROR where not', () => {
  const rows: Array<[string, NameRecord[], string, number, { rcode: string; answers: string[] } | null]> = [
    ['dual-stack container: AAAA', storedOnH2('web', ep(5, { GlobalIPv6Address: 'fd00:10:0:2::5' })), 'web', 28, { rcode: 'NOERROR', answers: ['AAAA fd00:10:0:2::5'] }],
    ['dual-stack container: A', storedOnH2('web', ep(5, { GlobalIPv6Address: 'fd00:10:0:2::5' })), 'web', 1, { rcode: 'NOERROR', answers: ['A 10.1.16.5'] }],
    ['name.<network>, mixed case', storedOnH2('web', ep(5, { GlobalIPv6Address: 'fd00:10:0:2::5' })), 'WEB.net6.', 28, { rcode: 'NOERROR', answers: ['AAAA fd00:10:0:2::5'] }],
    ['v4-only (GlobalIPv6Address "")', storedOnH2('v4', ep(6, { GlobalIPv6Address: '' })), 'v4', 28, { rcode: 'NOERROR', answers: [] }],
    ['v4-only (no GlobalIPv6Address field)', storedOnH2('v4', ep(6, {})), 'v4', 28, { rcode: 'NOERROR', answers: [] }],
    ['a bad v6 text from Docker: left out, NODATA', storedOnH2('odd', ep(7, { GlobalIPv6Address: 'fd00::1/64' })), 'odd', 28, { rcode: 'NOERROR', answers: [] }],
    ['a record written before AAAA (no "ipv6" key)', [(parseNameRecord(OLD_V4_ONLY) as { record: NameRecord }).record], 'old', 28, { rcode: 'NOERROR', answers: [] }],
    ['the same old record: A', [(parseNameRecord(OLD_V4_ONLY) as { record: NameRecord }).record], 'old', 1, { rcode: 'NOERROR', answers: ['A 10.1.16.9'] }],
    [
      'an alias on a dual-stack and a v4-only container: AAAA only the v6 one',
      [...storedOnH2('a1', ep(8, { GlobalIPv6Address: 'fd00:10:0:2::8', Aliases: ['svc'] })), ...storedOnH2('a2', ep(9, { Aliases: ['svc'] }))],
      'svc', 28, { rcode: 'NOERROR', answers: ['AAAA fd00:10:0:2::8'] },
    ],
    ['an unknown name: not ours, the upstream answers', storedOnH2('web', ep(5, { GlobalIPv6Address: 'fd00:10:0:2::5' })), 'nobody', 28, null],
  ];
  for (const [what, remote, name, qtype, want] of rows) assert.deepEqual(ask(h1Table(remote), name, qtype), want, what);
});

test('the stored record carries the v6 address and stays readable by a v4-only reader shape', () => {
  const [r] = storedOnH2('web', ep(5, { GlobalIPv6Address: 'fd00:10:0:2::5' }));
  const text = encodeNameRecord(r!);
  assert.deepEqual(JSON.parse(text).ipv6, ['fd00:10:0:2::5']);
  assert.deepEqual(JSON.parse(text).ipv4, ['10.1.16.5'], 'v4 unchanged beside it');
  const old = parseNameRecord(OLD_V4_ONLY);
  assert.ok(old.ok && old.record.ipv6.length === 0, 'a record without "ipv6" parses with none');
  assert.equal(JSON.parse(encodeNameRecord(old.record)).ipv6.length, 0, 'and is rewritten with an empty list');
});
