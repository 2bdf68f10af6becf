/**
 * names-lab.ts — the lab of the names benchmark (bench/names-bench.ts): three real dockerds with
 * the overlay-flannel managed plugin, Docker's own embedded DNS, and Docker swarm beside it.
 *
 *   LAN namespace: etcd, the fake upstream DNS (test/lab/fake-upstream-dns.ts) on 192.0.2.254:53;
 *     every dockerd runs with `--dns 192.0.2.254`, so no query ever leaves the lab.
 *   h1, h2: the plugin with NAMES=true; swarm (init on h1, join from h2) and an --attachable
 *     swarm overlay, so swarm's own DNS (gossip) is measured on the same two hosts.
 *   h3: the plugin with NAMES=false: the same overlay network without the resolver in the path
 *     (the reference for forwarded names: Docker → upstream, one hop, nothing queued).
 * Long-lived containers: on h1 `cli` (NET) and `swc` (swarm net) run the probes; `loc` (NET) is
 * the same-host name; on h2 `far` (NET) and `swfar` (swarm net) are the remote names; on h3
 * `cli3` (NET) probes the NAMES=false path.
 *
 * Design note: built like test/lab/docker-names.test.ts (same helpers, same plugin install) and
 * torn down like bench/lab.ts (containers, swarm leave, stopAll, etcd), safe on a half-built lab.
 * The probe (names-probe.ts) is the host's node entered into a container's network namespace.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createDockerLab, startDockerd, stopAll, type DockerHost } from '../test/helpers/docker-lab';
import { startEtcd, type EtcdServer } from '../test/helpers/etcd-server';
import type { Host, Lab, Ns } from '../test/helpers/netns-lab';
import { waitFor } from '../test/helpers/wait';
import { startFakeUpstream, type FakeUpstream } from '../test/lab/fake-upstream-dns';
import * as L from '../test/lab/docker-plugin-lab';
import { containerPid, IMAGE, MAIN, ROOT } from './lab';

export const STATUS = '127.0.0.1:9890';
const DOCKERD_OPTS = { extraArgs: ['--dns', '192.0.2.254'] };

export interface NamesLab {
  lab: Lab;
  lan: Ns;
  etcd: EtcdServer;
  upstream: FakeUpstream;
  h: [Host, Host, Host];
  d: [DockerHost, DockerHost, DockerHost];
  prefix: string;
  tag: string;
  net: string;
  swnet: string;
  /** The external name the upstream answers (203.0.113.7). */
  ext: string;
  /** Container name → its address on its network. */
  ip: Record<string, string>;
  names: { cli: string; swc: string; loc: string; far: string; swfar: string; cli3: string };
  swarm: boolean;
  notes: string[];
}

type Log = (l: string) => void;
let current: Partial<NamesLab> = {};

export async function buildNamesLab(log: Log, nameTtl: number): Promise<NamesLab> {
  current = {};
  const lab = await createDockerLab('ofnm');
  current.lab = lab;
  const tag = randomBytes(3).toString('hex');
  const ov = L.randomOverlay();
  const net = `nbn-${tag}`;
  const swnet = `nbs-${tag}`;
  const ext = `ext-${tag}.example`;
  const lan = await lab.lan();
  const etcd = await startEtcd({ netns: lan.ns, host: '192.0.2.254' });
  current.etcd = etcd;
  const upstream = await startFakeUpstream(lan, { [ext]: ['203.0.113.7'] });
  log(`lab ${lab.runId}: etcd ${etcd.endpoint}; dockerd on h1, h2, h3; building the plugin`);
  const { h1, h2, d1, d2, pluginDir } = await L.twoDockerHosts(lab, DOCKERD_OPTS);
  current.d = [d1, d2] as unknown as NamesLab['d'];
  const h3 = await lab.addHost(3);
  const d3 = await startDockerd(h3, DOCKERD_OPTS);
  current.d = [d1, d2, d3];
  const env = { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, ETCD_PREFIX: ov.prefix };
  await h1.execOk(process.execPath, [MAIN, 'config', 'set', '--network', ov.network, '--vni', String(ov.vni)], { env, timeoutMs: 20_000 });
  log('installing the plugin (h1, h2 NAMES=true; h3 NAMES=false)');
  const base = [`NAME_TTL=${nameTtl}`, `STATUS_ADDR=${STATUS}`];
  await Promise.all([
    L.installPlugin(d1, pluginDir, L.pluginSettings(etcd, ov.prefix, d1, base)),
    L.installPlugin(d2, pluginDir, L.pluginSettings(etcd, ov.prefix, d2, base)),
    L.installPlugin(d3, pluginDir, L.pluginSettings(etcd, ov.prefix, d3, [...base, 'NAMES=false'])),
  ]);
  await d1.dockerOk(['network', 'create', '-d', L.DRIVER, '--ipam-driver', L.DRIVER, net], { timeoutMs: 90_000 });
  for (const d of [d2, d3]) await waitFor(async () => (await d.docker(['network', 'inspect', net])).code === 0, { timeoutMs: 60_000, what: `${net} replicated to ${d.host.ns}` });
  const notes: string[] = [];
  let swarm = false;
  try {
    log('swarm: init on h1, join from h2, attachable overlay');
    await d1.dockerOk(['swarm', 'init', '--advertise-addr', h1.ip, '--listen-addr', `${h1.ip}:2377`], { timeoutMs: 60_000 });
    const token = (await d1.dockerOk(['swarm', 'join-token', '-q', 'worker'])).stdout.trim();
    await d2.dockerOk(['swarm', 'join', '--token', token, '--advertise-addr', h2.ip, `${h1.ip}:2377`], { timeoutMs: 60_000 });
    await d1.dockerOk(['network', 'create', '-d', 'overlay', '--attachable', swnet], { timeoutMs: 60_000 });
    swarm = true;
  } catch (e) {
    notes.push(`swarm could not be set up (${e instanceof Error ? e.message.split('\n')[0] : String(e)}): no swarm rows`);
  }
  const names = { cli: `cli-${tag}`, swc: `swc-${tag}`, loc: `loc-${tag}`, far: `far-${tag}`, swfar: `swfar-${tag}`, cli3: `cli3-${tag}` };
  const box = (d: DockerHost, name: string, n: string) => d.dockerOk(['run', '-d', '--init', '--name', name, '--network', n, IMAGE, 'sleep', '3600'], { timeoutMs: 120_000 });
  await Promise.all([box(d1, names.cli, net), box(d1, names.loc, net), box(d2, names.far, net), box(d3, names.cli3, net)]);
  if (swarm) await Promise.all([box(d1, names.swc, swnet), box(d2, names.swfar, swnet)]);
  const ip: Record<string, string> = {};
  for (const [d, c, n] of [[d1, names.cli, net], [d1, names.loc, net], [d2, names.far, net], [d3, names.cli3, net], ...(swarm ? [[d1, names.swc, swnet], [d2, names.swfar, swnet]] : [])] as Array<[DockerHost, string, string]>) {
    ip[c] = (await L.endpointOf(d, c, n)).ip;
  }
  const b: NamesLab = { lab, lan, etcd, upstream, h: [h1, h2, h3], d: [d1, d2, d3], prefix: ov.prefix, tag, net, swnet, ext, ip, names, swarm, notes };
  current = b;
  return b;
}

/** Containers removed, swarm left (worker first), dockerds and namespaces stopped, etcd gone. */
export async function teardownNamesLab(log: Log): Promise<void> {
  const c = current;
  current = {};
  const errors: string[] = [];
  for (const d of [...(c.d ?? [])].reverse()) {
    if (!d || d.pid() === undefined) continue;
    const ids = (await d.docker(['ps', '-aq'], { timeoutMs: 15_000 })).stdout.split('\n').filter(Boolean);
    if (ids.length) await d.docker(['rm', '-f', ...ids], { timeoutMs: 120_000 });
    const r = await d.docker(['swarm', 'leave', '-f'], { timeoutMs: 30_000 });
    if (r.code !== 0 && !/not part of a swarm/.test(r.stderr)) errors.push(`swarm leave on ${d.host.ns}: ${r.stderr.trim()}`);
  }
  if (c.lab) await stopAll(c.lab).catch((e: unknown) => errors.push(String(e)));
  if (c.etcd) await c.etcd.cleanup().catch((e: unknown) => errors.push(String(e)));
  if (errors.length) log(`teardown: ${errors.join('; ')}`);
}

/** A names-probe.ts process in a container's network namespace, driven by JSON lines. */
export class Probe {
  private next = 1;
  private readonly pending = new Map<number, (r: Record<string, unknown>) => void>();
  private ready!: Promise<void>;
  private constructor(
    readonly label: string,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {}

  static async start(d: DockerHost, container: string): Promise<Probe> {
    const pid = await containerPid(d, container);
    const child = spawn('nsenter', [`--net=/proc/${pid}/ns/net`, process.execPath, '--import', 'tsx', join(ROOT, 'bench/names-probe.ts')], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    const p = new Probe(container, child);
    let err = '';
    child.stderr.on('data', (x: Buffer) => void (err = (err + x.toString()).slice(-2000)));
    p.ready = new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`probe in ${container} not ready in 30 s: ${err}`)), 30_000);
      child.once('exit', (code) => reject(new Error(`probe in ${container} exited ${code}: ${err}`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        const m = JSON.parse(line) as Record<string, unknown>;
        if (m.ready) {
          clearTimeout(t);
          resolve();
        }
        const id = m.id as number | undefined;
        if (id !== undefined) {
          p.pending.get(id)?.(m);
          p.pending.delete(id);
        }
      });
    });
    await p.ready;
    return p;
  }

  /** Send one command; its reply (rejects after `timeoutMs`). */
  ask(cmd: Record<string, unknown>, timeoutMs: number): Promise<Record<string, unknown>> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`probe ${this.label}: no reply to ${String(cmd.op)} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      this.child.stdin.write(`${JSON.stringify({ ...cmd, id })}\n`);
    });
  }

  stop(): void {
    this.child.stdin.end();
    setTimeout(() => this.child.kill('SIGKILL'), 2000).unref();
  }
}

/** VmRSS and VmHWM (kB) of a process. */
export function memoryOf(pid: number, read: (p: string) => string): { rssKb: number; hwmKb: number } {
  const s = read(`/proc/${pid}/status`);
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
}
