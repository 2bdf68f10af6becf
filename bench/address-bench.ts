/**
 * address-bench.ts — big leases (issue 23): the IPAM and the address audit with SubnetLen 20
 * (4,094 addresses per host) and 4,000 of them in use, against a real etcd it starts itself.
 *
 *   npm run bench:addresses        (ADDR_BENCH_USED=4000, ADDR_BENCH_SAMPLES=500, ADDR_BENCH_FILL_CONCURRENCY=8)
 *
 * Method. One lease of Network 10.0.0.0/12 with SubnetLen 20, acquired by the real keeper. The
 * IPAM driver (src/driver/ipam.ts, the class the plugin API calls) over a directory holding that
 * overlay and the real AddressStore; every address goes through Ipam.requestAddress.
 *  1. fill: RequestPool, then USED RequestAddress calls, FILL_CONCURRENCY at a time (like many
 *     `docker run` at once); total time.
 *  2. churn: SAMPLES pairs, one at a time: RequestAddress (timed), then ReleaseAddress (timed) of
 *     a random address in use, so the lease stays at USED; p50/p99/max of each, and this
 *     process's CPU (user + system) per RequestAddress, median.
 *  3. two allocators: a second store (its own etcd client) and the first both allocate at once,
 *     4 streams × RACE_EACH each (10 at 4,000 in use: the lease must hold them too); duplicates
 *     among all the addresses and the records must be 0; then they are released.
 *  4. audit: AddressAudit.runOnce over the same overlay, with a fake Docker view holding exactly
 *     the USED endpoints (no orphans: nothing may be released), AUDIT_ROUNDS rounds; median/max.
 *     Then one round where the fake Docker view lacks ORPHANS endpoints and the clock is past the
 *     grace period: exactly ORPHANS records are released (guarded deletes), timed.
 * Output: a table with the machine and the load average at start and end, and one JSON line.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { parseIPv4 } from '../src/domain/ipv4';
import { parseNetworkConfig } from '../src/domain/network-config';
import { Ipam } from '../src/driver/ipam';
import type { OverlayDirectory, OverlayHandle } from '../src/driver/overlays';
import type { DockerEndpoints, EndpointsPort } from '../src/docker/endpoint-addresses';
import { AddressAudit, AUDIT_GRACE_MS } from '../src/reconcile/address-audit';
import { openStore } from '../src/store';
import { startEtcd } from '../test/helpers/etcd-server';
import { randomPrefix, vxlanAttrsFor } from '../test/helpers/store-fixtures';

const USED = Number(process.env.ADDR_BENCH_USED ?? 4000);
const SAMPLES = Number(process.env.ADDR_BENCH_SAMPLES ?? 500);
const FILL_CONCURRENCY = Number(process.env.ADDR_BENCH_FILL_CONCURRENCY ?? 8);
const AUDIT_ROUNDS = 5;
const ORPHANS = 100;
// 2 allocators × 4 streams × RACE_EACH on top of USED must fit the 4,093 usable addresses (4,094 less the gateway).
const RACE_EACH = Math.max(1, Math.min(25, Math.floor((4093 - USED) / 8)));
const CONFIG = '{"Network":"10.0.0.0/12","SubnetLen":20,"Backend":{"Type":"vxlan","VNI":1}}';

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const r2 = (n: number): number => Math.round(n * 100) / 100;
const summary = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: r2(pct(s, 50)), p99: r2(pct(s, 99)), max: r2(s[s.length - 1] ?? NaN) };
};
const bare = (a: string): string => a.split('/')[0]!;

async function main(): Promise<void> {
  const logger = pino({ level: 'silent' });
  const etcd = await startEtcd();
  const prefix = randomPrefix('bench-addr');
  const store = openStore({ etcdEndpoints: [etcd.endpoint], etcdPrefix: prefix }, logger);
  const store2 = openStore({ etcdEndpoints: [etcd.endpoint], etcdPrefix: prefix }, logger);
  const results: Record<string, unknown> = { used: USED, samples: SAMPLES, loadAtStart: r2(os.loadavg()[0]!) };
  try {
    const config = parseNetworkConfig(CONFIG);
    const ov = store.overlay();
    const keeper = ov.keeper({ publicIP: '198.18.0.1', attrsFor: vxlanAttrsFor('198.18.0.1'), ttlSec: 3600, renewMarginSec: 600 });
    const lease = await keeper.acquire(config, AbortSignal.timeout(30_000));
    const handleOf = (addresses: OverlayHandle['addresses']): OverlayHandle => ({
      name: 'default',
      prefix,
      lease: () => lease,
      network: () => config.network,
      mtu: () => 1450,
      vxlan: () => null,
      whenReady: async () => undefined,
      addresses,
      addresses6: ov.addresses6, // unused: the bench is v4
    });
    const dirOf = (h: OverlayHandle): OverlayDirectory => ({ byName: async () => h, all: () => [h] });
    const ipam = new Ipam(dirOf(handleOf(ov.addresses)), logger);
    const ipam2 = new Ipam(dirOf(handleOf(store2.overlay().addresses)), logger);
    const { poolId, pool } = await ipam.requestPool({ addressSpace: 'overlay-flannel-local', pool: '', subPool: '', options: {}, v6: false });
    results.pool = pool;

    // 1. fill
    const inUse: string[] = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: FILL_CONCURRENCY }, async () => {
        for (let i = next++; i < USED; i = next++) inUse.push(bare((await ipam.requestAddress({ poolId, address: '', options: {} })).address));
      }),
    );
    results.fill = { addresses: USED, concurrency: FILL_CONCURRENCY, ms: Math.round(performance.now() - t0) };
    if (new Set(inUse).size !== USED) throw new Error(`fill: ${USED - new Set(inUse).size} duplicate addresses`);

    // 2. churn at USED in use
    const req: number[] = [];
    const rel: number[] = [];
    const cpu: number[] = [];
    let seed = 23;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    for (let i = 0; i < SAMPLES; i++) {
      const c0 = process.cpuUsage();
      const a = performance.now();
      const got = bare((await ipam.requestAddress({ poolId, address: '', options: {} })).address);
      req.push(performance.now() - a);
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1000);
      const k = rand(inUse.length);
      const victim = inUse[k]!;
      inUse[k] = got;
      const b = performance.now();
      await ipam.releaseAddress(poolId, `${victim}/${lease.subnet.len}`);
      rel.push(performance.now() - b);
    }
    if (new Set(inUse).size !== USED) throw new Error('churn: an address handed out twice');
    results.requestAddress = { ...summary(req), cpuMedianMs: r2(pct([...cpu].sort((x, y) => x - y), 50)) };
    results.releaseAddress = summary(rel);

    // 3. two allocators on one lease at once
    const race = async (im: Ipam) => {
      const out: string[] = [];
      await Promise.all([0, 1, 2, 3].map(async () => {
        for (let i = 0; i < RACE_EACH; i++) out.push(bare((await im.requestAddress({ poolId, address: '', options: {} })).address));
      }));
      return out;
    };
    const t3 = performance.now();
    const [ra, rb] = await Promise.all([race(ipam), race(ipam2)]);
    const raceMs = performance.now() - t3;
    const both = [...ra, ...rb, ...inUse];
    const records = await ov.addresses.list(lease.subnet);
    const duplicates = both.length - new Set(both).size;
    if (records.length !== both.length) throw new Error(`two allocators: ${records.length} records for ${both.length} addresses`);
    results.twoAllocators = { addresses: ra.length + rb.length, ms: Math.round(raceMs), duplicates };
    for (const a of [...ra, ...rb]) await ipam.releaseAddress(poolId, `${a}/${lease.subnet.len}`);

    // 4. the address audit, Docker holding exactly the USED endpoints
    const dockerOf = (held: string[]): EndpointsPort => ({
      ping: async () => undefined,
      endpoints: async (): Promise<DockerEndpoints> => ({
        addressesBySubnet: new Map([[pool, new Set(held)]]),
        endpointIds: new Set(held.map((a) => `ep-${parseIPv4(a).toString(16).padStart(64, '0')}`)),
      }),
    });
    const target = () => [{ name: 'default', subnet: () => lease.subnet, records: ov.addresses }];
    const audit = new AddressAudit(target, dockerOf(inUse), logger, { intervalMs: 0 });
    const rounds: number[] = [];
    for (let i = 0; i < AUDIT_ROUNDS; i++) {
      const a = performance.now();
      const r = await audit.runOnce();
      rounds.push(performance.now() - a);
      if (r.released.length || r.skipped.length) throw new Error(`audit released ${r.released.length}, skipped ${r.skipped.join(',')}`);
    }
    const gone = new Set(inUse.slice(0, ORPHANS));
    const later = Date.now() + AUDIT_GRACE_MS + 1000;
    const orphanAudit = new AddressAudit(target, dockerOf(inUse.filter((a) => !gone.has(a))), logger, { intervalMs: 0, now: () => later });
    const o0 = performance.now();
    const or = await orphanAudit.runOnce();
    const orphanMs = performance.now() - o0;
    if (or.released.length !== ORPHANS || !or.released.every((x) => gone.has(x.address))) throw new Error(`orphan round released ${or.released.length}`);
    results.audit = { records: USED, rounds: AUDIT_ROUNDS, ...summary(rounds), orphanRoundMs: r2(orphanMs), orphansReleased: or.released.length };
    await keeper.stop();
  } finally {
    await Promise.all([store.close(), store2.close()]);
    await etcd.cleanup();
  }

  results.loadAtEnd = r2(os.loadavg()[0]!);
  const etcdVersion = execFileSync('etcd', ['--version'], { encoding: 'utf8' }).split('\n')[0];
  const machine = `${os.cpus()[0]?.model ?? '?'} × ${os.cpus().length}, node ${process.version}, ${etcdVersion}, ${os.type()} ${os.release()}`;
  const f = results.fill as { ms: number };
  const q = results.requestAddress as { p50: number; p99: number; max: number; cpuMedianMs: number };
  const l = results.releaseAddress as { p50: number; p99: number; max: number };
  const t = results.twoAllocators as { addresses: number; ms: number; duplicates: number };
  const au = results.audit as { p50: number; max: number; orphanRoundMs: number };
  const rows: [string, string][] = [
    ['machine', machine],
    ['load average (1 min), start / end', `${String(results.loadAtStart)} / ${String(results.loadAtEnd)} (the machine is shared)`],
    [`lease`, `${String(results.pool)} (SubnetLen 20, 4,094 addresses)`],
    [`fill: ${USED} RequestAddress, ${FILL_CONCURRENCY} at a time`, `${f.ms} ms`],
    [`RequestAddress at ${USED} in use (${SAMPLES})`, `p50 ${q.p50} ms, p99 ${q.p99} ms, max ${q.max} ms (CPU median ${q.cpuMedianMs} ms)`],
    [`ReleaseAddress at ${USED} in use (${SAMPLES})`, `p50 ${l.p50} ms, p99 ${l.p99} ms, max ${l.max} ms`],
    [`two allocators, ${t.addresses} at once`, `${t.ms} ms, ${t.duplicates} duplicates`],
    [`address audit round, ${USED} records (${AUDIT_ROUNDS})`, `median ${au.p50} ms, max ${au.max} ms`],
    [`audit round releasing ${ORPHANS} orphans`, `${au.orphanRoundMs} ms`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log('\naddress bench (big leases)\n');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  console.log(`\n${JSON.stringify({ bench: 'addresses', machine, ...results })}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
