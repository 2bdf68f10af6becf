/**
 * etcd-server.ts — a real, throwaway etcd (3.4, Debian's `etcd-server`) for store and lab tests.
 *
 * Design note: one single-member etcd per call, on its own temp directory and its own free ports,
 * so test files running in parallel never share state or collide on 2379/2380. Free ports are found
 * by binding port 0 on the target host (inside the target namespace when `netns` is given, by a
 * tiny node script run through `nsenter --net=`), then released; if etcd still loses the race and
 * reports "address already in use", startup is retried with new ports. The peer URL always listens
 * on 127.0.0.1 of that namespace: nothing outside it can reach the peer port.
 * `nsenter --net` (not `ip netns exec`) switches only the network namespace and execs etcd in place,
 * so the pid we hold is etcd's own pid. Readiness is polled with `etcdctl endpoint health` under a
 * 15 s deadline; stdout and stderr go to `<dir>/etcd.log`, whose tail is quoted in startup errors.
 * Layout: `<dir>/data` is etcd's --data-dir, `<dir>/etcd.log` its log; cleanup() removes `<dir>`.
 * Every live etcd is SIGKILLed if the test process exits without stopping it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastLines, run, type RunOptions, type RunResult } from './run';
import { waitFor } from './wait';

/** Options of {@link startEtcd}. */
export interface StartEtcdOptions {
  /** Address to listen on for clients. Default 127.0.0.1. */
  host?: string;
  /** Network namespace name (as in /var/run/netns) to run etcd in. Default: the current one. */
  netns?: string;
  /** Client port. Default: a free one on `host`. */
  port?: number;
  /** More etcd flags, appended last. */
  extraArgs?: string[];
  /** Readiness deadline in milliseconds. Default 15 000. */
  readyTimeoutMs?: number;
  /**
   * Serve clients over TLS: the client URL becomes https:// and etcdctl (readiness probe included)
   * uses these files. The etcd side (--cert-file, --key-file, --client-cert-auth, --trusted-ca-file)
   * is still given in `extraArgs`.
   */
  clientTls?: { caFile: string; certFile: string; keyFile: string };
}

/** A running (or stopped) etcd made by {@link startEtcd}. */
export interface EtcdServer {
  /** Client URL, e.g. `http://127.0.0.1:41234`. */
  readonly endpoint: string;
  readonly host: string;
  readonly port: number;
  /** Peer port (listening on 127.0.0.1 of the same namespace). */
  readonly peerPort: number;
  /** etcd's --data-dir. */
  readonly dataDir: string;
  /** File receiving etcd's stdout and stderr. */
  readonly logFile: string;
  /** Namespace it runs in, if any. */
  readonly netns?: string;
  /** Pid of the current etcd process, or undefined when stopped. */
  readonly pid: number | undefined;
  /** SIGTERM, then wait for exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
  /** SIGKILL, then wait for exit: a crash, as a test of recovery would want. */
  kill(): Promise<void>;
  /** Start again on the same data dir and ports, and wait until healthy. */
  start(): Promise<void>;
  /** Compact the keyspace up to the current revision (physical). */
  compact(): Promise<void>;
  /** Run `etcdctl` against this server (ETCDCTL_API=3, same namespace); rejects on failure. */
  etcdctl(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** The last lines of the log. */
  logTail(lines?: number): string;
  /** stop() and remove the directory. Safe to call twice. */
  cleanup(): Promise<void>;
}

class EtcdExitedError extends Error {}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** `nsenter --net=…` prefix for a command, or nothing when `netns` is undefined. */
export function inNetns(netns: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return netns ? ['nsenter', [`--net=/var/run/netns/${netns}`, cmd, ...args]] : [cmd, args];
}

/**
 * Find `count` distinct free TCP ports on `host`, in namespace `netns` if given.
 * They are free when this returns, not reserved: callers must tolerate losing a race.
 */
export async function findFreePorts(host: string, count: number, netns?: string): Promise<number[]> {
  if (!netns) {
    const servers: Server[] = [];
    try {
      for (let i = 0; i < count; i++) {
        const s = createServer();
        servers.push(s);
        await new Promise<void>((res, rej) => {
          s.once('error', rej);
          s.listen(0, host, () => res());
        });
      }
      return servers.map((s) => {
        const a = s.address();
        if (a === null || typeof a === 'string') throw new Error('no port');
        return a.port;
      });
    } finally {
      await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
    }
  }
  const script =
    `const net=require('net');const n=${count};const ss=[];let k=0;` +
    `for(let i=0;i<n;i++){const s=net.createServer();ss.push(s);` +
    `s.listen(0,${JSON.stringify(host)},()=>{if(++k===n){console.log(ss.map(x=>x.address().port).join(' '));ss.forEach(x=>x.close())}})}`;
  const [cmd, args] = inNetns(netns, process.execPath, ['-e', script]);
  const { stdout } = await run(cmd, args, { timeoutMs: 10_000 });
  const ports = stdout.trim().split(/\s+/).map(Number);
  if (ports.length !== count || ports.some((p) => !(p > 0))) throw new Error(`bad port list "${stdout}"`);
  return ports;
}

/**
 * Start a single-member etcd and wait until it answers `endpoint health`.
 *
 * @example
 *   const etcd = await startEtcd();
 *   after(() => etcd.cleanup());
 *   await etcd.etcdctl(['put', '/k', 'v']);
 */
export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  const host = opts.host ?? '127.0.0.1';
  const dir = await mkdtemp(join(tmpdir(), 'of-etcd-'));
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'etcd.log');
  const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
  let port = 0;
  let peerPort = 0;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let removed = false;

  const scheme = opts.clientTls ? 'https' : 'http';
  const tlsArgs = opts.clientTls ? [`--cacert=${opts.clientTls.caFile}`, `--cert=${opts.clientTls.certFile}`, `--key=${opts.clientTls.keyFile}`] : [];
  const endpoint = (): string => `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;

  const etcdctl = (args: string[], o: RunOptions = {}): Promise<RunResult> => {
    const [cmd, a] = inNetns(opts.netns, 'etcdctl', [`--endpoints=${endpoint()}`, '--dial-timeout=2s', '--command-timeout=5s', ...tlsArgs, ...args]);
    return run(cmd, a, { timeoutMs: 15_000, ...o, env: { ...process.env, ETCDCTL_API: '3', ...o.env } });
  };

  const logTail = (n = 30): string => {
    try {
      return lastLines(readFileSync(logFile, 'utf8').trimEnd(), n);
    } catch {
      return '(no log)';
    }
  };

  /** Whole log when short, else its first 3 and last 25 lines (flag errors come first, crashes last). */
  const logExcerpt = (): string => {
    let lines: string[];
    try {
      lines = readFileSync(logFile, 'utf8').trimEnd().split('\n');
    } catch {
      return '(no log)';
    }
    return lines.length <= 30 ? lines.join('\n') : [...lines.slice(0, 3), '…', ...lines.slice(-25)].join('\n');
  };

  const launch = (): void => {
    const peer = `http://127.0.0.1:${peerPort}`;
    const args = [
      '--name', 'default',
      '--data-dir', dataDir,
      '--listen-client-urls', endpoint(),
      '--advertise-client-urls', endpoint(),
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `default=${peer}`,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', `of-${process.pid}-${port}`,
      '--auto-compaction-retention', '0',
      '--logger', 'zap',
      '--log-outputs', 'stderr',
      ...(opts.extraArgs ?? []),
    ];
    const fd = openSync(logFile, 'a');
    try {
      const [cmd, a] = inNetns(opts.netns, 'etcd', args);
      const c = spawn(cmd, a, { stdio: ['ignore', fd, fd] });
      child = c;
      live.add(c);
      exited = new Promise<void>((res) => {
        c.once('error', () => res());
        c.once('exit', () => res());
      }).then(() => {
        live.delete(c);
        if (child === c) child = undefined;
      });
    } finally {
      closeSync(fd);
    }
  };

  const waitHealthy = async (): Promise<void> => {
    const c = child;
    await waitFor(
      async () => {
        if (c === undefined || c.exitCode !== null || c.signalCode !== null || child !== c) {
          throw new EtcdExitedError(`etcd exited before it was healthy (code ${c?.exitCode}, signal ${c?.signalCode})`);
        }
        const r = await etcdctl(['--dial-timeout=500ms', '--command-timeout=1s', 'endpoint', 'health'], {
          check: false,
          timeoutMs: 5_000,
        });
        return r.code === 0;
      },
      {
        timeoutMs: readyTimeoutMs,
        intervalMs: 100,
        what: `etcd at ${endpoint()} to be healthy`,
        bail: (e) => e instanceof EtcdExitedError,
      },
    ).catch(async (err: Error) => {
      await killAndWait('SIGKILL');
      throw new Error(`${err.message}\n--- etcd log (${opts.netns ?? 'root netns'}) ---\n${logExcerpt()}`);
    });
  };

  const killAndWait = async (signal: NodeJS.Signals, graceMs = 10_000): Promise<void> => {
    const c = child;
    if (!c) return;
    c.kill(signal);
    const done = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(r, graceMs, false).unref())]);
    if (!done) {
      c.kill('SIGKILL');
      await exited;
    }
  };

  const start = async (): Promise<void> => {
    if (removed) throw new Error('etcd directory was removed by cleanup()');
    if (child) return;
    launch();
    await waitHealthy();
  };

  // First start: pick ports, retrying if another process grabbed one in between.
  for (let attempt = 1; ; attempt++) {
    if (opts.port !== undefined) {
      port = opts.port;
      [peerPort] = await findFreePorts('127.0.0.1', 1, opts.netns);
    } else if (host === '127.0.0.1') {
      [port, peerPort] = await findFreePorts(host, 2, opts.netns);
    } else {
      [port] = await findFreePorts(host, 1, opts.netns);
      [peerPort] = await findFreePorts('127.0.0.1', 1, opts.netns);
    }
    try {
      await start();
      break;
    } catch (err) {
      const raced = /address already in use/.test(logTail(50));
      await rm(dataDir, { recursive: true, force: true });
      if (!raced || attempt >= 3) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }

  const server: EtcdServer = {
    get endpoint() {
      return endpoint();
    },
    host,
    port,
    peerPort,
    dataDir,
    logFile,
    netns: opts.netns,
    get pid() {
      return child?.pid;
    },
    stop: () => killAndWait('SIGTERM'),
    kill: () => killAndWait('SIGKILL'),
    start,
    async compact() {
      const { stdout } = await etcdctl(['endpoint', 'status', '-w', 'json']);
      const status = JSON.parse(stdout) as Array<{ Status: { header: { revision: number } } }>;
      const rev = status[0]?.Status.header.revision;
      if (!rev) throw new Error(`no revision in endpoint status: ${stdout}`);
      await etcdctl(['compaction', '--physical', String(rev)]);
    },
    etcdctl,
    logTail,
    async cleanup() {
      await killAndWait('SIGTERM');
      removed = true;
      await rm(dir, { recursive: true, force: true });
    },
  };
  return server;
}
