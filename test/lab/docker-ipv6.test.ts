/**
 * docker-ipv6.test.ts — Docker `--ipv6` networks on a dual-stack vxlan overlay (issue 21): two real
 * dockerds (h1, h2) with the managed plugin, a LAN with 192.0.2.0/24 and a random /64 of 2001:db8::/32
 * on the hosts' eth0, an overlay with a random Network, IPv6Network (a /48 of fd00::/8) and VNI.
 *
 * Scenarios, in order: `docker network create --ipv6` on h1 gets h1's v6 lease as its v6 pool and
 * appears on h2 with h2's (replicated with --ipv6); containers on h1 and h2 get v6 addresses in
 * their hosts' v6 leases (`docker inspect` GlobalIPv6Address), each recorded in etcd under
 * `<prefix>/overlay-flannel/addresses6/<v6 lease>/` (and released at `docker rm`, h1's by a plugin
 * SIGKILLed and restarted in between, whose first address audit releases an hour-old v6 orphan
 * record and keeps a fresh one and c1's, aged by hand but held by Docker), a v6 default route via the
 * network's link-local gateway (routed data path), and the plugin turned on
 * net.ipv6.conf.all.forwarding in each host's namespace; ping6 across hosts both ways, v4 ping
 * too; the fast path (FASTPATH on: to6-/from6- counters move; with the table deleted, routed);
 * a host set up by hand as flanneld's dual-stack backend reaches c1 over v6 and back; the ip6
 * firewall: both hosts run with an ip6 FORWARD policy DROP (Docker ≥ 27's), so the ping6s above pass
 * only through our accepts in `ip6 filter FORWARD`; flannel's ip6 masquerade and the NOTRACK rules
 * are there, readable by ip6tables, and the NOTRACK rule counted the ping6s; v6 leaving the overlay
 * reaches a v6 host in the LAN namespace (`<LAN /64>::fe`, which has no route to the overlay) as its
 * host's v6 address; a published port (`-p 8080:80`) answers that host at h1's v6 address; a second
 * dual-stack overlay (`--name blue`) with its own `--ipv6` network works across hosts in v6 but
 * cannot reach the first one in v6, on the same host or across hosts (the ip6 isolation drops count
 * the packets); the bridge data path (`-o datapath=bridge`, gateway ::1 on the bridge); names across
 * hosts with Docker's embedded DNS (clients with `--dns` = a fake upstream in the LAN namespace):
 * AAAA of an h2 container answers its v6 address on h1, an empty NOERROR for a v4-only network's
 * container, never reaching the upstream; an IPv6-only overlay refuses `docker network create`
 * (Docker 20.10 asks every network for an IPv4 pool). after() tears down, asserting nothing is left.
 * Needs root, docker.io, busybox-static, etcd; `npm run build` first.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DOCKER, DOCKERD, createDockerLab, labRoot, leftovers, stopAll, type DockerHost } from '../helpers/docker-lab';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import type { Host, Lab, Ns } from '../helpers/netns-lab';
import { waitFor } from '../helpers/wait';
import * as L from './docker-plugin-lab';
import { checkV6Fastpath } from './docker-ipv6-fastpath';
import { checkFlanneldV6Peer } from './docker-ipv6-flanneld';
import { checkV6Names, inCidr6, v6 } from './docker-ipv6-names';

const ROOT = resolve(__dirname, '../..');
const MAIN = join(ROOT, 'dist/main.js');
const missing = [DOCKERD, DOCKER, '/bin/busybox', MAIN, '/usr/bin/python3'].filter((f) => !existsSync(f));
if (process.getuid?.() !== 0) throw new Error('the docker IPv6 lab needs root');
if (missing.length) throw new Error(`the docker IPv6 lab needs ${missing.join(', ')} (apt-get install docker.io busybox-static python3-minimal; npm run build)`);

const DRIVER = 'overlay-flannel:latest';
const NET = 'net6';
const NET_B = 'blue6';
const BLUE = 'blue';
const CGI = '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$REMOTE_ADDR"\n';
const hex = (): string => randomInt(1, 0xffff).toString(16);

describe('Docker --ipv6 networks on a dual-stack vxlan overlay', { timeout: 300_000 }, () => {
  const ov = L.randomOverlay();
  const lan6 = `2001:db8:${hex()}:${hex()}`;
  const net6 = `fd${randomInt(0, 255).toString(16).padStart(2, '0')}:${hex()}:${hex()}`; // IPv6Network ${net6}::/48
  let bOctet = randomInt(100, 251);
  while (`10.${bOctet}.0.0/16` === ov.network) bOctet = randomInt(100, 251);
  const blue = { network: `10.${bOctet}.0.0/16`, net6: `fd${randomInt(0, 255).toString(16).padStart(2, '0')}:${hex()}:${hex()}`, vni: ov.vni + 1 + randomInt(0, 3000) };
  const lanHost6 = `${lan6}::fe`; // the v6 host on the LAN (the LAN namespace's br0)
  let lab: Lab | undefined;
  let etcd: EtcdServer | undefined;
  let h1: Host, h2: Host;
  let d1: DockerHost, d2: DockerHost;
  let lan: Ns;
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
  /** The v6 address records of one v6 lease (`<prefix>/overlay-flannel/addresses6/<v6 lease>/<ip6>`): address → owner. */
  async function records6(lease6: string): Promise<Map<bigint, string>> {
    const dir = `${ov.prefix}/overlay-flannel/addresses6/${lease6.replace('/', '-')}/`;
    const lines = (await etcd!.etcdctl(['get', '--prefix', dir])).stdout.split('\n').filter(Boolean);
    const out = new Map<bigint, string>();
    for (let i = 0; i + 1 < lines.length; i += 2) out.set(v6(lines[i]!.slice(dir.length)), (JSON.parse(lines[i + 1]!) as { owner: string }).owner);
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
  const ping6Fails = async (d: DockerHost, from: string, ip: string): Promise<void> => {
    const r = await d.docker(['exec', from, 'ping6', '-c', '2', '-W', '1', ip], { timeoutMs: 15_000 });
    assert.notEqual(r.code, 0, `${from} on ${d.host.ns} must not reach ${ip} (another overlay): ${r.stdout}`);
  };
  /** `ip6tables -t <table> -S <chain>` lines holding `mark`, and (with -v) their packet counters. */
  const ip6Rules = async (h: Host, table: string, chain: string, mark: string): Promise<string[]> =>
    (await h.execOk('ip6tables', ['-t', table, '-S', chain])).stdout.split('\n').filter((l) => l.includes(mark));
  const ip6Packets = async (h: Host, table: string, chain: string, mark: string): Promise<number> =>
    (await h.execOk('ip6tables', ['-t', table, '-v', '-S', chain])).stdout
      .split('\n')
      .filter((l) => l.includes(mark))
      .reduce((n, l) => n + Number(/ -c (\d+) \d+/.exec(l)?.[1] ?? 0), 0);

  before(async () => {
    lab = await createDockerLab('of6');
    etcd = await startEtcd({ netns: (await lab.lan()).ns, host: '192.0.2.254' });
    let pluginDir: string;
    ({ h1, h2, d1, d2, pluginDir } = await L.twoDockerHosts(lab));
    for (const [h, n] of [[h1, 1], [h2, 2]] as const) await h.execOk('ip', ['-6', 'addr', 'add', `${lan6}::${n}/64`, 'dev', 'eth0', 'nodad']);
    // Docker ≥ 27 with ip6tables sets the ip6 FORWARD policy to DROP; this dockerd (20.10) does not.
    for (const h of [h1, h2]) await h.execOk('ip6tables', ['-P', 'FORWARD', 'DROP']);
    // A v6 host on the LAN that knows no route to the overlay: it answers only masqueraded packets.
    lan = await lab.lan();
    await lan.execOk('ip', ['-6', 'addr', 'add', `${lanHost6}/64`, 'dev', 'br0', 'nodad']);
    const www = join(labRoot(lab.runId), 'www6');
    mkdirSync(join(www, 'cgi-bin'), { recursive: true });
    writeFileSync(join(www, 'cgi-bin', 'peer'), CGI);
    chmodSync(join(www, 'cgi-bin', 'peer'), 0o755);
    lan.spawnDaemon('/bin/busybox', ['httpd', '-f', '-p', '[::]:8080', '-h', www]);
    const env = { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, ETCD_PREFIX: ov.prefix };
    await h1.execOk('node', [MAIN, 'config', 'set', '--network', ov.network, '--ipv6-network', `${net6}::/48`, '--vni', String(ov.vni)], { env, timeoutMs: 20_000 });
    await h1.execOk('node', [MAIN, 'config', 'set', '--name', BLUE, '--network', blue.network, '--ipv6-network', `${blue.net6}::/48`, '--vni', String(blue.vni)], { env, timeoutMs: 20_000 });
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
    // Each v6 address has its record in etcd under its host's v6 lease, and nothing else does (issue 21).
    for (const [h, c] of [[h1, 'c1'], [h2, 'c2']] as const) {
      const recs = await records6(held6.get(h.ip)!);
      assert.deepEqual([...recs.keys()], [v6(addr[c]!.ip6)], `${h.ns}: the v6 records of ${held6.get(h.ip)} are ${c}'s ${addr[c]!.ip6} alone`);
      assert.match(recs.get(v6(addr[c]!.ip6))!, /^docker\/[0-9a-f]{12}$/);
    }
    assert.deepEqual((await etcd!.etcdctl(['get', '--prefix', '--keys-only', `${ov.prefix}/subnets`])).stdout.split('\n').filter((k) => k && !/\/subnets\/[0-9.]+-\d+&[0-9a-f:]+-\d+$/.test(k)), [], 'only leases under <prefix>/subnets');
  });

  it('3. ping6 across hosts both ways (ip6 FORWARD policy DROP on both), and v4 ping still works', async () => {
    await ping6Ok(d1, 'c1', addr.c2!.ip6).catch((e) => assert.fail(`${e}\n${dockerLog(d1)}`));
    await ping6Ok(d2, 'c2', addr.c1!.ip6);
    await L.pingOk(d1, 'c1', addr.c2!.ip);
    await L.pingOk(d2, 'c2', addr.c1!.ip);
    // the v6 packets went over flannel-v6.<VNI>
    const [s] = await h1.execJson<{ stats64: { rx: { packets: number }; tx: { packets: number } } }[]>(['-s', 'link', 'show', `flannel-v6.${ov.vni}`]);
    assert.ok(s!.stats64.rx.packets > 0 && s!.stats64.tx.packets > 0, JSON.stringify(s!.stats64));
  });

  it('3b. fast path (FASTPATH on): ping6 c1↔c2 goes through to6-/from6- (their counters move, raw PREROUTING does not see the inner packets); with the table deleted it is routed and still passes; the keeper writes the table again', async (t) => {
    await checkV6Fastpath({ h1, h2, d1, d2, vni: ov.vni, network6: `${net6}::/48`, ip6: { c1: addr.c1!.ip6, c2: addr.c2!.ip6 }, ping6Ok, ip6Packets, diagnostic: (m) => t.diagnostic(m) });
  });

  it("3c. a host set up by hand as flanneld's dual-stack vxlan backend (lease, flannel-v6, entries) reaches c1 over v6 and c1 reaches it; its lease gone, h1's route goes", async () => {
    await checkFlanneldV6Peer({ lab: lab!, etcd: etcd!, prefix: ov.prefix, vni: ov.vni, network: ov.network, net6, lan6, h1, d1, c1ip6: addr.c1!.ip6, ping6Ok });
  });

  it('4. ip6 filter FORWARD (policy DROP) holds our accepts; flannel\'s ip6 masquerade and the NOTRACK rules are there, readable by ip6tables, and NOTRACK counted the ping6s', async () => {
    const n6 = `${net6}::/48`;
    const held6 = await leases6();
    for (const h of [h1, h2]) {
      const fw = (await h.execOk('ip6tables', ['-S', 'FORWARD'])).stdout;
      assert.match(fw, /^-P FORWARD DROP$/m, `${h.ns}: the policy is left alone`);
      for (const want of [
        `-A FORWARD -s ${n6} -d ${n6} -m comment --comment "overlay-flannel intra ${n6}" -j ACCEPT`,
        `-A FORWARD -s ${n6} -m comment --comment "overlay-flannel ${n6} src" -j ACCEPT`,
        `-A FORWARD -d ${n6} -m comment --comment "overlay-flannel ${n6} dst" -j ACCEPT`,
      ]) assert.ok(fw.split('\n').includes(want), `${h.ns} ip6 FORWARD has ${want}:\n${fw}`);
      const sub6 = held6.get(h.ip)!;
      const masq = await waitFor(async () => {
        const r = await ip6Rules(h, 'nat', 'POSTROUTING', L.masqMark(n6));
        return r.length === 5 && r;
      }, { timeoutMs: 20_000, what: `ip6 masquerade rules on ${h.ns}` });
      assert.deepEqual(masq, L.flannelMasqRules(sub6, n6).map((l) => l.replace('224.0.0.0/4', 'ff00::/8')));
      const mark = `overlay-flannel notrack ${n6}`;
      const raw = await ip6Rules(h, 'raw', 'PREROUTING', mark);
      assert.ok(raw.some((l) => l.startsWith(`-A PREROUTING -s ${n6} -d ${n6} `) && l.endsWith('-j CT --notrack')), `${h.ns} ip6 raw:\n${raw.join('\n')}`);
      assert.ok(raw.some((l) => l.startsWith(`-A PREROUTING -d ${h.ip === h1.ip ? `${lan6}::1` : `${lan6}::2`}/128 -p udp -m udp --dport 8472 `)), `${h.ns}: vxlan-v6 packets untracked:\n${raw.join('\n')}`);
      assert.ok((await ip6Packets(h, 'raw', 'PREROUTING', `-s ${n6} -d ${n6} -m comment --comment "${mark}"`)) > 0, `${h.ns}: the v6 overlay NOTRACK rule saw no packet (3b's fallback ping6s were routed)`);
    }
  });

  it('5. v6 leaving the overlay is masqueraded: the LAN\'s v6 host (no route to the overlay) sees each container as its host\'s v6 address', async () => {
    for (const [d, c, hostIp6] of [[d1, 'c1', `${lan6}::1`], [d2, 'c2', `${lan6}::2`]] as const) {
      const seen = await waitFor(async () => (await L.peerSeen(d, c, lanHost6)) || undefined, { timeoutMs: 20_000, what: `${c} → ${lanHost6}` });
      assert.equal(v6(seen), v6(hostIp6), `the LAN host saw ${c} as ${seen}`);
    }
  });

  it('6. published ports on v6: -p 8080:80 on h1 answers the LAN\'s v6 host at h1\'s v6 address, and the container sees that host\'s own address', async () => {
    const cgi = CGI.replace(/\n/g, '\\n');
    const serve = `mkdir -p /www/cgi-bin && printf '${cgi}' > /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && exec httpd -f -p 80 -h /www`;
    await d1.dockerOk(['run', '-d', '--init', '--name', 'web', '-p', '8080:80', '--network', NET, 'ofbox:1', 'sh', '-c', serve], { timeoutMs: 120_000 });
    const get = async (ip: string): Promise<string> => {
      const r = await lan.exec('/bin/busybox', ['sh', '-c', `printf 'GET /cgi-bin/peer HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 3 ${ip} 8080`], { timeoutMs: 15_000 });
      return r.stdout.split(/\r?\n\r?\n/).slice(1).join('\n').trim().replace(/^\[?(::ffff:)?/, '').replace(/\]$/, '');
    };
    try {
      const seen6 = await waitFor(async () => (await get(`${lan6}::1`)) || undefined, { timeoutMs: 20_000, intervalMs: 300, what: `LAN → [${lan6}::1]:8080\n${dockerLog(d1)}` });
      assert.equal(v6(seen6), v6(lanHost6), `the container saw the LAN host as ${seen6}`);
      const dnat = await ip6Rules(h1, 'nat', 'PREROUTING', 'overlay-flannel port ');
      assert.ok(dnat.some((l) => /--dport 8080 .*-j DNAT --to-destination \[[0-9a-f:]+\]:80$/.test(l)), `h1 ip6 nat PREROUTING:\n${dnat.join('\n')}`);
      assert.equal(await waitFor(async () => (await get(h1.ip)) || undefined, { timeoutMs: 20_000, intervalMs: 300, what: `LAN → ${h1.ip}:8080` }), '192.0.2.254', 'v4 still published');
    } finally {
      await d1.dockerOk(['rm', '-f', 'web'], { timeoutMs: 60_000 });
    }
    assert.deepEqual(await ip6Rules(h1, 'nat', 'PREROUTING', 'overlay-flannel port '), [], 'the v6 DNAT rules went with the container');
  });

  it('7. a second dual-stack overlay (blue) works across hosts in v6 and cannot reach the first in v6, on the same host or across hosts', async (t) => {
    t.diagnostic(`blue: ${blue.network} + ${blue.net6}::/48, VNI ${blue.vni}`);
    const r = await d1.docker(['network', 'create', '--ipv6', '-d', DRIVER, '--ipam-driver', DRIVER, '--ipam-opt', `network=${BLUE}`, NET_B], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `network create ${NET_B} on h1: ${r.stderr}\n${dockerLog(d1)}`);
    await waitFor(async () => (await d2.docker(['network', 'inspect', NET_B])).code === 0, { timeoutMs: 20_000, intervalMs: 200, what: `${NET_B} on h2\n${dockerLog(d2)}` });
    await Promise.all([L.runBox(d1, 'x1', NET_B), L.runBox(d2, 'x2', NET_B)]);
    for (const [d, c] of [[d1, 'x1'], [d2, 'x2']] as const) {
      const f = `{{with index .NetworkSettings.Networks "${NET_B}"}}{{.IPAddress}} {{.GlobalIPv6Address}} {{.IPv6Gateway}}{{end}}`;
      const [ip = '', ip6 = '', gw6 = ''] = (await d.dockerOk(['inspect', '-f', f, c])).stdout.trim().split(' ');
      addr[c] = { ip, ip6, gw6 };
      assert.ok(inCidr6(ip6, `${blue.net6}::/48`), `${c}: ${ip6} in blue's IPv6Network`);
    }
    await ping6Ok(d1, 'x1', addr.x2!.ip6);
    const [a6, b6] = [`${net6}::/48`, `${blue.net6}::/48`];
    const dropMark = (x: string, y: string) => `overlay-flannel isolate ${x} ${y}`;
    const before = await ip6Packets(h1, 'filter', 'FORWARD', dropMark(a6, b6));
    await ping6Fails(d1, 'c1', addr.x1!.ip6); // same host h1
    await ping6Fails(d1, 'c1', addr.x2!.ip6); // across hosts, dropped on h1
    await ping6Fails(d2, 'x2', addr.c1!.ip6); // across hosts the other way, dropped on h2
    const after = await ip6Packets(h1, 'filter', 'FORWARD', dropMark(a6, b6));
    assert.ok(after - before >= 4, `h1's ip6 drop ${a6} → ${b6} counted ${after - before} packets (4 pings)`);
    assert.ok((await ip6Packets(h2, 'filter', 'FORWARD', dropMark(b6, a6))) >= 2, 'h2 dropped x2 → c1');
    for (const h of [h1, h2]) {
      const fw = (await h.execOk('ip6tables', ['-S', 'FORWARD'])).stdout.split('\n');
      for (const [x, y] of [[a6, b6], [b6, a6]]) {
        assert.ok(fw.includes(`-A FORWARD -s ${x} -d ${y} -m comment --comment "${dropMark(x, y)}" -j DROP`), `${h.ns} ip6 FORWARD drops ${x} → ${y}:\n${fw.join('\n')}`);
      }
    }
    for (const [d, c] of [[d1, 'x1'], [d2, 'x2']] as const) await d.dockerOk(['rm', '-f', c], { timeoutMs: 60_000 });
    await d1.dockerOk(['network', 'rm', NET_B]);
    await waitFor(async () => (await d2.docker(['network', 'inspect', NET_B])).code !== 0, { timeoutMs: 20_000, intervalMs: 200, what: `${NET_B} gone from h2` });
  });

  it('8. plugin SIGKILL on h1: its first audit releases an hour-old v6 orphan record, keeps a fresh one and c1\'s (aged too, but Docker holds it); docker rm releases both hosts\' v6 records, no v6 route behind', async (t) => {
    const held6 = await leases6();
    for (const [h, c] of [[h1, 'c1'], [h2, 'c2']] as const) assert.ok((await records6(held6.get(h.ip)!)).has(v6(addr[c]!.ip6)), `${c}'s v6 record before the rm`);
    // Records no endpoint holds (a plugin that died between RequestAddress and its answer), and c1's own made an hour old.
    const lease1 = held6.get(h1.ip)!;
    const dir = `${ov.prefix}/overlay-flannel/addresses6/${lease1.replace('/', '-')}/`;
    const base1 = lease1.split('/')[0]!; // fd..:..::
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    const [orphan, fresh] = [`${base1}dead:1`, `${base1}dead:2`];
    await etcd!.etcdctl(['put', `${dir}${orphan}`, JSON.stringify({ owner: 'docker/0rphan0ld000', createdAt: hourAgo })]);
    await etcd!.etcdctl(['put', `${dir}${fresh}`, JSON.stringify({ owner: 'docker/0rphanfresh0', createdAt: new Date().toISOString() })]);
    const keys1 = (await etcd!.etcdctl(['get', '--prefix', '--keys-only', dir])).stdout.split('\n').filter(Boolean);
    const c1Key = keys1.find((k) => v6(k.slice(dir.length)) === v6(addr.c1!.ip6))!;
    const c1Owner = (await records6(lease1)).get(v6(addr.c1!.ip6))!;
    await etcd!.etcdctl(['put', c1Key, JSON.stringify({ owner: c1Owner, createdAt: hourAgo })]);
    const [pid] = await L.pluginPids(h1);
    const t0 = Date.now();
    process.kill(pid!, 'SIGKILL');
    await waitFor(async () => !existsSync(`/proc/${pid}`), { timeoutMs: 10_000, what: `plugin pid ${pid} gone` });
    await waitFor(async () => {
      const p = await L.pluginPids(h1);
      return p.length === 1 && p[0] !== pid;
    }, { timeoutMs: 60_000, what: 'Docker restarted the plugin on h1' }).catch(async () => {
      // as docker-multicast's scenario 7: a dockerd that gave up restarting it
      await d1.docker(['plugin', 'disable', '-f', 'overlay-flannel'], { timeoutMs: 60_000 });
      await d1.dockerOk(['plugin', 'enable', 'overlay-flannel'], { timeoutMs: 60_000 });
    });
    t.diagnostic(`h1's plugin restarted by Docker ${Date.now() - t0} ms after the SIGKILL`);
    await waitFor(async () => !(await records6(lease1)).has(v6(orphan)), { timeoutMs: 60_000, intervalMs: 250, what: `the restarted plugin's audit releases the hour-old v6 orphan ${orphan}\n${dockerLog(d1)}` });
    t.diagnostic(`v6 orphan released ${Date.now() - t0} ms after the SIGKILL`);
    const after = await records6(lease1);
    assert.ok(after.has(v6(fresh)), 'a fresh orphan is inside the grace period: kept');
    assert.equal(after.get(v6(addr.c1!.ip6)), c1Owner, 'c1\'s record, an hour old but held by Docker (its IPv6Address), is kept');
    await etcd!.etcdctl(['del', `${dir}${fresh}`]);
    for (const [d, c] of [[d1, 'c1'], [d2, 'c2']] as const) await d.dockerOk(['rm', '-f', c], { timeoutMs: 60_000 });
    for (const [h, c] of [[h1, 'c1'], [h2, 'c2']] as const) {
      await waitFor(async () => !(await records6(held6.get(h.ip)!)).has(v6(addr[c]!.ip6)), { timeoutMs: 10_000, intervalMs: 200, what: `${h.ns}: ${c}'s v6 record released with its endpoint\n${dockerLog(h === h1 ? d1 : d2)}` });
    }
    for (const [h, c] of [[h1, 'c1'], [h2, 'c2']] as const) {
      const left = await h.execJson<unknown[]>(['-6', 'route', 'show', `${addr[c]!.ip6}/128`]);
      assert.deepEqual(left, [], `${h.ns}: the /128 route to ${c} went with its veth`);
    }
    await d1.dockerOk(['network', 'rm', NET]);
    await waitFor(async () => (await d2.docker(['network', 'inspect', NET])).code !== 0, { timeoutMs: 20_000, intervalMs: 200, what: `${NET} gone from h2` });
  });

  it('9. the bridge data path (-o datapath=bridge): the bridge holds ::1 of the v6 lease, ping6 across hosts both ways', async () => {
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

  it('10. names across hosts: AAAA of an h2 container answers its v6 address on h1 (nslookup, ping6 by name); a v4-only network\'s AAAA is an empty NOERROR', async (t) => {
    await checkV6Names({ lab: lab!, etcd: etcd!, ov, net6, h1, d1, d2, dockerLog, diagnostic: (m) => t.diagnostic(m) });
  });

  it('11. an IPv6-only overlay (config set --ipv6-only) carries no Docker network: create, with or without --ipv6, fails naming why and the dual-stack fix', async () => {
    const [name, vni, net] = [`v6o${randomBytes(2).toString('hex')}`, [4001, 4002, 4003].find((v) => v !== ov.vni && v !== blue.vni)!, `fd${randomInt(16, 255).toString(16)}:${hex()}::/48`];
    await h1.execOk('node', [MAIN, 'config', 'set', '--name', name, '--ipv6-only', '--ipv6-network', net, '--vni', String(vni)], { env: { ...process.env, ETCD_ENDPOINTS: etcd!.endpoint, ETCD_PREFIX: ov.prefix }, timeoutMs: 20_000 });
    for (const v6 of [['--ipv6'], []]) {
      const r = await d1.docker(['network', 'create', ...v6, '-d', DRIVER, '--ipam-driver', DRIVER, '--ipam-opt', `network=${name}`, `n-${name}`], { timeoutMs: 60_000 });
      assert.notEqual(r.code, 0, `network create ${v6.join('')} on the IPv6-only overlay must fail: ${r.stdout}`);
      assert.match(r.stderr, new RegExp(`overlay "${name}" is IPv6-only \\(EnableIPv4 false\\).*\\(Docker 20\\.10 has no IPv6-only networks\\).*config set --name ${name} --network CIDR --ipv6-network CIDR`), r.stderr);
    }
  });
});
