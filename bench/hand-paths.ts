/**
 * hand-paths.ts — the kernel references of the overlay benchmark, built by hand with iproute2 on
 * the same two hosts (h1, h2) as the product, between plain namespaces standing in for containers.
 *
 * Design note (docs/performance.md §3):
 * - "hand vxlan" is flannel's model with zero control plane: a vxlan device (VNI 4091, port 8472,
 *   nolearning, fixed MAC, `10.251.N.0/32`), a bridge `hvbr` with the gateway `10.251.N.1/24`, a
 *   veth into the namespace (`10.251.N.2/24`, default via .1); towards the other host an onlink
 *   route `10.251.M.0/24 via 10.251.M.0`, a permanent neighbour (that address → remote VTEP MAC)
 *   and an FDB entry (remote VTEP MAC → remote host IP).
 * - "hand routed vxlan" is docs/performance.md §3's routed design: no bridge; the namespace's address is a
 *   /32 on its veth with a default route via the link-local gateway 169.254.1.1 (a permanent
 *   neighbour entry to the host end's MAC), the host has `10.252.N.2/32 dev <veth>` plus a
 *   permanent neighbour; vxlan VNI 4092 on its own port 8473 so that raw-table NOTRACK rules for
 *   its UDP flows and its inner packets touch nothing else on the host.
 * - "hand wireguard" is flanneld's wireguard backend by hand (issue 22): wireguard-go on each host
 *   with a device `hwg-<runId>` (unique per run), a key pair from `wg genkey`, listen port 51831
 *   (the product's flannel-wg has 51820 in the same namespaces), the address `10.253.N.0/32`, MTU
 *   1420, one peer (the other host's key, endpoint `<its IP>:51831`, allowed IPs its /24) and a route
 *   `10.253.M.0/24 dev hwg-…`; behind it flannel's bridge `hwbr` with `10.253.N.1/24` and a veth into
 *   the namespace. wireguard-go runs as the product runs it: foreground, `setpriv --pdeathsig`, in a
 *   mount namespace of its own with a tmpfs on /run/wireguard (its UAPI socket never touches the
 *   host's), configured with `wg` entered into that mount namespace; the private key goes to `wg`
 *   through a pipe, never into a file.
 * Docker set FORWARD's policy to DROP on both hosts: each path gets ACCEPT rules for its /16.
 * No overlay of the product uses 10.251/16, 10.252/16, 10.253/16 or these VNIs (lab.ts). Everything
 * lives in the lab's namespaces and goes away with them (lab.destroy stops the tracked wireguard-go
 * and kills whatever is left in each namespace).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Host, Lab, Ns } from '../test/helpers/netns-lab';
import { run } from '../test/helpers/run';
import { waitFor } from '../test/helpers/wait';

/** One end of a measured path: a network namespace (by path) and the address to reach it at. */
export interface Endpoint {
  netns: string;
  ip: string;
}

const ip = (ns: string, ...a: string[]) => run('ip', ['-n', ns, ...a], { timeoutMs: 10_000 });
const inNs = (ns: string, cmd: string, ...a: string[]) => run('nsenter', [`--net=/var/run/netns/${ns}`, cmd, ...a], { timeoutMs: 10_000 });
const mac = (vni: number, n: number): string => `02:${(vni >> 8).toString(16).padStart(2, '0')}:${(vni & 0xff).toString(16).padStart(2, '0')}:00:00:${n.toString(16).padStart(2, '0')}`;

async function linkMac(ns: string, dev: string): Promise<string> {
  const { stdout } = await run('ip', ['-n', ns, '-j', 'link', 'show', 'dev', dev], { timeoutMs: 10_000 });
  const m = (JSON.parse(stdout) as { address?: string }[])[0]?.address;
  if (!m) throw new Error(`no MAC on ${dev} in ${ns}`);
  return m;
}

/** The vxlan device of a hand path on host `h`, its address `<net>.<n>.0/32`, and ACCEPT rules for the /16. */
async function vtep(h: Host, dev: string, vni: number, port: number, net: string): Promise<void> {
  await ip(h.ns, 'link', 'add', dev, 'address', mac(vni, h.n), 'type', 'vxlan', 'id', String(vni), 'local', h.ip, 'dev', 'eth0', 'dstport', String(port), 'nolearning');
  await ip(h.ns, 'link', 'set', dev, 'mtu', '1450', 'up');
  await ip(h.ns, 'addr', 'add', `${net}.${h.n}.0/32`, 'dev', dev);
  await run('ip', ['netns', 'exec', h.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'], { timeoutMs: 10_000 });
  for (const dir of ['-s', '-d']) await inNs(h.ns, 'iptables', '-I', 'FORWARD', '1', dir, `${net}.0.0/16`, '-j', 'ACCEPT');
}

/** Route, neighbour and FDB entry on `h` towards the other host `peer` (flannel's three entries). */
async function peerEntries(h: Host, peer: Host, dev: string, vni: number, net: string): Promise<void> {
  const gw = `${net}.${peer.n}.0`;
  await ip(h.ns, 'route', 'add', `${net}.${peer.n}.0/24`, 'via', gw, 'dev', dev, 'onlink');
  await ip(h.ns, 'neigh', 'add', gw, 'lladdr', mac(vni, peer.n), 'dev', dev, 'nud', 'permanent');
  await run('bridge', ['-n', h.ns, 'fdb', 'append', mac(vni, peer.n), 'dev', dev, 'dst', peer.ip, 'self', 'permanent'], { timeoutMs: 10_000 });
}

/** A namespace `<host><suffix>` behind a veth `<hostDev>` on host `h`, its end named eth0 with MTU `mtu`. */
async function attached(lab: Lab, h: Host, suffix: string, hostDev: string, mtu = 1450): Promise<Ns> {
  const c = await lab.addContainerNs(h, suffix);
  await ip(h.ns, 'link', 'add', hostDev, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', String(mtu), 'netns', c.ns);
  await ip(h.ns, 'link', 'set', hostDev, 'up');
  await ip(c.ns, 'link', 'set', 'eth0', 'up');
  return c;
}

/** Flannel's model by hand (bridge, gateway .1, routing, vxlan) between `<h1>hv` and `<h2>hv`. */
export async function handVxlan(lab: Lab, h1: Host, h2: Host): Promise<[Endpoint, Endpoint]> {
  const vni = 4091;
  const net = '10.251';
  const ends: Endpoint[] = [];
  for (const h of [h1, h2]) {
    await vtep(h, 'hvx', vni, 8472, net);
    ends.push(await bridged(lab, h, 'hvbr', 'hv', 'hvv', net, 1450));
  }
  await peerEntries(h1, h2, 'hvx', vni, net);
  await peerEntries(h2, h1, 'hvx', vni, net);
  return [ends[0]!, ends[1]!];
}

/** The routed design (docs/performance.md §3) by hand (/32 on the veth, link-local gateway, no bridge, NOTRACK) between `<h1>hr` and `<h2>hr`. */
export async function handRoutedVxlan(lab: Lab, h1: Host, h2: Host): Promise<[Endpoint, Endpoint]> {
  const vni = 4092;
  const port = 8473;
  const net = '10.252';
  const ends: Endpoint[] = [];
  for (const h of [h1, h2]) {
    await vtep(h, 'hvr', vni, port, net);
    const c = await attached(lab, h, 'hr', 'hrv');
    const addr = `${net}.${h.n}.2`;
    await ip(c.ns, 'addr', 'add', `${addr}/32`, 'dev', 'eth0');
    await ip(c.ns, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
    await ip(c.ns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
    await ip(c.ns, 'neigh', 'add', '169.254.1.1', 'lladdr', await linkMac(h.ns, 'hrv'), 'dev', 'eth0', 'nud', 'permanent');
    await ip(h.ns, 'route', 'add', `${addr}/32`, 'dev', 'hrv');
    await ip(h.ns, 'neigh', 'add', addr, 'lladdr', await linkMac(c.ns, 'eth0'), 'dev', 'hrv', 'nud', 'permanent');
    const raw = (...a: string[]) => inNs(h.ns, 'iptables', '-t', 'raw', '-A', ...a, '-j', 'NOTRACK');
    await raw('PREROUTING', '-s', `${net}.0.0/16`, '-d', `${net}.0.0/16`);
    await raw('PREROUTING', '-p', 'udp', '--dport', String(port));
    await raw('OUTPUT', '-p', 'udp', '--dport', String(port));
    ends.push({ netns: c.nsPath, ip: addr });
  }
  await peerEntries(h1, h2, 'hvr', vni, net);
  await peerEntries(h2, h1, 'hvr', vni, net);
  return [ends[0]!, ends[1]!];
}

/** Bridge `<br>` with `<net>.<n>.1/24` on `h` and a namespace behind it at `<net>.<n>.2/24` (flannel's model), MTU `mtu`. */
async function bridged(lab: Lab, h: Host, br: string, suffix: string, hostDev: string, net: string, mtu: number): Promise<Endpoint> {
  await ip(h.ns, 'link', 'add', br, 'type', 'bridge');
  await ip(h.ns, 'addr', 'add', `${net}.${h.n}.1/24`, 'dev', br);
  await ip(h.ns, 'link', 'set', br, 'up');
  const c = await attached(lab, h, suffix, hostDev, mtu);
  await ip(h.ns, 'link', 'set', hostDev, 'master', br);
  await ip(c.ns, 'addr', 'add', `${net}.${h.n}.2/24`, 'dev', 'eth0');
  await ip(c.ns, 'route', 'add', 'default', 'via', `${net}.${h.n}.1`);
  return { netns: c.nsPath, ip: `${net}.${h.n}.2` };
}

export const HAND_WG_PORT = 51831;

/** flanneld's wireguard backend by hand (wireguard-go + wg) between `<h1>hw` and `<h2>hw`; `dev` is the device's name on both hosts. */
export async function handWireguard(lab: Lab, h1: Host, h2: Host): Promise<{ ends: [Endpoint, Endpoint]; dev: string }> {
  for (const bin of ['/usr/bin/wireguard-go', '/usr/bin/wg', '/usr/bin/setpriv']) if (!existsSync(bin)) throw new Error(`hand wireguard needs ${bin} (apt-get install wireguard-go wireguard-tools util-linux)`);
  const net = '10.253';
  const dev = `hwg-${lab.runId}`.slice(0, 15);
  const keys = new Map<number, { priv: string; pub: string }>();
  const pids = new Map<number, number>();
  for (const h of [h1, h2]) {
    const priv = (await run('wg', ['genkey'], { timeoutMs: 10_000 })).stdout.trim();
    const pub = (await run('wg', ['pubkey'], { input: `${priv}\n`, timeoutMs: 10_000 })).stdout.trim();
    keys.set(h.n, { priv, pub });
    const wgo = h.spawnDaemon('setpriv', ['--pdeathsig', 'TERM', 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mkdir -p /run/wireguard && mount -t tmpfs none /run/wireguard && exec wireguard-go "$0"', dev], { WG_PROCESS_FOREGROUND: '1' });
    let gone = false;
    void wgo.exited.then(() => (gone = true));
    // nsenter, setpriv, unshare and sh exec one another: the spawned pid becomes wireguard-go itself.
    await waitFor(
      async () => {
        if (gone) throw new Error(`wireguard-go ${dev} on ${h.ns} exited: ${wgo.logs().slice(-300)}`);
        const cmd = readFileSync(`/proc/${wgo.pid}/cmdline`, 'utf8');
        return cmd.startsWith('wireguard-go\0') && existsSync(`/proc/${wgo.pid}/root/run/wireguard/${dev}.sock`);
      },
      { timeoutMs: 15_000, intervalMs: 100, what: `wireguard-go ${dev} on ${h.ns}`, bail: (e) => e instanceof Error && / exited: /.test(e.message) },
    );
    pids.set(h.n, wgo.pid);
  }
  // `wg … private-key /dev/stdin` cannot open node's stdin (a socket): cat hands the key over in a pipe.
  const wg = (h: Host, args: string[], input: string) => run('nsenter', [`--mount=/proc/${pids.get(h.n)}/ns/mnt`, `--net=${h.nsPath}`, 'sh', '-c', 'cat | wg "$@"', 'sh', ...args], { input, timeoutMs: 10_000 });
  const ends: Endpoint[] = [];
  for (const [h, peer] of [[h1, h2], [h2, h1]] as const) {
    await wg(h, ['set', dev, 'private-key', '/dev/stdin', 'listen-port', String(HAND_WG_PORT), 'peer', keys.get(peer.n)!.pub, 'endpoint', `${peer.ip}:${HAND_WG_PORT}`, 'allowed-ips', `${net}.${peer.n}.0/24`], `${keys.get(h.n)!.priv}\n`);
    await ip(h.ns, 'addr', 'add', `${net}.${h.n}.0/32`, 'dev', dev);
    await ip(h.ns, 'link', 'set', dev, 'mtu', '1420', 'up');
    await ip(h.ns, 'route', 'add', `${net}.${peer.n}.0/24`, 'dev', dev);
    await run('ip', ['netns', 'exec', h.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'], { timeoutMs: 10_000 });
    for (const dir of ['-s', '-d']) await inNs(h.ns, 'iptables', '-I', 'FORWARD', '1', dir, `${net}.0.0/16`, '-j', 'ACCEPT');
    ends.push(await bridged(lab, h, 'hwbr', 'hw', 'hwv', net, 1420));
  }
  return { ends: [ends[0]!, ends[1]!], dev };
}
