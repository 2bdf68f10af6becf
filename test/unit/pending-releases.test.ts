/**
 * Releases etcd could not take (src/driver/pending-releases.ts): Docker's ReleaseAddress is
 * answered, the release is retried until etcd takes it, a retry never deletes a newer allocation,
 * other failures and allocators without the guarded retry fail as before. Through the Ipam too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { PendingReleases, type RetryOutcome } from '../../src/driver/pending-releases';
import { Ipam } from '../../src/driver/ipam';
import type { OverlayDirectory, OverlayHandle } from '../../src/driver/overlays';
import { parseCidr, type Cidr } from '../../src/domain/ipv4';
import { invalid, unavailable } from '../../src/errors';
import { waitFor } from '../helpers/wait';

const silent = pino({ level: 'silent' });
const FAST = { initialMs: 5, maxMs: 20 };

test('a release etcd cannot take is answered and retried until it can; success forgets it', async () => {
  const p = new PendingReleases(silent, FAST);
  let etcdUp = false;
  const laters: number[] = [];
  await p.release('a', '10.1.5.7', async () => { throw unavailable('etcd at … refused the connection'); }, async () => {
    laters.push(Date.now());
    if (!etcdUp) throw unavailable('still down');
    return 'released';
  });
  assert.equal(p.size, 1, 'kept');
  await waitFor(async () => laters.length >= 2, { timeoutMs: 2000, what: 'two retries while etcd is down' });
  assert.equal(p.size, 1, 'still kept while etcd is down');
  etcdUp = true;
  await waitFor(async () => p.size === 0, { timeoutMs: 2000, what: 'released once etcd is back' });
  const n = laters.length;
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(laters.length, n, 'no retry after success');
});

test('other failures, and an allocator without the guarded retry, fail as before; a success needs no retry', async () => {
  const p = new PendingReleases(silent, FAST);
  await assert.rejects(p.release('a', 'x', async () => { throw invalid('bad address'); }, async () => 'released'), /bad address/);
  await assert.rejects(p.release('b', 'x', async () => { throw unavailable('down'); }), /down/, 'no `later`: rejects');
  let later = 0;
  await p.release('c', 'x', async () => true, async () => { later++; return 'released'; });
  assert.equal(p.size, 0);
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(later, 0);
});

test('a retry that meets a newer record keeps it and stops; a failure other than UNAVAILABLE on retry stops too', async () => {
  const p = new PendingReleases(silent, FAST);
  const outcomes: RetryOutcome[] = ['kept'];
  let calls = 0;
  await p.release('a', 'x', async () => { throw unavailable('down'); }, async () => { calls++; return outcomes.shift()!; });
  await waitFor(async () => p.size === 0, { timeoutMs: 2000, what: 'the kept outcome ends the retries' });
  assert.equal(calls, 1);
  let calls2 = 0;
  await p.release('b', 'x', async () => { throw unavailable('down'); }, async () => { calls2++; throw invalid('malformed'); });
  await waitFor(async () => p.size === 0, { timeoutMs: 2000, what: 'a non-transient failure ends the retries' });
  assert.equal(calls2, 1);
});

test('stop() drops what waits; a later release after stop fails as before', async () => {
  const p = new PendingReleases(silent, { initialMs: 10_000 });
  await p.release('a', 'x', async () => { throw unavailable('down'); }, async () => 'released');
  assert.equal(p.size, 1);
  p.stop();
  assert.equal(p.size, 0);
  await assert.rejects(p.release('b', 'x', async () => { throw unavailable('down'); }, async () => 'released'), /down/);
});

test("Ipam.releaseAddress with etcd away: Docker's call succeeds; the retry deletes only a record created before the call", async () => {
  const subnet = parseCidr('10.9.5.0/24');
  const records = new Map<number, number>(); // ip → createdAt
  let up = false;
  const before: number[] = [];
  const overlay = {
    name: 'default',
    lease: () => ({ subnet }),
    addresses: {
      allocate: async () => 0,
      release: async (_s: Cidr, ip: number | string) => {
        if (!up) throw unavailable('etcd at http://192.0.2.254:2379 refused the connection');
        return records.delete(Number(ip));
      },
      releaseIfCreatedBefore: async (_s: Cidr, ip: number, t: number): Promise<RetryOutcome> => {
        before.push(t);
        if (!up) throw unavailable('down');
        const c = records.get(ip);
        if (c === undefined) return 'absent';
        if (c > t) return 'kept';
        records.delete(ip);
        return 'released';
      },
    },
  } as unknown as OverlayHandle;
  const dir = { byName: async () => overlay, all: () => [overlay] } as unknown as OverlayDirectory;
  const ipam = new Ipam(dir, silent, FAST);
  const a = (10 << 24) | (9 << 16) | (5 << 8) | 7;
  const b = a + 1;
  records.set(a >>> 0, Date.now() - 60_000);
  records.set(b >>> 0, Date.now() - 60_000);
  await ipam.releaseAddress('overlay-flannel/default/10.9.5.0/24', '10.9.5.7/24');
  await ipam.releaseAddress('overlay-flannel/default/10.9.5.0/24', '10.9.5.8/24');
  assert.equal(ipam.pendingReleases.size, 2, 'both kept for a retry');
  // Meanwhile 10.9.5.8 was freed (the audit) and handed to a new container: a newer record.
  records.set(b >>> 0, Date.now() + 1000);
  up = true;
  await waitFor(async () => ipam.pendingReleases.size === 0, { timeoutMs: 2000, what: 'both retries done' });
  assert.equal(records.has(a >>> 0), false, '10.9.5.7 released');
  assert.equal(records.has(b >>> 0), true, "10.9.5.8's newer record kept (never a duplicate)");
  assert.ok(before.every((t) => t <= Date.now()), 'the bound is the time Docker asked');
});
