/**
 * docker-ipv6.test.ts — Docker `--ipv6` networks on a dual-stack vxlan overlay (issue 21): two real
 * dockerds (h1, h2) with the managed plugin, a LAN with 192.0.2.0/24 and a random /64 of
 * 2001:db8::/32 on the hosts' eth0, an overlay with a random Network, IPv6Network (a /48 of
 * fd00::/8) and VNI, written with the CLI.
 *
 * Scenarios, in order: `docker network create --ipv6` on h1 gets h1's v6 lease as its v6 pool and
 * appears on h2 with h2's (replicated with --ipv6); containers on h1 and h2 get v6 addresses in
 * their hosts' v6 leases (`docker inspect` GlobalIPv6Address), a v6 default route via the
 * network's link-local gateway (routed data path), and the plugin turned on
 * net.ipv6.conf.all.forwarding in each host's namespace; ping6 across hosts both ways, v4 ping
 * too; the same on the bridge data path (`-o datapath=bridge`, gateway ::1 on the bridge); names across
 * hosts with Docker's embedded DNS (clients with `--dns` = a fake upstream in the LAN namespace):
 * AAAA of an h2 container answers its v6 address on h1, an empty NOERROR for a v4-only network's
 * container, never reaching the upstream. after() tears everything down and asserts nothing is left. Needs root, docker.io,
 * busybox-static, etcd; `npm run build` first.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DOCKER, DOCKERD, createDockerLab, leftovers, stopAll, type DockerHost } from '../helpers/docker-lab';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import type { Host, Lab } from '../helpers/netns-lab';
import { waitFor } from '../helpers/wait';
import { startFakeUpstream } from './fake-upstream-dns';
import * as L from './docker-plugin-lab';

const ROOT = resolve(__dirname, '../..');
const MAIN = join(ROOT, 'dist/main.js');
const missing = [DOCKERD, DOCKER, '/bin/busybox', MAIN, '/usr/bin/python3'].filter((f) => !existsSync(f));
if (process.getuid?.() !== 0) throw new Error('the docker IPv6 lab needs root');
if (missing.length) throw new Error(`the docker IPv6 lab needs ${missing.join(', ')} (apt-get install docker.io busybox-static python3-minimal; npm run build)`);

const DRIVER = 'overlay-flannel:latest';
const NET = 'net6';
const hex = (): string => randomInt(1, 0xffff).toString(16);

/** The v6 address as bigint (independent of src/domain), for containment checks. */
function v6(ip: string): bigint {
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g, 16)), 0n);
}
function inCidr6(ip: string, cidr: string): boolean {
  const [base = '', len = '128'] = cidr.split('/');
  const shift = BigInt(128 - Number(len));
  return v6(ip) >> shift === v6(base) >> shift;
}

/**
 * python3 run in a container's network namespace (nsenter from the host): ask Docker's embedded
 * DNS (127.0.0.11) for NAME with QTYPE (1 = A, 28 = AAAA) over UDP and print the answer's rcode
 * and addresses (busybox nslookup prints NODATA and NXDOMAIN alike as "can't find").
 */
const ASK_PY = String.raw`
import socket, struct, sys, json
name, qtype = sys.argv[1], int(sys.argv[2])
q = struct.pack('!HHHHHH', 0x4343, 0x0100, 1, 0, 0, 0) + b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\0' + struct.pack('!HH', qtype, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5); u.sendto(q, ('127.0.0.11', 53))
m = u.recv(4096); an = struct.unpack('!H', m[6:8])[0]; p = 12
while m[p]: p += 1 + m[p]
def skip(p):
    while not m[p] & 0xc0 and m[p]: p += 1 + m[p]
    return p + (2 if m[p] & 0xc0 else 1)
p += 5; ips = []
for _ in range(an):
    p = skip(p)
    t, c, ttl, n = struct.unpack('!HHIH', m[p:p + 10]); p += 10
    if t == 1: ips.append(socket.inet_ntop(socket.AF_INET, m[p:p + 4]))
    if t == 28: ips.append(socket.inet_ntop(socket.AF_INET6, m[p:p + 16]))
    p += n
print(json.dumps({'rcode': m[3] & 15, 'addresses': ips}))
`;

describe('Docker --ipv6 networks on a dual-stack vxlan overlay', { timeout: 300_000 }, () => {
  const ov = L.randomOverlay();
  const lan6 = `2001:db8:${hex()}:${hex()}`;
  const net6 = `fd${randomInt(0, 255).toString(16).padStart(2, '0')}:${hex()}:${hex()}`; // IPv6Network ${net6}::/48
  let lab: Lab | undefined;
  let etcd: EtcdServer | undefined;
  let h1: Host, h2: Host;
  let d1: DockerHost, d2: DockerHost;
  const addr: Record<string, { ip: string; ip6: string; gw6: string }> = {};
  const dockerLog = (d: DockerHost): string => d.logs().split('\n').slice(-60).join('\n');

  /** public IP → v6 subnet, from the dual-stack lease keys (`…/subnets/10.x.y.0-24&fd..::-64`). */
  async function leases6(): Promise<Map<string, string>> {
    const { stdout } = await etcd!.etcdctl(['get', '--prefix', `${ov.prefix}/subnets/`]);
    const lines = stdout.split('\n').filter(Boolean);
    const out = new Map<string, string>();
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const m = /&([0-9a-f:]+)-(\d+)$/.exec(lines[i] ?? '');
      const v = JSON.parse(lines[i + 1] ?? '{}') as { PublicIP?: string };
      if (m && v.PublicIP) out.set(v.PublicIP, `${m[1]}/${m[2]}`);
    }
    return out;
  }
  const ipamConfig = async (d: DockerHost) =>
    JSON.parse((await d.dockerOk(['network', 'inspect', '-f', '{{json .IPAM.Config}}', NET])).stdout) as { Subnet: string; Gateway?: string }[];
  const ping6Ok = (d: DockerHost, from: string, ip: string): Promise<unknown> =>
    waitFor(
      async () => {
        const r = await d.docker(['exec', from, 'ping6', '-c', '1', '-W', '2', ip], { timeoutMs: 10_000 });
        if (r.code !== 0) throw new Error(`${r.stdout}${r.stderr}`.trim().split('\n').slice(-2).join(' | '));
        return true;
      },
      { timeoutMs: 20_000, intervalMs: 300, what: `ping6 ${from} → ${ip}` },
    );

  before(async () => {
    lab = await createDockerLab('of6');
    etcd = await startEtcd({ netns: (await lab.lan()).ns, host: '192.0.2.254' });
    let pluginDir: string;
    ({ h1, h2, d1, d2, pluginDir } = await L.twoDockerHosts(lab));
    for (const [h, n] of [[h1, 1], [h2, 2]] as const) await h.execOk('ip', ['-6', 'addr', 'add', `${lan6}::${n}/64`, 'dev', 'eth0', 'nodad']);
    const env = { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, ETCD_PREFIX: ov.prefix };
    await h1.execOk('node', [MAIN, 'config', 'set', '--network', ov.network, '--ipv6-network', `${net6}::/48`, '--vni', String(ov.vni)], { env, timeoutMs: 20_000 });
    for (const h of [h1, h2]) assert.equal((await h.execOk('cat', ['/proc/sys/net/ipv6/conf/all/forwarding'])).stdout.trim(), '0', `${h.ns} starts without v6 forwarding`);
    await Promise.all([d1, d2].map((d) => L.installPlugin(d, pluginDir, L.pluginSettings(etcd!, ov.prefix, d))));
  });

  after(async () => {
    const runId = lab?.runId;
    await etcd?.cleanup();
    await stopAll(lab);
    if (runId) assert.deepEqual(await leftovers(runId), { namespaces: [], folder: false, mounts: [], processes: [] }, 'the lab left something behind');
  });

  it('1. docker network create --ipv6 on h1: its v6 pool is h1\'s v6 lease; on h2 (replicated) h2\'s', async (t) => {
    t.diagnostic(`overlay ${ov.network} + ${net6}::/48, VNI ${ov.vni}, LAN ${lan6}::/64, prefix ${ov.prefix}`);
    const r = await d1.docker(['network', 'create', '--ipv6', '-d', DRIVER, '--ipam-driver', DRIVER, NET], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `network create --ipv6 on h1: ${r.stderr}\n${dockerLog(d1)}`);
    await waitFor(async () => (await d2.docker(['network', 'inspect', NET])).code === 0, { timeoutMs: 20_000, intervalMs: 200, what: `${NET} on h2\n${dockerLog(d2)}` });
    const held6 = await leases6();
    for (const [d, h] of [[d1, h1], [d2, h2]] as const) {
      assert.equal((await d.dockerOk(['network', 'inspect', '-f', '{{.EnableIPv6}}', NET])).stdout.trim(), 'true', `${h.ns}: EnableIPv6`);
      const subnets = (await ipamConfig(d)).map((c) => c.Subnet);
      assert.ok(held6.get(h.ip), `${h.ip} holds a dual-stack lease: ${JSON.stringify([...held6])}`);
      assert.ok(subnets.includes(held6.get(h.ip)!), `${h.ns}: IPAM config ${JSON.stringify(subnets)} has its v6 lease ${held6.get(h.ip)}`);
      assert.ok(inCidr6(held6.get(h.ip)!.split('/')[0]!, `${net6}::/48`));
    }
  });

  it('2. containers on h1 and h2 get v6 addresses in their hosts\' v6 leases, a v6 default route, and the hosts forward v6', async (t) => {
    await Promise.all([L.runBox(d1, 'c1', NET), L.runBox(d2, 'c2', NET)]);
    const held6 = await leases6();
    for (const [d, h, c] of [[d1, h1, 'c1'], [d2, h2, 'c2']] as const) {
      const f = `{{with index .NetworkSettings.Networks "${NET}"}}{{.IPAddress}} {{.GlobalIPv6Address}} {{.IPv6Gateway}}{{end}}`;
      const [ip = '', ip6 = '', gw6 = ''] = (await d.dockerOk(['inspect', '-f', f, c])).stdout.trim().split(' ');
      addr[c] = { ip, ip6, gw6 };
      assert.ok(ip6 && inCidr6(ip6, held6.get(h.ip)!), `${c}: GlobalIPv6Address "${ip6}" in ${held6.get(h.ip)}`);
      assert.match(gw6, /^fe80::a9fe:1[0-9a-f]{2}$/, `${c}: the routed link-local v6 gateway`);
      const routes = (await d.dockerOk(['exec', c, 'ip', '-6', 'route'])).stdout;
      assert.match(routes, new RegExp(`default via ${gw6} dev eth0`), routes);
      assert.equal((await h.execOk('cat', ['/proc/sys/net/ipv6/conf/all/forwarding'])).stdout.trim(), '1', `${h.ns}: the plugin turned v6 forwarding on`);
      t.diagnostic(`${c}: ${ip} ${ip6} gw6 ${gw6}; ${d.logs().split('\n').find((l) => l.includes('ipv6.conf.all.forwarding')) ?? 'no forwarding log line'}`);
      // the host side: a /128 route to the container on its veth
      const hostRoutes = (await h.execJson<{ dst: string; dev: string }[]>(['-6', 'route', 'show', `${ip6}/128`])).map((x) => x.dev);
      assert.equal(hostRoutes.length, 1, `${h.ns}: one /128 route to ${ip6}`);
      assert.match(hostRoutes[0]!, /^ofh/);
    }
  });

  it('3. ping6 across hosts both ways, and v4 ping still works', async () => {
    await ping6Ok(d1, 'c1', addr.c2!.ip6).catch((e) => assert.fail(`${e}\n${dockerLog(d1)}`));
    await ping6Ok(d2, 'c2', addr.c1!.ip6);
    await L.pingOk(d1, 'c1', addr.c2!.ip);
    await L.pingOk(d2, 'c2', addr.c1!.ip);
    // the v6 packets went over flannel-v6.<VNI>
    const [s] = await h1.execJson<{ stats64: { rx: { packets: number }; tx: { packets: number } } }[]>(['-s', 'link', 'show', `flannel-v6.${ov.vni}`]);
    assert.ok(s!.stats64.rx.packets > 0 && s!.stats64.tx.packets > 0, JSON.stringify(s!.stats64));
  });

  it('4. removing the containers and the network leaves no v6 route behind', async () => {
    for (const [d, c] of [[d1, 'c1'], [d2, 'c2']] as const) await d.dockerOk(['rm', '-f', c], { timeoutMs: 60_000 });
    for (const [h, c] of [[h1, 'c1'], [h2, 'c2']] as const) {
      const left = await h.execJson<unknown[]>(['-6', 'route', 'show', `${addr[c]!.ip6}/128`]);
      assert.deepEqual(left, [], `${h.ns}: the /128 route to ${c} went with its veth`);
    }
    await d1.dockerOk(['network', 'rm', NET]);
    await waitFor(async () => (await d2.docker(['network', 'inspect', NET])).code !== 0, { timeoutMs: 20_000, intervalMs: 200, what: `${NET} gone from h2` });
  });

  it('5. the bridge data path (-o datapath=bridge): the bridge holds ::1 of the v6 lease, ping6 across hosts both ways', async () => {
    const r = await d1.docker(['network', 'create', '--ipv6', '-d', DRIVER, '--ipam-driver', DRIVER, '-o', 'datapath=bridge', NET], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `network create --ipv6 -o datapath=bridge on h1: ${r.stderr}\n${dockerLog(d1)}`);
    await waitFor(async () => (await d2.docker(['network', 'inspect', NET])).code === 0, { timeoutMs: 20_000, intervalMs: 200, what: `${NET} on h2\n${dockerLog(d2)}` });
    await Promise.all([L.runBox(d1, 'b1', NET), L.runBox(d2, 'b2', NET)]);
    const held6 = await leases6();
    for (const [d, h, c] of [[d1, h1, 'b1'], [d2, h2, 'b2']] as const) {
      const f = `{{with index .NetworkSettings.Networks "${NET}"}}{{.IPAddress}} {{.GlobalIPv6Address}} {{.IPv6Gateway}}{{end}}`;
      const [ip = '', ip6 = '', gw6 = ''] = (await d.dockerOk(['inspect', '-f', f, c])).stdout.trim().split(' ');
      addr[c] = { ip, ip6, gw6 };
      const lease6 = held6.get(h.ip)!;
      assert.ok(inCidr6(ip6, lease6), `${c}: ${ip6} in ${lease6}`);
      assert.equal(v6(gw6), v6(lease6.split('/')[0]!) + 1n, `${c}: the v6 gateway is ::1 of ${lease6}`);
      assert.match((await d.dockerOk(['exec', c, 'ip', '-6', 'route'])).stdout, new RegExp(`default via ${gw6} dev eth0`));
    }
    await ping6Ok(d1, 'b1', addr.b2!.ip6);
    await ping6Ok(d2, 'b2', addr.b1!.ip6);
    await L.pingOk(d1, 'b1', addr.b2!.ip);
    for (const [d, c] of [[d1, 'b1'], [d2, 'b2']] as const) await d.dockerOk(['rm', '-f', c], { timeoutMs: 60_000 });
    await d1.dockerOk(['network', 'rm', NET]);
  });

  it('6. names across hosts: AAAA of an h2 container answers its v6 address on h1 (nslookup, ping6 by name); a v4-only network\'s AAAA is an empty NOERROR', async (t) => {
    const tag = randomBytes(3).toString('hex');
    const N6 = `n6-${tag}`, N4 = `n4-${tag}`, S6 = `s6-${tag}`, S4 = `s4-${tag}`, Q6 = `q6-${tag}`, Q4 = `q4-${tag}`;
    const upstream = await startFakeUpstream(await lab!.lan(), {});
    await d1.dockerOk(['network', 'create', '--ipv6', '-d', DRIVER, '--ipam-driver', DRIVER, N6], { timeoutMs: 60_000 });
    // one Docker network per overlay and host: the v4-only network gets a named v4-only overlay of its own
    let ov4 = L.randomOverlay();
    while (ov4.network === ov.network || ov4.vni === ov.vni) ov4 = L.randomOverlay();
    const env = { ...process.env, ETCD_ENDPOINTS: etcd!.endpoint, ETCD_PREFIX: ov.prefix };
    await h1.execOk('node', [MAIN, 'config', 'set', '--name', `v4${tag}`, '--network', ov4.network, '--vni', String(ov4.vni)], { env, timeoutMs: 20_000 });
    await d1.dockerOk(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '--ipam-opt', `network=v4${tag}`, N4], { timeoutMs: 60_000 });
    for (const n of [N6, N4]) await waitFor(async () => (await d2.docker(['network', 'inspect', n])).code === 0, { timeoutMs: 20_000, intervalMs: 200, what: `${n} on h2` });
    // the clients' Docker forwards what it does not know to the lab's fake upstream (their own --dns; the daemons have none)
    const client = (name: string, net: string) => d1.dockerOk(['run', '-d', '--init', '--name', name, '--network', net, '--dns', '192.0.2.254', 'ofbox:1', 'sleep', '3600'], { timeoutMs: 120_000 });
    await Promise.all([L.runBox(d2, S6, N6), L.runBox(d2, S4, N4), client(Q6, N6), client(Q4, N4)]);
    const f = (net: string) => `{{with index .NetworkSettings.Networks "${net}"}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}`;
    const [s6ip = '', s6ip6 = ''] = (await d2.dockerOk(['inspect', '-f', f(N6), S6])).stdout.trim().split(' ');
    const [s4ip = '', s4ip6 = ''] = (await d2.dockerOk(['inspect', '-f', f(N4), S4])).stdout.trim().split(' ');
    assert.ok(s6ip6 && inCidr6(s6ip6, `${net6}::/48`), `${S6} has a v6 address: "${s6ip6}"`);
    assert.equal(s4ip6, '', `${S4} on a v4-only network has no v6 address`);
    t.diagnostic(`${S6} ${s6ip} ${s6ip6}; ${S4} ${s4ip}`);
    const ask = async (c: string, name: string, qtype: 1 | 28) => {
      const pid = (await d1.dockerOk(['inspect', '-f', '{{.State.Pid}}', c])).stdout.trim();
      const out = (await h1.execOk('nsenter', [`--net=/proc/${pid}/ns/net`, 'python3', '-c', ASK_PY, name, String(qtype)], { timeoutMs: 30_000 })).stdout;
      return JSON.parse(out) as { rcode: number; addresses: string[] };
    };
    // the records reach h1 through etcd within a few seconds (A queries until then may go to the upstream)
    await waitFor(async () => (await ask(Q6, S6, 1)).addresses.includes(s6ip), { timeoutMs: 30_000, intervalMs: 300, what: `A ${S6} from ${Q6} on h1\n${dockerLog(d1)}` });
    await waitFor(async () => (await ask(Q4, S4, 1)).addresses.includes(s4ip), { timeoutMs: 30_000, intervalMs: 300, what: `A ${S4} from ${Q4} on h1` });
    const mark = upstream.queries().length;
    // busybox nslookup, as a user would
    const r = await d1.docker(['exec', Q6, 'nslookup', '-type=AAAA', S6], { timeoutMs: 20_000 });
    const shownBy = [...r.stdout.split(/^Name:/m).slice(1).join('\n').matchAll(/^Address:\s*([0-9a-f:]+)\s*$/gim)].map((m) => m[1]!);
    assert.deepEqual(shownBy.map((a) => v6(a)), [v6(s6ip6)], `nslookup -type=AAAA ${S6}: ${r.stdout}${r.stderr}`);
    // the exact answers: AAAA and A of the dual-stack container; A and an empty NOERROR AAAA (not NXDOMAIN) of the v4-only one
    const aaaa = await ask(Q6, S6, 28);
    assert.deepEqual({ rcode: aaaa.rcode, addresses: aaaa.addresses.map((a) => v6(a)) }, { rcode: 0, addresses: [v6(s6ip6)] }, JSON.stringify(aaaa));
    assert.deepEqual(await ask(Q6, S6, 1), { rcode: 0, addresses: [s6ip] });
    assert.deepEqual(await ask(Q4, S4, 28), { rcode: 0, addresses: [] }, 'a v4-only container: AAAA is NODATA (NOERROR, no answer)');
    // ping6 by name goes to the v6 address across hosts
    const p6 = await d1.docker(['exec', Q6, 'ping6', '-c', '1', '-W', '5', S6], { timeoutMs: 30_000 });
    assert.equal(p6.code, 0, `ping6 ${S6}: ${p6.stdout}${p6.stderr}`);
    const pinged = /PING \S+ \(([0-9a-f:]+)\)/i.exec(p6.stdout)?.[1] ?? '';
    assert.equal(pinged && v6(pinged), v6(s6ip6), `ping6 used ${S6}'s v6 address: ${p6.stdout}`);
    // all of that was answered on h1 on the way out: the upstream saw none of it
    const names = new Set([S6, S4].map((n) => n.toLowerCase()));
    const leaked = upstream.queries().slice(mark).filter((q) => names.has(q.name));
    assert.deepEqual(leaked, [], 'the upstream saw no query for the overlay names');
    // isolation: the v4-only network's name asked from the --ipv6 network is not ours to answer: the upstream's NXDOMAIN
    assert.equal((await ask(Q6, S4, 28)).rcode, 3, `AAAA ${S4} from ${N6}`);
    assert.ok(upstream.queries().slice(mark).some((q) => q.name === S4.toLowerCase() && q.qtype === 28), 'that one reached the upstream');
    for (const c of [Q6, Q4]) await d1.dockerOk(['rm', '-f', c], { timeoutMs: 60_000 });
    for (const c of [S6, S4]) await d2.dockerOk(['rm', '-f', c], { timeoutMs: 60_000 });
    for (const n of [N6, N4]) await d1.dockerOk(['network', 'rm', n]);
  });
});
