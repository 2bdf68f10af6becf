/**
 * probe-bench.ts — `npm run bench:probes` (issue 23, "Names and probes at scale"): the path
 * prober (src/reconcile/path-prober.ts) of one host probing N peers (default 200), its packets
 * per second and its memory, without a full lab.
 *
 *   npm run bench:probes                        200 peers, 20 s window (root; ≈ 40 s)
 *   npm run bench:probes -- --peers 256 --window 30
 *
 * Layout (all inside the scratch namespace `npm run bench:probes` starts with unshare --net):
 * - "host": this namespace; a veth end `pbh` with 10.250.0.0/32 (a host's overlay address is its
 *   subnet's .0) and a route to 10.250.0.0/16 on it. A child process (role `host`, node with
 *   --expose-gc) runs ONE PathProber exactly as the daemon does: its targets are this host's .0
 *   and the N peers' .0s, at PROBE_PORT 8479.
 * - "peers": a second scratch namespace (unshare --net, held by a `sleep` this bench starts and
 *   kills) with the veth's other end `pbp` carrying 10.250.1.0 … 10.250.N.0 /32. A child process
 *   (role `peers`) runs N PathProbers there, one per peer address, each with the host as its only
 *   peer: they echo the host's probes and probe the host, as N real peers' daemons would.
 * Measured in the host child: UDP datagrams out and in (/proc/self/net/snmp of the host's
 *   namespace, where nothing else uses UDP) over the window after 3 warm-up rounds, the child's
 *   CPU (process.cpuUsage) over the window, VmRSS/VmHWM (/proc/self/status) and live heap (after
 *   two forced GCs) before the prober starts and at the end, and the prober's own view (peers
 *   reachable, loss, median RTT from paths()).
 * Expected by design at N = 200 and a 2 s interval: 100 probes/s out + 100 replies/s in, and the
 * peers' 100 probes/s in + 100 replies/s out: 200 datagrams/s each way.
 * Bounded: N ≤ 256 (MAX_PEERS), window ≤ 120 s, every child killed at the end or after its lifetime.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { MAX_PEERS, PROBE_INTERVAL_MS, PathProber, type ProbeTarget } from '../src/reconcile/path-prober';
import { renderProbeRows, type ProbeResult } from './probe-report';

const PORT = 8479;
const ROOT = resolve(__dirname, '..');
const addr = (i: number): string => `10.250.${i}.0`;
const log = pino({ level: 'warn' });
const snmpUdp = (): { in: number; out: number; rcvbufErrors: number } => {
  const lines = readFileSync('/proc/self/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const [head, vals] = lines.map((l) => l.split(/\s+/).slice(1));
  const v = (k: string) => Number(vals![head!.indexOf(k)]);
  return { in: v('InDatagrams'), out: v('OutDatagrams'), rcvbufErrors: v('RcvbufErrors') };
};
const status = (): { rssKb: number; hwmKb: number } => {
  const s = readFileSync('/proc/self/status', 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
};
const gc = (globalThis as { gc?: () => void }).gc;
function memory(): { rssKb: number; hwmKb: number; heapUsed: number } {
  gc?.();
  gc?.();
  return { ...status(), heapUsed: process.memoryUsage().heapUsed };
}

/** Role `host`: one prober, N peers; prints one JSON line with the measures. */
async function host(n: number, windowS: number): Promise<void> {
  if (!gc) throw new Error('role host needs node --expose-gc');
  const peers = Array.from({ length: n }, (_, i) => ({ subnet: `${addr(i + 1)}/24`, publicIP: `198.51.100.${(i % 250) + 1}`, address: addr(i + 1) }));
  const targets = (): ProbeTarget[] => [{ overlay: 'bench', own: addr(0), peers }];
  memory(); // the modules' load garbage collected; V8 gives the pages back a little later
  await sleep(2000);
  const before = memory();
  const prober = new PathProber(targets, PORT, log);
  prober.start();
  await sleep(3 * PROBE_INTERVAL_MS + 500); // bind, then two rounds of probes
  const u0 = snmpUdp();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(windowS * 1000);
  const u1 = snmpUdp();
  const cpu = process.cpuUsage(c0);
  const s = (performance.now() - t0) / 1000;
  const rawRssKb = status().rssKb;
  const after = memory();
  const ps = prober.paths()[0]?.peers ?? [];
  const rtts = ps.map((p) => p.rttMs).filter((x): x is number => x !== null).sort((a, b) => a - b);
  const res: ProbeResult = {
    peers: n,
    windowS: Math.round(s * 10) / 10,
    outPerS: (u1.out - u0.out) / s,
    inPerS: (u1.in - u0.in) / s,
    rcvbufErrors: u1.rcvbufErrors - u0.rcvbufErrors,
    cpuMsPerS: (cpu.user + cpu.system) / 1000 / s,
    before,
    after: { ...after, rawRssKb },
    reachable: ps.filter((p) => p.state === 'reachable').length,
    lossMean: ps.reduce((a, p) => a + (p.loss ?? 1), 0) / Math.max(1, ps.length),
    rttMedianMs: rtts.length ? rtts[Math.floor((rtts.length - 1) / 2)]! : null,
  };
  await prober.stop();
  console.log(JSON.stringify(res));
}

/** Role `peers`: N probers, one per peer address, each probing (and echoing) the host. */
async function peersRole(n: number, lifetimeS: number): Promise<void> {
  setTimeout(() => process.exit(0), lifetimeS * 1000).unref();
  const ps = Array.from({ length: n }, (_, i) => new PathProber(() => [{ overlay: 'bench', own: addr(i + 1), peers: [{ subnet: `${addr(0)}/24`, publicIP: '198.51.100.254', address: addr(0) }] }], PORT, log));
  for (const p of ps) p.start();
  console.log(JSON.stringify({ started: n }));
  await new Promise<void>((r) => setTimeout(r, lifetimeS * 1000));
}

const sh = (...a: string[]): string => execFileSync(a[0]!, a.slice(1), { encoding: 'utf8', timeout: 30_000 });
function child(args: string[], pre: string[] = []): { c: ChildProcess; line: (timeoutMs: number) => Promise<string> } {
  const c = spawn(pre[0] ?? process.execPath, [...pre.slice(1), ...(pre.length ? [process.execPath] : []), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  createInterface({ input: c.stdout! }).on('line', (l) => lines.push(l));
  const line = async (timeoutMs: number) => {
    const end = Date.now() + timeoutMs;
    while (!lines.length) {
      if (Date.now() > end || c.exitCode !== null) throw new Error(`${args.join(' ')}: no output (exit ${c.exitCode})`);
      await sleep(100);
    }
    return lines.shift()!;
  };
  return { c, line };
}

async function parent(n: number, windowS: number): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('npm run bench:probes needs root (namespaces)');
  const devs = readFileSync('/proc/self/net/dev', 'utf8').split('\n').slice(2).map((l) => l.split(':')[0]!.trim()).filter(Boolean);
  if (devs.some((d) => d !== 'lo')) throw new Error(`run inside a scratch namespace (npm run bench:probes); this one has ${devs.join(', ')}`);
  const kids: ChildProcess[] = [];
  try {
    const holder = spawn('unshare', ['--net', 'sleep', String(windowS + 90)], { stdio: 'ignore' });
    kids.push(holder);
    await sleep(300);
    const pid = String(holder.pid);
    sh('ip', 'link', 'add', 'pbh', 'type', 'veth', 'peer', 'name', 'pbp', 'netns', pid);
    sh('ip', 'addr', 'add', `${addr(0)}/32`, 'dev', 'pbh');
    sh('ip', 'link', 'set', 'pbh', 'up');
    sh('ip', 'route', 'add', '10.250.0.0/16', 'dev', 'pbh');
    const batch = ['link set lo up', 'link set pbp up', ...Array.from({ length: n }, (_, i) => `addr add ${addr(i + 1)}/32 dev pbp`), `route add ${addr(0)}/32 dev pbp`];
    execFileSync('nsenter', ['-t', pid, '-n', 'ip', '-batch', '-'], { input: `${batch.join('\n')}\n`, timeout: 30_000 });
    const peers = child(['--import', 'tsx', __filename, 'peers', String(n), String(windowS + 60)], ['nsenter', '-t', pid, '-n']);
    kids.push(peers.c);
    await peers.line(60_000);
    const h = child(['--expose-gc', '--import', 'tsx', __filename, 'host', String(n), String(windowS)]);
    kids.push(h.c);
    const r = JSON.parse(await h.line((windowS + 60) * 1000)) as ProbeResult;
    const out = { date: new Date().toISOString(), loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '), result: r };
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
    const file = join(ROOT, 'bench/results', `probes-${out.date.replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify(out, null, 1)}\n`);
    console.log(renderProbeRows(r));
    console.log(`\nload average at the end: ${out.loadavg}; results: ${file}`);
  } finally {
    for (const k of kids) if (k.exitCode === null) k.kill('SIGKILL');
  }
}

function main(): Promise<void> {
  const [role, a, b] = process.argv.slice(2);
  if (role === 'host') return host(Number(a), Number(b));
  if (role === 'peers') return peersRole(Number(a), Number(b));
  const opt = (k: string, d: number) => (process.argv.includes(k) ? Number(process.argv[process.argv.indexOf(k) + 1]) : d);
  const n = opt('--peers', 200);
  const w = opt('--window', 20);
  if (!(Number.isInteger(n) && n >= 1 && n <= MAX_PEERS)) throw new Error(`--peers N: 1..${MAX_PEERS}`);
  if (!(w >= 5 && w <= 120)) throw new Error('--window S: 5..120');
  return parent(n, w);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  },
);
