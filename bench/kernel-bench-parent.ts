/**
 * kernel-bench-parent.ts — the kernel benchmark's outer process: it never touches the network of
 * the namespace it runs in. It re-runs kernel-bench.ts under `unshare --net` (a scratch network
 * namespace that goes away with its last process), waits for it with a hard limit, and then kills
 * whatever etcd or daemon process a hard-killed child left behind.
 *
 * Design note: the child records each process it starts in a pid file ({@link recordPid}) as
 * "<pid> <marker>", where the marker is a string that process's command line must contain; the
 * parent kills a recorded pid only if its /proc cmdline still holds the marker (a reused pid is
 * left alone). Split out of kernel-bench.ts.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { SCALE } from './kernel-bench-peers';

/** Set in the child's environment: it was re-executed under `unshare --net`. */
export const CHILD_ENV = 'OVERLAY_FLANNEL_KERNEL_BENCH_CHILD';
const PIDFILE_ENV = 'OVERLAY_FLANNEL_KERNEL_BENCH_PIDFILE';
const PARENT_LIMIT_MS = 175_000 * SCALE; // the child's budget (150 s × SCALE) and its cleanup

/** Kill what a hard-killed child left behind: pids recorded with a marker their cmdline must hold. */
function killLeftovers(pidfile: string): void {
  let text = '';
  try {
    text = readFileSync(pidfile, 'utf8');
  } catch {
    return;
  }
  for (const line of text.split('\n')) {
    const [pidText, marker] = line.split(' ');
    const pid = Number(pidText);
    if (!(pid > 0) || !marker) continue;
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)) continue;
      process.kill(pid, 'SIGKILL');
      console.error(`kernel-bench: killed a leftover process (pid ${pid}, ${marker})`);
    } catch {
      // already gone
    }
  }
}

export async function runInScratchNetns(): Promise<number> {
  const pidfile = join(os.tmpdir(), `of-kernel-bench-${process.pid}.pids`);
  const script = resolve(process.argv[1] as string);
  const child = spawn('unshare', ['--net', '--', process.execPath, ...process.execArgv, script], {
    stdio: 'inherit',
    env: { ...process.env, [CHILD_ENV]: '1', [PIDFILE_ENV]: pidfile },
  });
  process.on('SIGINT', () => undefined); // a terminal ^C reaches the child too; it cleans up and exits
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  let killTimer: NodeJS.Timeout | undefined;
  const limit = setTimeout(() => {
    console.error(`kernel-bench: no result after ${PARENT_LIMIT_MS / 1000} s; stopping it`);
    child.kill('SIGTERM');
    killTimer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  }, PARENT_LIMIT_MS);
  const code = await new Promise<number>((res) => {
    child.once('error', (e) => {
      console.error(`kernel-bench: cannot run unshare: ${e.message}`);
      res(1);
    });
    child.once('exit', (c, sig) => res(c ?? (sig ? 128 + (os.constants.signals[sig] ?? 0) : 1)));
  });
  clearTimeout(limit);
  if (killTimer) clearTimeout(killTimer);
  killLeftovers(pidfile);
  rmSync(pidfile, { force: true });
  return code;
}

/** Child side: record a process it started, with a marker its cmdline must hold (see the note above). */
export function recordPid(pid: number | undefined, marker: string): void {
  const file = process.env[PIDFILE_ENV];
  if (file && pid) appendFileSync(file, `${pid} ${marker}\n`);
}
