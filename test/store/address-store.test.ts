/**
 * address-store.test.ts — endpoint addresses recorded in etcd: two allocators on two clients never
 * hand out the same address, release + reallocate is round-robin, requested and reserved addresses,
 * exhaustion, and releasing everything of one owner; with the in-memory index of a lease's records
 * (issue 23) before etcd: a record another writer puts is never handed out, a full lease finds
 * another client's release at once, and two allocators (one a fresh store) fill a lease exactly.
 * One etcd for the file.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { formatIPv4, parseCidr, parseIPv4 } from '../../src/domain/ipv4';
import { openStore, type AddressStore, type Store } from '../../src/store';
import type { EtcdServer } from '../helpers/etcd-server';
import { isOverlayError, randomPrefix, testLogger, withEtcdStores } from '../helpers/store-fixtures';

const subnet = parseCidr('10.1.15.0/24');
let etcd: EtcdServer;
let a: Store;
let b: Store;
withEtcdStores((e, x, y) => {
  etcd = e;
  a = x;
  b = y;
});

describe('address store', () => {
  it('two allocators on two clients racing 2×100 allocations never collide', async () => {
    const prefix = randomPrefix();
    const [sa, sb] = [a.overlay(prefix).addresses, b.overlay(prefix).addresses];
    const run = async (s: typeof sa, tag: string) => {
      const out: number[] = [];
      // 4 concurrent streams per allocator, 25 each.
      await Promise.all(
        [0, 1, 2, 3].map(async (k) => {
          for (let i = 0; i < 25; i++) out.push(await s.allocate(subnet, `${tag}-${k}-${i}`));
        }),
      );
      return out;
    };
    const [ra, rb] = await Promise.all([run(sa, 'a'), run(sb, 'b')]);
    const all = [...ra, ...rb];
    assert.equal(all.length, 200);
    assert.equal(new Set(all).size, 200, 'no address handed out twice');
    for (const ip of all) assert.ok(ip !== parseIPv4('10.1.15.0') && ip !== parseIPv4('10.1.15.1') && ip !== parseIPv4('10.1.15.255'));
    const records = await sa.list(subnet);
    assert.equal(records.length, 200);
    assert.deepEqual(new Set(records.map((r) => r.ip)), new Set(all));
  });

  it('a record another writer puts is never handed out (the lease watch tells the index)', async () => {
    const prefix = randomPrefix();
    const ov = a.overlay(prefix);
    const first = await ov.addresses.allocate(subnet, 'ep-1'); // starts the lease's watch
    const next = first + 1;
    await etcd.etcdctl(['put', ov.keys.addressKey(subnet, next), '{"owner":"docker/elsewhere"}']);
    const got = [await ov.addresses.allocate(subnet, 'ep-2'), await ov.addresses.allocate(subnet, 'ep-3')];
    assert.ok(!got.includes(next), `${got.map(formatIPv4).join(', ')} must not include ${formatIPv4(next)}`);
    const records = await ov.addresses.list(subnet);
    assert.deepEqual(records.map((r) => r.owner).sort(), ['docker/elsewhere', 'ep-1', 'ep-2', 'ep-3']);
  });

  it('a full lease finds an address another client released at once (a fresh read when the index has none)', async () => {
    const prefix = randomPrefix();
    const small = parseCidr('10.1.15.8/29'); // .10 … .14
    const s = a.overlay(prefix).addresses;
    const all: number[] = [];
    for (let i = 0; i < 5; i++) all.push(await s.allocate(small, `ep-${i}`));
    assert.deepEqual(all.map(formatIPv4), ['10.1.15.10', '10.1.15.11', '10.1.15.12', '10.1.15.13', '10.1.15.14']);
    assert.equal(await b.overlay(prefix).addresses.release(small, '10.1.15.12'), true);
    assert.equal(formatIPv4(await s.allocate(small, 'ep-again')), '10.1.15.12');
    await assert.rejects(s.allocate(small, 'ep-more'), isOverlayError('CONFLICT', /^no free address in 10\.1\.15\.8\/29$/));
  });

  it('two allocators, one a fresh store joining mid-way, fill a /26 racing: each address exactly once, then both say full', async () => {
    const prefix = randomPrefix();
    const lease = parseCidr('10.1.15.64/26'); // 61 usable
    const c = openStore({ etcdEndpoints: [etcd.endpoint], etcdPrefix: '/unused' }, testLogger());
    try {
      const fill = async (s: AddressStore, tag: string, out: number[], hold?: () => Promise<void>) => {
        await Promise.all(
          [0, 1, 2, 3].map(async (k) => {
            for (let i = 0; i < 64; i++) {
              await hold?.();
              try {
                out.push(await s.allocate(lease, `${tag}-${k}-${i}`));
              } catch (e) {
                assert.ok(isOverlayError('CONFLICT', /^no free address in 10\.1\.15\.64\/26$/)(e), String(e));
                return;
              }
            }
            assert.fail('more allocations than the lease holds');
          }),
        );
      };
      const fromA: number[] = [];
      const fromC: number[] = [];
      const sa = a.overlay(prefix).addresses;
      // a past half way waits (≤ 10 s) for c's first address, so a loaded machine cannot let a fill
      // the lease before the fresh store's first allocation gets through (CI saw that once)
      const deadline = Date.now() + 10_000;
      const holdA = async () => {
        while (fromA.length >= 30 && fromC.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      };
      const filling = fill(sa, 'a', fromA, holdA);
      while (fromA.length < 10) await new Promise((r) => setTimeout(r, 5));
      await Promise.all([filling, fill(c.overlay(prefix).addresses, 'c', fromC)]);
      const all = [...fromA, ...fromC];
      assert.ok(fromC.length > 0, 'the fresh store got some');
      assert.equal(all.length, 61);
      assert.equal(new Set(all).size, 61, 'no address handed out twice');
      assert.deepEqual(new Set((await sa.list(lease)).map((r) => r.ip)), new Set(all));
    } finally {
      await c.close();
    }
  });

  it('release is idempotent; a released address is not reused at once but comes back when the rest is full', async () => {
    const prefix = randomPrefix();
    const s = a.overlay(prefix).addresses;
    const first = await s.allocate(subnet, 'ep-1');
    assert.equal(formatIPv4(first), '10.1.15.2');
    const second = await s.allocate(subnet, 'ep-2');
    assert.equal(await s.release(subnet, first), true);
    assert.equal(await s.release(subnet, first), false);
    const third = await s.allocate(subnet, 'ep-3');
    assert.equal(formatIPv4(third), formatIPv4(second + 1), 'round-robin, not the just-released .2');
    // A fresh store (a restarted daemon) continues after the newest record too.
    const restarted = b.overlay(prefix).addresses;
    assert.equal(formatIPv4(await restarted.allocate(subnet, 'ep-4')), formatIPv4(third + 1));
    const got = new Set<number>();
    for (;;) {
      try {
        got.add(await s.allocate(subnet, `fill-${got.size}`));
      } catch (e) {
        assert.ok(isOverlayError('CONFLICT', /^no free address in 10\.1\.15\.0\/24$/)(e), String(e));
        break;
      }
    }
    assert.ok(got.has(first), 'the released address was handed out again once the others were used');
    assert.equal((await s.list(subnet)).length, 253);
  });

  it('requested addresses: taken → CONFLICT, same owner → same address, reserved and foreign → refused', async () => {
    const prefix = randomPrefix();
    const s = a.overlay(prefix).addresses;
    assert.equal(formatIPv4(await s.allocate(subnet, 'ep-1', '10.1.15.7')), '10.1.15.7');
    await assert.rejects(s.allocate(subnet, 'ep-2', '10.1.15.7'), isOverlayError('CONFLICT', /10\.1\.15\.7 is already in use in 10\.1\.15\.0\/24 \(owner ep-1\)/));
    assert.equal(formatIPv4(await b.overlay(prefix).addresses.allocate(subnet, 'ep-1', '10.1.15.7')), '10.1.15.7');
    await assert.rejects(s.allocate(subnet, 'ep-3', '10.1.15.1'), isOverlayError('CONFLICT', /reserved/));
    await assert.rejects(s.allocate(subnet, 'ep-3', '10.1.16.9'), isOverlayError('INVALID', /not in this host's subnet/));
    assert.notEqual(formatIPv4(await s.allocate(subnet, 'ep-4')), '10.1.15.7');
  });

  it('releaseOwner frees every address of one owner and nothing else; records are small JSON', async () => {
    const prefix = randomPrefix();
    const ov = a.overlay(prefix);
    const other = parseCidr('10.1.16.0/24');
    await ov.addresses.allocate(subnet, 'pool-x');
    await ov.addresses.allocate(other, 'pool-x');
    const kept = await ov.addresses.allocate(subnet, 'pool-y');
    assert.equal(await ov.addresses.releaseOwner('pool-x'), 2);
    assert.deepEqual((await ov.addresses.list(subnet)).map((r) => [r.ip, r.owner]), [[kept, 'pool-y']]);
    assert.deepEqual(await ov.addresses.list(other), []);
    const raw = (await etcd.etcdctl(['get', '--print-value-only', ov.keys.addressKey(subnet, kept)])).stdout.trim();
    const v = JSON.parse(raw) as { owner: string; createdAt: string };
    assert.equal(v.owner, 'pool-y');
    assert.ok(!Number.isNaN(Date.parse(v.createdAt)));
    assert.match(ov.keys.addressKey(subnet, kept), new RegExp(`^${prefix}/overlay-flannel/addresses/10\\.1\\.15\\.0-24/10\\.1\\.15\\.\\d+$`));
  });
  it('listDetailed reads createdAt (null without one); releaseIfUnchanged deletes only an unchanged record', async () => {
    const prefix = randomPrefix();
    const ov = a.overlay(prefix);
    const t0 = Date.now();
    const mine = await ov.addresses.allocate(subnet, 'ep-a');
    const legacyIp = parseIPv4('10.1.15.200');
    await etcd.etcdctl(['put', ov.keys.addressKey(subnet, legacyIp), '{"owner":"docker/old"}']);
    const rows = await ov.addresses.listDetailed(subnet);
    assert.deepEqual(rows.map((r) => [formatIPv4(r.ip), r.owner]), [[formatIPv4(mine), 'ep-a'], ['10.1.15.200', 'docker/old']]);
    assert.ok(rows[0]!.createdAt !== null && rows[0]!.createdAt >= t0 - 1000 && rows[0]!.createdAt <= Date.now() + 1000, `createdAt ${rows[0]!.createdAt}`);
    assert.equal(rows[1]!.createdAt, null);
    // Changed since it was read (re-written): not deleted.
    await etcd.etcdctl(['put', ov.keys.addressKey(subnet, legacyIp), '{"owner":"docker/new"}']);
    assert.equal(await ov.addresses.releaseIfUnchanged(subnet, legacyIp, rows[1]!.modRevision), false);
    assert.equal((await ov.addresses.list(subnet)).length, 2);
    assert.equal(await ov.addresses.releaseIfUnchanged(subnet, mine, rows[0]!.modRevision), true);
    assert.deepEqual((await ov.addresses.list(subnet)).map((r) => r.owner), ['docker/new']);
  });

  it('releaseIfCreatedBefore (a retried release): deletes a record created before the bound, keeps a newer one or one without createdAt', async () => {
    const ov = a.overlay(randomPrefix());
    const old = await ov.addresses.allocate(subnet, 'ep-old');
    const askedAt = Date.now();
    await new Promise((r) => setTimeout(r, 20));
    const newer = await ov.addresses.allocate(subnet, 'ep-new');
    const legacy = parseIPv4('10.1.15.200');
    await etcd.etcdctl(['put', ov.keys.addressKey(subnet, legacy), '{"owner":"docker/old"}']);
    assert.equal(await ov.addresses.releaseIfCreatedBefore(subnet, old, askedAt), 'released');
    assert.equal(await ov.addresses.releaseIfCreatedBefore(subnet, newer, askedAt), 'kept', 'a newer allocation of the address is never deleted');
    assert.equal(await ov.addresses.releaseIfCreatedBefore(subnet, legacy, askedAt), 'kept', 'no createdAt: left to the audit');
    assert.equal(await ov.addresses.releaseIfCreatedBefore(subnet, old, askedAt), 'absent');
    assert.deepEqual((await ov.addresses.list(subnet)).map((r) => r.owner).sort(), ['docker/old', 'ep-new']);
  });
});
