/**
 * The kernel benchmark's daemon under test, in its own process: compiled with the project's tsc
 * options into a scratch folder, forked, and driven over IPC (protocol in kernel-bench-daemon.ts).
 * Split out of kernel-bench.ts.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DaemonCmd, DaemonMsg, DaemonStats } from './kernel-bench-daemon';

const REPO = resolve(__dirname, '..');
const sleep = (t: number): Promise<void> => new Promise((r) => setTimeout(r, t));
function sh(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
}

/** The node flags of plugin/config.json's entrypoint (between node and the script) and its fixed
 *  (not settable) environment variables that are not the daemon's settings (MALLOC_ARENA_MAX). */
export function shippedRuntime(): { flags: string[]; env: Record<string, string> } {
  const c = JSON.parse(readFileSync(join(REPO, 'plugin/config.json'), 'utf8')) as { entrypoint: string[]; env?: { name: string; value?: string; settable?: string[] }[] };
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) if (e.name.startsWith('MALLOC_') && !e.settable && e.value !== undefined) env[e.name] = e.value;
  return { flags: c.entrypoint.slice(1, -1), env };
}

/** Compile src/ and the daemon driver with tsc (the project's build options) into `dir`. */
export function buildDaemon(dir: string): string {
  const config = {
    extends: join(REPO, 'tsconfig.json'),
    compilerOptions: { rootDir: REPO, outDir: join(dir, 'out'), sourceMap: false, noEmitOnError: true, typeRoots: [join(REPO, 'node_modules/@types')] },
    files: [join(REPO, 'bench/kernel-bench-daemon.ts')],
    include: [],
  };
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(config));
  try {
    sh(process.execPath, join(REPO, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json'));
  } catch (e) {
    const out = (e as { stdout?: string }).stdout ?? '';
    throw new Error(`building the daemon failed:\n${out.slice(0, 2000)}`);
  }
  return join(dir, 'out/bench/kernel-bench-daemon.js');
}

/** The daemon process, driven over IPC (see kernel-bench-daemon.ts for the protocol). */
export class DaemonProc {
  private nextId = 1;
  private readonly waiters = new Map<string, { res: (m: DaemonMsg) => void; rej: (e: Error) => void; timer: NodeJS.Timeout }>();
  private exited: Promise<void>;
  loaded: Promise<Extract<DaemonMsg, { t: 'loaded' }>>;

  constructor(readonly child: ChildProcess) {
    let onLoaded!: (m: Extract<DaemonMsg, { t: 'loaded' }>) => void;
    this.loaded = new Promise((r) => (onLoaded = r));
    child.on('message', (m: DaemonMsg) => {
      if (m.t === 'loaded') return onLoaded(m);
      if (m.t === 'error') {
        if (![...this.waiters.keys()].some((k) => k.startsWith(`${m.id}:`))) console.error(`kernel-bench: daemon process: ${m.message}`); // e.g. startDaemon() failed after 'started'
        for (const [k, w] of this.waiters) {
          if (k.startsWith(`${m.id}:`)) {
            clearTimeout(w.timer);
            this.waiters.delete(k);
            w.rej(new Error(`daemon process: ${m.message}`));
          }
        }
        return;
      }
      const w = this.waiters.get(`${m.id}:${m.t}`);
      if (!w) return;
      clearTimeout(w.timer);
      this.waiters.delete(`${m.id}:${m.t}`);
      w.res(m);
    });
    this.exited = new Promise((r) =>
      child.once('exit', (code, sig) => {
        for (const w of this.waiters.values()) {
          clearTimeout(w.timer);
          w.rej(new Error(`daemon process exited (code ${code}, signal ${sig})`));
        }
        this.waiters.clear();
        r();
      }),
    );
  }

  /** Wait for a reply of type `t` to command id `id` (register before sending). */
  private expect<T extends DaemonMsg['t']>(id: number, t: T, timeoutMs: number): Promise<Extract<DaemonMsg, { t: T }>> {
    return new Promise((res, rej) => {
      const timer = setTimeout(() => {
        this.waiters.delete(`${id}:${t}`);
        rej(new Error(`no '${t}' from the daemon process within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(`${id}:${t}`, { res: res as (m: DaemonMsg) => void, rej, timer });
    });
  }

  private send(c: DaemonCmd): void {
    this.child.send(c);
  }

  async start(): Promise<bigint> {
    const id = this.nextId++;
    const p = this.expect(id, 'started', 10_000);
    this.send({ cmd: 'start', id });
    return (await p).t0;
  }

  /** Registers interest in a peers event; resolves once the daemon has it, with the later event
   *  wrapped in an object (an async function would flatten a promise returned bare). */
  async watch(type: 'added' | 'removed', subnet: string, timeoutMs: number): Promise<{ event: Promise<{ tEvent: bigint; tIdle: bigint }> }> {
    const id = this.nextId++;
    const ack = this.expect(id, 'watching', 5_000);
    const ev = this.expect(id, 'event', timeoutMs);
    ev.catch(() => undefined); // observed by the caller
    this.send({ cmd: 'watch', id, type, subnet });
    await ack;
    return { event: ev };
  }

  async count(bound: { atLeast?: number; atMost?: number }, timeoutMs: number): Promise<bigint> {
    const id = this.nextId++;
    const p = this.expect(id, 'count', timeoutMs + 2_000);
    this.send({ cmd: 'count', id, ...bound, timeoutMs });
    return (await p).tDone;
  }

  async fullSync(): Promise<{ ms: number; cpuMs: number }> {
    const id = this.nextId++;
    const p = this.expect(id, 'fullSync', 30_000);
    this.send({ cmd: 'fullSync', id });
    const { ms, cpuMs } = await p;
    return { ms, cpuMs };
  }

  async stats(): Promise<DaemonStats> {
    const id = this.nextId++;
    const p = this.expect(id, 'stats', 5_000);
    this.send({ cmd: 'stats', id });
    return await p;
  }

  async stop(): Promise<number> {
    const id = this.nextId++;
    const p = this.expect(id, 'stopped', 20_000);
    this.send({ cmd: 'stop', id });
    const r = await p;
    await Promise.race([this.exited, sleep(5_000)]);
    return r.ms;
  }

  /** Make sure the process is gone (cleanup path). */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    await Promise.race([this.exited, sleep(6_000)]);
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await Promise.race([this.exited, sleep(2_000)]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// child: the benchmark
// ---------------------------------------------------------------------------------------------
