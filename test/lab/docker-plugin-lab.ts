/**
 * docker-plugin-lab.ts — helpers of docker-plugin.test.ts: the overlay-flannel managed plugin,
 * installed from the LAN registry on two real dockerds, observed through etcd, the hosts' kernels,
 * `docker inspect` and the plugin's own socket.
 *
 * Design note: everything random per run (overlay Network 10.<100-250>.0.0/16, VNI 2..4000, etcd
 * prefix), so assertions compare with what etcd and Docker report, never with fixed values.
 * Every wait is a {@link waitFor} with a deadline; every command has a timeout (run.ts).
 */
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildPlugin } from '../../scripts/plugin-build';
import { importBusybox, labRoot, startDockerd, type DockerdOptions, type DockerHost } from '../helpers/docker-lab';
import type { EtcdServer } from '../helpers/etcd-server';
import type { Host, Lab, Ns } from '../helpers/netns-lab';
import { Answer, post, rawPost, rawRequest } from '../helpers/plugin-http';
import { run } from '../helpers/run';
import { waitFor } from '../helpers/wait';

export const PLUGIN_REF = '192.0.2.254:5000/overlay-flannel:latest';
export const DRIVER = 'overlay-flannel:latest';

/**
 * Hosts h1 and h2 on `lab`'s LAN, each with its own dockerd, and the plugin built from dist/
 * meanwhile (its folder, for {@link installPlugin}). The caller holds `lab`, so its after() tears
 * down whatever this got to before a failure.
 */
export async function twoDockerHosts(lab: Lab, dockerd: DockerdOptions = {}): Promise<{ h1: Host; h2: Host; d1: DockerHost; d2: DockerHost; pluginDir: string }> {
  const h1 = await lab.addHost(1);
  const h2 = await lab.addHost(2);
  const [d1, d2, built] = await Promise.all([startDockerd(h1, dockerd), startDockerd(h2, dockerd), buildPlugin({ out: join(labRoot(lab.runId), 'plugin'), build: false })]);
  return { h1, h2, d1, d2, pluginDir: built.dir };
}

/** The settings every lab gives the plugin: this lab's etcd and prefix, eth0, debug logs, the host's Docker socket. */
export function pluginSettings(etcd: EtcdServer, prefix: string, d: DockerHost, extra: string[] = []): string[] {
  return [`ETCD_ENDPOINTS=${etcd.endpoint}`, `ETCD_PREFIX=${prefix}`, 'IFACE=eth0', 'LOG_LEVEL=debug', `docker-socket.source=${d.sock}`, ...extra];
}

/** The busybox image, then `docker plugin create NAME dir`, `plugin set`, `plugin enable`; a failed enable names the daemon's log. */
export async function installPlugin(d: DockerHost, dir: string, settings: string[], name = 'overlay-flannel'): Promise<void> {
  await importBusybox(d);
  await d.dockerOk(['plugin', 'create', name, dir], { timeoutMs: 180_000 });
  await d.dockerOk(['plugin', 'set', name, ...settings]);
  const on = await d.docker(['plugin', 'enable', name], { timeoutMs: 60_000 });
  if (on.code !== 0) throw new Error(`plugin enable on ${d.host.ns}: ${on.stderr}\n${d.logs().split('\n').slice(-60).join('\n')}`);
}

/**
 * A second release of the plugin in folder `dir` for `docker plugin upgrade`: the same build plus
 * /etc/overlay-flannel-release (Docker refuses a second plugin of identical content), hard-linked
 * beside it (a cheap copy), created on `d`, pushed as `ref` to the lab's registry, removed from `d`.
 */
export async function pushNextRelease(d: DockerHost, dir: string, ref: string): Promise<void> {
  const next = `${dir}-next`;
  await run('cp', ['-al', dir, next]);
  writeFileSync(join(next, 'rootfs/etc/overlay-flannel-release'), 'next\n');
  await d.dockerOk(['plugin', 'create', ref, next], { timeoutMs: 180_000 });
  await d.dockerOk(['plugin', 'push', ref], { timeoutMs: 180_000 });
  await d.dockerOk(['plugin', 'rm', ref]);
}

/** The random overlay of one run. */
export function randomOverlay(): { network: string; vni: number; prefix: string } {
  return { network: `10.${randomInt(100, 251)}.0.0/16`, vni: randomInt(2, 4001), prefix: `/of-${randomBytes(4).toString('hex')}/network` };
}

// ---- IPv4 arithmetic of the assertions (independent of src/domain) ----
const u32 = (ip: string): number => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
export function inCidr(ip: string, cidr: string): boolean {
  const [base = '', len = '32'] = cidr.split('/');
  const size = 2 ** (32 - Number(len));
  return Math.floor(u32(ip) / size) === Math.floor(u32(base) / size);
}
/** `10.1.15.0/24` → `10.1.15.1`. */
export const gatewayOf = (subnet: string): string => subnet.replace(/\.0\/\d+$/, '.1');

/** Leases under `<prefix>/subnets/`: public IP → subnet (`10.x.y.0/24`). */
export async function leases(etcd: EtcdServer, prefix: string): Promise<Map<string, string>> {
  const { stdout } = await etcd.etcdctl(['get', '--prefix', `${prefix}/subnets/`]);
  const lines = stdout.split('\n').filter(Boolean);
  const out = new Map<string, string>();
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const m = /(\d+\.\d+\.\d+\.\d+)-(\d+)$/.exec(lines[i] ?? '');
    const v = JSON.parse(lines[i + 1] ?? '{}') as { PublicIP?: string };
    if (m && v.PublicIP) out.set(v.PublicIP, `${m[1]}/${m[2]}`);
  }
  return out;
}

/** The addresses recorded in etcd for one lease (`<prefix>/overlay-flannel/addresses/<lease-key>/<ip>`). */
export async function addressRecords(etcd: EtcdServer, prefix: string, subnet: string): Promise<string[]> {
  const dir = `${prefix}/overlay-flannel/addresses/${subnet.replace('/', '-')}/`;
  const { stdout } = await etcd.etcdctl(['get', '--prefix', '--keys-only', dir]);
  return stdout.split('\n').filter(Boolean).map((k) => k.slice(dir.length)).sort();
}

/** Names of the links in a host's namespace. */
export async function linkNames(h: Host): Promise<string[]> {
  return (await h.execJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname);
}

/** IPv4 addresses (`a.b.c.d/len`) of one link in a host's namespace. */
export async function linkAddrs(h: Host, dev: string): Promise<string[]> {
  const r = await h.execJson<{ addr_info: { family: string; local: string; prefixlen: number }[] }[]>(['addr', 'show', 'dev', dev]);
  return (r[0]?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
}

/** A container's address and endpoint id on `net`. */
export async function endpointOf(d: DockerHost, container: string, netName: string): Promise<{ ip: string; eid: string }> {
  const f = `{{with index .NetworkSettings.Networks "${netName}"}}{{.IPAddress}} {{.EndpointID}}{{end}}`;
  const [ip = '', eid = ''] = (await d.dockerOk(['inspect', '-f', f, container])).stdout.trim().split(' ');
  return { ip, eid };
}

/** `docker run -d --init --name NAME --network NET ofbox:1 sleep 3600` (init: `docker stop` is quick). */
export async function runBox(d: DockerHost, name: string, netName: string): Promise<void> {
  await d.dockerOk(['run', '-d', '--init', '--name', name, '--network', netName, 'ofbox:1', 'sleep', '3600'], { timeoutMs: 120_000 });
}

/** Ping from a container until answered (deadline 20 s); rejects with the last output. */
export async function pingOk(d: DockerHost, from: string, ip: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => {
      const r = await d.docker(['exec', from, 'ping', '-c', '1', '-W', '2', ip], { timeoutMs: 10_000 });
      if (r.code !== 0) throw new Error(`${r.stdout}${r.stderr}`.trim().split('\n').slice(-2).join(' | '));
      return true;
    },
    { timeoutMs, intervalMs: 300, what: `ping ${from} → ${ip}` },
  );
}

/** A plugin daemon's argv: node, the entrypoint's node flags (plugin/config.json), then /app/dist/main.js. */
export function isPluginArgv(argv: string[]): boolean {
  return Boolean(argv[0]?.endsWith('/node')) && argv.slice(1).find((a) => !a.startsWith('-')) === '/app/dist/main.js';
}

/** Pids in a host's namespace whose command line is `<…>/node [flags] /app/dist/main.js` (the plugin). */
export async function pluginPids(h: Host): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', h.ns], { check: false, timeoutMs: 10_000 });
  const out: number[] = [];
  for (const p of r.stdout.split(/\s+/).filter(Boolean)) {
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (isPluginArgv(argv)) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** The plugin's socket: `/run/docker/plugins/<id>/overlay-flannel.sock` (a static path on Linux, whatever the exec-root). */
export async function pluginSocket(d: DockerHost): Promise<string> {
  const id = (await d.dockerOk(['plugin', 'inspect', '-f', '{{.Id}}', 'overlay-flannel'])).stdout.trim();
  return `/run/docker/plugins/${id}/overlay-flannel.sock`;
}

// The plugin socket's HTTP clients live in test/helpers/plugin-http.ts (unit tests use them too).
export { post, rawPost, rawRequest };
export type { Answer };

/** One malformed request of a burst: what to send, and a label for failure messages. */
export interface Malformed {
  label: string;
  send(sock: string): Promise<Answer>;
}

/**
 * `count` malformed requests, cycling through: bad JSON, wrong types, unknown paths and methods,
 * unknown network/endpoint/pool ids (none the driver may accept), `__proto__`, absurd nesting,
 * garbage HTTP, and a 2 MiB body. Ids are random per request.
 */
export function malformedRequests(count: number): Malformed[] {
  const hex = (n: number): string => randomBytes(n).toString('hex');
  const unknownOverlay = `nosuch${hex(3)}`;
  const kinds: Array<[string, (s: string) => Promise<Answer>]> = [
    ['bad JSON', (s) => post(s, '/NetworkDriver.CreateNetwork', '{"NetworkID":')],
    ['bad JSON (text)', (s) => post(s, '/IpamDriver.RequestPool', 'not json at all')],
    ['wrong types CreateNetwork', (s) => post(s, '/NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: 123, IPv4Data: 'x' }))],
    ['wrong types RequestAddress', (s) => post(s, '/IpamDriver.RequestAddress', JSON.stringify({ PoolID: 42, Address: [], Options: 'x' }))],
    ['body is an array', (s) => post(s, '/NetworkDriver.Join', '[1,2,3]')],
    ['unknown path', (s) => post(s, `/NetworkDriver.No${hex(2)}`, '{}')],
    ['unknown path (root)', (s) => post(s, '/', '{}')],
    ['GET Activate', (s) => post(s, '/Plugin.Activate', undefined, 'GET')],
    ['unknown network id Join', (s) => post(s, '/NetworkDriver.Join', JSON.stringify({ NetworkID: hex(32), EndpointID: hex(32), SandboxKey: '/nonexistent', Options: {} }))],
    ['unknown network id CreateEndpoint', (s) =>
      post(s, '/NetworkDriver.CreateEndpoint', JSON.stringify({ NetworkID: hex(32), EndpointID: hex(32), Interface: { Address: '192.0.2.77/24', AddressIPv6: '', MacAddress: '' }, Options: {} }))],
    ['foreign pool id', (s) => post(s, '/IpamDriver.RequestAddress', JSON.stringify({ PoolID: `pool-${hex(4)}`, Address: '', Options: null }))],
    ['pool id of another subnet', (s) => post(s, '/IpamDriver.RequestAddress', JSON.stringify({ PoolID: 'overlay-flannel/default/10.254.254.0/24', Address: '', Options: null }))],
    ['malformed ReleasePool', (s) => post(s, '/IpamDriver.ReleasePool', JSON.stringify({ PoolID: `x/${hex(4)}` }))],
    ['bad overlay name', (s) => post(s, '/IpamDriver.RequestPool', JSON.stringify({ AddressSpace: 'x', Pool: '', SubPool: '', Options: { network: 'bad name!' }, V6: false }))],
    ['__proto__ key', (s) => post(s, '/NetworkDriver.CreateNetwork', '{"__proto__":{"polluted":1},"NetworkID":"x"}')],
    ['deep nesting', (s) => post(s, '/NetworkDriver.CreateNetwork', `${'['.repeat(20_000)}${']'.repeat(20_000)}`)],
    ['garbage HTTP', (s) => rawRequest(s, `\x00\x01GARBAGE ${hex(4)}\r\n\r\n`)],
  ];
  const out: Malformed[] = [];
  for (let i = 0; i < count; i++) {
    const [label, send] = kinds[i % kinds.length]!;
    out.push({ label, send });
  }
  // A few well-formed pool ids of an overlay that does not exist (each would otherwise make an address record).
  for (let i = 0; i < 5 && i < count; i++) {
    out[i * 7] = {
      label: 'pool id of an unknown overlay',
      send: (s) => post(s, '/IpamDriver.RequestAddress', JSON.stringify({ PoolID: `overlay-flannel/${unknownOverlay}/10.9.${i}.0/24`, Address: '', Options: null })),
    };
  }
  // One 2 MiB body (the limit is 1 MiB).
  out[count - 1] = { label: '2 MiB body', send: (s) => rawPost(s, '/NetworkDriver.CreateNetwork', 2 * 1024 * 1024) };
  return out;
}

/** Run `tasks` with at most `width` in flight. */
export async function pool<T>(tasks: Array<() => Promise<T>>, width: number): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        results[i] = await tasks[i]!();
      }
    }),
  );
  return results;
}

/** Every etcd key starting with `prefix` (no trailing slash: `<prefix>-<overlay>` prefixes of named overlays too). */
export async function etcdKeys(etcd: EtcdServer, prefix: string): Promise<string[]> {
  const { stdout } = await etcd.etcdctl(['get', '--prefix', '--keys-only', prefix]);
  return stdout.split('\n').filter(Boolean).sort();
}

/**
 * A namespace outside the overlay at `ip` (in 198.51.100.0/24), reached through the LAN namespace,
 * which routes between it and the hosts (their default gateway is the LAN's 192.0.2.254).
 */
export async function addOutsideNamespace(lab: Lab, lan: Ns, ip: string): Promise<Ns> {
  const outside = await lab.addContainerNs(undefined, 'out');
  const sh = (ns: string, ...a: string[]) => run('ip', ['-n', ns, ...a], { timeoutMs: 10_000 });
  await sh(lan.ns, 'link', 'add', 'vout', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside.ns);
  await sh(lan.ns, 'addr', 'add', '198.51.100.254/24', 'dev', 'vout');
  await sh(lan.ns, 'link', 'set', 'vout', 'up');
  await sh(outside.ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0');
  await sh(outside.ns, 'link', 'set', 'eth0', 'up');
  await sh(outside.ns, 'route', 'add', 'default', 'via', '198.51.100.254');
  await run('ip', ['netns', 'exec', lan.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  return outside;
}

/** A lease as flanneld writes it (vxlan): its subnet, public IP and VTEP MAC. */
export interface VxlanLease {
  subnet: string;
  publicIP: string;
  vtepMac: string;
}

/** Every vxlan lease under `<prefix>/subnets/`. */
export async function vxlanLeases(etcd: EtcdServer, prefix: string): Promise<VxlanLease[]> {
  const { stdout } = await etcd.etcdctl(['get', '--prefix', `${prefix}/subnets/`]);
  const lines = stdout.split('\n').filter(Boolean);
  const out: VxlanLease[] = [];
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const m = /(\d+\.\d+\.\d+\.\d+)-(\d+)$/.exec(lines[i] ?? '');
    const v = JSON.parse(lines[i + 1] ?? '{}') as { PublicIP?: string; BackendData?: { VtepMAC?: string } };
    if (m && v.PublicIP && v.BackendData?.VtepMAC) out.push({ subnet: `${m[1]}/${m[2]}`, publicIP: v.PublicIP, vtepMac: v.BackendData.VtepMAC });
  }
  return out;
}

/**
 * Host `h` made a flanneld host of a vxlan overlay, by hand, as flanneld does it
 * (docs/flannel-compat.md §5): its lease in flanneld's bytes on an etcd lease (`ttlSec`), on the
 * first free /24 from the top of `network`; `flannel.<vni>` (random VtepMAC, nolearning, MTU
 * 1450) with `<subnet>.0/32`; and for each peer lease given: neighbour, FDB entry and onlink
 * route. Returns its lease.
 */
export async function flanneldHost(etcd: EtcdServer, prefix: string, h: Host, ov: { network: string; vni: number }, peers: VxlanLease[], ttlSec = 600): Promise<VxlanLease> {
  const held = new Set((await vxlanLeases(etcd, prefix)).map((l) => l.subnet));
  const base = ov.network.split('.').slice(0, 2).join('.');
  const subnet = Array.from({ length: 250 }, (_, i) => `${base}.${250 - i}.0/24`).find((s) => !held.has(s))!;
  const vtepMac = `0a:58:${randomBytes(4).toString('hex').match(/../g)!.join(':')}`;
  const leaseId = /lease ([0-9a-f]+) granted/.exec((await etcd.etcdctl(['lease', 'grant', String(ttlSec)])).stdout)![1]!;
  await etcd.etcdctl(['put', `--lease=${leaseId}`, `${prefix}/subnets/${subnet.replace('/', '-')}`,
    `{"PublicIP":"${h.ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":${ov.vni},"VtepMAC":"${vtepMac}"}}`]);
  const dev = `flannel.${ov.vni}`;
  const ip = (...a: string[]) => h.execOk('ip', a);
  await ip('link', 'add', dev, 'address', vtepMac, 'mtu', '1450', 'type', 'vxlan', 'id', String(ov.vni), 'local', h.ip, 'dev', 'eth0', 'dstport', '8472', 'nolearning');
  await ip('addr', 'add', `${subnet.replace(/\/\d+$/, '')}/32`, 'dev', dev);
  await ip('link', 'set', dev, 'up');
  for (const p of peers) {
    const dot0 = p.subnet.replace(/\/\d+$/, '');
    await ip('neigh', 'replace', dot0, 'lladdr', p.vtepMac, 'dev', dev, 'nud', 'permanent');
    await h.execOk('bridge', ['fdb', 'append', p.vtepMac, 'dev', dev, 'dst', p.publicIP]);
    await ip('route', 'replace', p.subnet, 'via', dot0, 'dev', dev, 'onlink');
  }
  return { subnet, publicIP: h.ip, vtepMac };
}

/**
 * What the CGI at `ip`:8080 saw as our address, asked from `container` with busybox nc (an
 * HTTP/1.0 GET; busybox-static's wget crashes in these images). '' when there was no answer.
 */
export async function peerSeen(d: DockerHost, container: string, ip: string): Promise<string> {
  const r = await d.docker(['exec', container, 'sh', '-c', `printf 'GET /cgi-bin/peer HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} 8080`], { timeoutMs: 15_000 });
  const [, ...body] = r.stdout.split(/\r?\n\r?\n/); // after the headers: the CGI's one line
  return body.join('\n').trim().replace(/^\[?(::ffff:)?/, '').replace(/\]$/, '');
}

/** The rules of nat `chain` in `h` whose text holds `mark`, as `iptables -S` prints them. */
export async function natRules(h: Host, chain: string, mark: string): Promise<string[]> {
  return (await h.execOk('iptables', ['-t', 'nat', '-S', chain])).stdout.split('\n').filter((l) => l.includes(mark));
}

/** The comment of overlay `network`'s masquerade rules. */
export const masqMark = (network: string): string => `overlay-flannel masq ${network}`;

/** flannel's five ip-masq rules for subnet `sub` of `network`, as `iptables -S` prints them. */
export function flannelMasqRules(sub: string, network: string): string[] {
  const c = `-m comment --comment "${masqMark(network)}"`;
  return [
    `-A POSTROUTING -s ${sub} -d ${network} ${c} -j RETURN`,
    `-A POSTROUTING -s ${network} -d ${sub} ${c} -j RETURN`,
    `-A POSTROUTING ! -s ${network} -d ${sub} ${c} -j RETURN`,
    `-A POSTROUTING -s ${network} ! -d 224.0.0.0/4 ${c} -j MASQUERADE --random-fully`,
    `-A POSTROUTING ! -s ${network} -d ${network} ${c} -j MASQUERADE --random-fully`,
  ];
}
