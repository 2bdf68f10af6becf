/**
 * docker-lab.ts — real Docker daemons inside the hosts of a namespace lab (netns-lab.ts), local
 * images without a registry, and a local registry on the LAN.
 *
 * Design note (see docs/lab.md §4–§9):
 * - One dockerd per host, started with `nsenter --net=/var/run/netns/<host>` (never `ip netns
 *   exec`: it remounts /sys and dockerd dies with "Devices cgroup isn't mounted"), with its own
 *   data-root, exec-root, socket, pidfile and cgroup parent under `/tmp/of-docker-<runId>/h<n>`,
 *   `--bridge=none`, cgroupfs driver. It supervises its own containerd under the exec-root; a
 *   system containerd at /run/containerd/containerd.sock would be shared by every daemon (and run
 *   plugins in the wrong namespace), so startDockerd refuses to run when that socket exists.
 * - The CLI is always /usr/bin/docker (the distribution's 20.10 CLI) with `-H unix://<sock>`.
 *   Unix sockets are files, so the test process reaches every daemon from any network namespace.
 * - Stop order (docs/lab.md §8): `docker rm -f` every container (a `sleep` as PID 1 ignores SIGTERM and
 *   makes dockerd wait 10 s each), `swarm leave -f` when in a swarm, SIGTERM dockerd by its pidfile
 *   and wait for it to exit (SIGKILL after 20 s), then kill what still names this daemon's folder
 *   (containerd, shims) or sits in its cgroup parent (orphaned containers), `umount -l` everything
 *   mounted under its folder and the runtime folders of its managed plugins
 *   (/run/docker/plugins/<id>: a static path on Linux, shared by all daemons), remove the cgroups.
 *   Processes of host-network plugins live in the host namespace: Lab.destroy() kills them.
 * - Crash safety: the run folder holds an `owner` file ("pid starttime", as netns-lab's owner
 *   files); {@link sweepStaleDocker} tears down folders whose owner is gone, and only those.
 * - Mount namespace: shared with the test process by default, so /run/docker/plugins (a static
 *   path) is common to all daemons. `privatePluginDir` gives a daemon its own mount namespace
 *   (`unshare --mount --propagation private`) with its own folder bound on /run/docker/plugins,
 *   as on separate machines (legacy plugin sockets such as overlay-flannel.sock are per host).
 *   Its mounts then live and die with that namespace; teardown finds none in the test's.
 * Every loop and command is bounded in time. Teardown and leftover sweeping live in
 * docker-teardown.ts, image building in docker-images.ts (both re-exported here).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DockerCli } from '../../scripts/plugin-build';
import { createLab, type DaemonHandle, type Host, type Lab } from './netns-lab';
import { run, RunError, type RunOptions, type RunResult } from './run';
import { sleep, waitFor } from './wait';
import { alive, killAndWait, mountsUnder, pidsNaming, procStamp, sweepStaleDocker, teardownFolder } from './docker-teardown';

export { sweepStaleDocker };
export { dockerfilePlugin, importBusybox, importNodeBase } from './docker-images';

export const DOCKER = '/usr/bin/docker';
/** Debian's docker.io installs dockerd in /usr/sbin (not /usr/bin). */
export const DOCKERD = existsSync('/usr/sbin/dockerd') ? '/usr/sbin/dockerd' : '/usr/bin/dockerd';
export const REGISTRY_BIN = '/usr/bin/docker-registry';
export const REGISTRY_ADDR = '192.0.2.254:5000';
const ROOT_PREFIX = '/tmp/of-docker-';
const SYSTEM_CONTAINERD = '/run/containerd/containerd.sock';
const UNSHARE = '/usr/bin/unshare';
/** Docker's static folder of plugin sockets and managed plugins' runtime folders (Linux). */
const PLUGIN_RUN = '/run/docker/plugins';

/** Options of {@link startDockerd}. */
export interface DockerdOptions {
  /** `--insecure-registry` (e.g. the lab registry, 192.0.2.254:5000). */
  insecureRegistry?: string;
  /** `--live-restore`: containers survive a restart of dockerd. */
  liveRestore?: boolean;
  /** More dockerd flags. */
  extraArgs?: string[];
  /**
   * Docker's default `bridge` network (docker0) with this `--bip`, inside the host's namespace, as
   * on a real host. Default none (`--bridge=none`): then Docker marks a container started on the
   * default network as network-disabled and, at its next start (a dockerd restart), connects it to
   * no network at all, not even ones connected later (moby's connectToNetwork with DisableBridge).
   */
  defaultBridge?: string;
  /** Readiness deadline. Default 60 s. */
  readyTimeoutMs?: number;
  /**
   * Give this dockerd its own mount namespace whose /run/docker/plugins is the folder
   * {@link DockerHost.pluginRunDir}, as a real host has its own: legacy plugin sockets there
   * (overlay-flannel.sock) and the runtime folders of managed plugins are then this host's only.
   */
  privatePluginDir?: boolean;
}

const daemons = new Set<DockerHost>();
const registries = new Set<Registry>();

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
  /** With `privatePluginDir`: what this daemon sees as /run/docker/plugins (the test process sees it here). */
  readonly pluginRunDir: string;
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
    this.pluginRunDir = opts.privatePluginDir ? join(this.dir, 'plugins-run') : PLUGIN_RUN;
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
      ...(this.opts.defaultBridge ? ['--bip', this.opts.defaultBridge] : ['--bridge=none']),
      '--exec-opt', 'native.cgroupdriver=cgroupfs',
      '--cgroup-parent', this.cgroupParent,
      ...(this.opts.insecureRegistry ? ['--insecure-registry', this.opts.insecureRegistry] : []),
      ...(this.opts.liveRestore ? ['--live-restore'] : []),
      ...(this.opts.extraArgs ?? []),
    ];
    writeFileSync(this.logFile, `--- dockerd ${args.join(' ')}\n`, { flag: 'a' });
    let h: DaemonHandle;
    if (this.opts.privatePluginDir) {
      // nsenter --net … unshare --mount: one process (each execs the next), so the pid is dockerd's.
      // A plain mount namespace, not `ip netns exec` (which remounts /sys: dockerd dies).
      mkdirSync(this.pluginRunDir, { recursive: true });
      mkdirSync(PLUGIN_RUN, { recursive: true });
      const script = 'mount --bind "$0" /run/docker/plugins && exec "$@"';
      h = this.host.spawnDaemon(UNSHARE, ['--mount', '--propagation', 'private', 'sh', '-c', script, this.pluginRunDir, DOCKERD, ...args], {}, { logFile: this.logFile });
    } else {
      h = this.host.spawnDaemon(DOCKERD, args, {}, { logFile: this.logFile });
    }
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

  /** Full stop in docs/lab.md §8's order; leaves the folder (data) in place. Bounded (~1 min worst case). */
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

/**
 * Stop every daemon and registry this process started with this module (all labs, or only
 * `lab`'s), in docs/lab.md §8's order; then, when `lab` is given, destroy it and remove its run folder.
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
