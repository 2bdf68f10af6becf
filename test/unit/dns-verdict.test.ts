// The resolver's per-packet decisions as tables (src/domain/dns-verdict.ts): IPv4/UDP framing,
// the verdict for each kind of query and source, the per-source budget, and the answer plan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NameTable } from '../../src/domain/name-table';
import type { NameRecord } from '../../src/domain/name-record';
import { decideQuery, ipv4UdpDatagram, planAnswer, QueryBudget, type QueryVerdict } from '../../src/domain/dns-verdict';
import { dnsQuery, ipv4Udp } from '../helpers/dns-wire';

const ME = '192.0.2.11', H2 = '192.0.2.12';
const rec = (o: Partial<NameRecord> & { endpointId: string }): NameRecord => ({
  networkId: 'appnet', networkName: 'appnet', containerName: o.endpointId, aliases: [], ipv4: [], ipv6: [], host: H2, updatedAt: '2026-12-02T20:00:00.000Z', ...o,
});
function table(): NameTable {
  const t = new NameTable(ME);
  t.upsert(rec({ endpointId: 'local', containerName: 'client', ipv4: ['10.1.15.7'], host: ME }));
  t.upsert(rec({ endpointId: 'spy', networkId: 'other', networkName: 'other', containerName: 'spy', ipv4: ['10.1.15.8'], host: ME }));
  t.upsert(rec({ endpointId: 'srv', containerName: 'server', aliases: ['db'], ipv4: ['10.1.16.5'], ipv6: ['2001:db8::5'] }));
  t.upsert(rec({ endpointId: 'w1', containerName: 'w1', aliases: ['web'], ipv4: ['10.1.16.6'] }));
  t.upsert(rec({ endpointId: 'w2', containerName: 'w2', aliases: ['web'], ipv4: ['10.1.17.6'] }));
  t.upsert(rec({ endpointId: 'near', containerName: 'neighbour', ipv4: ['10.1.15.9'], host: ME }));
  return t;
}
const UP = '192.0.2.254';
const pkt = (src: string, name: string, qtype = 1, dport = 53) => ipv4Udp(src, UP, dport, dnsQuery(name, qtype));

test('ipv4UdpDatagram: whole unfragmented IPv4/UDP only', () => {
  const q = dnsQuery('server');
  const good = ipv4UdpDatagram(ipv4Udp('10.1.15.7', UP, 53, q));
  assert.deepEqual(good && { source: good.source, destPort: good.destPort, payload: Buffer.from(good.payload) }, { source: '10.1.15.7', destPort: 53, payload: Buffer.from(q) });
  const bad: [string, Uint8Array][] = [
    ['too short', new Uint8Array(27)],
    ['IPv6', Uint8Array.from([0x60, ...ipv4Udp('10.1.15.7', UP, 53, q).subarray(1)])],
    ['TCP', ipv4Udp('10.1.15.7', UP, 53, q, { protocol: 6 })],
    ['first fragment (MF)', ipv4Udp('10.1.15.7', UP, 53, q, { fragment: 0x2000 })],
    ['later fragment', ipv4Udp('10.1.15.7', UP, 53, q, { fragment: 0x0010 })],
    ['cut by the copy range', ipv4Udp('10.1.15.7', UP, 53, q, { totalLength: 20 + 8 + q.length + 100 })],
    ['IHL below 5', Uint8Array.from([0x44, ...ipv4Udp('10.1.15.7', UP, 53, q).subarray(1)])],
  ];
  for (const [what, p] of bad) assert.equal(ipv4UdpDatagram(p), null, what);
});

test('decideQuery: answer only remote names of the source\'s own network, A/AAAA, within budget', () => {
  const t = table();
  const cases: [string, Uint8Array, QueryVerdict][] = [
    ['container name on another host', pkt('10.1.15.7', 'server'), 'answer'],
    ['alias, mixed case, trailing dot', pkt('10.1.15.7', 'DB.'), 'answer'],
    ['name.<network>', pkt('10.1.15.7', 'server.appnet'), 'answer'],
    ['AAAA of a remote name', pkt('10.1.15.7', 'server', 28), 'answer'],
    ['a local name (Docker answers those itself)', pkt('10.1.15.7', 'neighbour'), 'miss'],
    ['an external name', pkt('10.1.15.7', 'example.org'), 'miss'],
    ['another network\'s container asks', pkt('10.1.15.8', 'server'), 'miss'],
    ['MX', pkt('10.1.15.7', 'server', 15), 'other-type'],
    ['the host itself asks', pkt(ME, 'server'), 'not-ours'],
    ['a remote endpoint\'s address as source (spoofed or routed)', pkt('10.1.16.5', 'server'), 'not-ours'],
    ['a LAN host', pkt('192.0.2.50', 'server'), 'not-ours'],
    ['a response, not a query', ipv4Udp('10.1.15.7', UP, 53, dnsQuery('server', 1, { flags: 0x8100 })), 'malformed'],
    ['garbage payload', ipv4Udp('10.1.15.7', UP, 53, Uint8Array.from([1, 2, 3])), 'malformed'],
    ['not UDP', ipv4Udp('10.1.15.7', UP, 53, dnsQuery('server'), { protocol: 6 }), 'not-dns'],
  ];
  for (const [what, p, want] of cases) assert.equal(decideQuery(t, p, new QueryBudget(), 0), want, what);
});

test('decideQuery never rotates an alias: the answer socket does', () => {
  const t = table();
  for (let i = 0; i < 5; i++) decideQuery(t, pkt('10.1.15.7', 'web'), new QueryBudget(), 0);
  const a = planAnswer(t, '10.1.15.7', dnsQuery('web'));
  const b = planAnswer(t, '10.1.15.7', dnsQuery('web'));
  assert.ok(a.kind === 'addresses' && b.kind === 'addresses');
  assert.deepEqual([...a.addresses].sort(), ['10.1.16.6', '10.1.17.6']);
  assert.notDeepEqual(a.addresses, b.addresses, 'the order rotates per answer');
});

test('QueryBudget: burst, refill at the rate, per source, bounded in sources', () => {
  const b = new QueryBudget({ perSecond: 10, burst: 3, maxSources: 2 });
  assert.deepEqual([1, 2, 3, 4].map(() => b.take('a', 0)), [true, true, true, false]);
  assert.equal(b.take('b', 0), true, 'another source has its own bucket');
  assert.equal(b.take('a', 50), false, 'half a token after 50 ms at 10/s');
  assert.equal(b.take('a', 100), true, 'one token after 100 ms');
  b.take('c', 100); // a third source: the oldest ('a') is forgotten
  assert.equal(b.sources, 2);
  assert.deepEqual([1, 2, 3, 4].map(() => b.take('a', 100)), [true, true, true, false], 'forgotten = a full bucket again');
  const t = table(), limited = new QueryBudget({ perSecond: 1, burst: 1, maxSources: 8 });
  assert.equal(decideQuery(t, pkt('10.1.15.7', 'server'), limited, 0), 'answer');
  assert.equal(decideQuery(t, pkt('10.1.15.7', 'server'), limited, 0), 'limited', 'over budget: passed on untouched');
  assert.equal(decideQuery(t, pkt('192.0.2.50', 'server'), limited, 0), 'not-ours', 'foreign sources never take a bucket');
  assert.equal(limited.sources, 1);
});

test('planAnswer: addresses, NODATA, SERVFAIL for a vanished name, drops', () => {
  const t = table();
  const plan = (src: string, q: Uint8Array) => {
    const p = planAnswer(t, src, q);
    return p.kind === 'addresses' ? { kind: p.kind, addresses: p.addresses } : { kind: p.kind };
  };
  assert.deepEqual(plan('10.1.15.7', dnsQuery('server')), { kind: 'addresses', addresses: ['10.1.16.5'] });
  assert.deepEqual(plan('10.1.15.7', dnsQuery('server', 28)), { kind: 'addresses', addresses: ['2001:db8::5'] });
  assert.deepEqual(plan('10.1.15.7', dnsQuery('w1', 28)), { kind: 'addresses', addresses: [] }, 'no v6 address: NODATA');
  t.remove('srv');
  assert.deepEqual(plan('10.1.15.7', dnsQuery('server')), { kind: 'servfail' }, 'gone since the verdict');
  assert.deepEqual(plan('10.1.15.8', dnsQuery('w1')), { kind: 'servfail' }, 'another network: no such name there');
  assert.deepEqual(plan('192.0.2.50', dnsQuery('w1')), { kind: 'drop' }, 'not one of our endpoints');
  assert.deepEqual(plan('10.1.15.7', dnsQuery('w1', 16)), { kind: 'drop' }, 'TXT is never DNATed here');
  assert.deepEqual(plan('10.1.15.7', Uint8Array.from([0xff, 0, 1])), { kind: 'drop' });
});
