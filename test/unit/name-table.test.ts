// The name table as tables: source → network, name forms, isolation, rotation, AAAA NODATA,
// upsert/remove by endpoint, validation, and the heap retained by 10,000 records.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { NameTable } from '../../src/domain/name-table';
import { NameRecord, parseNameRecord, encodeNameRecord } from '../../src/domain/name-record';

const ME = '192.0.2.11', H2 = '192.0.2.12', H3 = '192.0.2.13';
let n = 0;
const rec = (o: Partial<NameRecord>): NameRecord => ({
  networkId: 'net-a', networkName: 'AppNet', endpointId: `ep-${++n}`, containerName: `c${n}`,
  aliases: [], ipv4: [`10.1.16.${n}`], ipv6: [], host: H2, updatedAt: '2026-12-02T20:00:00.000Z', ...o,
});

function table(): NameTable {
  const t = new NameTable(ME);
  for (const r of [
    rec({ endpointId: 'local-a', containerName: 'c1', ipv4: ['10.1.15.7'], host: ME }),
    rec({ endpointId: 'local-b', networkId: 'net-b', networkName: 'othernet', containerName: 'spy', ipv4: ['10.1.17.9'], host: ME }),
    rec({ endpointId: 'c2', containerName: 'c2', aliases: ['web', 'a1b2c3d4e5f6'], ipv4: ['10.1.16.5'], ipv6: ['2001:db8::5'] }),
    rec({ endpointId: 'w2', containerName: 'w2', aliases: ['web'], ipv4: ['10.1.18.6'], host: H3 }),
    rec({ endpointId: 'w3', containerName: 'w3', aliases: ['Web'], ipv4: ['10.1.19.7'], host: H3 }),
    rec({ endpointId: 'secret', networkId: 'net-b', networkName: 'othernet', containerName: 'secret', ipv4: ['10.1.17.5'] }),
    rec({ endpointId: 'dotted', containerName: 'api.v2', ipv4: ['10.1.16.9'] }),
  ]) t.upsert(r);
  return t;
}

test('source address → network: local endpoints only', () => {
  const t = table();
  const cases: [string, string | null][] = [
    ['10.1.15.7', 'net-a'], ['10.1.17.9', 'net-b'],
    ['10.1.16.5', null], // a remote endpoint's address: not a source we serve
    ['192.0.2.11', null], ['10.9.9.9', null],
  ];
  for (const [src, want] of cases) assert.equal(t.networkOfSource(src), want, src);
});

test('name forms, case, trailing dot, isolation', () => {
  const t = table();
  const cases: [string, string, string[] | null][] = [
    ['net-a', 'c2', ['10.1.16.5']],
    ['net-a', 'C2.', ['10.1.16.5']],
    ['net-a', 'c2.appnet', ['10.1.16.5']],
    ['net-a', 'c2.APPNET.', ['10.1.16.5']],
    ['net-a', 'a1b2c3d4e5f6', ['10.1.16.5']], // the short id alias
    ['net-a', 'api.v2', ['10.1.16.9']], // dots in a container name
    ['net-a', 'api.v2.appnet', ['10.1.16.9']],
    ['net-a', 'c2.othernet', null],
    ['net-a', '.appnet', null],
    ['net-a', 'appnet', null],
    ['net-a', 'c1', null], // local: Docker answers it itself
    ['net-a', 'secret', null], // another network's name never answers
    ['net-b', 'c2', null],
    ['net-b', 'secret', ['10.1.17.5']],
    ['net-b', 'secret.othernet', ['10.1.17.5']],
    ['net-x', 'c2', null],
    ['net-a', '', null],
  ];
  for (const [net, name, want] of cases) {
    const r = t.lookup(net, name, 'ipv4');
    assert.deepEqual(r.found ? r.addresses : null, want, `${net} ${name}`);
  }
});

test('AAAA: the addresses, or a hit with no addresses (empty NOERROR)', () => {
  const t = table();
  assert.deepEqual(t.lookup('net-a', 'c2', 'ipv6'), { found: true, addresses: ['2001:db8::5'] });
  assert.deepEqual(t.lookup('net-b', 'secret', 'ipv6'), { found: true, addresses: [] });
  assert.deepEqual(t.lookup('net-b', 'nobody', 'ipv6'), { found: false });
});

test('a name held by several endpoints on several hosts rotates round-robin', () => {
  const t = table();
  const seen = Array.from({ length: 6 }, () => {
    const r = t.lookup('net-a', 'web', 'ipv4');
    assert.ok(r.found);
    return r.addresses.join(' ');
  });
  const all = ['10.1.16.5', '10.1.18.6', '10.1.19.7'];
  assert.deepEqual(seen.slice(0, 3), [all.join(' '), [all[1], all[2], all[0]].join(' '), [all[2], all[0], all[1]].join(' ')]);
  assert.deepEqual(seen.slice(3), seen.slice(0, 3));
  assert.equal(new Set(seen.map((s) => s.split(' ')[0])).size, 3);
});

test('a container name wins over the same name as an alias', () => {
  const t = table();
  t.upsert(rec({ endpointId: 'named-web', containerName: 'web', ipv4: ['10.1.20.1'], host: H3 }));
  assert.deepEqual(t.lookup('net-a', 'web', 'ipv4'), { found: true, addresses: ['10.1.20.1'] });
  t.remove('named-web');
  const r = t.lookup('net-a', 'web', 'ipv4');
  assert.ok(r.found && r.addresses.length === 3);
});

test('upsert replaces by endpoint (rename, new address), remove forgets names and sources', () => {
  const t = table();
  const size = t.size;
  t.upsert(rec({ endpointId: 'c2', containerName: 'c2-renamed', aliases: [], ipv4: ['10.1.16.50'] }));
  assert.equal(t.size, size);
  assert.deepEqual(t.lookup('net-a', 'c2', 'ipv4'), { found: false });
  assert.deepEqual(t.lookup('net-a', 'c2-renamed', 'ipv4'), { found: true, addresses: ['10.1.16.50'] });
  const web = t.lookup('net-a', 'web', 'ipv4');
  assert.ok(web.found && !web.addresses.includes('10.1.16.5'));
  assert.equal(t.remove('c2'), true);
  assert.equal(t.remove('c2'), false);
  assert.deepEqual(t.lookup('net-a', 'c2-renamed', 'ipv4'), { found: false });
  assert.equal(t.remove('local-a'), true);
  assert.equal(t.networkOfSource('10.1.15.7'), null);
  assert.equal(t.size, size - 2);
});

test('an address claimed by local endpoints of two networks is no source (ambiguous)', () => {
  const t = table();
  t.upsert(rec({ endpointId: 'stale', networkId: 'net-b', networkName: 'othernet', containerName: 'old', ipv4: ['10.1.15.7'], host: ME }));
  assert.equal(t.networkOfSource('10.1.15.7'), null);
  t.remove('stale');
  assert.equal(t.networkOfSource('10.1.15.7'), 'net-a');
});

test('records come in through name-record.ts: what it parses, the table indexes', () => {
  const t = new NameTable(ME);
  const parsed = parseNameRecord(encodeNameRecord(rec({ endpointId: 'via-codec', containerName: 'Coded', aliases: ['coder'], ipv4: ['10.1.30.1'] })));
  assert.ok(parsed.ok);
  if (parsed.ok) t.upsert(parsed.record);
  assert.deepEqual(t.lookup('net-a', 'coded.appnet', 'ipv4'), { found: true, addresses: ['10.1.30.1'] });
  assert.deepEqual(t.lookup('net-a', 'CODER', 'ipv4'), { found: true, addresses: ['10.1.30.1'] });
  t.upsert(rec({ endpointId: 'with-id', containerName: 'idd', containerId: 'ABCDEF0123456789'.repeat(4), ipv4: ['10.1.30.2'] }));
  assert.deepEqual(t.lookup('net-a', 'abcdef012345', 'ipv4'), { found: true, addresses: ['10.1.30.2'] }); // short id
  assert.deepEqual(t.lookup('net-a', 'abcdef0123456', 'ipv4'), { found: false });
  t.remove('with-id');
  assert.deepEqual(t.lookup('net-a', 'abcdef012345', 'ipv4'), { found: false });
});

test('memory: 10,000 records retain well under 20 MB of heap', (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const build = () => {
    const tb = new NameTable(ME);
    for (let i = 0; i < 10_000; i++) {
      const id = (i * 2654435761 >>> 0).toString(16).padStart(8, '0').repeat(8);
      tb.upsert({
        networkId: `net${i % 10}`.padEnd(64, '0'), networkName: `appnet-${i % 10}`, endpointId: id,
        containerName: `web-${i}`, aliases: [`svc-${i % 500}`, id.slice(0, 12)],
        ipv4: [`10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`], ipv6: [],
        host: i % 20 === 0 ? ME : `192.0.2.${1 + (i % 200)}`, updatedAt: new Date(1_700_000_000_000 + i * 1000).toISOString(),
      });
    }
    return tb;
  };
  gc(); gc();
  const before = process.memoryUsage().heapUsed;
  const held = build();
  gc(); gc();
  const retained = process.memoryUsage().heapUsed - before;
  assert.equal(held.size, 10_000);
  const hit = held.lookup('net1'.padEnd(64, '0'), 'svc-1', 'ipv4');
  assert.ok(hit.found && hit.addresses.length === 20);
  t.diagnostic(`10000 records retain ${(retained / 1e6).toFixed(1)} MB (${Math.round(retained / 10_000)} B/record)`);
  console.log(`# name-table: 10000 records retain ${(retained / 1e6).toFixed(1)} MB heap (${Math.round(retained / 10_000)} B/record)`);
  assert.ok(retained > 1e6, `retained ${retained} B: the measurement saw nothing, so it measures nothing`);
  assert.ok(retained < 20e6, `retained ${(retained / 1e6).toFixed(1)} MB`);
});

test('an alias held by 2,000 endpoints: every lookup rotates by one, 5,000 lookups in bounded time', () => {
  const t = new NameTable(ME);
  for (let i = 0; i < 2000; i++) t.upsert(rec({ endpointId: `pool-${i}`, containerName: `p${i}`, aliases: ['pool'], ipv4: [`10.2.${i >> 8}.${i & 255}`] }));
  const t0 = performance.now();
  const firsts = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    const r = t.lookup('net-a', 'pool', 'ipv4');
    assert.ok(r.found && r.addresses.length === 2000);
    firsts.add(r.addresses[0]);
  }
  const ms = performance.now() - t0;
  assert.equal(firsts.size, 2000);
  assert.ok(ms < 5000, `5000 lookups took ${ms.toFixed(0)} ms`);
  const few = [t.lookup('net-a', 'pool', 'ipv4', 30), t.lookup('net-a', 'pool', 'ipv4', 30)];
  assert.ok(few[0].found && few[1].found);
  if (few[0].found && few[1].found) {
    assert.equal(few[0].addresses.length, 30);
    assert.equal(few[1].addresses[0], few[0].addresses[1]); // the window moves by one
  }
  assert.deepEqual(t.lookup('net-b', 'secret', 'ipv4', 0), { found: false });
  t.remove('pool-0');
  const after = t.lookup('net-a', 'pool', 'ipv4');
  assert.ok(after.found && after.addresses.length === 1999 && !after.addresses.includes('10.2.0.0'));
});
