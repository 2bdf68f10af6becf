// The DNS query parser and answer encoder as tables. Expected bytes are built by hand from the
// RFC 1035 §4.1 layouts (header, question, RR) and RFC 6891 §6.1.2 (OPT), not by another codec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseDnsQuery, encodeAddressAnswer, encodeServerFailure, DnsQuery, QTYPE_A, QTYPE_AAAA,
} from '../../src/domain/dns-message';

const u16 = (n: number) => [n >> 8, n & 0xff];
const u32 = (n: number) => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
const wireName = (name: string) => [...name.split('.').filter(Boolean).flatMap((l) => [l.length, ...Buffer.from(l, 'latin1')]), 0];
const header = (o: { id?: number; flags?: number; qd?: number; an?: number; ns?: number; ar?: number } = {}) =>
  [...u16(o.id ?? 0x1234), ...u16(o.flags ?? 0x0100), ...u16(o.qd ?? 1), ...u16(o.an ?? 0), ...u16(o.ns ?? 0), ...u16(o.ar ?? 0)];
const opt = (size: number, version = 0, rdata: number[] = []) => [0, ...u16(41), ...u16(size), 0, version, 0, 0, ...u16(rdata.length), ...rdata];
const query = (name: string, qtype = QTYPE_A, o: Parameters<typeof header>[0] = {}, extra: number[] = []) =>
  Uint8Array.from([...header(o), ...wireName(name), ...u16(qtype), ...u16(1), ...extra]);

function parsed(bytes: Uint8Array): DnsQuery {
  const r = parseDnsQuery(bytes);
  if (!r.ok) assert.fail(`expected a query, got: ${r.reason}`);
  return r.query;
}

test('valid queries: id, RD, lowercased labels, type, EDNS size floor 512', () => {
  const cases: [string, Uint8Array, Partial<DnsQuery>][] = [
    ['plain A, RD', query('Web-1.AppNet'), { id: 0x1234, recursionDesired: true, name: 'web-1.appnet', qtype: 1, edns: false, udpSize: 512 }],
    ['AAAA, no RD', query('c2', QTYPE_AAAA, { flags: 0 }), { recursionDesired: false, name: 'c2', qtype: 28, udpSize: 512 }],
    ['EDNS 1232', query('c2', QTYPE_A, { ar: 1 }, opt(1232)), { edns: true, udpSize: 1232 }],
    ['EDNS below 512 → 512', query('c2', QTYPE_A, { ar: 1 }, opt(100)), { edns: true, udpSize: 512 }],
    ['EDNS with a cookie option', query('c2', QTYPE_A, { ar: 1 }, opt(4096, 0, [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])), { udpSize: 4096 }],
    ['MX parses (the caller passes it)', query('c2', 15), { qtype: 15 }],
    ['root name', query(''), { name: '', labels: [] }],
    ['63-byte label', query('a'.repeat(63)), { name: 'a'.repeat(63) }],
    ['255-byte name', query(Array(4).fill('a'.repeat(62)).join('.') + '.' + 'b'.repeat(1)), {}],
  ];
  for (const [what, bytes, want] of cases) {
    const q = parsed(bytes);
    for (const [k, v] of Object.entries(want)) assert.deepEqual((q as never)[k], v, `${what}: ${k}`);
  }
  assert.equal(wireName(Array(4).fill('a'.repeat(62)).join('.') + '.b').length, 255);
});

test('every malformed class is rejected with a reason naming it', () => {
  const ok = query('c2');
  const cases: [string, Uint8Array | unknown, RegExp][] = [
    ['not bytes', 'hello', /not a byte buffer/],
    ['empty', new Uint8Array(0), /truncated header/],
    ['11-byte header', ok.slice(0, 11), /truncated header/],
    ['header only', ok.slice(0, 12), /the name has no end/],
    ['name cut in a label', ok.slice(0, 14), /label runs past/],
    ['no QTYPE/QCLASS', ok.slice(0, 16), /no QTYPE\/QCLASS/],
    ['QR set', query('c2', 1, { flags: 0x8100 }), /QR is set/],
    ['opcode 2 (STATUS)', query('c2', 1, { flags: 2 << 11 }), /opcode 2/],
    ['opcode 5 (UPDATE)', query('c2', 1, { flags: 5 << 11 }), /opcode 5/],
    ['TC on a query', query('c2', 1, { flags: 0x0300 }), /TC is set/],
    ['QDCOUNT 0', query('c2', 1, { qd: 0 }), /QDCOUNT is 0/],
    ['QDCOUNT 2', query('c2', 1, { qd: 2 }), /QDCOUNT is 2/],
    ['an answer record', query('c2', 1, { an: 1 }), /1 answer/],
    ['an authority record', query('c2', 1, { ns: 1 }), /1 authority/],
    ['ARCOUNT 2', query('c2', 1, { ar: 2 }, [...opt(512), ...opt(512)]), /ARCOUNT is 2/],
    ['label of 64 (0x40 type)', Uint8Array.from([...header(), 64, ...Array(64).fill(97), 0, 0, 1, 0, 1]), /reserved/],
    ['name of 256 bytes', query(Array(4).fill('a'.repeat(62)).join('.') + '.bb'), /longer than 255/],
    ['pointer in the question', Uint8Array.from([...header(), 2, 99, 50, 0xc0, 12, 0, 1, 0, 1]), /compression pointer/],
    ['pointer loop to itself', Uint8Array.from([...header(), 0xc0, 12, 0, 1, 0, 1]), /compression pointer/],
    ['space in a label', query('a b'), /not printable/],
    ['NUL in a label', Uint8Array.from([...header(), 2, 97, 0, 0, 0, 1, 0, 1]), /not printable/],
    ['dot in a label', Uint8Array.from([...header(), 3, 97, 46, 98, 0, 0, 1, 0, 1]), /or is a dot/],
    ['class CH', Uint8Array.from([...header(), ...wireName('version.bind'), 0, 16, 0, 3]), /QCLASS 3/],
    ['trailing garbage', Uint8Array.from([...query('c2'), 0xde, 0xad]), /2 trailing bytes/],
    ['ARCOUNT 1, nothing there', query('c2', 1, { ar: 1 }), /truncated additional/],
    ['additional not OPT', query('c2', 1, { ar: 1 }, [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]), /type 1, only OPT/],
    ['OPT not at the root', query('c2', 1, { ar: 1 }, [1, 97, 0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0]), /not an OPT at the root/],
    ['EDNS version 1', query('c2', 1, { ar: 1 }, opt(1232, 1)), /EDNS version 1/],
    ['OPT data cut', query('c2', 1, { ar: 1 }, opt(1232, 0, [0, 10, 0, 8, 1])).slice(0, -1), /truncated OPT/],
  ];
  for (const [what, bytes, reason] of cases) {
    const r = parseDnsQuery(bytes);
    assert.equal(r.ok, false, what);
    if (!r.ok) assert.match(r.reason, reason, what);
  }
});

const answerHeader = (id: number, flags: number, an: number, ar = 0) => [...u16(id), ...u16(flags), ...u16(1), ...u16(an), 0, 0, ...u16(ar)];
const aRecord = (ttl: number, ip: string) => [0xc0, 0x0c, ...u16(1), ...u16(1), ...u32(ttl), ...u16(4), ...ip.split('.').map(Number)];

test('A answer: id and question echoed as sent (case kept), QR AA RD RA, pointer names, TTL', () => {
  const raw = query('Web.AppNet', QTYPE_A, { id: 0xbeef });
  const r = encodeAddressAnswer(parsed(raw), ['10.1.16.5', '10.1.16.6'], { ttlSeconds: 10, overflow: 'trim' });
  assert.ok(r.ok);
  const want = [...answerHeader(0xbeef, 0x8580, 2), ...raw.slice(12), ...aRecord(10, '10.1.16.5'), ...aRecord(10, '10.1.16.6')];
  assert.deepEqual([...r.bytes], want);
  assert.deepEqual([r.answered, r.omitted, r.truncated], [2, 0, false]);
});

test('AAAA answer bytes, and RD clear copied as clear', () => {
  const raw = query('c2', QTYPE_AAAA, { id: 7, flags: 0 });
  const r = encodeAddressAnswer(parsed(raw), ['2001:db8::5'], { ttlSeconds: 600, overflow: 'trim' });
  assert.ok(r.ok);
  const rdata = [0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 5];
  assert.deepEqual([...r.bytes], [...answerHeader(7, 0x8480, 1), ...raw.slice(12), 0xc0, 0x0c, ...u16(28), ...u16(1), ...u32(600), ...u16(16), ...rdata]);
});

test('empty NOERROR (name exists, no address of that type), with the OPT echoed for EDNS', () => {
  const raw = query('c2', QTYPE_AAAA, { id: 9, ar: 1 }, opt(1232));
  const r = encodeAddressAnswer(parsed(raw), [], { ttlSeconds: 10, overflow: 'trim' });
  assert.ok(r.ok);
  const question = raw.slice(12, raw.length - 11);
  assert.deepEqual([...r.bytes], [...answerHeader(9, 0x8580, 0, 1), ...question, 0, ...u16(41), ...u16(1232), 0, 0, 0, 0, 0, 0]);
});

test('SERVFAIL: no AA, rcode 2, question echoed', () => {
  const raw = query('c2', QTYPE_A, { id: 3 });
  assert.deepEqual([...encodeServerFailure(parsed(raw))], [...answerHeader(3, 0x8182, 0), ...raw.slice(12)]);
});

test('fitting the UDP size: 512 without EDNS, the EDNS size with it; TC only when asked', () => {
  const many = Array.from({ length: 200 }, (_, i) => `10.1.${i >> 8}.${i & 255}`);
  const plain = parsed(query('web')); // question 9 bytes: 12 + 9 + 16n ≤ 512 → n = 30
  for (const overflow of ['trim', 'trim-and-set-tc'] as const) {
    const r = encodeAddressAnswer(plain, many, { ttlSeconds: 10, overflow });
    assert.ok(r.ok);
    assert.equal(r.answered, 30);
    assert.equal(r.omitted, 170);
    assert.ok(r.bytes.length <= 512 && r.bytes.length + 16 > 512);
    assert.equal(r.truncated, overflow === 'trim-and-set-tc');
    assert.equal((r.bytes[2] & 0x02) !== 0, overflow === 'trim-and-set-tc', `${overflow}: TC bit`);
    assert.equal((r.bytes[6] << 8) | r.bytes[7], 30);
  }
  const big = parsed(query('web', QTYPE_A, { ar: 1 }, opt(1232))); // 12 + 9 + 11 + 16n ≤ 1232 → 75
  const r = encodeAddressAnswer(big, many, { ttlSeconds: 10, overflow: 'trim-and-set-tc' });
  assert.ok(r.ok && r.answered === 75 && r.bytes.length <= 1232 && r.truncated);
  const fits = encodeAddressAnswer(plain, many.slice(0, 30), { ttlSeconds: 10, overflow: 'trim-and-set-tc' });
  assert.ok(fits.ok && !fits.truncated && (fits.bytes[2] & 0x02) === 0);
  const aaaa = encodeAddressAnswer(parsed(query('web', QTYPE_AAAA)), Array.from({ length: 40 }, (_, i) => `2001:db8::${i + 1}`), { ttlSeconds: 1, overflow: 'trim' });
  assert.ok(aaaa.ok && aaaa.answered === Math.floor((512 - 21) / 28));
});

test('the encoder refuses what it cannot say: wrong family, bad TTL, non-address QTYPE', () => {
  const a = parsed(query('c2')), aaaa = parsed(query('c2', QTYPE_AAAA)), mx = parsed(query('c2', 15));
  const o = { ttlSeconds: 10, overflow: 'trim' } as const;
  const cases: [string, ReturnType<typeof encodeAddressAnswer>, RegExp][] = [
    ['IPv6 in an A answer', encodeAddressAnswer(a, ['2001:db8::1'], o), /not an IPv4/],
    ['IPv4 in an AAAA answer', encodeAddressAnswer(aaaa, ['10.1.1.1'], o), /not an IPv6/],
    ['a CIDR', encodeAddressAnswer(a, ['10.1.1.0/24'], o), /not an IPv4/],
    ['negative TTL', encodeAddressAnswer(a, [], { ...o, ttlSeconds: -1 }), /TTL -1/],
    ['MX', encodeAddressAnswer(mx, [], o), /QTYPE 15/],
  ];
  for (const [what, r, reason] of cases) {
    assert.equal(r.ok, false, what);
    if (!r.ok) assert.match(r.reason, reason, what);
  }
});

test('100,000 random and mutated packets: never a throw, each parsed or rejected with a reason, bounded time', () => {
  let seed = 0x9e3779b9;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 0x1000000;
  const seeds = [query('web.appnet'), query('c2', QTYPE_AAAA, { ar: 1 }, opt(1232)), Uint8Array.from([...header(), 2, 99, 50, 0xc0, 12, 0, 1, 0, 1])];
  const t0 = performance.now();
  let okCount = 0, rejected = 0;
  for (let i = 0; i < 100_000; i++) {
    let p: Uint8Array;
    if (i % 4 === 0) p = Uint8Array.from({ length: Math.floor(rnd() * 600) }, () => Math.floor(rnd() * 256));
    else {
      p = Uint8Array.from(seeds[i % seeds.length]);
      for (let k = 1 + Math.floor(rnd() * 4); k > 0; k--) p[Math.floor(rnd() * p.length)] = Math.floor(rnd() * 256);
      if (rnd() < 0.2) p = p.slice(0, Math.floor(rnd() * p.length));
    }
    const r = parseDnsQuery(p);
    if (r.ok) {
      okCount++;
      assert.ok(r.query.name.length <= 253 && r.query.labels.every((l) => l.length >= 1 && l.length <= 63));
      assert.ok(r.query.udpSize >= 512);
    } else {
      rejected++;
      assert.ok(typeof r.reason === 'string' && r.reason.length > 0);
    }
  }
  const ms = performance.now() - t0;
  assert.equal(okCount + rejected, 100_000);
  assert.ok(okCount > 100 && rejected > 50_000, `parsed ${okCount}, rejected ${rejected}`);
  assert.ok(ms < 20_000, `took ${ms.toFixed(0)} ms`);
  console.log(`# fuzz: 100000 packets, ${okCount} parsed, ${rejected} rejected, ${ms.toFixed(0)} ms`);
});
