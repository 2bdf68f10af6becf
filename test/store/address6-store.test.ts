/**
 * address6-store.test.ts — v6 endpoint addresses (Docker `--ipv6`) recorded in etcd (issue 21),
 * against a real etcd: two allocators on two clients never hand out one address twice even when
 * their random picks are forced into a small range (a lost create picks again), a pick that meets
 * an existing record (a container from before a restart) picks again, bounded (MAX_PICKS6), `--ip6`
 * rules, release idempotent and working from a fresh store (a restarted daemon), the audit's
 * listDetailed / releaseIfUnchanged, and v4 and v6 records of one dual-stack lease kept apart.
 * Random sources are injected (Address6Store's last argument); one etcd for the file.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { parseCidr } from '../../src/domain/ipv4';
import { formatIPv6, parseCidr6, parseIPv6 } from '../../src/domain/ipv6';
import { Address6Store, MAX_PICKS6, openStore, overlayKeys, type Store } from '../../src/store';
import type { EtcdServer } from '../helpers/etcd-server';
import { isOverlayError, randomPrefix, testLogger, withEtcdStores } from '../helpers/store-fixtures';

const subnet6 = parseCidr6('fd00:10:0:f::/64');
const at = (offset: number): bigint => subnet6.base + BigInt(offset);
let etcd: EtcdServer;
let a: Store;
let b: Store;
withEtcdStores((e, x, y) => {
  etcd = e;
  a = x;
  b = y;
});

/** 16 random bytes whose value is `offset` (pickAddress6 takes it modulo the subnet's size). */
function bytesOf(offset: number): Uint8Array {
  const out = new Uint8Array(16);
  out[13] = (offset >> 16) & 255;
  out[14] = (offset >> 8) & 255;
  out[15] = offset & 255;
  return out;
}
/** Picks in [0, pool): collisions between two allocators become likely. Counts its calls. */
function smallRandom(pool: number): { random: () => Uint8Array; calls: () => number } {
  let n = 0;
  return { random: () => (n++, bytesOf(randomInt(pool))), calls: () => n };
}
/** Picks these offsets in turn, then the last one forever. */
function sequence(offsets: number[]): () => Uint8Array {
  let i = 0;
  return () => bytesOf(offsets[Math.min(i++, offsets.length - 1)]!);
}
const store6 = (s: Store, prefix: string, random: (n: number) => Uint8Array) => new Address6Store(s.client, overlayKeys(prefix), testLogger(), random);

describe('v6 address store', () => {
  it('two allocators on two clients, picks forced into 600 addresses, racing 2×100 allocations: never the same address twice', async () => {
    const prefix = randomPrefix();
    const ra = smallRandom(600);
    const rb = smallRandom(600);
    const [sa, sb] = [store6(a, prefix, ra.random), store6(b, prefix, rb.random)];
    const run = async (s: Address6Store, tag: string) => {
      const out: bigint[] = [];
      await Promise.all(
        [0, 1, 2, 3].map(async (k) => {
          for (let i = 0; i < 25; i++) out.push(await s.allocate(subnet6, `${tag}-${k}-${i}`));
        }),
      );
      return out;
    };
    const [got, gotB] = await Promise.all([run(sa, 'a'), run(sb, 'b')]);
    const all = [...got, ...gotB];
    assert.equal(new Set(all).size, 200, 'no address handed out twice');
    for (const ip of all) assert.ok(ip - subnet6.base >= 2n && ip - subnet6.base < 600n, `${formatIPv6(ip)}: never ::0 or ::1, always a pick`);
    const records = await sa.list(subnet6);
    assert.deepEqual(new Set(records.map((r) => r.ip)), new Set(all));
    assert.equal(records.length, 200);
    // 200 of 600 with two independent sources: picks met taken addresses (≈ 40 expected) and picked again
    assert.ok(ra.calls() + rb.calls() > 200, `random picks: ${ra.calls() + rb.calls()}`);
  });

  it('a pick that meets a record (a container from before a restart) picks again; MAX_PICKS6 lost creates are a CONFLICT', async () => {
    const prefix = randomPrefix();
    const first = store6(a, prefix, sequence([5]));
    assert.equal(await first.allocate(subnet6, 'docker/old'), at(5));
    // A fresh store on another client (a restarted daemon) whose first pick is the same address.
    const restarted = store6(b, prefix, sequence([5, 6]));
    assert.equal(formatIPv6(await restarted.allocate(subnet6, 'docker/new')), formatIPv6(at(6)));
    assert.deepEqual((await restarted.list(subnet6)).map((r) => [formatIPv6(r.ip), r.owner]), [[formatIPv6(at(5)), 'docker/old'], [formatIPv6(at(6)), 'docker/new']]);
    // Every pick recorded already: bounded, with a clear error, and nothing written.
    const taken = Array.from({ length: MAX_PICKS6 }, (_, i) => 10 + i);
    for (const o of taken) await first.allocate(subnet6, `docker/t${o}`, formatIPv6(at(o)));
    const unlucky = store6(b, prefix, sequence([...taken, 99]));
    await assert.rejects(unlucky.allocate(subnet6, 'docker/x'), isOverlayError('CONFLICT', new RegExp(`no free IPv6 address found in fd00:10:0:f::/64: ${MAX_PICKS6} random picks were all recorded already`)));
    assert.equal((await unlucky.list(subnet6)).length, 2 + MAX_PICKS6);
    // The next allocation goes on with the sequence (::63 is free).
    assert.equal(await unlucky.allocate(subnet6, 'docker/y'), at(99));
  });

  it('--ip6: exactly that address; another owner → CONFLICT naming it, same owner → same address; reserved and foreign refused', async () => {
    const prefix = randomPrefix();
    const s = a.overlay(prefix).addresses6;
    assert.equal(formatIPv6(await s.allocate(subnet6, 'ep-1', 'fd00:10:0:f::77')), 'fd00:10:0:f::77');
    await assert.rejects(b.overlay(prefix).addresses6.allocate(subnet6, 'ep-2', 'fd00:10:0:f:0:0:0:77'), isOverlayError('CONFLICT', /fd00:10:0:f:0:0:0:77 is already in use in fd00:10:0:f::\/64 \(owner ep-1\)/));
    assert.equal(await b.overlay(prefix).addresses6.allocate(subnet6, 'ep-1', 'fd00:10:0:f::77'), parseIPv6('fd00:10:0:f::77'));
    await assert.rejects(s.allocate(subnet6, 'ep-3', 'fd00:10:0:f::1'), isOverlayError('CONFLICT', /reserved/));
    await assert.rejects(s.allocate(subnet6, 'ep-3', 'fd00:10:0:f::'), isOverlayError('CONFLICT', /reserved/));
    await assert.rejects(s.allocate(subnet6, 'ep-3', 'fd00:10:0:e::9'), isOverlayError('INVALID', /not in this host's IPv6 subnet/));
    await assert.rejects(s.allocate(subnet6, '', 'fd00:10:0:f::9'), isOverlayError('INVALID', /an owner is required/));
    assert.equal((await s.list(subnet6)).length, 1);
  });

  it('release is idempotent and works from a fresh store (a restarted daemon releases what the old one handed out)', async () => {
    const prefix = randomPrefix();
    const old = openStore({ etcdEndpoints: [etcd.endpoint], etcdPrefix: prefix }, testLogger());
    let handed: bigint[];
    try {
      const s = old.overlay().addresses6;
      handed = [await s.allocate(subnet6, 'docker/a'), await s.allocate(subnet6, 'docker/b'), await s.allocate(subnet6, 'docker/c', 'fd00:10:0:f::c')];
    } finally {
      await old.close();
    }
    const fresh = openStore({ etcdEndpoints: [etcd.endpoint], etcdPrefix: prefix }, testLogger());
    try {
      const s = fresh.overlay().addresses6;
      assert.equal(await s.release(subnet6, formatIPv6(handed[0]!)), true);
      assert.equal(await s.release(subnet6, handed[0]!), false, 'idempotent');
      assert.equal(await s.release(subnet6, 'fd00:10:0:f:0:0:0:c'), true, 'any spelling of the address');
      const left = await s.list(subnet6);
      assert.deepEqual(left.map((r) => [r.ip, r.owner]), [[handed[1]!, 'docker/b']]);
      const { stdout } = await etcd.etcdctl(['get', '--prefix', '--keys-only', `${prefix}/overlay-flannel/`]);
      assert.deepEqual(stdout.split('\n').filter(Boolean), [fresh.overlay().keys.address6Key(subnet6, handed[1]!)]);
      // the same address can be had again once released
      assert.equal(formatIPv6(await s.allocate(subnet6, 'docker/d', 'fd00:10:0:f::c')), 'fd00:10:0:f::c');
    } finally {
      await fresh.close();
    }
  });

  it('listDetailed reads createdAt (null without one) in address order; releaseIfUnchanged deletes only an unchanged record', async () => {
    const prefix = randomPrefix();
    const ov = a.overlay(prefix);
    const t0 = Date.now();
    const mine = await ov.addresses6.allocate(subnet6, 'ep-a', 'fd00:10:0:f::a');
    const legacy = parseIPv6('fd00:10:0:f::1:0');
    await etcd.etcdctl(['put', ov.keys.address6Key(subnet6, legacy), '{"owner":"docker/old"}']);
    await etcd.etcdctl(['put', `${ov.keys.addresses6Prefix(subnet6)}fd00:10:0:f:0::9`, '{"owner":"hand"}']); // not canonical: not a record
    const rows = await ov.addresses6.listDetailed(subnet6);
    assert.deepEqual(rows.map((r) => [formatIPv6(r.ip), r.owner]), [['fd00:10:0:f::a', 'ep-a'], ['fd00:10:0:f::1:0', 'docker/old']]);
    assert.ok(rows[0]!.createdAt !== null && rows[0]!.createdAt >= t0 - 1000 && rows[0]!.createdAt <= Date.now() + 1000, `createdAt ${rows[0]!.createdAt}`);
    assert.equal(rows[1]!.createdAt, null);
    await etcd.etcdctl(['put', ov.keys.address6Key(subnet6, legacy), '{"owner":"docker/new"}']);
    assert.equal(await ov.addresses6.releaseIfUnchanged(subnet6, legacy, rows[1]!.modRevision), false, 'changed since read');
    assert.equal(await ov.addresses6.releaseIfUnchanged(subnet6, mine, rows[0]!.modRevision), true);
    assert.deepEqual((await ov.addresses6.list(subnet6)).map((r) => r.owner), ['docker/new']);
    const raw = JSON.parse((await etcd.etcdctl(['get', '--print-value-only', ov.keys.address6Key(subnet6, legacy)])).stdout.trim()) as { owner: string };
    assert.equal(raw.owner, 'docker/new');
  });

  it('releaseIfCreatedBefore (a retried release): deletes only a record created before the bound', async () => {
    const ov = a.overlay(randomPrefix());
    const old = await ov.addresses6.allocate(subnet6, 'ep-old', 'fd00:10:0:f::b');
    const askedAt = Date.now();
    await new Promise((r) => setTimeout(r, 20));
    const newer = await ov.addresses6.allocate(subnet6, 'ep-new', 'fd00:10:0:f::c');
    assert.equal(await ov.addresses6.releaseIfCreatedBefore(subnet6, old, askedAt), 'released');
    assert.equal(await ov.addresses6.releaseIfCreatedBefore(subnet6, newer, askedAt), 'kept');
    assert.equal(await ov.addresses6.releaseIfCreatedBefore(subnet6, old, askedAt), 'absent');
    assert.deepEqual((await ov.addresses6.list(subnet6)).map((r) => r.owner), ['ep-new']);
  });

  it('v4 and v6 records of one dual-stack lease are apart: each list, release and releaseOwner sees only its own', async () => {
    const prefix = randomPrefix();
    const ov = a.overlay(prefix);
    const subnet = parseCidr('10.1.15.0/24');
    const ip4 = await ov.addresses.allocate(subnet, 'docker/same');
    const ip6 = await ov.addresses6.allocate(subnet6, 'docker/same');
    assert.deepEqual((await ov.addresses.list(subnet)).map((r) => r.ip), [ip4]);
    assert.deepEqual((await ov.addresses6.list(subnet6)).map((r) => r.ip), [ip6]);
    assert.equal(await ov.addresses.releaseOwner('docker/same'), 1, 'the v4 whole-root list does not reach v6 records');
    assert.deepEqual((await ov.addresses6.list(subnet6)).map((r) => r.owner), ['docker/same']);
    const { stdout } = await etcd.etcdctl(['get', '--prefix', '--keys-only', prefix]);
    const keys = stdout.split('\n').filter(Boolean);
    assert.deepEqual(keys, [`${prefix}/overlay-flannel/addresses6/fd00:10:0:f::-64/${formatIPv6(ip6)}`]);
    assert.ok(!keys.some((k) => k.startsWith(`${prefix}/subnets`)));
  });
});
