/**
 * run.ts — the one way tests start a short-lived command.
 *
 * Design note: a thin promise over `child_process.execFile` (no shell, so arguments are never
 * re-parsed). Every call has a timeout (default 30 s) after which the child gets SIGKILL, because a
 * hung `ip`, `etcdctl` or `docker` must fail the test, not stall the suite. By default a non-zero
 * exit rejects with a {@link RunError} whose message carries the command line and the tail of
 * stderr; `check: false` returns the result instead so callers can branch on the exit code.
 */
import { execFile } from 'node:child_process';

/** Options of {@link run}. */
export interface RunOptions {
  /** Kill the child (SIGKILL) after this many milliseconds. Default 30 000. */
  timeoutMs?: number;
  /** Environment of the child. Default: this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Working directory of the child. */
  cwd?: string;
  /** Text written to the child's stdin, which is then closed. */
  input?: string;
  /** Reject on a non-zero exit, a signal or a timeout. Default true. */
  check?: boolean;
  /** Largest stdout/stderr kept, in bytes. Default 16 MiB. */
  maxBuffer?: number;
}

/** What a finished command left behind. `code` is -1 when it died by a signal or never started. */
export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
  signal: NodeJS.Signals | null;
  /** True when the child was killed because `timeoutMs` ran out. */
  timedOut: boolean;
}

/** A command that failed (non-zero exit, signal, timeout, or could not start). */
export class RunError extends Error {
  /**
   * @param cmd the program
   * @param args its arguments
   * @param result what it printed and how it ended
   */
  constructor(
    readonly cmd: string,
    readonly args: readonly string[],
    readonly result: RunResult,
  ) {
    const how = result.timedOut
      ? 'timed out'
      : result.signal
        ? `was killed by ${result.signal}`
        : `exited with code ${result.code}`;
    const tail = lastLines(`${result.stderr}\n${result.stdout}`.trim(), 15);
    super(`${formatCommand(cmd, args)} ${how}${tail ? `:\n${tail}` : ''}`);
    this.name = 'RunError';
  }
}

/**
 * Run a program to completion, without a shell.
 *
 * @example
 *   const { stdout } = await run('ip', ['-j', 'link', 'show'], { timeoutMs: 5000 });
 *   const r = await run('ping', ['-c', '1', '192.0.2.2'], { check: false });
 *   if (r.code !== 0) { ... }
 */
export function run(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise<RunResult>((resolve, reject) => {
    const child = execFile(
      cmd,
      [...args],
      {
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        maxBuffer: opts.maxBuffer ?? 16 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        const result: RunResult = { stdout, stderr, code: 0, signal: null, timedOut: false };
        if (err) {
          const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: NodeJS.Signals | null };
          result.code = typeof e.code === 'number' ? e.code : -1;
          result.signal = e.signal ?? null;
          result.timedOut = Boolean(e.killed) && e.signal === 'SIGKILL';
          if (typeof e.code === 'string') result.stderr = `${stderr}${stderr ? '\n' : ''}${e.message}`;
        }
        if (err && opts.check !== false) reject(new RunError(cmd, args, result));
        else resolve(result);
      },
    );
    // A child that exits before reading its input would otherwise raise EPIPE on this stream.
    child.stdin?.on('error', () => undefined);
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** A command line as a person would type it, for messages. */
export function formatCommand(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** The last `n` lines of a text (for error messages that quote logs). */
export function lastLines(text: string, n: number): string {
  const lines = text.split('\n');
  return lines.slice(Math.max(0, lines.length - n)).join('\n');
}
