/**
 * store-join.ts — bench:store's joins at ten thousand hosts (issue 23), on its own key prefix:
 *  - among: AMONG leases are seeded straight into etcd (flannel's value bytes, transactions of
 *    100), Network 10.0.0.0/10 in /24s (16,383 leasable subnets); then JOINS more hosts acquire
 *    one at a time through the real keeper (list, choose, grant + create-if-absent), each timed
 *    from acquire() to its return.
 *  - herd (STORE_BENCH_HERD=N): N hosts acquire on a fresh prefix of the same network, CONCURRENCY
 *    at a time (default 16), each keeper stopped once it holds its lease (stop never deletes);
 *    total time and the number of duplicate subnets (must be 0) are reported; a run over its
 *    budget stops and reports the hosts that joined by then.
 */
import { performance } from 'node:perf_hooks';
import { cidr, formatCidr, parseIPv4 } from '../src/domain/ipv4';
import { encodeLeaseAttrs } from '../src/domain/lease';
import { stableMac } from '../src/domain/mac';
import { parseNetworkConfig } from '../src/domain/network-config';
import type { Store } from '../src/store';
import { randomPrefix, vxlanAttrsFor } from '../test/helpers/store-fixtures';

const CONFIG = '{"Network":"10.0.0.0/10","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1}}';
const TXN_OPS = 100; // etcd's --max-txn-ops is 128

/** A synthetic PublicIP per host index: 198.18.0.0/15, the benchmarking range (only etcd data, nothing is sent). */
export const bigHostIP = (i: number): string => `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`;

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const r1 = (n: number): number => Math.round(n * 10) / 10;

export interface JoinAmongResult {
  existing: number;
  samples: number;
  seedMs: number;
  medianMs: number;
  maxMs: number;
  allMs: number[];
  /** This process's CPU (user + system) per join, median: the keeper's own work, without etcd's. */
  cpuMedianMs: number;
}

export async function joinAmong(store: Store, among: number, joins: number): Promise<JoinAmongResult> {
  const config = parseNetworkConfig(CONFIG);
  const ov = store.overlay(randomPrefix('bench-join'));
  const grant = await store.client.leaseClient.leaseGrant({ TTL: 3600 });
  const s0 = performance.now();
  for (let first = 0; first < among; first += TXN_OPS) {
    const ops = [];
    for (let i = first; i < Math.min(first + TXN_OPS, among); i++) {
      const subnet = cidr((parseIPv4('10.0.0.0') + (i + 1) * 256) >>> 0, 24);
      const value = encodeLeaseAttrs({ publicIP: bigHostIP(i), backendType: 'vxlan', vxlan: { vni: 1, vtepMac: stableMac('bench-join', i) } });
      ops.push({ request_put: { key: Buffer.from(ov.keys.leaseKey(subnet)), value: Buffer.from(value), lease: grant.ID } });
    }
    await store.client.kv.txn({ success: ops });
  }
  const seedMs = performance.now() - s0;
  const all: number[] = [];
  const cpu: number[] = [];
  for (let j = 0; j < joins; j++) {
    const ip = bigHostIP(among + j);
    const k = ov.keeper({ publicIP: ip, attrsFor: vxlanAttrsFor(ip), ttlSec: 3600, renewMarginSec: 600 });
    const t = performance.now();
    const c0 = process.cpuUsage();
    await k.acquire(config, AbortSignal.timeout(60_000));
    all.push(performance.now() - t);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
    await k.stop();
  }
  const sorted = [...all].sort((a, b) => a - b);
  return { existing: among, samples: joins, seedMs: Math.round(seedMs), medianMs: r1(pct(sorted, 50)), maxMs: r1(sorted[sorted.length - 1] ?? NaN), allMs: all.map(r1), cpuMedianMs: r1(pct(cpu.sort((a, b) => a - b), 50)) };
}

export interface HerdResult {
  hosts: number;
  /** Hosts that held a lease when the run ended (all of them, unless the budget ran out). */
  joined: number;
  complete: boolean;
  concurrency: number;
  ms: number;
  duplicates: number;
  p50Ms: number;
  p99Ms: number;
}

export async function herd(store: Store, hosts: number, concurrency: number, budgetMs: number): Promise<HerdResult> {
  const config = parseNetworkConfig(CONFIG);
  const ov = store.overlay(randomPrefix('bench-herd'));
  const seen = new Map<string, number>();
  const each: number[] = [];
  let next = 0;
  const until = Date.now() + budgetMs;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < hosts; i = next++) {
        if (Date.now() > until) return; // over budget: report the hosts that joined (complete: false)
        const ip = bigHostIP(i);
        const k = ov.keeper({ publicIP: ip, attrsFor: vxlanAttrsFor(ip), ttlSec: 3600, renewMarginSec: 600 });
        const t = performance.now();
        const lease = await k.acquire(config, AbortSignal.timeout(120_000));
        each.push(performance.now() - t);
        const s = formatCidr(lease.subnet);
        seen.set(s, (seen.get(s) ?? 0) + 1);
        await k.stop();
      }
    }),
  );
  const ms = performance.now() - t0;
  const duplicates = [...seen.values()].reduce((n, c) => n + (c - 1), 0);
  each.sort((a, b) => a - b);
  return { hosts, joined: each.length, complete: each.length === hosts, concurrency, ms: Math.round(ms), duplicates, p50Ms: r1(pct(each, 50)), p99Ms: r1(pct(each, 99)) };
}
