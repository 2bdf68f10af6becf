/**
 * store-bench.ts — the etcd control plane at flannel scale, against a real etcd it starts itself.
 *
 *   node --import tsx bench/store-bench.ts          (STORE_BENCH_LEASES=2000, STORE_BENCH_CONCURRENCY=8)
 *
 * Phases (config Network 10.0.0.0/13, SubnetLen 24: 2047 leasable subnets):
 *  1. acquire: N keepers with distinct PublicIPs acquire leases, C at a time, exactly as flanneld
 *     does (each attempt lists every lease, chooses, grant + txn). Each keeper is stopped once it
 *     holds its lease (stop never deletes). Lost create races are counted (they retry).
 *  1b. join: 5 more hosts acquire one at a time on top of the N leases (a real host's wait).
 *  2. snapshot: a fresh LeaseWatcher, from start() until its first snapshot (N+5 leases) is emitted.
 *  3. fan-in: a running watcher on a second prefix; N lease values put there (32 in flight); time
 *     from the first put until the N-th 'added' event.
 *  4. latency: S sequential puts of one lease value each; from just before put() until the
 *     watcher's 'added' callback for that key (WARMUP discarded); p50/p90/p99/max.
 *  5. join among many (STORE_BENCH_JOIN_AMONG, default 10000; 0 skips): that many leases seeded in
 *     etcd under a 10.0.0.0/10 network, then STORE_BENCH_JOINS (11) hosts acquire one at a time;
 *     STORE_BENCH_HERD=N adds N hosts acquiring 16 (STORE_BENCH_HERD_CONCURRENCY) at a time with the
 *     duplicate count (bench/store-join.ts). STORE_BENCH_LEASES=0 runs only these.
 * Output: a table with the machine (CPU model and count, node, etcd versions) and one JSON line.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import pino from 'pino';
import { cidr, formatCidr, parseIPv4 } from '../src/domain/ipv4';
import { encodeLeaseAttrs, leaseKeyOf } from '../src/domain/lease';
import { stableMac } from '../src/domain/mac';
import { parseNetworkConfig } from '../src/domain/network-config';
import { openStore, type Store } from '../src/store';
import { startEtcd } from '../test/helpers/etcd-server';
import { randomPrefix, vxlanAttrsFor } from '../test/helpers/store-fixtures';
import { herd, joinAmong, type HerdResult, type JoinAmongResult } from './store-join';

const LEASES = Number(process.env.STORE_BENCH_LEASES ?? 2000);
const CONCURRENCY = Number(process.env.STORE_BENCH_CONCURRENCY ?? 8);
const SAMPLES = Number(process.env.STORE_BENCH_SAMPLES ?? 300);
const WARMUP = 20;
const JOIN_AMONG = Number(process.env.STORE_BENCH_JOIN_AMONG ?? 10000);
const JOINS = Number(process.env.STORE_BENCH_JOINS ?? 11);
const HERD = Number(process.env.STORE_BENCH_HERD ?? 0);
const HERD_CONCURRENCY = Number(process.env.STORE_BENCH_HERD_CONCURRENCY ?? 16);
const CONFIG = '{"Network":"10.0.0.0/13","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1}}';

/** A synthetic PublicIP per host index (only etcd data). */
const hostIP = (i: number) => `${i < 250 ? '192.0.2' : i < 500 ? '198.51.100' : `203.0.${Math.floor(i / 250)}`}.${(i % 250) + 1}`;

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function main(): Promise<void> {
  // Count lost races from the keeper's debug log without printing it.
  let races = 0;
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      const s = chunk.toString('utf8');
      if (s.includes('lost the race')) races += s.split('lost the race').length - 1;
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const etcd = await startEtcd();
  const store = openStore({ etcdEndpoints: [etcd.endpoint], etcdPrefix: randomPrefix('bench') }, logger);
  const results: Record<string, unknown> = {};
  try {
    if (LEASES > 0) await smallPhases(store, results, () => races);
    if (JOIN_AMONG > 0) results.joinAmong = await joinAmong(store, JOIN_AMONG, JOINS);
    if (HERD > 0) results.herd = await herd(store, HERD, HERD_CONCURRENCY, Number(process.env.STORE_BENCH_HERD_BUDGET_S ?? 1200) * 1000);
  } finally {
    await store.close();
    await etcd.cleanup();
  }

  const etcdVersion = execFileSync('etcd', ['--version'], { encoding: 'utf8' }).split('\n')[0];
  const machine = `${os.cpus()[0]?.model ?? '?'} × ${os.cpus().length}, node ${process.version}, ${etcdVersion}, ${os.type()} ${os.release()}`;
  const rows: [string, string][] = [['machine', machine]];
  if (LEASES > 0) {
    const a = results.acquire as { ms: number; perSec: number; lostRaces: number };
    const jn = results.join as { medianMs: number; maxMs: number };
    const s = results.snapshot as { ms: number };
    const f = results.fanIn as { putsMs: number; lastEventMs: number };
    const l = results.latency as { p50: number; p90: number; p99: number; max: number };
    rows.push(
      [`acquire ${LEASES} leases (${CONCURRENCY} at a time)`, `${a.ms} ms (${a.perSec}/s, ${a.lostRaces} lost races retried)`],
      [`one more host joining ${LEASES} (5 samples)`, `median ${jn.medianMs} ms, max ${jn.maxMs} ms`],
      [`fresh watcher snapshot of ${LEASES + 5}`, `${s.ms} ms`],
      [`${LEASES} puts -> ${LEASES} 'added' events`, `${f.lastEventMs} ms (puts done at ${f.putsMs} ms, 32 in flight)`],
      [`put -> watcher callback (${SAMPLES} sequential)`, `p50 ${l.p50} ms, p90 ${l.p90} ms, p99 ${l.p99} ms, max ${l.max} ms`],
    );
  }
  const ja = results.joinAmong as JoinAmongResult | undefined;
  if (ja) rows.push([`one more host joining ${ja.existing} (/10, ${ja.samples} samples)`, `median ${ja.medianMs} ms, max ${ja.maxMs} ms, keeper CPU median ${ja.cpuMedianMs} ms (seeded in ${ja.seedMs} ms)`]);
  const h = results.herd as HerdResult | undefined;
  if (h) rows.push([`${h.hosts} hosts joining ${h.concurrency} at a time (/10)`, `${h.complete ? '' : `BUDGET OUT after ${h.joined} hosts: `}${h.ms} ms, ${h.duplicates} duplicate subnets, per host p50 ${h.p50Ms} ms, p99 ${h.p99Ms} ms`]);
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log('\nstore bench (etcd control plane)\n');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  console.log(`\n${JSON.stringify({ bench: 'store', machine, ...results })}`);
}

async function smallPhases(store: Store, results: Record<string, unknown>, races: () => number): Promise<void> {
  {
    const config = parseNetworkConfig(CONFIG);
    const ov = store.overlay();

    // 1. acquire
    let next = 0;
    const subnets = new Set<string>();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < LEASES; i = next++) {
          const k = ov.keeper({ publicIP: hostIP(i), attrsFor: vxlanAttrsFor(hostIP(i)), ttlSec: 3600, renewMarginSec: 600 });
          const lease = await k.acquire(config, AbortSignal.timeout(120_000));
          subnets.add(formatCidr(lease.subnet));
          await k.stop();
        }
      }),
    );
    const acquireMs = performance.now() - t0;
    if (subnets.size !== LEASES) throw new Error(`expected ${LEASES} distinct subnets, got ${subnets.size}`);
    results.acquire = { leases: LEASES, concurrency: CONCURRENCY, ms: Math.round(acquireMs), perSec: Math.round(LEASES / (acquireMs / 1000)), lostRaces: races() };

    // 1b. one more host joining the full cluster, alone (what a real host waits for)
    const joins: number[] = [];
    for (let j = 0; j < 5; j++) {
      const ip = hostIP(LEASES + j);
      const k = ov.keeper({ publicIP: ip, attrsFor: vxlanAttrsFor(ip), ttlSec: 3600, renewMarginSec: 600 });
      const tj = performance.now();
      await k.acquire(config, AbortSignal.timeout(30_000));
      joins.push(performance.now() - tj);
      await k.stop();
    }
    joins.sort((x, y) => x - y);
    results.join = { existing: LEASES, samples: joins.length, medianMs: Math.round(joins[2] * 10) / 10, maxMs: Math.round(joins[4] * 10) / 10 };

    // 2. snapshot
    const w = ov.leases();
    const t1 = performance.now();
    await w.start();
    const snapshotMs = performance.now() - t1;
    if (w.leases().length !== LEASES + 5) throw new Error(`snapshot has ${w.leases().length} leases`);
    await w.stop();
    results.snapshot = { leases: LEASES + 5, ms: Math.round(snapshotMs) };

    // 3. fan-in
    const ov2 = store.overlay(randomPrefix('bench'));
    const w2 = ov2.leases();
    await w2.start();
    let added = 0;
    let allAdded!: () => void;
    const done = new Promise<void>((r) => (allAdded = r));
    w2.on('added', () => {
      if (++added === LEASES) allAdded();
    });
    const puts = Array.from({ length: LEASES }, (_, i) => {
      const subnet = cidr((parseIPv4('10.0.1.0') + i * 256) >>> 0, 24);
      const attrs = { publicIP: hostIP(i), backendType: 'vxlan', vxlan: { vni: 1, vtepMac: stableMac('bench', i) } };
      return { key: ov2.keys.leaseKey(subnet), value: encodeLeaseAttrs(attrs) };
    });
    let p = 0;
    const t2 = performance.now();
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let i = p++; i < puts.length; i = p++) await store.client.put(puts[i].key).value(puts[i].value);
      }),
    );
    const writtenMs = performance.now() - t2;
    await done;
    const fanInMs = performance.now() - t2;
    results.fanIn = { events: LEASES, putsMs: Math.round(writtenMs), lastEventMs: Math.round(fanInMs) };

    // 4. latency put -> watcher callback
    const waiting = new Map<string, (t: number) => void>();
    w2.on('added', (e) => waiting.get(leaseKeyOf(e.lease.subnet))?.(performance.now()));
    const lat: number[] = [];
    for (let i = 0; i < WARMUP + SAMPLES; i++) {
      const subnet = cidr((parseIPv4('10.7.0.0') + (i % 200) * 256) >>> 0, 24);
      const value = encodeLeaseAttrs({ publicIP: hostIP(i), backendType: 'vxlan', vxlan: { vni: 1, vtepMac: stableMac('lat', i) } });
      const seen = new Promise<number>((r) => waiting.set(leaseKeyOf(subnet), r));
      const start = performance.now();
      await store.client.put(ov2.keys.leaseKey(subnet)).value(value);
      const at = await seen;
      if (i >= WARMUP) lat.push(at - start);
    }
    await w2.stop();
    lat.sort((a, b) => a - b);
    const r2 = (n: number) => Math.round(n * 100) / 100;
    results.latency = { samples: SAMPLES, p50: r2(pct(lat, 50)), p90: r2(pct(lat, 90)), p99: r2(pct(lat, 99)), max: r2(lat[lat.length - 1]) };
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
