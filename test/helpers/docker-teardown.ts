/**
 * Stopping what a Docker lab started, and finding what a crashed run left behind: process
 * liveness, SIGTERM-then-SIGKILL, the cgroups, mounts and plugin folders of a dockerd's data and
 * exec roots, and the sweep of `/tmp/of-docker-*` runs whose owner is gone. Split out of
 * docker-lab.ts (which re-exports sweepStaleDocker); no state of its own.
 */
import { existsSync, lstatSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './run';
import { sleep, waitFor } from './wait';

const PLUGIN_RUN = '/run/docker/plugins';

/** "pid starttime" of a process (the owner-file format of netns-lab), or undefined when gone. */
export function procStamp(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return `${pid} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
  } catch {
    return undefined;
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM the pids, wait up to `graceMs` for them to exit, SIGKILL the rest (and wait 3 s). */
export async function killAndWait(pids: number[], graceMs: number): Promise<void> {
  const signal = (sig: NodeJS.Signals): void => {
    for (const p of pids) {
      try {
        process.kill(p, sig);
      } catch {
        /* gone */
      }
    }
  };
  signal('SIGTERM');
  const gone = (): Promise<boolean> => Promise.resolve(pids.every((p) => !alive(p)));
  await waitFor(gone, { timeoutMs: graceMs, intervalMs: 100 }).catch(async () => {
    signal('SIGKILL');
    await waitFor(gone, { timeoutMs: 3_000, intervalMs: 100 }).catch(() => undefined);
  });
}

/** Pids whose command line names a path under `dir` (dockerd, containerd, shims of one daemon). */
export function pidsNaming(dir: string): number[] {
  const out: number[] = [];
  for (const f of readdirSync('/proc')) {
    if (!/^\d+$/.test(f)) continue;
    const pid = Number(f);
    if (pid === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${f}/cmdline`, 'utf8');
      if (cmd.split('\0').some((a) => a === dir || a.startsWith(`${dir}/`) || a.includes(`=${dir}/`))) out.push(pid);
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Cgroup folders of a cgroup parent, in every v1 hierarchy and in the v2 one. */
export function cgroupDirs(parent: string): string[] {
  const base = '/sys/fs/cgroup';
  const out: string[] = [];
  if (existsSync(join(base, parent, 'cgroup.procs'))) out.push(join(base, parent));
  try {
    for (const c of readdirSync(base)) {
      const p = join(base, c);
      if (lstatSync(p).isSymbolicLink() || !statSync(p).isDirectory()) continue;
      if (existsSync(join(p, parent, 'cgroup.procs'))) out.push(join(p, parent));
    }
  } catch {
    /* no cgroupfs */
  }
  return out;
}

/** Kill every process in the cgroup parent, then remove its cgroup folders (deepest first). */
export async function teardownCgroup(parent: string): Promise<void> {
  const dirs = cgroupDirs(parent);
  if (!dirs.length) return;
  const tree = (d: string): string[] => {
    const sub: string[] = [];
    try {
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) sub.push(...tree(join(d, e.name)));
    } catch {
      /* gone */
    }
    return [...sub, d];
  };
  const pids = new Set<number>();
  for (const d of dirs) {
    for (const c of tree(d)) {
      try {
        for (const p of readFileSync(join(c, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) pids.add(Number(p));
      } catch {
        /* gone */
      }
    }
  }
  if (pids.size) await killAndWait([...pids], 5_000);
  for (const d of dirs) {
    for (const c of tree(d)) {
      // Cgroup folders go with rmdir(2) (their control files cannot be unlinked); EBUSY while a
      // killed process is still being reaped.
      for (let i = 0; i < 20; i++) {
        try {
          rmdirSync(c);
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
          await sleep(100);
        }
      }
    }
  }
}

/** Mount points (from /proc/self/mountinfo) at or below one of `roots`, deepest first. */
export function mountsUnder(roots: string[]): string[] {
  let info = '';
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out = new Set<string>();
  for (const line of info.split('\n')) {
    const mp = line.split(' ')[4];
    if (!mp) continue;
    const p = unescape(mp);
    if (roots.some((r) => p === r || p.startsWith(`${r}/`))) out.add(p);
  }
  return [...out].sort((a, b) => b.length - a.length);
}

/** Ids of the managed plugins a data-root holds (their runtime folders are /run/docker/plugins/<id>). */
export function pluginIds(dataRoot: string): string[] {
  try {
    return readdirSync(join(dataRoot, 'plugins')).filter((f) => /^[0-9a-f]{64}$/.test(f));
  } catch {
    return [];
  }
}

/**
 * Tear down what a stopped (or crashed) daemon left: processes naming its folder, its cgroup
 * parent, mounts under its folder and under its plugins' runtime folders. Leaves the folder.
 */
export async function teardownFolder(dir: string, cgroupParent: string): Promise<void> {
  const leftovers = pidsNaming(dir);
  if (leftovers.length) await killAndWait(leftovers, 5_000);
  await teardownCgroup(cgroupParent);
  const pluginRuns = pluginIds(join(dir, 'data')).map((id) => join(PLUGIN_RUN, id));
  for (let round = 0; round < 3; round++) {
    const mps = mountsUnder([dir, ...pluginRuns]);
    if (!mps.length) break;
    for (const mp of mps) await run('umount', ['-l', mp], { check: false, timeoutMs: 10_000 });
  }
  for (const p of pluginRuns) rmSync(p, { recursive: true, force: true });
}

/**
 * Remove `/tmp/of-docker-*` folders of runs whose owner process is gone: stop their dockerd,
 * containerd and shims, orphaned containers, unmount, remove. Live runs are left alone.
 * @returns the folders removed
 */
export async function sweepStaleDocker(): Promise<string[]> {
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync('/tmp').filter((f) => f.startsWith('of-docker-'));
  } catch {
    return removed;
  }
  for (const name of names) {
    const root = join('/tmp', name);
    try {
      if (!lstatSync(root).isDirectory()) continue;
      let owner = '';
      try {
        owner = readFileSync(join(root, 'owner'), 'utf8').trim();
      } catch {
        owner = '';
      }
      if (owner && procStamp(Number(owner.split(' ')[0])) === owner) continue;
      const runId = name.slice('of-docker-'.length);
      for (const h of readdirSync(root)) {
        const dir = join(root, h);
        if (!/^h\d+$/.test(h) || !lstatSync(dir).isDirectory()) continue;
        await teardownFolder(dir, `/of-docker-${runId}-${h}`);
      }
      // The registry and anything else of that run.
      const rest = pidsNaming(root);
      if (rest.length) await killAndWait(rest, 5_000);
      for (const mp of mountsUnder([root])) await run('umount', ['-l', mp], { check: false, timeoutMs: 10_000 });
      rmSync(root, { recursive: true, force: true });
      removed.push(root);
    } catch {
      /* tolerate: the next sweep tries again */
    }
  }
  return removed;
}
