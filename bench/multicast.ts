/**
 * multicast.ts — the multicast phase of the overlay benchmark (issue 17): datagrams at fixed rates
 * from a container on h1 to group members on h1 and h2, per network (overlay-flannel's routed
 * vxlan network, Docker's swarm overlay; flannel carries none either): loss, duplicates and
 * one-way latency at each member. mcast-probe.ts does the sending and counting, with the host's
 * node entered into each container's network namespace (as every workload of the bench).
 *
 * Design note: one more container on h1 joins the pair of the network (sender = the pair's h1
 * end, members = the new h1 container and the pair's h2 end). Receivers are started and waited
 * for ("ready" = joined) before the sender; each reports 1.5 s after its last datagram (or at a
 * deadline of the send time plus 15 s when nothing comes). Every process
 * runs under `timeout`, so nothing outlives a crashed run. A network that carries nothing shows
 * 100 % loss (received 0), which is the point of the comparison.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { run } from '../test/helpers/run';
import { waitFor } from '../test/helpers/wait';
import type { Host } from '../test/helpers/netns-lab';
import { ROOT, startContainer, type BenchContainer, type BenchLab } from './lab';

const PROBE = join(ROOT, 'bench/mcast-probe.ts');
const GROUP = '239.77.7.7';
const PORT = 5007;

export interface MulticastMember {
  host: string;
  received: number;
  unique: number;
  duplicates: number;
  latUs: { avg: number | null; p50: number | null; p99: number | null };
}

export interface MulticastResult {
  net: string;
  label: string;
  rate: number;
  count: number;
  size: number;
  sentSeconds: number;
  members: MulticastMember[];
}

const probe = (pid: number, args: string[], seconds: number): string[] => ['timeout', String(seconds + 10), 'nsenter', `--net=/proc/${pid}/ns/net`, process.execPath, '--import', 'tsx', PROBE, ...args];

/** Start a receiver in container `c`; resolves once it has joined, with `done` (its JSON when it ends).
 *  (`done` is wrapped: an async function returning a promise would wait for it.) */
async function receiver(c: BenchContainer, seconds: number): Promise<{ done: Promise<MulticastMember> }> {
  const [cmd, ...args] = probe(c.pid, ['recv', GROUP, String(PORT), String(seconds)], seconds);
  const child = spawn(cmd!, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<MulticastMember>((resolve, reject) =>
    child.once('close', () => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (!line) reject(new Error(`receiver in ${c.name}: ${out.slice(-300)}`));
      else resolve({ host: c.docker.host.ns, ...(JSON.parse(line) as Omit<MulticastMember, 'host'>) });
    }),
  );
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`receiver in ${c.name} exited: ${out}`);
    return out.includes('ready');
  }, { timeoutMs: 30_000, intervalMs: 50, what: `receiver in ${c.name} joined` });
  return { done };
}

/** The extra h1 member of `net` (started once). */
export async function multicastMember(b: BenchLab, net: string): Promise<BenchContainer> {
  return startContainer(b.d1, `bench-mc-${net}`, net);
}

/** `count` datagrams of `size` bytes at `rate`/s from `sender` to the members. */
export async function multicastRun(net: string, label: string, sender: BenchContainer, members: BenchContainer[], rate: number, count: number, size = 1000): Promise<MulticastResult> {
  const seconds = Math.ceil(count / rate) + 15; // the receivers' deadline: the sender's node start-up is slow on a busy machine
  const results = await Promise.all(members.map((m) => receiver(m, seconds)));
  const [cmd, ...args] = probe(sender.pid, ['send', GROUP, String(PORT), String(rate), String(count), String(size)], seconds);
  const sent = JSON.parse((await run(cmd!, args, { cwd: ROOT, timeoutMs: (seconds + 15) * 1000 })).stdout.trim().split('\n').pop()!) as { sent: number; seconds: number };
  return { net, label, rate, count: sent.sent, size, sentSeconds: sent.seconds, members: await Promise.all(results.map((r) => r.done)) };
}

/** One line on what h1's kernel holds for multicast: the table's chains and the flood entries. */
export async function multicastKernelView(h: Host): Promise<string> {
  const t = await h.exec('nft', ['list', 'table', 'netdev', 'overlay-flannel-mcast'], { timeoutMs: 10_000 });
  const chains = t.code === 0 ? [...t.stdout.matchAll(/chain (\S+) \{/g)].map((m) => m[1]).join(' ') : `no table (${t.stderr.trim()})`;
  const fdb = await h.exec('bridge', ['fdb', 'show'], { timeoutMs: 10_000 });
  const flood = fdb.stdout.split('\n').filter((l) => l.startsWith('00:00:00:00:00:00')).map((l) => l.replace(/ self.*$/, '')).join('; ');
  return `chains: ${chains}; flood entries: ${flood || 'none'}`;
}
