/**
 * lab.ts — the two-host lab of the overlay benchmark: h1 and h2 on one LAN (docs/lab.md), etcd in the
 * LAN namespace, a real dockerd per host with the overlay-flannel managed plugin, Docker swarm
 * between them, and one container per host on every Docker network measured.
 *
 * Design note: built from the test harness (test/helpers/docker-lab.ts, netns-lab.ts,
 * etcd-server.ts, test/lab/docker-plugin-lab.ts), as docker-overlays.test.ts installs the plugin:
 * `docker plugin create` from buildPlugin's output, `plugin set` (this lab's etcd, each host's own
 * Docker socket, LOG_LEVEL=debug so the plugin logs each API call's duration), `enable`. Overlays
 * are written with the product's CLI (`config set`): the default one (vxlan) and named ones for
 * host-gw, vxlan DirectRouting and the bridge datapath; in a run with of-wg (issue 22) the default
 * one is the wireguard backend (kept from when only the default overlay could have it: docs/wireguard.md;
 * wireguard-go is in the plugin's rootfs and /dev/net/tun granted by plugin/config.json, as in
 * test/lab/docker-wireguard.test.ts) and vxlan is the named overlay "vx"; with the v6 rows (issue 21)
 * the named overlay "v6" is dual-stack vxlan (a random IPv6Network /48 of fd00::/8; the hosts' eth0
 * get a random /64 of 2001:db8::/32 before the plugin starts, flannel-v6's underlay) and carries the
 * `--ipv6` network of6; each network is created once on h1 and replicated to h2 by the product. Every
 * overlay gets its own random /16 (and VNI when vxlan); the hand-built references (hand-paths.ts)
 * use 10.251/16, 10.252/16 and 10.253/16, which no overlay here takes.
 * {@link teardownLab} follows docs/lab.md §8's stop order (containers, swarm leave, dockerd, namespaces)
 * and is safe to call on a half-built lab.
 */
import { randomInt } from 'node:crypto';
import { join, resolve } from 'node:path';
import { buildPlugin } from '../scripts/plugin-build';
import { createDockerLab, importBusybox, labRoot, startDockerd, stopAll, type DockerHost } from '../test/helpers/docker-lab';
import { startEtcd, type EtcdServer } from '../test/helpers/etcd-server';
import type { Host, Lab } from '../test/helpers/netns-lab';
import { waitFor } from '../test/helpers/wait';
import { endpointOf, randomOverlay } from '../test/lab/docker-plugin-lab';

export const ROOT = resolve(__dirname, '..');
export const MAIN = join(ROOT, 'dist/main.js');
export const DRIVER = 'overlay-flannel:latest';
export const IMAGE = 'ofbox:1';

/** One overlay-flannel network of the bench: its overlay (CLI name) and what `network create` gets. */
export interface OverlayNet {
  /** Docker network name. */
  net: string;
  /** Named overlay (`--ipam-opt network=NAME`), or undefined for the default one. */
  overlay?: string;
  /** `overlay-flannel config set` flags besides --network/--vni/--name. */
  configFlags: string[];
  /** Extra `docker network create` flags (e.g. `-o datapath=bridge`). */
  createFlags: string[];
}

/**
 * The networks of a run. Without wireguard, ofvx is on the default overlay. With it, the default
 * overlay is the wireguard one (as when named overlays could not have it; kept for comparable runs)
 * and ofvx moves to the named overlay "vx" (overlay-bench.ts says what that changes).
 */
export function overlayNets(wireguard: boolean, ipv6 = false): OverlayNet[] {
  return [
    { net: 'ofvx', ...(wireguard ? { overlay: 'vx' } : {}), configFlags: [], createFlags: [] },
    ...(ipv6 ? [{ net: V6_NET, overlay: 'v6', configFlags: ['--ipv6-network', V6_NETWORK], createFlags: ['--ipv6'] }] : []),
    { net: 'ofhg', overlay: 'hg', configFlags: ['--backend', 'host-gw'], createFlags: [] },
    { net: 'ofdr', overlay: 'dr', configFlags: ['--direct-routing'], createFlags: [] },
    { net: 'ofbd', overlay: 'bd', configFlags: [], createFlags: ['-o', 'datapath=bridge'] },
    ...(wireguard ? [{ net: 'ofwg', configFlags: ['--backend', 'wireguard'], createFlags: [] }] : []),
  ];
}
export const SWARM_NET = 'swnet';
/** The dual-stack vxlan overlay's Docker network (`--ipv6`; issue 21's v6 row), its IPv6Network and the LAN's /64 (random per run). */
export const V6_NET = 'of6';
const hex16 = (): string => randomInt(1, 0xffff).toString(16);
export const V6_NETWORK = `fd${randomInt(0, 256).toString(16).padStart(2, '0')}:${hex16()}:${hex16()}::/48`;
const LAN6 = `2001:db8:${hex16()}:${hex16()}`;
export const BRIDGE_NET = 'brnet';

/** A container of the bench: where it runs, its network namespace and address on its network. */
export interface BenchContainer {
  name: string;
  net: string;
  docker: DockerHost;
  pid: number;
  ip: string;
  /** GlobalIPv6Address, on an `--ipv6` network. */
  ip6?: string;
}

export interface BenchLab {
  lab: Lab;
  etcd: EtcdServer;
  h1: Host;
  h2: Host;
  d1: DockerHost;
  d2: DockerHost;
  /** Default overlay's etcd prefix (named ones are `<prefix>-<name>`). */
  prefix: string;
  /** etcd prefix of each overlay-flannel network's overlay, by Docker network name. */
  prefixes: Record<string, string>;
  /** The Docker network on the default overlay (ofvx, or ofwg in a run with wireguard). */
  defaultNet: string;
  /** Docker networks that exist on both hosts (overlay-flannel + swarm), by name. */
  nets: Set<string>;
  /** Datapath of each overlay-flannel network as seen in h1's kernel: routed when its record bridge holds a link-local gateway 169.254.1.x. */
  datapath: Record<string, 'bridge' | 'routed'>;
  notes: string[];
}

type Log = (line: string) => void;

/** Container pid (its network namespace is /proc/<pid>/ns/net). */
export async function containerPid(d: DockerHost, name: string): Promise<number> {
  const pid = Number((await d.dockerOk(['inspect', '-f', '{{.State.Pid}}', name])).stdout.trim());
  if (!(pid > 1)) throw new Error(`container ${name} on ${d.host.ns} has no pid (not running?)`);
  return pid;
}

/** `docker run -d --init` a sleeping busybox on `net`; its pid and address. */
export async function startContainer(d: DockerHost, name: string, net: string): Promise<BenchContainer> {
  await d.dockerOk(['run', '-d', '--init', '--name', name, '--network', net, IMAGE, 'sleep', '3600'], { timeoutMs: 120_000 });
  const { ip } = await endpointOf(d, name, net);
  if (!ip) throw new Error(`container ${name} has no address on ${net}`);
  const ip6 = (await d.dockerOk(['inspect', '-f', `{{with index .NetworkSettings.Networks "${net}"}}{{.GlobalIPv6Address}}{{end}}`, name])).stdout.trim();
  return { name, net, docker: d, pid: await containerPid(d, name), ip, ...(ip6 ? { ip6 } : {}) };
}

/** Steps of a half-built lab, for teardown. */
let current: Partial<BenchLab> & { lab?: Lab } = {};

/** Build the lab: namespaces, etcd, two dockerds with the plugin, overlays (with `wireguard`: ofwg too), swarm, networks. */
export async function buildLab(log: Log, opts: { wireguard: boolean; ipv6?: boolean }): Promise<BenchLab> {
  const OVERLAY_NETS = overlayNets(opts.wireguard, opts.ipv6);
  current = {};
  // 'ofx': labs of prefix 'of' sweep namespaces named of<4 hex>…, so the letter after "of" must not be hex.
  const lab = await createDockerLab('ofx');
  current.lab = lab;
  const lan = await lab.lan();
  const etcd = await startEtcd({ netns: lan.ns, host: '192.0.2.254' });
  current.etcd = etcd;
  const h1 = await lab.addHost(1);
  const h2 = await lab.addHost(2);
  log(`lab ${lab.runId}: etcd ${etcd.endpoint}, starting dockerd on h1 and h2, building the plugin rootfs`);
  const [d1, d2, built] = await Promise.all([startDockerd(h1), startDockerd(h2), buildPlugin({ out: join(labRoot(lab.runId), 'plugin'), build: false })]);
  Object.assign(current, { h1, h2, d1, d2 });
  const notes: string[] = [];

  // Overlays: random distinct /16s in 10.100–10.240 and VNIs in 2..4000.
  const base = randomOverlay();
  const octets = new Set<number>();
  const vnis = new Set<number>();
  while (octets.size < OVERLAY_NETS.length) octets.add(randomInt(100, 241));
  while (vnis.size < OVERLAY_NETS.length) vnis.add(randomInt(2, 4001));
  const env = { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, ETCD_PREFIX: base.prefix };
  const [o, v] = [[...octets], [...vnis]];
  for (const [i, n] of OVERLAY_NETS.entries()) {
    const vxlan = !n.configFlags.includes('--backend'); // --vni is refused for the other backends
    const flags = ['--network', `10.${o[i]}.0.0/16`, ...(vxlan ? ['--vni', String(v[i])] : []), ...n.configFlags, ...(n.overlay ? ['--name', n.overlay] : [])];
    await h1.execOk(process.execPath, [MAIN, 'config', 'set', ...flags], { env, timeoutMs: 20_000 });
  }
  // The dual-stack overlay's flannel-v6 runs over the hosts' IPv6 underlay: a /64 of 2001:db8::/32 on the LAN.
  if (opts.ipv6) for (const [h, n] of [[h1, 1], [h2, 2]] as const) await h.execOk('ip', ['-6', 'addr', 'add', `${LAN6}::${n}/64`, 'dev', 'eth0', 'nodad']);
  log('installing the managed plugin on both hosts');
  await Promise.all(
    [d1, d2].map(async (d) => {
      await importBusybox(d, IMAGE);
      await d.dockerOk(['plugin', 'create', 'overlay-flannel', built.dir], { timeoutMs: 180_000 });
      await d.dockerOk(['plugin', 'set', 'overlay-flannel', `ETCD_ENDPOINTS=${etcd.endpoint}`, `ETCD_PREFIX=${base.prefix}`, 'IFACE=eth0', 'LOG_LEVEL=debug', `docker-socket.source=${d.sock}`]);
      await d.dockerOk(['plugin', 'enable', 'overlay-flannel'], { timeoutMs: 60_000 });
    }),
  );

  const nets = new Set<string>();
  const datapath: Record<string, 'bridge' | 'routed'> = {};
  for (const n of OVERLAY_NETS) {
    const args = ['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, ...(n.overlay ? ['--ipam-opt', `network=${n.overlay}`] : []), ...n.createFlags, n.net];
    const r = await d1.docker(args, { timeoutMs: 60_000 });
    if (r.code !== 0) {
      const why = r.stderr.trim().split('\n').slice(-1)[0] ?? '';
      const overlay = `overlay ${n.overlay ?? 'default'}${n.configFlags.length ? ` ${n.configFlags.join(' ')}` : ''}`;
      notes.push(`${n.net} (${overlay}): \`docker network create ${n.createFlags.join(' ')}\` refused (${why}); path skipped`);
      log(`note: ${notes[notes.length - 1]}`);
      continue;
    }
    await waitFor(async () => (await d2.docker(['network', 'inspect', n.net], { timeoutMs: 15_000 })).code === 0, { timeoutMs: 30_000, intervalMs: 200, what: `network ${n.net} replicated to h2` });
    const id = (await d1.dockerOk(['network', 'inspect', '-f', '{{.Id}}', n.net])).stdout.trim();
    // The routed data path keeps a port-less record bridge that holds the link-local gateway 169.254.1.1.
    const addrs = await h1.execJson<{ addr_info: { local: string }[] }[]>(['addr', 'show', 'dev', `ofb-${id.slice(0, 11)}`]).catch(() => []);
    datapath[n.net] = (addrs[0]?.addr_info ?? []).some((x) => /^169\.254\.1\.\d+$/.test(x.local)) ? 'routed' : 'bridge';
    nets.add(n.net);
  }

  log('swarm: init on h1, join from h2, attachable overlay');
  await d1.dockerOk(['swarm', 'init', '--advertise-addr', h1.ip, '--listen-addr', `${h1.ip}:2377`], { timeoutMs: 60_000 });
  const token = (await d1.dockerOk(['swarm', 'join-token', '-q', 'worker'])).stdout.trim();
  await d2.dockerOk(['swarm', 'join', '--token', token, '--advertise-addr', h2.ip, `${h1.ip}:2377`], { timeoutMs: 60_000 });
  await d1.dockerOk(['network', 'create', '-d', 'overlay', '--attachable', SWARM_NET], { timeoutMs: 60_000 });
  nets.add(SWARM_NET);

  // A Docker user-defined bridge on h1 (dockerd runs with --bridge=none; user-defined bridges still work).
  await d1.dockerOk(['network', 'create', '-d', 'bridge', BRIDGE_NET], { timeoutMs: 60_000 });
  const probe = await d1.docker(['run', '--rm', '--network', BRIDGE_NET, IMAGE, 'ip', '-4', 'addr', 'show', 'eth0'], { timeoutMs: 60_000 });
  if (probe.code !== 0 || !/inet \d/.test(probe.stdout)) throw new Error(`a container on the user-defined bridge ${BRIDGE_NET} got no address: ${probe.stdout}${probe.stderr}`);

  const prefixes = Object.fromEntries(OVERLAY_NETS.map((n) => [n.net, n.overlay ? `${base.prefix}-${n.overlay}` : base.prefix]));
  const defaultNet = OVERLAY_NETS.find((n) => !n.overlay)!.net;
  const b: BenchLab = { lab, etcd, h1, h2, d1, d2, prefix: base.prefix, prefixes, defaultNet, nets, datapath, notes };
  current = b;
  return b;
}

/** One container per host on `net` (`<net>-a` on h1, `<net>-b` on h2). */
export async function containerPair(b: BenchLab, net: string): Promise<[BenchContainer, BenchContainer]> {
  return Promise.all([startContainer(b.d1, `${net}-a`, net), startContainer(b.d2, `${net}-b`, net)]);
}

/**
 * Tear down whatever {@link buildLab} built so far: swarm leave on both hosts (workers first), then
 * stopAll (containers, dockerd, mounts, namespaces, the run folder), then etcd. Errors are collected.
 */
export async function teardownLab(log: Log): Promise<void> {
  const c = current;
  current = {};
  const errors: string[] = [];
  for (const d of [c.d2, c.d1]) {
    if (!d || d.pid() === undefined) continue;
    const ps = await d.docker(['ps', '-aq'], { timeoutMs: 15_000 });
    const ids = ps.stdout.split('\n').filter(Boolean);
    if (ids.length) await d.docker(['rm', '-f', ...ids], { timeoutMs: 120_000 });
    const r = await d.docker(['swarm', 'leave', '-f'], { timeoutMs: 30_000 });
    if (r.code !== 0 && !/not part of a swarm/.test(r.stderr)) errors.push(`swarm leave on ${d.host.ns}: ${r.stderr.trim()}`);
  }
  if (c.lab) await stopAll(c.lab).catch((e: unknown) => errors.push(String(e)));
  if (c.etcd) await c.etcd.cleanup().catch((e: unknown) => errors.push(String(e)));
  if (errors.length) log(`teardown: ${errors.join('; ')}`);
}
