/**
 * fault-lab.ts — the two-host Docker lab every fault file with Docker shares (docker-faults.test.ts,
 * etcd-host-faults.test.ts): LAN namespace with etcd (192.0.2.254) and a registry, h1 and h2 each
 * with a real dockerd, the managed plugin pushed to the registry and installed from it on both, one
 * random overlay and one network NET.
 *
 * Design note: the setup is docker-plugin.test.ts's, as one call ({@link startFaultLab}) and one
 * teardown ({@link FaultLab.stop}, which reports what was left behind). Scenario tools live beside
 * it: probe-stream.ts (continuous ping) and address-audit.ts (addresses, records and veths agree).
 * Per file: `liveRestore` (h1's dockerd with `--live-restore` and h2's without, so one lab can
 * restart a dockerd both ways; default off on both) and `pluginSettings` (more plugin env at
 * install, e.g. LEASE_TTL=90, on both hosts).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildPlugin } from '../../scripts/plugin-build';
import { createDockerLab, DOCKER, DOCKERD, importBusybox, labRoot, leftovers, REGISTRY_BIN, startDockerd, startRegistry, stopAll, type DockerHost } from '../helpers/docker-lab';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import type { Host, Lab } from '../helpers/netns-lab';
import { waitFor } from '../helpers/wait';
import * as L from '../lab/docker-plugin-lab';

export const ROOT = resolve(__dirname, '../..');
const MAIN = join(ROOT, 'dist/main.js');

/** Fail (never skip) when the lab cannot run here. */
export function requireDockerLab(): void {
  if (process.getuid?.() !== 0) throw new Error('the Docker fault lab needs root');
  const missing = [DOCKERD, DOCKER, REGISTRY_BIN, '/bin/busybox', '/usr/bin/ping', MAIN].filter((f) => !existsSync(f));
  if (missing.length) throw new Error(`the Docker fault lab needs ${missing.join(', ')} (apt-get install docker.io docker-registry busybox-static iputils-ping; npm run build)`);
}

export interface FaultLabOptions {
  /** `--live-restore` per host (h1, h2). Default off on both. */
  liveRestore?: [boolean, boolean];
  /** More `docker plugin install` settings (KEY=VALUE, e.g. `LEASE_TTL=90`), on both hosts; each must be settable in plugin/config.json. */
  pluginSettings?: string[];
  /** Also push a second release of the plugin (same build plus one file, as `docker plugin upgrade`
   *  needs content that differs) to the registry as {@link FaultLab.nextRef}. */
  nextRelease?: boolean;
  /** Docker's default bridge on both hosts (DockerdOptions.defaultBridge), for containers that
   *  start on it and are connected to ours later. */
  defaultBridge?: string;
}

export interface FaultLab {
  readonly lab: Lab;
  readonly etcd: EtcdServer;
  readonly ov: { network: string; vni: number; prefix: string };
  /** The Docker network on both hosts. */
  readonly net: string;
  readonly hosts: [Host, Host];
  readonly docker: [DockerHost, DockerHost];
  /** Each dockerd's lease (`10.x.y.0/24`). */
  readonly lease: Map<DockerHost, string>;
  /** The plugin's reference as installed, and (with `nextRelease`) a second release to upgrade to. */
  readonly pluginRef: string;
  readonly nextRef: string | null;
  /** The last lines of a dockerd's log (which holds the managed plugin's output too). */
  logTail(d: DockerHost, lines?: number): string;
  /** Tear everything down; rejects when the lab left something behind. */
  stop(): Promise<void>;
}

/** Build the lab, install the plugin on both hosts, create NET on both. About a minute. */
export async function startFaultLab(opts: FaultLabOptions = {}): Promise<FaultLab> {
  const ov = L.randomOverlay();
  const net = 'ofnet';
  const lab = await createDockerLab('of');
  let etcd: EtcdServer | undefined;
  const stop = async (): Promise<void> => {
    const runId = lab.runId;
    await etcd?.cleanup();
    await stopAll(lab);
    assert.deepEqual(await leftovers(runId), { namespaces: [], folder: false, mounts: [], processes: [] }, 'the lab left something behind');
  };
  try {
    const lan = await lab.lan();
    const [e, reg] = await Promise.all([startEtcd({ netns: lan.ns, host: '192.0.2.254' }), startRegistry(lab)]);
    etcd = e;
    const h1 = await lab.addHost(1);
    const h2 = await lab.addHost(2);
    const live = opts.liveRestore ?? [false, false];
    const [d1, d2, built] = await Promise.all([
      startDockerd(h1, { insecureRegistry: reg.url, liveRestore: live[0], defaultBridge: opts.defaultBridge }),
      startDockerd(h2, { insecureRegistry: reg.url, liveRestore: live[1], defaultBridge: opts.defaultBridge }),
      buildPlugin({ out: join(labRoot(lab.runId), 'plugin'), build: false }),
    ]);
    const env = { ...process.env, ETCD_ENDPOINTS: e.endpoint, ETCD_PREFIX: ov.prefix };
    await h1.execOk('node', [MAIN, 'config', 'set', '--network', ov.network, '--vni', String(ov.vni)], { env, timeoutMs: 20_000 });
    await Promise.all([importBusybox(d1), importBusybox(d2)]);
    await d1.dockerOk(['plugin', 'create', L.PLUGIN_REF, built.dir], { timeoutMs: 180_000 });
    await d1.dockerOk(['plugin', 'push', L.PLUGIN_REF], { timeoutMs: 180_000 });
    await d1.dockerOk(['plugin', 'rm', L.PLUGIN_REF]);
    let nextRef: string | null = null;
    if (opts.nextRelease) {
      nextRef = L.PLUGIN_REF.replace(/:[^:/]+$/, '') + ':next';
      await L.pushNextRelease(d1, built.dir, nextRef);
    }
    const tail = (d: DockerHost, n = 40): string => d.logs().split('\n').slice(-n).join('\n');
    await Promise.all(
      [d1, d2].map(async (d) => {
        const settings = [`ETCD_ENDPOINTS=${e.endpoint}`, `ETCD_PREFIX=${ov.prefix}`, 'IFACE=eth0', `docker-socket.source=${d.sock}`, ...(opts.pluginSettings ?? [])];
        const r = await d.docker(['plugin', 'install', '--grant-all-permissions', '--alias', 'overlay-flannel', L.PLUGIN_REF, ...settings], { timeoutMs: 180_000 });
        assert.equal(r.code, 0, `plugin install on ${d.host.ns}: ${r.stderr}\n${tail(d)}`);
      }),
    );
    const held = await waitFor(async () => {
      const l = await L.leases(e, ov.prefix);
      return l.has(h1.ip) && l.has(h2.ip) && l;
    }, { timeoutMs: 30_000, what: 'leases of both hosts in etcd' });
    const lease = new Map<DockerHost, string>([[d1, held.get(h1.ip)!], [d2, held.get(h2.ip)!]]);
    for (const d of [d1, d2]) {
      const r = await d.docker(['network', 'create', '-d', L.DRIVER, '--ipam-driver', L.DRIVER, net], { timeoutMs: 60_000 });
      // h1's network is replicated to h2 by h2's plugin: it may be there already.
      if (r.code !== 0 && !(d === d2 && /already exists|already has a Docker network/.test(r.stderr))) {
        throw new Error(`network create on ${d.host.ns}: ${r.stderr}\n${tail(d)}`);
      }
      await d.dockerOk(['network', 'inspect', net]);
    }
    return { lab, etcd: e, ov, net, hosts: [h1, h2], docker: [d1, d2], lease, pluginRef: L.PLUGIN_REF, nextRef, logTail: tail, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

/** The pid of the plugin process in a host's namespace, waiting until there is exactly one. */
export async function pluginPid(h: Host, timeoutMs = 30_000): Promise<number> {
  const [pid] = await waitFor(async () => {
    const p = await L.pluginPids(h);
    return p.length === 1 && p;
  }, { timeoutMs, intervalMs: 100, what: `one plugin process in ${h.ns}` });
  return pid!;
}

/** VmRSS of a process in KiB (from /proc/<pid>/status). */
export function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

/**
 * Figures of the last run, merged into test-artifacts/<name>.json (one key per scenario), so the
 * README's reliability table can quote them.
 */
export function recordFigures(name: string, scenario: string, figures: Record<string, unknown>): string {
  const dir = join(ROOT, 'test-artifacts');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  let all: Record<string, unknown> = {};
  try {
    all = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    all = {};
  }
  all[scenario] = { ...figures, at: new Date().toISOString() };
  writeFileSync(file, `${JSON.stringify(all, null, 2)}\n`);
  return file;
}
