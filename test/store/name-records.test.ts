/**
 * name-records.test.ts — DNS name records (src/store/name-records.ts) against a real etcd: two
 * hosts' registries seen by one watcher, a dead host's names expiring with its short lease, a
 * clean stop revoking at once, a restart (stop without revoke, then replaceAll) without a gap, a lost lease re-put (and a
 * name removed meanwhile staying gone), an etcd outage ridden out by the watcher, a re-list after
 * compaction, a broken value skipped with its reason. One etcd for the file, a prefix per test.
 * The timings measured are printed as `# measured …` lines.
 */
import assert from 'node:assert/strict';
import { nameRecord } from '../helpers/name-records';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { encodeNameRecord, type NameRecord } from '../../src/domain/name-record';
import { openStore, type NameWatcher, type Store } from '../../src/store';
import type { EtcdServer } from '../helpers/etcd-server';
import { captureLogger, randomPrefix, startTcpProxy, testLogger, withEtcdStore } from '../helpers/store-fixtures';
import { waitFor } from '../helpers/wait';

const TTL = 4;
let etcd: EtcdServer;
let store: Store;
withEtcdStore((e, s) => {
  etcd = e;
  store = s;
});

const rec = (host: string, endpointId: string, containerName: string, ip: string, over: Partial<NameRecord> = {}): NameRecord =>
  nameRecord({ networkId: 'net1', networkName: 'appnet', containerName, endpointId, ipv4: [ip], host, ...over });

type Ev = { type: 'upsert' | 'remove'; endpoint: string; at: number; record: NameRecord };
function follow(w: NameWatcher): Ev[] {
  const evs: Ev[] = [];
  w.on('upsert', (r) => evs.push({ type: 'upsert', endpoint: r.endpointId, at: Date.now(), record: r }));
  w.on('remove', (r) => evs.push({ type: 'remove', endpoint: r.endpointId, at: Date.now(), record: r }));
  return evs;
}
const names = (w: NameWatcher) => w.records().map((r) => `${r.endpointId}=${r.containerName}@${r.host}`).sort();
const leaseOfKey = async (key: string) => String((await store.client.get(key).exec()).kvs[0]?.lease ?? 'none');
const measured = (what: string, ms: number) => console.log(`# measured ${what}: ${ms} ms`);

/** Another process registering `count` names of `host` (name-registry-child.ts), and its lease. */
async function startHost(prefix: string, host: string, count: number): Promise<{ process: ChildProcess; lease: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'name-registry-child.ts')], {
    env: { ...process.env, ETCD_ENDPOINT: etcd.endpoint, PREFIX: prefix, HOST: host, TTL: String(TTL), COUNT: String(count) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the child printed no line within 30 s')), 30_000);
    createInterface({ input: child.stdout! }).once('line', (l) => (clearTimeout(t), resolve(l)));
  }).catch((e: unknown) => {
    child.kill('SIGKILL');
    throw e;
  });
  const { lease } = JSON.parse(line) as { lease?: string };
  assert.ok(lease, line);
  return { process: child, lease };
}

describe('name records', () => {
  it('two hosts register; one watcher sees both, then an update and a removal', async () => {
    const ov = store.overlay(randomPrefix());
    const w = ov.nameWatcher();
    const evs = follow(w);
    await w.start();
    const h1 = ov.nameRegistry({ host: '192.0.2.11', ttlSec: TTL });
    const h2 = ov.nameRegistry({ host: '192.0.2.12', ttlSec: TTL });
    await h1.put(rec('192.0.2.11', 'ep1', 'web-1', '10.1.16.5', { aliases: ['web'] }));
    await h2.put(rec('192.0.2.12', 'ep2', 'db-1', '10.1.17.5'));
    await waitFor(async () => w.size === 2, { what: 'both names in the watcher' });
    assert.deepEqual(names(w), ['ep1=web-1@192.0.2.11', 'ep2=db-1@192.0.2.12']);
    assert.notEqual(h1.lease.id, h2.lease.id, 'a lease per host');
    assert.equal(await leaseOfKey(ov.keys.nameKey('net1', 'ep1')), h1.lease.id);
    const ttl = await store.client.leaseClient.leaseTimeToLive({ ID: h1.lease.id! });
    assert.ok(Number(ttl.TTL) > 0 && Number(ttl.TTL) <= TTL, `TTL ${ttl.TTL}`);
    assert.equal((await store.client.getAll().prefix(ov.keys.subnetsPrefix).keys()).length, 0, 'nothing under <prefix>/subnets');

    await h1.put(rec('192.0.2.11', 'ep1', 'web-renamed', '10.1.16.5', { aliases: ['web', 'www'] }));
    await waitFor(async () => names(w).includes('ep1=web-renamed@192.0.2.11'), { what: 'the rename' });
    assert.deepEqual(w.records().find((r) => r.endpointId === 'ep1')?.aliases, ['web', 'www']);
    await h2.remove('net1', 'ep2');
    await waitFor(async () => w.size === 1, { what: 'the removal' });
    assert.deepEqual(evs.map((e) => `${e.type} ${e.endpoint}`), ['upsert ep1', 'upsert ep2', 'upsert ep1', 'remove ep2']);
    await assert.rejects(h1.put(rec('192.0.2.12', 'ep3', 'x', '10.1.16.6')), /host 192\.0\.2\.12 is not this host/);
    await assert.rejects(h1.put(rec('192.0.2.11', 'ep3', 'bad name', '10.1.16.6')), (e: Error & { code?: string }) => e.code === 'INVALID');
    await Promise.all([h1.stop(), h2.stop(), w.stop()]);
  });

  it("a dead host's names expire with its lease (TTL + a bound); a clean stop revokes at once", { timeout: 60_000 }, async () => {
    const prefix = randomPrefix();
    const ov = store.overlay(prefix);
    const w = ov.nameWatcher();
    const evs = follow(w);
    await w.start();
    const child = await startHost(prefix, '192.0.2.21', 3);
    try {
      await waitFor(async () => w.size === 3, { what: "the dead host's names before it dies" });
      await new Promise((r) => setTimeout(r, 2 * TTL * 1000)); // it keeps them alive past the TTL
      assert.equal(w.size, 3, 'kept alive while the host lives');
      child.process.kill('SIGKILL');
      const killedAt = Date.now();
      await waitFor(async () => w.size === 0, { what: 'expiry of the dead host', timeoutMs: (TTL + 5) * 1000 });
      const took = Math.max(...evs.filter((e) => e.type === 'remove').map((e) => e.at)) - killedAt;
      measured(`dead host's 3 names gone after SIGKILL (TTL ${TTL} s)`, took);
      assert.ok(took <= TTL * 1000 + 2000, `${took} ms > TTL + 2 s`);
      assert.ok(took >= 1000, `${took} ms: gone before its lease could have expired?`);
    } finally {
      child.process.kill('SIGKILL');
    }

    const clean = await startHost(prefix, '192.0.2.23', 2);
    await waitFor(async () => w.size === 2, { what: 'the host that stops cleanly' });
    const termAt = Date.now();
    clean.process.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => clean.process.once('exit', r));
    assert.equal(code, 0, 'stopped cleanly');
    await waitFor(async () => w.size === 0, { what: 'names gone after SIGTERM', timeoutMs: 3000, intervalMs: 20 });
    const tookTerm = Math.max(...evs.filter((e) => e.type === 'remove').map((e) => e.at)) - termAt;
    measured('names gone after SIGTERM of the other process (stop() revokes)', tookTerm);
    assert.ok(tookTerm < 2000, `${tookTerm} ms`);
    assert.equal((await store.client.leaseClient.leaseTimeToLive({ ID: clean.lease })).TTL, '-1', 'its lease is revoked');

    const h = ov.nameRegistry({ host: '192.0.2.22', ttlSec: TTL });
    await h.replaceAll([rec('192.0.2.22', 'ep1', 'a', '10.1.18.2'), rec('192.0.2.22', 'ep2', 'b', '10.1.18.3')]);
    await waitFor(async () => w.size === 2, { what: 'the second host' });
    const stopAt = Date.now();
    await h.stop();
    await waitFor(async () => w.size === 0, { what: 'names gone after a clean stop', timeoutMs: 3000, intervalMs: 20 });
    const took = Math.max(...evs.filter((e) => e.type === 'remove').map((e) => e.at)) - stopAt;
    measured('names gone after stop() (revoke)', took);
    assert.ok(took < 1000, `${took} ms`);
    await w.stop();
  });

  it('a restart re-registers with replaceAll: no removal of a record that stays, stale ones go', { timeout: 60_000 }, async () => {
    const ov = store.overlay(randomPrefix());
    const w = ov.nameWatcher();
    const evs = follow(w);
    await w.start();
    const other = ov.nameRegistry({ host: '192.0.2.32', ttlSec: TTL });
    await other.put(rec('192.0.2.32', 'x1', 'other', '10.1.19.2'));
    const before = ov.nameRegistry({ host: '192.0.2.31', ttlSec: TTL });
    await before.replaceAll(['a', 'b', 'c'].map((n, i) => rec('192.0.2.31', `ep-${n}`, n, `10.1.20.${i + 2}`)));
    await waitFor(async () => w.size === 4, { what: 'the first process and another host' });

    // The plugin restarts: the old process stops as the daemon does (the lease released, not
    // revoked: its names stay), the new one re-registers.
    await before.stop({ revoke: false });
    assert.equal(w.size, 4, 'a stop without revoke leaves the names');
    const after = ov.nameRegistry({ host: '192.0.2.31', ttlSec: TTL });
    const startedAt = Date.now();
    await after.replaceAll([rec('192.0.2.31', 'ep-a', 'a-renamed', '10.1.20.2'), rec('192.0.2.31', 'ep-c', 'c', '10.1.20.4'), rec('192.0.2.31', 'ep-d', 'd', '10.1.20.5')]);
    measured('replaceAll of 3 names (with the stale scan)', Date.now() - startedAt);
    await waitFor(async () => w.size === 4 && names(w).includes('ep-d=d@192.0.2.31'), { what: 'the new set' });
    assert.deepEqual(names(w), ['ep-a=a-renamed@192.0.2.31', 'ep-c=c@192.0.2.31', 'ep-d=d@192.0.2.31', 'x1=other@192.0.2.32']);
    const removed = () => evs.filter((e) => e.type === 'remove').map((e) => e.endpoint);
    assert.deepEqual(removed(), ['ep-b'], 'only the stale record was removed');
    const dAt = evs.find((e) => e.endpoint === 'ep-d')!.at;
    assert.ok(evs.find((e) => e.type === 'remove')!.at >= dAt, 'puts before deletes');
    for (const ep of ['ep-a', 'ep-c', 'ep-d']) assert.equal(await leaseOfKey(ov.keys.nameKey('net1', ep)), after.lease.id, ep);

    // The old lease expires holding nothing: still no removal.
    await new Promise((r) => setTimeout(r, (TTL + 2) * 1000));
    assert.deepEqual(removed(), ['ep-b']);
    assert.equal(w.size, 4);

    // A periodic audit of the same process: no etcd scan, what it no longer holds still goes.
    const scans = after.stats.staleScans;
    assert.equal(scans, 1);
    await after.replaceAll([rec('192.0.2.31', 'ep-a', 'a-renamed', '10.1.20.2'), rec('192.0.2.31', 'ep-c', 'c', '10.1.20.4')], { scanStale: false });
    await waitFor(async () => !names(w).includes('ep-d=d@192.0.2.31'), { what: 'ep-d deleted by the audit' });
    assert.equal(after.stats.staleScans, scans, 'no scan of etcd');
    assert.deepEqual(removed(), ['ep-b', 'ep-d']);
    await Promise.all([after.stop(), other.stop(), w.stop()]);
  });

  it('a revoked lease is replaced and everything re-put', { timeout: 30_000 }, async () => {
    const ov = store.overlay(randomPrefix());
    const w = ov.nameWatcher();
    const evs = follow(w);
    await w.start();
    const h = ov.nameRegistry({ host: '192.0.2.41', ttlSec: TTL });
    const lost: string[] = [];
    h.on('lease-lost', (e) => lost.push(e.reason));
    await h.replaceAll([rec('192.0.2.41', 'e1', 'one', '10.1.21.2'), rec('192.0.2.41', 'e2', 'two', '10.1.21.3')]);
    const revoke = async () => {
      const id = h.lease.id!;
      await etcd.etcdctl(['lease', 'revoke', BigInt(id).toString(16)]);
      return id;
    };
    const reput = (old: string, n: number) =>
      waitFor(async () => h.lease.id !== null && h.lease.id !== old && w.size === n && (await leaseOfKey(ov.keys.nameKey('net1', 'e2'))) === h.lease.id, {
        what: 're-put on a new lease',
        timeoutMs: TTL * 1000 + 5000,
      });
    // Noticed by the keep-alive (etcd answers TTL 0).
    const first = await revoke();
    const revokedAt = Date.now();
    await reput(first, 2);
    measured(`revoked lease noticed by the keep-alive and names re-put (keep-alive every ${(TTL / 3).toFixed(1)} s)`, Date.now() - revokedAt);
    assert.deepEqual(evs.map((e) => `${e.type} ${e.endpoint}`).slice(2).sort(), ['remove e1', 'remove e2', 'upsert e1', 'upsert e2']);
    assert.equal(lost.length, 1);
    assert.match(lost[0]!, /etcd says the lease is gone/);
    // Noticed by a put: it retries at once on a new lease, and the others follow.
    const second = await revoke();
    await h.put(rec('192.0.2.41', 'e3', 'three', '10.1.21.4'));
    assert.notEqual(await leaseOfKey(ov.keys.nameKey('net1', 'e3')), second);
    await reput(second, 3);
    assert.equal(await leaseOfKey(ov.keys.nameKey('net1', 'e3')), h.lease.id);
    assert.equal(lost.length, 2);
    assert.match(lost[1]!, /revoked|gone/);
    await Promise.all([h.stop(), w.stop()]);
  });

  it('cut off past its TTL, a host re-registers only what it still holds', { timeout: 60_000 }, async () => {
    const prefix = randomPrefix();
    const ov = store.overlay(prefix);
    const w = ov.nameWatcher();
    const evs = follow(w);
    await w.start();
    const proxy = await startTcpProxy({ host: etcd.host, port: etcd.port });
    const cut = openStore({ etcdEndpoints: [proxy.endpoint], etcdPrefix: prefix }, testLogger());
    try {
      const h = cut.overlay().nameRegistry({ host: '192.0.2.51', ttlSec: TTL });
      await h.replaceAll([rec('192.0.2.51', 'keep', 'keep', '10.1.22.2'), rec('192.0.2.51', 'gone', 'gone', '10.1.22.3')]);
      await waitFor(async () => w.size === 2, { what: 'both names' });
      proxy.freeze();
      const cutAt = Date.now();
      await assert.rejects(h.remove('net1', 'gone'), (e: Error & { code?: string }) => e.code === 'UNAVAILABLE' && /held and written when etcd answers/.test(e.message));
      await waitFor(async () => w.size === 0, { what: 'expiry of the cut-off host', timeoutMs: (TTL + 5) * 1000 });
      measured(`cut-off host's names expired in etcd (TTL ${TTL} s)`, Date.now() - cutAt);
      proxy.resetAndThaw();
      const backAt = Date.now();
      await waitFor(async () => names(w).join() === 'keep=keep@192.0.2.51', { what: 'the held name re-put', timeoutMs: 15_000 });
      measured('held name back after the cut ends', Date.now() - backAt);
      await new Promise((r) => setTimeout(r, 1500));
      assert.deepEqual(names(w), ['keep=keep@192.0.2.51'], 'the removed name never resurrects');
      assert.ok(!evs.some((e) => e.type === 'upsert' && e.endpoint === 'gone' && e.at > cutAt));
      assert.ok(h.stats.reRegistrations >= 1 || h.lease.stats.losses >= 1, JSON.stringify(h.stats));
      await h.stop();
    } finally {
      await cut.close();
      await proxy.close();
      await w.stop();
    }
  });

  it('re-lists after compaction: what changed while it was cut off arrives as upserts and removals', { timeout: 30_000 }, async () => {
    const prefix = randomPrefix();
    const h = store.overlay(prefix).nameRegistry({ host: '192.0.2.61', ttlSec: TTL });
    await h.replaceAll([rec('192.0.2.61', 'p1', 'p1', '10.1.23.2'), rec('192.0.2.61', 'p2', 'p2', '10.1.23.3')]);
    const proxy = await startTcpProxy({ host: etcd.host, port: etcd.port });
    const cut = openStore({ etcdEndpoints: [proxy.endpoint], etcdPrefix: prefix }, testLogger());
    try {
      const w = cut.overlay().nameWatcher();
      const evs = follow(w);
      await w.start();
      assert.equal(w.size, 2);
      proxy.freeze();
      await h.remove('net1', 'p1');
      await h.put(rec('192.0.2.61', 'p3', 'p3', '10.1.23.4'));
      await etcd.compact();
      proxy.resetAndThaw();
      await waitFor(async () => names(w).join() === 'p2=p2@192.0.2.61,p3=p3@192.0.2.61', { what: 'the re-list', timeoutMs: 15_000 });
      assert.ok(w.progress.stats.cancels >= 1 || w.progress.stats.lists >= 2, JSON.stringify(w.progress.stats));
      assert.deepEqual(evs.slice(2).map((e) => `${e.type} ${e.endpoint}`).sort(), ['remove p1', 'upsert p3']);
      await w.stop();
    } finally {
      await h.stop();
      await cut.close();
      await proxy.close();
    }
  });

  it('a broken value in the prefix is skipped with its reason; the others are unaffected', async () => {
    const prefix = randomPrefix();
    const { logger, lines } = captureLogger('warn');
    const local = openStore({ etcdEndpoints: [etcd.endpoint], etcdPrefix: prefix }, logger);
    try {
      const ov = local.overlay();
      await etcd.etcdctl(['put', ov.keys.nameKey('net1', 'broken'), '{"v":1,']);
      await etcd.etcdctl(['put', ov.keys.nameKey('net1', 'wrongkey'), encodeNameRecord(rec('192.0.2.71', 'other', 'x', '10.1.24.9'))]);
      const h = ov.nameRegistry({ host: '192.0.2.71', ttlSec: TTL });
      await h.put(rec('192.0.2.71', 'fine', 'fine', '10.1.24.2'));
      const w = ov.nameWatcher();
      await w.start();
      assert.deepEqual(names(w), ['fine=fine@192.0.2.71']);
      const late = JSON.parse(encodeNameRecord(rec('192.0.2.71', 'late', 'late', '10.1.24.8'))) as { network: { name: string } };
      late.network.name = 'bad name';
      await etcd.etcdctl(['put', ov.keys.nameKey('net1', 'late'), JSON.stringify(late)]);
      await h.put(rec('192.0.2.71', 'fine2', 'fine2', '10.1.24.3'));
      await waitFor(async () => w.size === 2, { what: 'a good record after a bad one' });
      const warns = lines.filter((l) => /skipping a name record/.test(String(l.msg)));
      const said = warns.map((l) => `${String(l.key).split('/').pop()}: ${String(l.reason)}`);
      assert.equal(said.length, 3, said.join('\n'));
      assert.match(said[0]!, /^broken: not valid JSON \(.+\)$/);
      assert.equal(said[1], 'wrongkey: the network or endpoint id differs from the key');
      assert.equal(said[2], 'late: network.name "bad name" is not a Docker name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, ≤ 255)');
      assert.equal(w.skipped, 3);
      await Promise.all([h.stop(), w.stop()]);
    } finally {
      await local.close();
    }
  });
});
