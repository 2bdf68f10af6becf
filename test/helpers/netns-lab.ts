/**
 * netns-lab.ts — namespace labs: a simulated LAN and hosts, all inside network namespaces.
 *
 * Design note (see docs/lab.md §2): a lab is a "LAN" namespace holding bridge br0
 * (192.0.2.254/24) plus one namespace per host, each joined by a veth pair whose host end is eth0
 * (192.0.2.N/24, default route via .254 — inside the namespace only) and whose other end is a bridge
 * port `pN` in the LAN. veths are created with `ip -n HOST link add eth0 … peer name pN netns LAN`,
 * so no device ever appears in the root namespace. Nothing here touches root-namespace routes.
 * Names: `<prefix><4 hex run id><suffix>`, at most 15 characters (e.g. `of3fa2lan`, `of3fa2h1`),
 * unique per run. A lab writes an owner file /run/of-lab/<prefix><id> (pid + process start time);
 * {@link sweepStale} removes only namespaces whose owner is gone, so parallel test files never
 * sweep each other. Commands run via `nsenter --net=/var/run/netns/NS` (not `ip netns exec`, which
 * remounts /sys and breaks dockerd). destroy() kills tracked daemons, then every pid
 * `ip netns pids` lists, then deletes the namespaces — each step bounded in time.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { run, type RunOptions, type RunResult } from './run';
import { sleep, waitFor } from './wait';

const OWNER_DIR = '/run/of-lab';
const LAN_IP = '192.0.2.254';

/** A long-running process started inside a namespace. */
export interface DaemonHandle {
  readonly pid: number;
  /** Send a signal (default SIGTERM); ignored when it has already exited. */
  kill(signal?: NodeJS.Signals): void;
  /** Settles when the process exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Its stdout and stderr so far (the last 256 KiB). */
  logs(): string;
}

/** Options of {@link Ns.spawnDaemon}. */
export interface SpawnOptions {
  /** Also append output to this file. */
  logFile?: string;
  cwd?: string;
}

/** A network namespace of a lab, with helpers that run commands inside it. */
export class Ns {
  /** @param ns namespace name, @param lab owning lab (tracks daemons for destroy) */
  constructor(
    readonly ns: string,
    private readonly lab: Lab,
  ) {}

  /** `/var/run/netns/<ns>`, for `nsenter --net=`. */
  get nsPath(): string {
    return `/var/run/netns/${this.ns}`;
  }

  /** Run a command in this namespace; never rejects on a non-zero exit (check `code`). */
  exec(cmd: string, args: string[] = [], opts: RunOptions = {}): Promise<RunResult> {
    return run('nsenter', [`--net=${this.nsPath}`, cmd, ...args], { check: false, ...opts });
  }

  /** Run a command in this namespace; rejects with RunError on a non-zero exit. */
  execOk(cmd: string, args: string[] = [], opts: RunOptions = {}): Promise<RunResult> {
    return run('nsenter', [`--net=${this.nsPath}`, cmd, ...args], { ...opts, check: true });
  }

  /** `ip -j <args>` in this namespace, parsed (e.g. `execJson(['addr', 'show', 'eth0'])`). */
  async execJson<T = unknown>(ipArgs: string[]): Promise<T> {
    const { stdout } = await run('ip', ['-n', this.ns, '-j', ...ipArgs], { timeoutMs: 10_000 });
    return JSON.parse(stdout.trim() || '[]') as T;
  }

  /** Start a long-running process in this namespace; destroy() of the lab stops it. */
  spawnDaemon(cmd: string, args: string[] = [], env: NodeJS.ProcessEnv = {}, opts: SpawnOptions = {}): DaemonHandle {
    const child = spawn('nsenter', [`--net=${this.nsPath}`, cmd, ...args], {
      env: { ...process.env, ...env },
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    const file = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
    const onData = (d: Buffer): void => {
      buf += d.toString('utf8');
      if (buf.length > 256 * 1024) buf = buf.slice(buf.length - 256 * 1024);
      file?.write(d);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('error', (err) => {
        buf += `\nspawn error: ${err.message}\n`;
        resolve({ code: -1, signal: null });
      });
      child.once('close', (code, signal) => resolve({ code, signal }));
    }).finally(() => file?.end());
    const handle: DaemonHandle = {
      pid: child.pid ?? -1,
      kill: (signal: NodeJS.Signals = 'SIGTERM') => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      },
      exited,
      logs: () => buf,
    };
    this.lab.track(handle);
    return handle;
  }
}

/** A simulated Docker host: namespace with eth0 on the LAN. */
export class Host extends Ns {
  /** @param n host number, @param ip its LAN address */
  constructor(
    ns: string,
    lab: Lab,
    readonly n: number,
    readonly ip: string,
  ) {
    super(ns, lab);
  }
}

/** A set of namespaces with one run id; see the design note at the top of this file. */
export class Lab {
  private readonly namespaces: string[] = [];
  private readonly daemons = new Set<DaemonHandle>();
  private lanNs: Ns | undefined;
  readonly hosts = new Map<number, Host>();

  /** @param prefix project prefix, @param id 4 hex digits unique to this run */
  constructor(
    readonly prefix: string,
    readonly id: string,
  ) {}

  /** `<prefix><id>` — every namespace of this lab starts with it. */
  get runId(): string {
    return `${this.prefix}${this.id}`;
  }

  /** Full namespace name for a suffix, checked against the 15-character limit. */
  name(suffix: string): string {
    const n = `${this.runId}${suffix}`;
    if (!/^[a-z0-9-]+$/.test(suffix) || n.length > 15) throw new Error(`bad namespace name "${n}" (≤15 chars, [a-z0-9-])`);
    return n;
  }

  /** Every namespace created so far. */
  get namespaceNames(): readonly string[] {
    return [...this.namespaces];
  }

  /** @internal remember a daemon so destroy() stops it. */
  track(d: DaemonHandle): void {
    this.daemons.add(d);
    void d.exited.then(() => this.daemons.delete(d));
  }

  private async addNs(suffix: string): Promise<Ns> {
    const ns = this.name(suffix);
    await run('ip', ['netns', 'add', ns], { timeoutMs: 10_000 });
    this.namespaces.push(ns);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up'], { timeoutMs: 10_000 });
    return new Ns(ns, this);
  }

  /** The LAN namespace `<runId>lan` with bridge br0 at 192.0.2.254/24 (created on first call). */
  async lan(): Promise<Ns> {
    if (this.lanNs) return this.lanNs;
    const lan = await this.addNs('lan');
    const ip = (...a: string[]): Promise<RunResult> => run('ip', ['-n', lan.ns, ...a], { timeoutMs: 10_000 });
    await ip('link', 'add', 'br0', 'type', 'bridge');
    await ip('addr', 'add', `${LAN_IP}/24`, 'dev', 'br0');
    await ip('link', 'set', 'br0', 'up');
    this.lanNs = lan;
    return lan;
  }

  /** Host `<runId>h<n>`: eth0 = 192.0.2.<n>/24 (or opts.ip) on the LAN, default route via .254. */
  async addHost(n: number, opts: { ip?: string } = {}): Promise<Host> {
    if (!Number.isInteger(n) || n < 1 || n > 253) throw new Error(`host number ${n} not in 1..253`);
    if (this.hosts.has(n)) throw new Error(`host ${n} already exists`);
    const lan = await this.lan();
    const base = await this.addNs(`h${n}`);
    const host = new Host(base.ns, this, n, opts.ip ?? `192.0.2.${n}`);
    const ip = (ns: string, ...a: string[]): Promise<RunResult> => run('ip', ['-n', ns, ...a], { timeoutMs: 10_000 });
    await ip(host.ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p${n}`, 'netns', lan.ns);
    await ip(lan.ns, 'link', 'set', `p${n}`, 'master', 'br0');
    await ip(lan.ns, 'link', 'set', `p${n}`, 'up');
    await ip(host.ns, 'addr', 'add', `${host.ip}/24`, 'dev', 'eth0');
    await ip(host.ns, 'link', 'set', 'eth0', 'up');
    await ip(host.ns, 'route', 'add', 'default', 'via', LAN_IP);
    this.hosts.set(n, host);
    return host;
  }

  /** An extra namespace `<runId>[h<n>]<name>` (lo up, nothing else), e.g. for a container. */
  async addContainerNs(host: Host | undefined, name: string): Promise<Ns> {
    return this.addNs(host ? `h${host.n}${name}` : name);
  }

  /** Stop tracked daemons, kill what remains in each namespace, delete them. Bounded (~15 s). */
  async destroy(): Promise<void> {
    const daemons = [...this.daemons];
    for (const d of daemons) d.kill('SIGTERM');
    const ac = new AbortController();
    await Promise.race([Promise.all(daemons.map((d) => d.exited)), sleep(5_000, ac.signal).catch(() => undefined)]);
    ac.abort();
    for (const d of daemons) d.kill('SIGKILL');
    await removeNamespaces([...this.namespaces].reverse());
    this.namespaces.length = 0;
    this.hosts.clear();
    this.lanNs = undefined;
    rmSync(`${OWNER_DIR}/${this.runId}`, { force: true });
  }
}

/** Names in `ip netns list` (which prints "name" or "name (id: N)"). */
export async function listNamespaces(): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list'], { timeoutMs: 10_000 });
  return stdout.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter(Boolean);
}

/** Kill every process in the namespaces (TERM, then KILL), then delete them; bounded in time. */
async function removeNamespaces(names: string[]): Promise<void> {
  const pidsOf = async (ns: string): Promise<number[]> => {
    const r = await run('ip', ['netns', 'pids', ns], { check: false, timeoutMs: 10_000 });
    return r.stdout.split(/\s+/).filter(Boolean).map(Number).filter((p) => p > 1 && p !== process.pid);
  };
  const signal = (pids: number[], sig: NodeJS.Signals): void => {
    for (const p of pids) {
      try {
        process.kill(p, sig);
      } catch {
        /* already gone */
      }
    }
  };
  for (const ns of names) {
    signal(await pidsOf(ns), 'SIGTERM');
    await waitFor(async () => (await pidsOf(ns)).length === 0, { timeoutMs: 3_000, what: `${ns} empty` }).catch(async () => {
      signal(await pidsOf(ns), 'SIGKILL');
      await waitFor(async () => (await pidsOf(ns)).length === 0, { timeoutMs: 3_000, what: `${ns} empty` }).catch(() => undefined);
    });
    await run('ip', ['netns', 'del', ns], { check: false, timeoutMs: 10_000 });
  }
}

/** "pid starttime" of this process, as written in owner files. */
function ownerStamp(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return `${pid} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
  } catch {
    return undefined;
  }
}

/**
 * Remove leftovers of crashed runs: namespaces named `<prefix><4 hex><suffix>` whose owner file is
 * missing or names a process that no longer lives. Live labs of other processes are left alone.
 * @returns the namespaces removed
 */
export async function sweepStale(prefix = 'of'): Promise<string[]> {
  const re = new RegExp(`^(${prefix}[0-9a-f]{4})[a-z][a-z0-9-]*$`);
  const stale: string[] = [];
  const deadRuns = new Set<string>();
  for (const ns of await listNamespaces()) {
    const m = re.exec(ns);
    if (!m?.[1]) continue;
    let owner: string | undefined;
    try {
      owner = readFileSync(`${OWNER_DIR}/${m[1]}`, 'utf8').trim();
    } catch {
      owner = undefined;
    }
    if (owner && ownerStamp(Number(owner.split(' ')[0])) === owner) continue;
    stale.push(ns);
    deadRuns.add(m[1]);
  }
  await removeNamespaces(stale);
  for (const r of deadRuns) rmSync(`${OWNER_DIR}/${r}`, { force: true });
  // Owner files whose namespaces are all gone.
  try {
    for (const f of readdirSync(OWNER_DIR)) {
      const stamp = readFileSync(`${OWNER_DIR}/${f}`, 'utf8').trim();
      if (f.startsWith(prefix) && ownerStamp(Number(stamp.split(' ')[0])) !== stamp) rmSync(`${OWNER_DIR}/${f}`, { force: true });
    }
  } catch {
    /* no owner dir yet */
  }
  return stale;
}

/**
 * Make a lab with a fresh run id (checked unused) and register this process as its owner.
 * By default first sweeps stale namespaces of crashed runs with the same prefix.
 * @param prefix 2–6 lower-case letters/digits starting with a letter; default "of"
 */
export async function createLab(prefix = 'of', opts: { sweep?: boolean } = {}): Promise<Lab> {
  if (!/^[a-z][a-z0-9]{1,5}$/.test(prefix)) throw new Error(`bad lab prefix "${prefix}"`);
  if (opts.sweep !== false) await sweepStale(prefix);
  const existing = await listNamespaces();
  mkdirSync(OWNER_DIR, { recursive: true });
  for (let i = 0; i < 20; i++) {
    const id = randomBytes(2).toString('hex');
    const runId = `${prefix}${id}`;
    if (existing.some((n) => n.startsWith(runId))) continue;
    try {
      writeFileSync(`${OWNER_DIR}/${runId}`, `${ownerStamp(process.pid)}\n`, { flag: 'wx' });
    } catch {
      continue; // another process took this id
    }
    return new Lab(prefix, id);
  }
  throw new Error('could not find an unused lab id');
}
