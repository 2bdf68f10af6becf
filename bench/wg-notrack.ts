/**
 * wg-notrack.ts — `npm run bench:wg-notrack`: does connection tracking cost anything on the
 * wireguard path here, where wireguard-go (userspace) carries every packet? Issue 22 left the
 * wireguard overlays without a NOTRACK rule for the tunnel's UDP and without the nftables fast
 * path; this measures whether either could buy throughput before anything is built.
 *
 * Design note:
 * - The path is bench/hand-paths.ts's "hand wireguard" (flanneld's wireguard model by hand:
 *   wireguard-go + wg on two lab hosts, a route per peer, flannel's bridge and a namespace behind
 *   it on each host), so nothing of the product is in the way and the rules are ours to toggle.
 *   Each host also gets flannel's masquerade rule for its subnet (nat POSTROUTING), as a real host
 *   has (Docker's and flannel's nat rules), so that conntrack runs in its namespace at all.
 * - Three conditions, interleaved round by round (stats.interleave) so the shared machine's drift
 *   hits each alike: `tracked` (no raw rules), `inner` (what the product's NOTRACK=true writes on a
 *   wireguard overlay today: overlay ↔ overlay packets untracked, domain/notrack-rules.ts with no
 *   tunnel endpoint), `inner+udp` (also the tunnel's UDP to and from the listen port, what a
 *   wireguard NOTRACK would add, as vxlan's port rules), and `no-hop`: tracked, but iperf3 between
 *   the hosts' own tunnel addresses (`10.253.N.0` on the device), so no veth, bridge or forwarding
 *   hop on either host: more than any fast path could take away (the fast path still crosses the
 *   veth), so its gain over `tracked` bounds what a wireguard fast path could buy. Each run: iperf3
 *   TCP, 1 stream, h1 → h2 (the namespaces behind the bridges, or the hosts for no-hop), and
 *   wireguard-go's utime+stime on both hosts (encrypted.ts) over the run.
 * - Evidence that each condition does what it says, from h2 after its first run of the condition:
 *   conntrack entries of the tunnel's UDP and of inner flows (/proc/net/nf_conntrack; entries of
 *   earlier runs may linger, so only the first `tracked` run is a clean count) and the packet
 *   counters of the raw rules (`iptables-save -c`), which must have matched under `inner+udp`.
 * Output: a table on stdout and bench/results/wg-notrack-<time>.json. Root; under `unshare --net`
 * (the npm script); everything lives in the lab's namespaces and goes with lab.destroy().
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createLab, type Host, type Lab } from '../test/helpers/netns-lab';
import { run } from '../test/helpers/run';
import { busyCores, cpuJiffies, processCpuSeconds, wireguardGoPids } from './encrypted';
import { HAND_WG_PORT, handWireguard } from './hand-paths';
import { ROOT } from './lab';
import { interleave, median, round } from './stats';
import { iperf, reachable, Servers, type Path } from './workloads';

const CONDITIONS = ['tracked', 'inner', 'inner+udp', 'no-hop'] as const;
type Condition = (typeof CONDITIONS)[number];
const NET = '10.253.0.0/16'; // hand-paths.ts's wireguard network
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const SECONDS = Number(process.env.SECONDS_PER_RUN ?? 4);

const inNs = (h: Host, cmd: string, ...a: string[]) => run('nsenter', [`--net=${h.nsPath}`, cmd, ...a], { timeoutMs: 10_000 });

/** The raw table of `h` for `c` (flushed first; only this lab's namespaces are touched). */
async function setRaw(h: Host, c: Condition): Promise<void> {
  await inNs(h, 'iptables', '-t', 'raw', '-F');
  if (c === 'tracked' || c === 'no-hop') return;
  const sub = `10.253.${h.n}.0/24`;
  await inNs(h, 'iptables', '-t', 'raw', '-A', 'PREROUTING', '-s', sub, '-d', sub, '-j', 'ACCEPT');
  await inNs(h, 'iptables', '-t', 'raw', '-A', 'PREROUTING', '-s', NET, '-d', NET, '-j', 'CT', '--notrack');
  if (c === 'inner') return;
  await inNs(h, 'iptables', '-t', 'raw', '-A', 'PREROUTING', '-d', `${h.ip}/32`, '-p', 'udp', '--dport', String(HAND_WG_PORT), '-j', 'CT', '--notrack');
  await inNs(h, 'iptables', '-t', 'raw', '-A', 'OUTPUT', '-s', `${h.ip}/32`, '-p', 'udp', '--dport', String(HAND_WG_PORT), '-j', 'CT', '--notrack');
}

/** Evidence from `h`'s namespace: its conntrack entries for the tunnel's UDP port and for inner
 *  (10.253/16) flows (/proc/net/nf_conntrack), and the packets each raw-table rule matched. */
async function evidence(h: Host): Promise<{ tunnelEntries: number; innerEntries: number; rawRules: string[] }> {
  const ct = (await run('nsenter', [`--net=${h.nsPath}`, 'cat', '/proc/net/nf_conntrack'], { timeoutMs: 10_000 })).stdout.split('\n');
  const raw = (await inNs(h, 'iptables-save', '-c', '-t', 'raw')).stdout.split('\n').filter((l) => l.startsWith('['));
  return { tunnelEntries: ct.filter((l) => l.includes(`dport=${HAND_WG_PORT}`)).length, innerEntries: ct.filter((l) => /src=10\.253\./.test(l)).length, rawRules: raw };
}

interface Sample { condition: Condition; gbps: number; wgCores: number; machineCores: number }

async function main(): Promise<void> {
  let lab: Lab | undefined;
  const servers = new Servers();
  try {
    lab = await createLab('wgn');
    const h1 = await lab.addHost(1);
    const h2 = await lab.addHost(2);
    const { ends, dev } = await handWireguard(lab, h1, h2);
    for (const h of [h1, h2]) await inNs(h, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', `10.253.${h.n}.0/24`, '!', '-d', NET, '-j', 'MASQUERADE');
    const path: Path = { id: 'hand-wg', label: 'hand wireguard', kind: 'reference', a: ends[0], b: ends[1] };
    // no-hop: iperf3 between the hosts' own tunnel addresses (10.253.N.0 on the device), no veth, bridge or forwarding
    const hostPath: Path = { id: 'hand-wg-host', label: 'hand wireguard, host to host', kind: 'reference', a: { netns: h1.nsPath, ip: '10.253.1.0' }, b: { netns: h2.nsPath, ip: '10.253.2.0' } };
    const lifetime = ROUNDS * CONDITIONS.length * (SECONDS + 15) + 120;
    await Promise.all([servers.start(path, lifetime), servers.start(hostPath, lifetime)]);
    await reachable(path);
    await reachable(hostPath);
    const pids = wireguardGoPids([h1.nsPath, h2.nsPath], dev);
    if (pids.length !== 2) throw new Error(`expected the two wireguard-go of ${dev}, found ${pids.length}`);
    const seen: Record<string, Awaited<ReturnType<typeof evidence>>> = {};
    const samples: Sample[] = [];
    for (const c of interleave(CONDITIONS, ROUNDS)) {
      for (const h of [h1, h2]) await setRaw(h, c);
      const cpu0 = cpuJiffies(), wg0 = processCpuSeconds(pids), t0 = performance.now();
      const gbps = await iperf(c === 'no-hop' ? hostPath : path, SECONDS, 1);
      const wall = (performance.now() - t0) / 1000;
      const wgCores = (processCpuSeconds(pids) - wg0) / wall;
      samples.push({ condition: c, gbps, wgCores, machineCores: busyCores(cpu0, cpuJiffies()) });
      seen[c] ??= await evidence(h2);
      console.log(`${c.padEnd(10)} ${gbps.toFixed(3)} Gbit/s  wireguard-go ${wgCores.toFixed(2)} cores`);
    }
    const rows = CONDITIONS.map((c) => {
      const s = samples.filter((x) => x.condition === c);
      const g = median(s.map((x) => x.gbps));
      return { condition: c, runs: s.length, medianGbps: round(g, 3), min: round(Math.min(...s.map((x) => x.gbps)), 3), max: round(Math.max(...s.map((x) => x.gbps)), 3), wgCoresPerGbps: round(median(s.map((x) => x.wgCores / x.gbps)), 2), machineCores: round(median(s.map((x) => x.machineCores)), 2) };
    });
    const base = rows[0]!.medianGbps;
    console.log('\ncondition   runs  median Gbit/s [min–max]   ÷ tracked  wireguard-go cores/Gbit/s  machine busy cores');
    for (const r of rows) console.log(`${r.condition.padEnd(10)}  ${r.runs}     ${r.medianGbps} [${r.min}–${r.max}]       ${(r.medianGbps / base).toFixed(2)}       ${r.wgCoresPerGbps}                      ${r.machineCores}`);
    for (const c of CONDITIONS.slice(0, 3)) console.log(`h2 after the first ${c} run: ${JSON.stringify(seen[c])}`);
    const out = join(ROOT, 'bench/results', `wg-notrack-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(out, JSON.stringify({ when: new Date().toISOString(), loadavg: os.loadavg(), cpus: os.cpus().length, seconds: SECONDS, rounds: ROUNDS, rows, evidence: seen, samples }, null, 2) + '\n');
    console.log(`results: ${out}`);
  } finally {
    await servers.stopAll();
    await lab?.destroy();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack ?? e.message : String(e));
  process.exitCode = 1;
});
