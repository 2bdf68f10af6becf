/**
 * encrypted.ts — what the overlay benchmark needs for issue 22's encrypted rows besides the paths
 * themselves: the CPU cost of a measurement, the wireguard-go processes of a path, and the two
 * encrypted paths it cannot measure here (kernel WireGuard, swarm's `--opt encrypted`), tried and
 * described instead.
 *
 * Design note:
 * - CPU: /proc/stat's `cpu` line (all CPUs) before and after a measurement; busy = every field but
 *   idle and iowait (user, nice, system, irq, softirq, steal; guest is inside user). Busy cores =
 *   Δbusy ÷ Δtotal × CPUs. It is the whole machine's CPU: both hosts, iperf3 on both ends, the
 *   daemons and whatever else runs on this shared machine, so it compares paths measured the same
 *   way in one run, and is no absolute cost of a path.
 * - wireguard-go: the processes whose command is `wireguard-go <dev>` in the given network
 *   namespaces (by inode, so another lab's wireguard-go on this machine is not counted); their
 *   utime + stime from /proc/<pid>/stat in clock ticks (CLK_TCK from getconf).
 * - Kernel WireGuard: the kernel config (/proc/config.gz) and an `ip link add … type wireguard` in
 *   h1's namespace (deleted again if it was made). Swarm encrypted: one `docker network create -d
 *   overlay --opt encrypted --attachable`, a container on each host, pings for 20 s; whatever
 *   happens is a note, never a crash, and containers made here are removed here.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import { gunzipSync } from 'node:zlib';
import type { Host } from '../test/helpers/netns-lab';
import { run } from '../test/helpers/run';
import { waitFor } from '../test/helpers/wait';
import { startContainer, type BenchContainer, type BenchLab } from './lab';

/** Busy and total jiffies of all CPUs together (/proc/stat's first line). */
export function cpuJiffies(): { busy: number; total: number } {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  return { busy: user + nice + system + irq + softirq + steal, total: user + nice + system + idle + iowait + irq + softirq + steal };
}

/** Whole-machine busy cores between two {@link cpuJiffies} samples. */
export function busyCores(a: { busy: number; total: number }, b: { busy: number; total: number }): number {
  const dt = b.total - a.total;
  return dt > 0 ? ((b.busy - a.busy) / dt) * os.cpus().length : NaN;
}

let clkTck: number | undefined;
/** Clock ticks per second of /proc/<pid>/stat's times. */
export function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** Pids of `wireguard-go <dev>` running in one of these network namespaces (paths such as /var/run/netns/x or /proc/N/ns/net). */
export function wireguardGoPids(netns: string[], dev: string): number[] {
  const want = new Set(netns.map((p) => statSync(p).ino));
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (cmd[0]?.endsWith('wireguard-go') && cmd[1] === dev && want.has(statSync(`/proc/${d}/ns/net`).ino)) out.push(Number(d));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

/** utime + stime of these processes, in seconds (a process gone is 0). */
export function processCpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      ticks += Number(rest[11]) + Number(rest[12]); // fields 14 and 15: utime, stime
    } catch {
      // gone
    }
  }
  return ticks / ticksPerSecond();
}

/** Why the kernel WireGuard path is not measured here (or that it could be): kernel config and a link-add probe in h1. */
export async function kernelWireguard(h1: Host): Promise<{ present: boolean; note: string }> {
  let config = 'no /proc/config.gz';
  if (existsSync('/proc/config.gz')) {
    const text = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8');
    config = ['CONFIG_WIREGUARD', 'CONFIG_INET_ESP'].map((k) => new RegExp(`^${k}=[ym]`, 'm').test(text) ? `${k}=y/m` : `${k} not set`).join(', ');
  }
  const dev = `wgp${process.pid % 100000}`;
  const r = await run('ip', ['-n', h1.ns, 'link', 'add', dev, 'type', 'wireguard'], { check: false, timeoutMs: 10_000 });
  if (r.code === 0) await run('ip', ['-n', h1.ns, 'link', 'del', dev], { check: false, timeoutMs: 10_000 });
  const probe = r.code === 0 ? 'ip link add type wireguard: made (and deleted)' : `ip link add type wireguard: ${r.stderr.trim() || `exit ${r.code}`}`;
  const present = r.code === 0;
  const note = present
    ? `kernel WireGuard: present on kernel ${os.release()} (${config}; ${probe}), but not measured: overlay-flannel's kernel path (generic netlink) is not built and runs wireguard-go there too (docs/wireguard.md), and this bench has no hand-built kernel WireGuard path`
    : `kernel WireGuard: not measured: kernel ${os.release()} has none (${config}; ${probe}); overlay-flannel and hand-wg run wireguard-go (userspace)`;
  return { present, note };
}

const SWENC = 'swenc';

/**
 * Swarm's encrypted overlay, tried once: create it, a container on each host, pings for 20 s.
 * Returns a note on what happened, and the pair when traffic passed (then it is measured).
 */
export async function swarmEncrypted(b: BenchLab): Promise<{ note: string; pair?: [BenchContainer, BenchContainer] }> {
  const what = '`docker network create -d overlay --opt encrypted --attachable`';
  const last = (t: string) => t.trim().split('\n').slice(-1)[0] ?? '';
  const r = await b.d1.docker(['network', 'create', '-d', 'overlay', '--opt', 'encrypted', '--attachable', SWENC], { timeoutMs: 60_000 });
  if (r.code !== 0) return { note: `swarm encrypted overlay: ${what} failed: ${last(r.stderr)}` };
  const made: BenchContainer[] = [];
  try {
    for (const [d, name] of [[b.d1, `${SWENC}-a`], [b.d2, `${SWENC}-b`]] as const) made.push(await startContainer(d, name, SWENC));
  } catch (e) {
    await Promise.all(made.map((c) => c.docker.docker(['rm', '-f', c.name], { timeoutMs: 60_000 })));
    return { note: `swarm encrypted overlay: ${what} passed, but a container could not attach to it: ${last(e instanceof Error ? e.message : String(e))}` };
  }
  const [a, z] = made as [BenchContainer, BenchContainer];
  const passed = await waitFor(async () => (await run('nsenter', [`--net=/proc/${a.pid}/ns/net`, 'ping', '-n', '-c', '1', '-W', '1', z.ip], { check: false, timeoutMs: 5_000 })).code === 0, { timeoutMs: 20_000, intervalMs: 500, what: 'ping over the encrypted swarm overlay' }).then(
    () => true,
    () => false,
  );
  if (passed) return { note: `swarm encrypted overlay: ${what} passed and pings pass (${a.ip} on h1 → ${z.ip} on h2): measured as swarm-enc`, pair: [a, z] };
  // dockerd's last line about it on each host: its level, message head and error (the SA dump between them is long).
  const brief = (l: string) => {
    const msg = /msg="((?:[^"\\]|\\.)*)"/.exec(l)?.[1];
    const err = /(?:err|error)="((?:[^"\\]|\\.)*)"/.exec(l)?.[1];
    return msg ? `${msg.slice(0, 40)}… ${err ?? msg.slice(msg.lastIndexOf(': ') + 2)}` : l.slice(-160);
  };
  const logs = [b.d1, b.d2].flatMap((d) => d.logs().split('\n').filter((l) => /xfrm|encrypt|esp\b|ipsec/i.test(l)).slice(-1).map((l) => `${d.host.ns}: ${brief(l)}`));
  await Promise.all(made.map((c) => c.docker.docker(['rm', '-f', c.name], { timeoutMs: 60_000 })));
  return { note: `swarm encrypted overlay: ${what} passed and a container attached on each host (${a.ip} on h1, ${z.ip} on h2), but no ping passed in 20 s${logs.length ? `; dockerd: ${logs.join(' | ')}` : ''}` };
}
