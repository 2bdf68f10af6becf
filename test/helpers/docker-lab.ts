/**
 * docker-lab.ts — real Docker daemons inside the hosts of a namespace lab (netns-lab.ts), local
 * images without a registry, and a local registry on the LAN.
 *
 * Design note (see shared docs/lab.md §3–§11 and "Traps seen"):
 * - One dockerd per host, started with `nsenter --net=/var/run/netns/<host>` (never `ip netns
 *   exec`: it remounts /sys and dockerd dies with "Devices cgroup isn't mounted"), with its own
 *   data-root, exec-root, socket, pidfile and cgroup parent under `/tmp/of-docker-<runId>/h<n>`,
 *   `--bridge=none`, cgroupfs driver. It supervises its own containerd under the exec-root; a
 *   system containerd at /run/containerd/containerd.sock would be shared by every daemon (and run
 *   plugins in the wrong namespace), so startDockerd refuses to run when that socket exists.
 * - The CLI is always /usr/bin/docker (the distribution's 20.10 CLI) with `-H unix://<sock>`.
 *   Unix sockets are files, so the test process reaches every daemon from any network namespace.
 * - Stop order (lab.md): `docker rm -f` every container (a `sleep` as PID 1 ignores SIGTERM and
 *   makes dockerd wait 10 s each), `swarm leave -f` when in a swarm, SIGTERM dockerd by its pidfile
 *   and wait for it to exit (SIGKILL after 20 s), then kill what still names this daemon's folder
 *   (containerd, shims) or sits in its cgroup parent (orphaned containers), `umount -l` everything
 *   mounted under its folder and the runtime folders of its managed plugins
 *   (/run/docker/plugins/<id>: a static path on Linux, shared by all daemons), remove the cgroups.
 *   Processes of host-network plugins live in the host namespace: Lab.destroy() kills them.
 * - Crash safety: the run folder holds an `owner` file ("pid starttime", as netns-lab's owner
 *   files); {@link sweepStaleDocker} tears down folders whose owner is gone, and only those.
 * Every loop and command is bounded in time.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dockerfileRootfs, hostNodeRootfs, lddLibs, type BuildResult, type DockerCli } from '../../scripts/plugin-build';
import { createLab, type DaemonHandle, type Host, type Lab } from './netns-lab';
import { run, RunError, type RunOptions, type RunResult } from './run';
import { sleep, waitFor } from './wait';

export const DOCKER = '/usr/bin/docker';
/** Debian's docker.io installs dockerd in /usr/sbin (not /usr/bin). */
export const DOCKERD = existsSync('/usr/sbin/dockerd') ? '/usr/sbin/dockerd' : '/usr/bin/dockerd';
export const REGISTRY_BIN = '/usr/bin/docker-registry';
export const REGISTRY_ADDR = '192.0.2.254:5000';
const ROOT_PREFIX = '/tmp/of-docker-';
const PLUGIN_RUN = '/run/docker/plugins';
const SYSTEM_CONTAINERD = '/run/containerd/containerd.sock';

/** Options of {@link startDockerd}. */
export interface DockerdOptions {
  /** `--insecure-registry` (e.g. the lab registry, 192.0.2.254:5000). */
  insecureRegistry?: string;
  /** `--live-restore`: containers survive a restart of dockerd. */
  liveRestore?: boolean;
  /** More dockerd flags. */
  extraArgs?: string[];
  /** Readiness deadline. Default 60 s. */
  readyTimeoutMs?: number;
}

const daemons = new Set<DockerHost>();
const registries = new Set<Registry>();

/** "pid starttime" of a process (the owner-file format of netns-lab), or undefined when gone. */
function procStamp(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return `${pid} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `/tmp/of-docker-<runId>`, created with this process as owner. */
export function labRoot(runId: string): string {
  const dir = `${ROOT_PREFIX}${runId}`;
  mkdirSync(dir, { recursive: true });
  const owner = join(dir, 'owner');
  if (!existsSync(owner)) writeFileSync(owner, `${procStamp(process.pid)}\n`);
  return dir;
}

/** The run id of a lab host (`<runId>h<n>` → `<runId>`). */
function runIdOf(host: Host): string {
  const suffix = `h${host.n}`;
  if (!host.ns.endsWith(suffix)) throw new Error(`host namespace ${host.ns} does not end with ${suffix}`);
  return host.ns.slice(0, -suffix.length);
}

/** A Docker daemon in a lab host's namespace. Make one with {@link startDockerd}. */
export class DockerHost {
  /** Folder of this daemon: data/, exec/, docker.sock, pid, dockerd.log. */
  readonly dir: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  /** Socket path (use `unix://${sock}` as DOCKER_HOST). */
  readonly sock: string;
  readonly pidfile: string;
  readonly logFile: string;
  /** Cgroup parent of its containers. */
  readonly cgroupParent: string;
  private handle: DaemonHandle | undefined;

  constructor(
    readonly host: Host,
    readonly opts: DockerdOptions = {},
  ) {
    const runId = runIdOf(host);
    this.dir = join(labRoot(runId), `h${host.n}`);
    this.dataRoot = join(this.dir, 'data');
    this.execRoot = join(this.dir, 'exec');
    this.sock = join(this.dir, 'docker.sock');
    this.pidfile = join(this.dir, 'pid');
    this.logFile = join(this.dir, 'dockerd.log');
    this.cgroupParent = `/of-docker-${runId}-h${host.n}`;
  }

  /** `unix://<sock>`, for DOCKER_HOST. */
  get url(): string {
    return `unix://${this.sock}`;
  }

  /** `docker -H unix://<sock> <args>`; never rejects on a non-zero exit (check `code`). */
  docker(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(DOCKER, ['-H', this.url, ...args], { timeoutMs: 60_000, check: false, ...opts });
  }

  /** Like {@link docker} but rejects with RunError on a non-zero exit. */
  dockerOk(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return this.docker(args, { ...opts, check: true });
  }

  /** This daemon as a {@link DockerCli} (stdout; rejects on failure), for scripts/plugin-*.ts. */
  readonly cli: DockerCli = async (args, o = {}) =>
    (await this.dockerOk(args, { timeoutMs: o.timeoutMs ?? 120_000, env: { ...process.env, ...o.env } })).stdout;

  /** The daemon's log so far (its file, which survives restarts). */
  logs(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return this.handle?.logs() ?? '';
    }
  }

  /** Pid from the pidfile when that process is alive. */
  pid(): number | undefined {
    try {
      const pid = Number(readFileSync(this.pidfile, 'utf8').trim());
      return pid > 1 && alive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** Start dockerd and wait until it answers `docker version`. */
  async start(): Promise<void> {
    if (existsSync(SYSTEM_CONTAINERD)) {
      throw new Error(`${SYSTEM_CONTAINERD} exists: every lab dockerd would use that system containerd (root namespace); stop it first`);
    }
    const old = this.pid();
    if (old !== undefined) throw new Error(`dockerd of ${this.host.ns} still runs (pid ${old}); stop it first`);
    mkdirSync(this.dir, { recursive: true });
    const args = [
      '--data-root', this.dataRoot,
      '--exec-root', this.execRoot,
      '-H', this.url,
      '--pidfile', this.pidfile,
      '--bridge=none',
      '--exec-opt', 'native.cgroupdriver=cgroupfs',
      '--cgroup-parent', this.cgroupParent,
      ...(this.opts.insecureRegistry ? ['--insecure-registry', this.opts.insecureRegistry] : []),
      ...(this.opts.liveRestore ? ['--live-restore'] : []),
      ...(this.opts.extraArgs ?? []),
    ];
    writeFileSync(this.logFile, `--- dockerd ${args.join(' ')}\n`, { flag: 'a' });
    const h = this.host.spawnDaemon(DOCKERD, args, {}, { logFile: this.logFile });
    this.handle = h;
    daemons.add(this);
    let exited = false;
    void h.exited.then(() => {
      exited = true;
    });
    try {
      await waitFor(
        async () => {
          if (exited) throw new DockerdExited();
          const r = await this.docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 5_000 });
          return r.code === 0 && r.stdout.trim() !== '';
        },
        { timeoutMs: this.opts.readyTimeoutMs ?? 60_000, intervalMs: 200, what: `dockerd in ${this.host.ns}`, bail: (e) => e instanceof DockerdExited },
      );
    } catch (e) {
      const tail = this.logs().trimEnd().split('\n').slice(-25).join('\n');
      await this.stop().catch(() => undefined);
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- dockerd log (${this.host.ns}) ---\n${tail}`);
    }
  }

  /** SIGTERM dockerd and wait for it (and its pidfile) to go; SIGKILL after `graceMs`. */
  private async terminate(graceMs = 20_000): Promise<void> {
    const pid = this.pid() ?? (this.handle && alive(this.handle.pid) ? this.handle.pid : undefined);
    if (pid !== undefined) await killAndWait([pid], graceMs);
    if (this.handle) await Promise.race([this.handle.exited, sleep(5_000)]);
    this.handle = undefined;
  }

  /** Restart dockerd on the same folders (containers are left alone; with liveRestore they keep running). */
  async restart(): Promise<void> {
    await this.terminate();
    await this.start();
  }

  /**
   * A power cut: SIGKILL dockerd, its containerd and shims (and `extraPids`, e.g. the processes of
   * host-network plugins, which name no folder of this daemon) all at once; then what a reboot
   * clears: the containers, mounts, cgroups, plugin runtime folders and the exec-root. The
   * data-root stays, so {@link start} boots the same daemon again. Bounded (~30 s).
   */
  async crash(extraPids: number[] = []): Promise<void> {
    const pids = [...new Set([...extraPids, ...(this.pid() !== undefined ? [this.pid()!] : []), ...pidsNaming(this.dir)])];
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await waitFor(() => Promise.resolve(pids.every((p) => !alive(p))), { timeoutMs: 10_000, intervalMs: 50, what: 'crashed processes gone' });
    if (this.handle) await Promise.race([this.handle.exited, sleep(5_000)]);
    this.handle = undefined;
    await teardownFolder(this.dir, this.cgroupParent);
    rmSync(this.execRoot, { recursive: true, force: true });
  }

  /** Full stop in lab.md's order; leaves the folder (data) in place. Bounded (~1 min worst case). */
  async stop(): Promise<void> {
    if (this.pid() !== undefined) {
      const ps = await this.docker(['ps', '-aq'], { timeoutMs: 15_000 });
      const ids = ps.stdout.split('\n').filter(Boolean);
      if (ids.length) await this.docker(['rm', '-f', ...ids], { timeoutMs: 60_000 });
      const swarm = await this.docker(['info', '--format', '{{.Swarm.LocalNodeState}}'], { timeoutMs: 15_000 });
      if (/active|pending/.test(swarm.stdout)) await this.docker(['swarm', 'leave', '-f'], { timeoutMs: 30_000 });
    }
    await this.terminate();
    await teardownFolder(this.dir, this.cgroupParent);
    daemons.delete(this);
  }

  /** stop() and remove the folder. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

class DockerdExited extends Error {
  constructor() {
    super('dockerd exited during startup');
  }
}

/** {@link sweepStaleDocker} (mounts and daemons of crashed runs), then netns-lab's createLab. */
export async function createDockerLab(prefix = 'of'): Promise<Lab> {
  await sweepStaleDocker();
  return createLab(prefix);
}

/** Start a dockerd in `host`'s namespace and wait until it answers. */
export async function startDockerd(host: Host, opts: DockerdOptions = {}): Promise<DockerHost> {
  const d = new DockerHost(host, opts);
  await d.start();
  return d;
}

/** SIGTERM the pids, wait up to `graceMs` for them to exit, SIGKILL the rest (and wait 3 s). */
async function killAndWait(pids: number[], graceMs: number): Promise<void> {
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
function pidsNaming(dir: string): number[] {
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
function cgroupDirs(parent: string): string[] {
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
async function teardownCgroup(parent: string): Promise<void> {
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
function mountsUnder(roots: string[]): string[] {
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
function pluginIds(dataRoot: string): string[] {
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
async function teardownFolder(dir: string, cgroupParent: string): Promise<void> {
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

/** A docker-registry serving the lab's LAN. */
export interface Registry {
  /** `192.0.2.254:5000` (host:port, as image references use it). */
  readonly url: string;
  readonly dir: string;
  logs(): string;
  stop(): Promise<void>;
}

/** Start Debian's docker-registry in the LAN namespace on 192.0.2.254:5000, storage in the run folder. */
export async function startRegistry(lab: Lab): Promise<Registry> {
  const lan = await lab.lan();
  const dir = join(labRoot(lab.runId), `registry-${randomBytes(3).toString('hex')}`);
  mkdirSync(join(dir, 'data'), { recursive: true });
  const cfg = join(dir, 'config.yml');
  writeFileSync(
    cfg,
    ['version: 0.1', 'log:', '  level: warn', 'storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'data')}`, 'http:', `  addr: ${REGISTRY_ADDR}`, ''].join('\n'),
  );
  const h = lan.spawnDaemon(REGISTRY_BIN, ['serve', cfg], {}, { logFile: join(dir, 'registry.log') });
  let exited = false;
  void h.exited.then(() => {
    exited = true;
  });
  const probe = `require('http').get('http://${REGISTRY_ADDR}/v2/',r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))`;
  const reg: Registry = {
    url: REGISTRY_ADDR,
    dir,
    logs: () => h.logs(),
    async stop() {
      h.kill('SIGTERM');
      await Promise.race([h.exited, sleep(5_000)]);
      h.kill('SIGKILL');
      await Promise.race([h.exited, sleep(3_000)]);
      registries.delete(reg);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  registries.add(reg);
  try {
    await waitFor(
      async () => {
        if (exited) throw new Error('docker-registry exited');
        return (await lan.exec(process.execPath, ['-e', probe], { timeoutMs: 5_000 })).code === 0;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: `docker-registry on ${REGISTRY_ADDR}`, bail: (e) => e instanceof Error && /exited/.test(e.message) },
    );
  } catch (e) {
    await reg.stop();
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- registry log ---\n${h.logs().slice(-3000)}`);
  }
  return reg;
}

/** `tar -C dir -c .` into a file and `docker import` it as `tag` (with `changes`, e.g. CMD). */
async function importDir(d: DockerHost, dir: string, tag: string, changes: string[] = []): Promise<void> {
  const tar = `${dir}.tar`;
  if (!existsSync(tar)) await run('tar', ['-C', dir, '-c', '-f', tar, '.'], { timeoutMs: 120_000 });
  await d.dockerOk(['import', ...changes.flatMap((c) => ['--change', c]), tar, tag], { timeoutMs: 180_000 });
}

/** Copy a host file to the same path under `root` (dereferenced). */
async function copyHostFile(root: string, file: string): Promise<void> {
  const dst = join(root, file);
  mkdirSync(join(dst, '..'), { recursive: true });
  await run('cp', ['-L', '--preserve=mode', file, dst], { timeoutMs: 30_000 });
}

const building = new Map<string, Promise<string>>();

/** Build a folder once per run (concurrent callers share the work). */
function once(path: string, make: (dir: string) => Promise<void>): Promise<string> {
  let p = building.get(path);
  if (!p) {
    p = (async () => {
      rmSync(path, { recursive: true, force: true });
      rmSync(`${path}.tar`, { force: true });
      mkdirSync(path, { recursive: true });
      await make(path);
      return path;
    })();
    building.set(path, p);
    p.catch(() => building.delete(path));
  }
  return p;
}

/**
 * Import a busybox image (busybox-static with a symlink for every applet in /bin: sh, ip, ping,
 * nc, sleep, cat, echo, ifconfig, route, hostname, wget, httpd, ls, grep, …), CMD sh.
 * With `iperf3`, /usr/bin/iperf3 and the libraries `ldd` lists for it (plus the loader) too.
 */
export async function importBusybox(d: DockerHost, tag = 'ofbox:1', opts: { iperf3?: boolean } = {}): Promise<void> {
  const dir = join(d.dir, '..', 'images', opts.iperf3 ? 'busybox-iperf3' : 'busybox');
  await once(dir, async (root) => {
    mkdirSync(join(root, 'bin'), { recursive: true });
    await run('cp', ['/bin/busybox', join(root, 'bin/busybox')]);
    const list = (await run('/bin/busybox', ['--list'])).stdout.split('\n').filter((a) => /^[\w.[-]+$/.test(a) && a !== 'busybox');
    for (const a of list) symlinkSync('busybox', join(root, 'bin', a));
    for (const f of ['etc', 'tmp', 'root', 'proc', 'sys', 'dev', 'usr/bin', 'var/run']) mkdirSync(join(root, f), { recursive: true });
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
    await run('chmod', ['1777', join(root, 'tmp')]);
    if (opts.iperf3) {
      await copyHostFile(root, '/usr/bin/iperf3');
      for (const l of new Set([...(await lddLibs('/usr/bin/iperf3')), '/lib64/ld-linux-x86-64.so.2'])) await copyHostFile(root, l);
    }
  });
  await importDir(d, dir, tag, ['CMD ["sh"]']);
}

/**
 * Import a node base image made of this machine's files (node at /usr/local/bin/node, its
 * libraries, the loader, a minimal /etc) — a stand-in for node:20-bookworm-slim offline.
 */
export async function importNodeBase(d: DockerHost, tag = 'ofnode:20'): Promise<void> {
  const dir = join(d.dir, '..', 'images', 'node-base');
  await once(dir, (root) => hostNodeRootfs(root));
  await importDir(d, dir, tag, ['CMD ["/usr/local/bin/node"]']);
}

/**
 * The Dockerfile path offline (lab.md §11): import a node base from host files on `d`, build the
 * repository's Dockerfile with `--build-arg BASE=<it>`, export the container filesystem into
 * `<out>/rootfs` and put plugin/config.json beside it. Needs dist/ and node_modules/.
 */
export async function dockerfilePlugin(d: DockerHost, out: string, opts: { log?: (l: string) => void } = {}): Promise<BuildResult> {
  await importNodeBase(d, 'ofnode:20');
  return dockerfileRootfs(d.cli, { out, base: 'ofnode:20', tag: 'of-plugin-rootfs:test', log: opts.log });
}

/**
 * Stop every daemon and registry this process started with this module (all labs, or only
 * `lab`'s), in lab.md's order; then, when `lab` is given, destroy it and remove its run folder.
 * Collects errors and throws them together at the end, after everything was tried.
 */
export async function stopAll(lab?: Lab): Promise<void> {
  const errors: unknown[] = [];
  const mine = (d: DockerHost): boolean => !lab || d.dir.startsWith(`${ROOT_PREFIX}${lab.runId}/`);
  await Promise.all(
    [...daemons].filter(mine).map((d) =>
      d.stop().catch((e: unknown) => {
        errors.push(e);
      }),
    ),
  );
  for (const r of [...registries]) {
    if (lab && !r.dir.startsWith(`${ROOT_PREFIX}${lab.runId}/`)) continue;
    await r.stop().catch((e: unknown) => errors.push(e));
  }
  if (lab) {
    await lab.destroy().catch((e: unknown) => errors.push(e));
    const root = `${ROOT_PREFIX}${lab.runId}`;
    for (const mp of mountsUnder([root])) await run('umount', ['-l', mp], { check: false, timeoutMs: 10_000 });
    rmSync(root, { recursive: true, force: true });
  }
  if (errors.length) {
    throw new Error(`stopAll: ${errors.map((e) => (e instanceof RunError || e instanceof Error ? e.message : String(e))).join('\n')}`);
  }
}

/** What a run left behind: namespaces, its /tmp folder, mounts below it, processes naming it. */
export async function leftovers(runId: string): Promise<{ namespaces: string[]; folder: boolean; mounts: string[]; processes: number[] }> {
  const root = `${ROOT_PREFIX}${runId}`;
  const ns = (await run('ip', ['netns', 'list'], { timeoutMs: 10_000 })).stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(runId));
  return { namespaces: ns, folder: existsSync(root), mounts: mountsUnder([root]), processes: pidsNaming(root) };
}
