/**
 * Our DNS codec (src/domain/dns-message.ts) cross-checked against npm's `dns-packet` (a
 * devDependency only: docs/names-design.md §10 explains why the verdict path has its own strict
 * parser). Queries encoded by dns-packet must parse the same with ours; our answers, SERVFAILs
 * and trimmed answers must decode with dns-packet to exactly what we meant. Table-driven.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { encodeAddressAnswer, encodeServerFailure, parseDnsQuery, QTYPE_A, QTYPE_AAAA, type DnsQuery } from '../../src/domain/dns-message';

const query = (name: string, type: 'A' | 'AAAA' | 'MX', o: { id?: number; rd?: boolean; edns?: number } = {}): Buffer =>
  dnsPacket.encode({
    type: 'query',
    id: o.id ?? 4242,
    flags: o.rd === false ? 0 : dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
    additionals: o.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: o.edns, flags: 0, options: [] } as unknown as dnsPacket.Answer] : [],
  });

const parsed = (b: Uint8Array): DnsQuery => {
  const p = parseDnsQuery(b);
  assert.ok(p.ok, p.ok ? '' : p.reason);
  return p.query;
};

const cases: Array<{ what: string; name: string; type: 'A' | 'AAAA'; o?: { id?: number; rd?: boolean; edns?: number }; udpSize: number }> = [
  { what: 'plain A, RD', name: 'web-1', type: 'A', udpSize: 512 },
  { what: 'A with network suffix and mixed case (0x20)', name: 'WeB-1.AppNet', type: 'A', o: { id: 1 }, udpSize: 512 },
  { what: 'AAAA with EDNS 1232', name: 'db', type: 'AAAA', o: { edns: 1232 }, udpSize: 1232 },
  { what: 'A without RD, EDNS smaller than 512', name: 'x.y.z', type: 'A', o: { rd: false, edns: 300 }, udpSize: 512 },
  { what: '63-byte label', name: `${'a'.repeat(63)}.net`, type: 'A', o: { id: 65535 }, udpSize: 512 },
];

for (const c of cases) {
  it(`dns-packet's query parses the same with ours: ${c.what}`, () => {
    const q = parsed(query(c.name, c.type, c.o));
    assert.equal(q.id, c.o?.id ?? 4242);
    assert.equal(q.name, c.name.toLowerCase(), 'names are compared in lower case');
    assert.equal(q.qtype, c.type === 'A' ? QTYPE_A : QTYPE_AAAA);
    assert.equal(q.recursionDesired, c.o?.rd !== false);
    assert.equal(q.udpSize, c.udpSize);
  });
}

it("dns-packet decodes our A and AAAA answers: id, flags, the question as sent, every address in order, the TTL", () => {
  const rows: Array<{ type: 'A' | 'AAAA'; addrs: string[] }> = [
    { type: 'A', addrs: ['10.1.40.2'] },
    { type: 'A', addrs: ['10.1.40.2', '10.1.41.7', '10.1.99.250'] },
    { type: 'AAAA', addrs: ['fd00::2', '2001:db8:0:1::a'] },
    { type: 'AAAA', addrs: [] },
  ];
  for (const r of rows) {
    const q = parsed(query('WeB.AppNet', r.type, { id: 777, edns: 1232 }));
    const a = encodeAddressAnswer(q, r.addrs, { ttlSeconds: 10, overflow: 'trim' });
    assert.ok(a.ok, a.ok ? '' : a.reason);
    const d = dnsPacket.decode(Buffer.from(a.bytes));
    assert.equal(d.id, 777);
    assert.equal(d.type, 'response');
    assert.equal((d as unknown as { rcode: string }).rcode, 'NOERROR');
    assert.ok(d.flag_aa && d.flag_rd && d.flag_ra && !d.flag_tc, JSON.stringify(d));
    assert.deepEqual(d.questions, [{ name: 'WeB.AppNet', type: r.type, class: 'IN' }]);
    const answers = (d.answers ?? []) as Array<{ name: string; type: string; ttl: number; data: string }>;
    assert.deepEqual(answers.map((x) => [x.name, x.type, x.ttl, x.data]), r.addrs.map((ip) => ['WeB.AppNet', r.type, 10, ip]), `${r.type} ${r.addrs.join(',')}`);
    assert.equal((d.additionals ?? []).filter((x) => x.type === 'OPT').length, 1, 'our OPT record');
  }
});

it('an answer too big for 512 bytes is trimmed to what fits and decodes (TC only when asked for)', () => {
  const addrs = Array.from({ length: 100 }, (_, i) => `10.2.${i >> 4}.${(i % 250) + 2}`);
  const q = parsed(query('big', 'A'));
  for (const overflow of ['trim', 'trim-and-set-tc'] as const) {
    const a = encodeAddressAnswer(q, addrs, { ttlSeconds: 10, overflow });
    assert.ok(a.ok && a.bytes.length <= 512 && a.omitted > 0, overflow);
    const d = dnsPacket.decode(Buffer.from(a.bytes));
    assert.equal(d.answers?.length, a.answered);
    assert.deepEqual(d.answers?.map((x) => (x as { data: string }).data), addrs.slice(0, a.answered));
    assert.equal(Boolean(d.flag_tc), overflow === 'trim-and-set-tc');
  }
});

it('dns-packet decodes our SERVFAIL: same id and question, no answers', () => {
  const q = parsed(query('gone', 'A', { id: 31337 }));
  const d = dnsPacket.decode(Buffer.from(encodeServerFailure(q)));
  assert.equal(d.id, 31337);
  assert.equal((d as unknown as { rcode: string }).rcode, 'SERVFAIL');
  assert.deepEqual(d.questions, [{ name: 'gone', type: 'A', class: 'IN' }]);
  assert.equal(d.answers?.length ?? 0, 0);
});

it('what dns-packet encodes that a lookup never sends is refused by ours with a reason', () => {
  const response = dnsPacket.encode({ type: 'response', id: 1, flags: 0, questions: [{ type: 'A', name: 'x', class: 'IN' }], answers: [] });
  const two = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'x', class: 'IN' }, { type: 'A', name: 'y', class: 'IN' }] });
  const chaos = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'x', class: 'CH' }] });
  for (const [what, b] of [['a response', response], ['two questions', two], ['class CH', chaos]] as const) {
    const p = parseDnsQuery(b);
    assert.ok(!p.ok && p.reason.length > 0, what);
  }
});
