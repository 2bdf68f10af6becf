/**
 * kernel-bench-daemon.ts — the daemon side of bench/kernel-bench.ts, in its own process.
 *
 * kernel-bench.ts compiles src/ and this file with tsc (as `npm run build` would) and forks the
 * result with plain `node`, inside its scratch namespace. Running the daemon apart from the
 * harness is what makes two of its numbers mean something:
 * - RSS: the harness runs under tsx (~50 MB of compiler and loader) and holds its own etcd client,
 *   seed data and 2000-entry kernel dumps; none of that is the daemon's.
 * - time: the harness's dumps and etcd calls would otherwise share the daemon's event loop.
 *
 * Protocol (IPC, `serialization: 'advanced'` so bigint times pass as they are). Times are
 * process.hrtime.bigint(), i.e. CLOCK_MONOTONIC, comparable between the two processes.
 *   → {cmd:'start'}                          ← {t:'started', id, t0}   (t0 just before startDaemon())
 *   → {cmd:'watch', id, type, subnet}        ← {t:'watching', id}, later {t:'event', id, tEvent, tIdle}
 *       tEvent: the agent emitted 'peers' for that subnet; tIdle: dataplane.idle() resolved after it
 *       (every netlink write is ACKed before idle() resolves, so the kernel holds the entries).
 *   → {cmd:'count', id, atLeast?|atMost?}    ← {t:'count', id, tDone}  when the dataplane knows that
 *       many leases (polled every 2 ms, in-process and cheap) and idle() resolved after that.
 *   → {cmd:'fullSync', id}                   ← {t:'fullSync', id, ms, cpuMs}  one full sync (drift
 *       repair): wall time, and the process's CPU time (user + system) over it
 *   → {cmd:'stats', id}                      ← {t:'stats', id, …}     RSS, heap, dataplane stats, log
 *   → {cmd:'stop', id}                       ← {t:'stopped', id, ms}   then the process exits
 * Errors come back as {t:'error', id, message}. The process exits if the harness goes away.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadSettings } from '../src/config/settings';
import { startDaemon, type Daemon } from '../src/daemon/daemon';
import { formatCidr } from '../src/domain/ipv4';
import type { DataplaneStats, OverlayDataplane } from '../src/reconcile/overlay-dataplane';
import type { LeaseEvent } from '../src/store/types';

export type DaemonCmd =
  | { cmd: 'start'; id: number }
  | { cmd: 'watch'; id: number; type: 'added' | 'removed'; subnet: string }
  | { cmd: 'count'; id: number; atLeast?: number; atMost?: number; timeoutMs: number }
  | { cmd: 'fullSync'; id: number }
  | { cmd: 'stats'; id: number }
  | { cmd: 'stop'; id: number };

export interface DaemonStats {
  maxRssKb: number;
  /** /proc/self/status: VmHWM (peak RSS) and VmRSS, KiB. */
  vmHwmKb: number;
  vmRssKb: number;
  maxRssAtLoadKb: number;
  /** process.memoryUsage() now, in MB. */
  mem: { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number };
  dataplane: DataplaneStats | null;
  ownSubnet: string | null;
  log: { warn: number; error: number; first: string[] };
  marks: Record<string, number>; // ms after t0 (programCpu: CPU ms of the daemon from start to programmed)
}

export type DaemonMsg =
  | { t: 'loaded'; maxRssKb: number }
  | { t: 'started'; id: number; t0: bigint }
  | { t: 'watching'; id: number }
  | { t: 'event'; id: number; tEvent: bigint; tIdle: bigint }
  | { t: 'count'; id: number; tDone: bigint }
  | { t: 'fullSync'; id: number; ms: number; cpuMs: number }
  | ({ t: 'stats'; id: number } & DaemonStats)
  | { t: 'stopped'; id: number; ms: number }
  | { t: 'error'; id: number; message: string };

const hr = (): bigint => process.hrtime.bigint();
const msSince = (t0: bigint): number => Number(hr() - t0) / 1e6;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function memMb(): DaemonStats['mem'] {
  const m = process.memoryUsage();
  const f = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
  return { rss: f(m.rss), heapTotal: f(m.heapTotal), heapUsed: f(m.heapUsed), external: f(m.external), arrayBuffers: f(m.arrayBuffers) };
}

/** A "<name>: <n> kB" line of /proc/self/status. */
function statusKb(name: string): number {
  return Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN);
}

/**
 * KERNEL_BENCH_ALLOC_PROF=<dir>: a sampling allocation profile of the program phase (start until
 * the first `count` is met), of the convergence phase, of each explicit full sync and of the removal
 * of every lease (until the last `count`), objects the GC already collected
 * included (what the heap had to hold at its peak, not what is live at exit as --heap-prof shows),
 * written as <dir>/<phase>.heapprofile (Chrome DevTools → Memory opens it).
 */
class AllocProfile {
  private session: Session | null = null;
  constructor(private readonly dir: string | undefined) {}

  private post(method: string, params?: object): Promise<any> {
    return new Promise((res, rej) => this.session!.post(method, params ?? {}, (e, r) => (e ? rej(e) : res(r))));
  }

  async start(): Promise<void> {
    if (!this.dir || this.session) return;
    this.session = new Session();
    this.session.connect();
    await this.post('HeapProfiler.enable');
    await this.post('HeapProfiler.startSampling', { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  }

  async stop(name: string): Promise<void> {
    if (!this.dir || !this.session) return;
    const { profile } = await this.post('HeapProfiler.stopSampling');
    writeFileSync(join(this.dir, `${name}.heapprofile`), JSON.stringify(profile));
    this.session.disconnect();
    this.session = null;
  }
}

/**
 * KERNEL_BENCH_MEM_TRACE=<file>: every 25 ms one JSON line of VmRSS/VmHWM (/proc/self/status) and
 * process.memoryUsage() (MB), labelled with the harness command in progress, so a jump of the peak
 * can be placed in a phase (initial list, snapshot, programming, full syncs, removal).
 */
class MemTrace {
  phase = 'load';
  private readonly lines: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  constructor(private readonly file: string | undefined) {}
  start(): void {
    if (!this.file || this.timer) return;
    const t0 = Date.now();
    const f = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
    this.timer = setInterval(() => {
      const m = process.memoryUsage();
      const s = readFileSync('/proc/self/status', 'utf8');
      const kb = (n: string) => Math.round(Number(new RegExp(`^${n}:\\s+(\\d+) kB`, 'm').exec(s)?.[1]) / 102.4) / 10;
      this.lines.push(JSON.stringify({ t: Date.now() - t0, phase: this.phase, rss: kb('VmRSS'), hwm: kb('VmHWM'), heapTotal: f(m.heapTotal), heapUsed: f(m.heapUsed), external: f(m.external), arrayBuffers: f(m.arrayBuffers) }));
    }, 25);
    this.timer.unref();
  }
  flush(): void {
    if (this.file) writeFileSync(this.file, `${this.lines.join('\n')}\n`);
  }
}

function send(m: DaemonMsg): void {
  process.send?.(m);
}

function main(): void {
  const maxRssAtLoadKb = process.resourceUsage().maxRSS;
  const log = { warn: 0, error: 0, first: [] as string[] };
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        try {
          const o = JSON.parse(line) as { level?: number; msg?: string; err?: unknown };
          if ((o.level ?? 0) >= 50) log.error++;
          else log.warn++;
          if (log.first.length < 5) log.first.push(`${o.msg ?? ''}${o.err ? ` (${String(o.err)})` : ''}`);
        } catch {
          log.error++;
        }
      }
      cb();
    },
  });
  // KERNEL_BENCH_DEBUG=1: the daemon's own debug log on stderr instead of counting warnings.
  const debug = process.env.KERNEL_BENCH_DEBUG === '1';
  const logger = debug ? pino({ level: 'debug' }, process.stderr) : pino({ level: 'warn' }, stream);
  const settings = loadSettings(process.env);
  let daemon: Daemon | null = null;
  let t0 = 0n;
  let cpu0: NodeJS.CpuUsage | null = null;
  const marks: Record<string, number> = {};
  const watches = new Map<string, number>(); // `${type} ${subnet}` -> id
  const alloc = new AllocProfile(process.env.KERNEL_BENCH_ALLOC_PROF);
  let fullSyncs = 0;
  const trace = new MemTrace(process.env.KERNEL_BENCH_MEM_TRACE);
  trace.start();

  const dataplane = (): OverlayDataplane | null => (daemon?.agent.state === 'ready' ? daemon.agent.dataplane : null);

  const onPeers = (ev: LeaseEvent): void => {
    if (ev.type === 'snapshot') {
      marks.snapshot ??= msSince(t0);
      return;
    }
    const key = `${ev.type} ${formatCidr(ev.lease.subnet)}`;
    const id = watches.get(key);
    if (id === undefined) return;
    const tEvent = hr();
    watches.delete(key);
    const dp = daemon?.agent.dataplane;
    if (!dp) return send({ t: 'error', id, message: 'peers event without a dataplane' });
    void dp.idle().then(() => send({ t: 'event', id, tEvent, tIdle: hr() }));
  };

  const handle = async (c: DaemonCmd): Promise<void> => {
    switch (c.cmd) {
      case 'start': {
        await alloc.start();
        t0 = hr();
        cpu0 = process.cpuUsage();
        send({ t: 'started', id: c.id, t0 });
        daemon = await startDaemon(settings, logger);
        marks.startDaemonReturned = msSince(t0);
        const agent = daemon.agent;
        agent.once('lease', () => (marks.leaseAcquired ??= msSince(t0)));
        agent.on('peers', onPeers);
        void agent.whenReady().then(() => (marks.ready = msSince(t0)));
        return;
      }
      case 'watch':
        watches.set(`${c.type} ${c.subnet}`, c.id);
        return send({ t: 'watching', id: c.id });
      case 'count': {
        const until = Date.now() + c.timeoutMs;
        for (;;) {
          const n = dataplane()?.knownLeases().length;
          if (n !== undefined && (c.atLeast === undefined || n >= c.atLeast) && (c.atMost === undefined || n <= c.atMost)) break;
          if (Date.now() > until) throw new Error(`the dataplane knows ${n ?? 'no'} leases after ${c.timeoutMs} ms`);
          await sleep(2);
        }
        await (dataplane() as OverlayDataplane).idle();
        const tDone = hr();
        if (cpu0 && marks.programCpu === undefined) {
          const cpu = process.cpuUsage(cpu0); // the daemon's CPU (user + system) from start to programmed
          marks.programCpu = (cpu.user + cpu.system) / 1000;
        }
        await alloc.stop(c.atMost === undefined ? 'program' : 'remove-all');
        if (c.atMost === undefined) await alloc.start(); // the convergence phase, until the first full sync
        // KERNEL_BENCH_HEAP_SNAPSHOT=<dir>: what is live once programmed (takes seconds, doubles the heap).
        const snapDir = process.env.KERNEL_BENCH_HEAP_SNAPSHOT;
        if (snapDir && !marks.snapshotWritten) marks.snapshotWritten = (writeHeapSnapshot(join(snapDir, 'after-program.heapsnapshot')), msSince(t0));
        return send({ t: 'count', id: c.id, tDone });
      }
      case 'fullSync': {
        const dp = dataplane();
        if (!dp) throw new Error('not ready');
        await dp.idle();
        if (fullSyncs === 0) await alloc.stop('convergence');
        await alloc.start();
        const s = hr();
        const cpu0 = process.cpuUsage();
        await dp.requestSync('full');
        const cpu = process.cpuUsage(cpu0);
        await alloc.stop(`full-sync-${++fullSyncs}`);
        await alloc.start(); // then the removal of every lease (stopped by its count)
        return send({ t: 'fullSync', id: c.id, ms: msSince(s), cpuMs: (cpu.user + cpu.system) / 1000 });
      }
      case 'stats': {
        const lease = daemon?.agent.lease();
        return send({
          t: 'stats',
          id: c.id,
          maxRssKb: process.resourceUsage().maxRSS,
          vmHwmKb: statusKb('VmHWM'),
          vmRssKb: statusKb('VmRSS'),
          maxRssAtLoadKb,
          mem: memMb(),
          dataplane: daemon?.agent.dataplane ? { ...daemon.agent.dataplane.stats } : null,
          ownSubnet: lease ? formatCidr(lease.subnet) : null,
          log,
          marks,
        });
      }
      case 'stop': {
        const s = hr();
        await daemon?.stop();
        daemon = null;
        send({ t: 'stopped', id: c.id, ms: msSince(s) });
        process.disconnect?.();
        return;
      }
    }
  };

  process.on('message', (c: DaemonCmd) => {
    if (c.cmd !== 'stats') trace.phase = c.cmd === 'watch' ? 'convergence' : c.cmd === 'count' ? (c.atMost !== undefined ? 'remove-all' : 'program') : c.cmd;
    if (c.cmd === 'stop') trace.flush();
    handle(c).catch((e: unknown) => send({ t: 'error', id: c.id, message: e instanceof Error ? e.message : String(e) }));
  });
  const quit = () => {
    void Promise.race([daemon?.stop(), sleep(5000)]).finally(() => process.exit(0));
  };
  process.on('disconnect', quit);
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
  send({ t: 'loaded', maxRssKb: maxRssAtLoadKb });
}

if (require.main === module) main();
