/**
 * The in-memory index of a lease's address records (src/domain/address-index.ts), as a table:
 * a sequence of snapshots, puts and deletes with their etcd revisions (watch events and the
 * allocator's own outcomes, in any order) → which addresses are taken, how many, which one is the
 * newest (allocation continues after it) and which steps were ignored as older than what was
 * known. Then the index driving freeAddresses over a /20 lease with 4,000 records.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddressIndex } from '../../src/domain/address-index';
import { freeAddresses } from '../../src/domain/addresses';
import { formatIPv4, parseCidr, parseIPv4 } from '../../src/domain/ipv4';

const ip = (last: number): number => parseIPv4(`10.1.2.${last}`);
type Step =
  | ['reset', Array<[number, number, number]>] // [last octet, mod, create]
  | ['put', number, number, number] // last octet, mod, create
  | ['delete', number, number]; // last octet, revision

const table: Array<{ name: string; steps: Step[]; taken: number[]; newest: number | undefined; ignored?: number[] }> = [
  { name: 'empty', steps: [], taken: [], newest: undefined },
  { name: 'a snapshot', steps: [['reset', [[2, 5, 5], [3, 9, 7], [9, 6, 6]]]], taken: [2, 3, 9], newest: 3 },
  { name: 'puts after a snapshot; the newest is the highest create revision', steps: [['reset', [[2, 5, 5]]], ['put', 4, 11, 11], ['put', 3, 10, 10]], taken: [2, 3, 4], newest: 4 },
  { name: 'a delete frees, the deleted one stays the newest (no reuse at once)', steps: [['put', 5, 10, 10], ['delete', 5, 12]], taken: [], newest: 5 },
  { name: 'our own create (rev 20) then its watch event (rev 20): once', steps: [['put', 6, 20, 20], ['put', 6, 20, 20]], taken: [6], newest: 6, ignored: [1] },
  { name: 'our own release (rev 30) then a late watch event of the create (rev 25): stays free', steps: [['put', 7, 25, 25], ['delete', 7, 30], ['put', 7, 25, 25]], taken: [], newest: 7, ignored: [2] },
  { name: 'a delete older than the record it would remove is ignored', steps: [['put', 8, 40, 35], ['delete', 8, 38]], taken: [8], newest: 8, ignored: [1] },
  { name: 'a rewrite (same create, newer mod) keeps it taken, counted once', steps: [['put', 9, 10, 10], ['put', 9, 14, 10]], taken: [9], newest: 9 },
  { name: 'released and taken again by someone else', steps: [['put', 2, 10, 10], ['delete', 2, 11], ['put', 2, 12, 12]], taken: [2], newest: 2 },
  { name: 'deleting what was never seen leaves a tombstone: an older put after it is ignored', steps: [['delete', 4, 50], ['put', 4, 49, 49]], taken: [], newest: undefined, ignored: [1] },
  { name: 'a snapshot forgets tombstones and records not in it; keeps the newest seen', steps: [['put', 3, 60, 60], ['delete', 5, 61], ['reset', [[2, 5, 5]]], ['put', 5, 58, 58]], taken: [2, 5], newest: 3 },
];

for (const row of table) {
  test(`address index: ${row.name}`, () => {
    const x = new AddressIndex();
    const ignored: number[] = [];
    row.steps.forEach((s, i) => {
      let applied = true;
      if (s[0] === 'reset') x.reset(s[1].map(([o, m, c]) => ({ ip: ip(o), modRevision: BigInt(m), createRevision: BigInt(c) })));
      else if (s[0] === 'put') applied = x.put(ip(s[1]), BigInt(s[2]), BigInt(s[3]));
      else applied = x.delete(ip(s[1]), BigInt(s[2]));
      if (!applied) ignored.push(i);
    });
    const taken = Array.from({ length: 254 }, (_, i) => i + 1).filter((o) => x.has(ip(o)));
    assert.deepEqual(taken, row.taken, 'taken');
    assert.equal(x.size, row.taken.length, 'size');
    assert.equal(x.newest(), row.newest === undefined ? undefined : ip(row.newest), 'newest');
    assert.deepEqual(ignored, row.ignored ?? [], 'ignored steps');
  });
}

test('address index over a /20 with 4,000 records: freeAddresses walks the 92 free ones, after the newest', () => {
  const lease = parseCidr('10.0.16.0/20');
  const x = new AddressIndex();
  // Records .2 … .4001 of the lease, created in address order; the newest is the 4,000th.
  x.reset(Array.from({ length: 4000 }, (_, i) => ({ ip: lease.base + 2 + i, modRevision: BigInt(100 + i), createRevision: BigInt(100 + i) })));
  assert.equal(x.size, 4000);
  assert.equal(formatIPv4(x.newest()!), '10.0.31.161');
  const free = [...freeAddresses(lease, x, x.newest())];
  assert.equal(free.length, 4094 - 1 - 4000, 'the lease has 4,094 host addresses, the gateway .1 is reserved');
  assert.equal(formatIPv4(free[0]!), '10.0.31.162', 'continues after the newest record');
  assert.ok(free.every((a) => !x.has(a)));
  // One released in the middle comes last (round-robin), not first.
  x.delete(lease.base + 100, 5000n);
  const again = [...freeAddresses(lease, x, x.newest())];
  assert.equal(formatIPv4(again[again.length - 1]!), formatIPv4(lease.base + 100));
});
