/**
 * docker-wireguard-parity.test.ts — what the vxlan labs prove, on a wireguard overlay (issue 22:
 * "everything else as with vxlan"): the managed plugin on two real dockerds, the default overlay
 * `"Backend":{"Type":"wireguard"}` (wireguard-go, the only implementation this kernel allows), a
 * named vxlan overlay `blue` beside it.
 *
 * One lab for the file: LAN namespace with etcd and a fake upstream DNS (192.0.2.254; every
 * dockerd runs with `--dns 192.0.2.254`, fake-upstream-dns.ts), hosts h1/h2 with dockerd and the
 * plugin (STATUS_ADDR on 127.0.0.1), and an "outside" namespace 198.51.100.1 routed by the LAN
 * namespace, which knows no route to the overlay (as in docker-egress.test.ts): a container's
 * packet only gets an answer from there if it left its host masqueraded.
 * Scenarios, in order: flannel's masquerade rules; containers reach the outside as their host,
 * container ↔ container through flannel-wg untranslated; a published port (`-p`) answers the
 * outside and the other host; a container on h2 by name from h1 (Docker's embedded DNS, answered
 * on the way, never at the upstream); the vxlan overlay beside it works and is isolated from the
 * wireguard one both ways (FORWARD drops counted); the status API and page say wireguard,
 * userspace wireguard-go, and show the peer as programmed and its path probed (RTT) through flannel-wg;
 * last, a named overlay `green` on wireguard beside the default one (its own device fwg-green,
 * ListenPort and key; traffic across, isolated from the default overlay) and a named wireguard
 * overlay on the port the default one holds refused with that reason (made in case 7, not in before(),
 * so the earlier cases do not depend on it); then Docker `--ipv6` containers over a dual-stack wireguard
 * overlay `six` (docker-wireguard-v6.ts: h1/h2 have `<lan6>::1/2` on eth0 and an ip6 FORWARD policy
 * DROP from before(), harmless to the v4-only cases).
 * Peer address as the server saw it: busybox httpd with a CGI printing $REMOTE_ADDR, fetched with
 * busybox nc (HTTP/1.0 by hand). All traffic stays in the lab's namespaces.
 * Needs root, docker.io, busybox-static, python3, wireguard-go, tcpdump, etcd and `npm run build`; fails (never skips).
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
import { startFakeUpstream, type FakeUpstream } from './fake-upstream-dns';
import * as L from './docker-plugin-lab';
import { uapiGet, wgPid } from './wireguard-lab';
import { checkWireguardV6 } from './docker-wireguard-v6';

const ROOT = resolve(__dirname, '../..');
const MAIN = join(ROOT, 'dist/main.js');
const missing = [DOCKERD, DOCKER, '/bin/busybox', '/usr/bin/wireguard-go', '/usr/bin/python3', '/usr/bin/tcpdump', MAIN].filter((f) => !existsSync(f));
if (process.getuid?.() !== 0) throw new Error('the docker wireguard parity lab needs root');
if (missing.length) throw new Error(`the docker wireguard parity lab needs ${missing.join(', ')} (apt-get install docker.io busybox-static wireguard-go python3-minimal tcpdump; npm run build)`);

const OUTSIDE = '198.51.100.1';
const STATUS = '127.0.0.1:9890';
const CGI = '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$REMOTE_ADDR"\n';

interface KernelJson { overlays: { name: string; device: string | null; mtu: number | null; wireguard: { implementation: string; reason: string; publicKey: string } | null }[] }
interface OverlaysJson { overlays: { name: string; config: { backend: { type: string } } | null }[] }
interface ClusterJson { hosts: { overlay: string; subnet: string; programmed: boolean | null; path: { state: string; rttMs: number | null } | null }[] }
interface PathsJson { overlays: { overlay: string; bound: string | null }[] }

describe('a wireguard overlay does what a vxlan one does: masquerade, published ports, names, isolation, status', { timeout: 420_000 }, () => {
  const ov = L.randomOverlay();
  let blue = L.randomOverlay();
  while (blue.network === ov.network) blue = L.randomOverlay();
  let green = L.randomOverlay();
  while (green.network === ov.network || green.network === blue.network) green = L.randomOverlay();
  const GREEN_PORT = randomInt(51_830, 52_000);
  const tag = randomBytes(3).toString('hex');
  const NET = `wgp-${tag}`, NET2 = `wgb-${tag}`;
  const C1 = `c1-${tag}`, C2 = `c2-${tag}`, WEB = `web-${tag}`, B1 = `b1-${tag}`, B2 = `b2-${tag}`, G1 = `g1-${tag}`, G2 = `g2-${tag}`;
  const PORT = randomInt(20_000, 30_000);
  const lan6 = `2001:db8:${randomInt(1, 0xffff).toString(16)}:${randomInt(1, 0xffff).toString(16)}`;
  let lab: Lab | undefined;
  let etcd: EtcdServer | undefined;
  let upstream: FakeUpstream;
  let h1: Host, h2: Host;
  let d1: DockerHost, d2: DockerHost;
  let outside: Ns, lan: Ns;
  let www: string;
  const lease = new Map<DockerHost, string>();
  const ips: Record<string, string> = {};

  /** The body of GET / on ip:port asked from namespace `from` with busybox nc; '' when no answer. */
  const fetchFrom = async (from: Ns | Host, ip: string, port: number): Promise<string> => {
    const r = await from.exec('/bin/busybox', ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 ${ip} ${port}`], { timeoutMs: 15_000 });
    return r.stdout.split(/\r?\n\r?\n/).slice(1).join('\n').trim();
  };
  const api = async <T,>(h: Host, path: string): Promise<T> => JSON.parse((await h.execOk('curl', ['-sf', '-m', '5', `http://${STATUS}${path}`], { timeoutMs: 10_000 })).stdout) as T;
  const lookup = async (d: DockerHost, c: string, name: string): Promise<string[]> => {
    const r = await d.docker(['exec', c, 'nslookup', '-type=a', name], { timeoutMs: 30_000 });
    const answer = r.code === 0 ? r.stdout.split(/^Name:/m).slice(1).join('\n') : '';
    return [...answer.matchAll(/^Address:\s*(\d+\.\d+\.\d+\.\d+)\s*$/gm)].map((m) => m[1]!);
  };
  const pingFails = async (d: DockerHost, from: string, ip: string): Promise<void> => {
    const r = await d.docker(['exec', from, 'ping', '-c', '2', '-W', '1', ip], { timeoutMs: 15_000 });
    assert.notEqual(r.code, 0, `${from} on ${d.host.ns} must not reach ${ip} (another overlay): ${r.stdout}`);
  };
  const tail = (d: DockerHost): string => d.logs().split('\n').slice(-40).join('\n');
  const create = async (args: string[], net: string) => {
    const r = await d1.docker(['network', 'create', '-d', L.DRIVER, '--ipam-driver', L.DRIVER, ...args, net], { timeoutMs: 90_000 });
    assert.equal(r.code, 0, `network create ${net}: ${r.stderr}\n${tail(d1)}`);
    await waitFor(async () => (await d2.docker(['network', 'inspect', net])).code === 0, { timeoutMs: 60_000, what: `${net} replicated to h2` });
  };
  const configSet = async (args: string[]) => {
    const env = { ...process.env, ETCD_ENDPOINTS: etcd!.endpoint, ETCD_PREFIX: ov.prefix };
    await h1.execOk('node', [MAIN, 'config', 'set', ...args], { env, timeoutMs: 20_000 });
  };
  /** subnet → PublicKey of the wireguard leases under `prefix`. */
  const wgKeys = async (prefix: string): Promise<Map<string, string>> => {
    const lines = (await etcd!.etcdctl(['get', '--prefix', `${prefix}/subnets/`])).stdout.split('\n').filter(Boolean);
    const out = new Map<string, string>();
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const k = /(\d+\.\d+\.\d+\.\d+)-(\d+)$/.exec(lines[i]!);
      const key = (JSON.parse(lines[i + 1]!) as { BackendData?: { PublicKey?: string } }).BackendData?.PublicKey;
      if (k && key) out.set(`${k[1]}/${k[2]}`, key);
    }
    return out;
  };

  before(async () => {
    lab = await createDockerLab('owp');
    lan = await lab.lan();
    etcd = await startEtcd({ netns: lan.ns, host: '192.0.2.254' });
    upstream = await startFakeUpstream(lan, {});
    let pluginDir: string;
    ({ h1, h2, d1, d2, pluginDir } = await L.twoDockerHosts(lab, { extraArgs: ['--dns', '192.0.2.254'] }));
    outside = await L.addOutsideNamespace(lab, lan, OUTSIDE);
    // case 8's v6 underlay and Docker ≥ 27's ip6 FORWARD policy, before the plugins read eth0
    for (const [h, n] of [[h1, 1], [h2, 2]] as const) {
      await h.execOk('ip', ['-6', 'addr', 'add', `${lan6}::${n}/64`, 'dev', 'eth0', 'nodad']);
      await h.execOk('ip6tables', ['-P', 'FORWARD', 'DROP']);
    }
    www = join(labRoot(lab.runId), 'www');
    mkdirSync(join(www, 'cgi-bin'), { recursive: true });
    writeFileSync(join(www, 'cgi-bin', 'peer'), CGI);
    chmodSync(join(www, 'cgi-bin', 'peer'), 0o755);
    outside.spawnDaemon('/bin/busybox', ['httpd', '-f', '-p', '0.0.0.0:8080', '-h', www]);

    await etcd.etcdctl(['put', `${ov.prefix}/config`, JSON.stringify({ Network: ov.network, Backend: { Type: 'wireguard' } })]);
    await configSet(['--name', 'blue', '--network', blue.network, '--vni', String(blue.vni)]);
    await Promise.all([d1, d2].map((d) => L.installPlugin(d, pluginDir, L.pluginSettings(etcd!, ov.prefix, d, [`STATUS_ADDR=${STATUS}`]))));
    const held = await waitFor(async () => {
      const l = await L.leases(etcd!, ov.prefix);
      return l.has(h1.ip) && l.has(h2.ip) && l;
    }, { timeoutMs: 40_000, what: `wireguard leases of both hosts; h1 log:\n${tail(d1)}` });
    lease.set(d1, held.get(h1.ip)!).set(d2, held.get(h2.ip)!);
    await create([], NET);
    await create(['--ipam-opt', 'network=blue'], NET2);
    const serve = `mkdir -p /www/cgi-bin && printf '${CGI.replace(/\n/g, '\\n')}' > /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && exec httpd -f -p 0.0.0.0:8080 -h /www`;
    const web = `mkdir -p /www && echo hello-${tag} > /www/index.html && exec httpd -f -p 80 -h /www`;
    await Promise.all([
      L.runBox(d1, C1, NET),
      d2.dockerOk(['run', '-d', '--init', '--name', C2, '--network', NET, 'ofbox:1', 'sh', '-c', serve], { timeoutMs: 120_000 }),
      d2.dockerOk(['run', '-d', '--init', '--name', WEB, '-p', `${PORT}:80`, '--network', NET, 'ofbox:1', 'sh', '-c', web], { timeoutMs: 120_000 }),
      L.runBox(d1, B1, NET2),
      L.runBox(d2, B2, NET2),
    ]);
    for (const [d, c, n] of [[d1, C1, NET], [d2, C2, NET], [d2, WEB, NET], [d1, B1, NET2], [d2, B2, NET2]] as const) ips[c] = (await L.endpointOf(d, c, n)).ip;
  });

  after(async () => {
    const runId = lab?.runId;
    await etcd?.cleanup();
    await stopAll(lab);
    if (runId) assert.deepEqual(await leftovers(runId), { namespaces: [], folder: false, mounts: [], processes: [] }, 'the lab left something behind');
  });

  it("1. the wireguard overlay runs on wireguard-go, and each host has flannel's five masquerade rules for its own subnet", async () => {
    for (const [h, d] of [[h1, d1], [h2, d2]] as const) {
      assert.ok(wgPid(h), `a wireguard-go for flannel-wg in ${h.ns}`);
      const sub = lease.get(d)!;
      const mark = L.masqMark(ov.network);
      const rules = await waitFor(async () => {
        const r = await L.natRules(h, 'POSTROUTING', mark);
        return r.length === 5 && r;
      }, { timeoutMs: 20_000, what: `masquerade rules on ${h.ns}` });
      assert.deepEqual(rules, L.flannelMasqRules(sub, ov.network));
    }
  });

  it("2. containers reach the outside with their host's address; through flannel-wg c2 sees c1's own address", async () => {
    for (const [d, c, hostIp] of [[d1, C1, h1.ip], [d2, C2, h2.ip]] as const) {
      const seen = await waitFor(async () => (await L.peerSeen(d, c, OUTSIDE)) || undefined, { timeoutMs: 20_000, what: `${c} → outside` });
      assert.equal(seen, hostIp, `the outside saw ${c} as ${seen}`);
    }
    const seen = await waitFor(async () => (await L.peerSeen(d1, C1, ips[C2]!)) || undefined, { timeoutMs: 20_000, what: 'c1 → c2 through flannel-wg' });
    assert.equal(seen, ips[C1]);
    assert.ok(L.inCidr(ips[C1]!, lease.get(d1)!));
  });

  it('3. a published port on h2 answers the outside, the LAN host h1, and a container on h1', async () => {
    const rules = await L.natRules(h2, 'PREROUTING', 'overlay-flannel port ');
    assert.equal(rules.length, 1, `one PREROUTING DNAT on h2:\n${rules.join('\n')}`);
    assert.match(rules[0]!, new RegExp(`--dport ${PORT} .*-j DNAT --to-destination ${ips[WEB]!.replace(/\./g, '\\.')}:80$`));
    const body = await waitFor(async () => (await fetchFrom(outside, h2.ip, PORT)) || undefined, { timeoutMs: 20_000, what: `outside → ${h2.ip}:${PORT}` });
    assert.equal(body, `hello-${tag}`);
    assert.equal(await fetchFrom(h1, h2.ip, PORT), `hello-${tag}`, 'h1 (a LAN host) → h2:PORT');
    const r = await d1.docker(['exec', C1, 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${h2.ip} ${PORT}`], { timeoutMs: 15_000 });
    assert.equal(r.stdout.split(/\r?\n\r?\n/).slice(1).join('\n').trim(), `hello-${tag}`, 'c1 on h1 → h2:PORT');
  });

  it('4. a container on h2 by name from h1 (Docker\'s embedded DNS), answered on the way; ping and http by name through flannel-wg', async () => {
    const got = await waitFor(async () => {
      const a = await lookup(d1, C1, C2);
      return a.includes(ips[C2]!) && a;
    }, { timeoutMs: 30_000, intervalMs: 200, what: `${C2} resolvable from h1` });
    assert.deepEqual(got, [ips[C2]]);
    await d1.dockerOk(['exec', C1, 'ping', '-c', '1', '-W', '5', C2], { timeoutMs: 30_000 });
    assert.equal(await L.peerSeen(d1, C1, C2), ips[C1], 'http by name, untranslated');
    assert.equal(upstream.queries().filter((q) => q.name === C2.toLowerCase()).length, 0, 'the upstream never saw the overlay name');
    assert.deepEqual(await lookup(d1, C1, B2), [], `${B2} is of another network: not resolved in ${NET}`);
  });

  it('5. isolation: the vxlan overlay beside it works across hosts, and neither reaches the other (FORWARD drops counted)', async () => {
    await L.pingOk(d1, B1, ips[B2]!);
    for (const h of [h1, h2]) {
      const fw = (await h.execOk('iptables', ['-S', 'FORWARD'])).stdout;
      for (const [x, y] of [[ov.network, blue.network], [blue.network, ov.network]]) {
        assert.match(fw, new RegExp(`-A FORWARD -s ${x.replace(/\./g, '\\.')} -d ${y.replace(/\./g, '\\.')} .*-j DROP`), `${h.ns} FORWARD:\n${fw}`);
      }
    }
    await Promise.all([pingFails(d1, C1, ips[B1]!), pingFails(d1, C1, ips[B2]!), pingFails(d2, B2, ips[C1]!), pingFails(d2, B2, ips[C2]!)]);
    const dropped = async (h: Host, from: string, to: string): Promise<number> => {
      const out = (await h.execOk('iptables', ['-L', 'FORWARD', '-v', '-n', '-x'])).stdout;
      const line = out.split('\n').find((l) => /\bDROP\b/.test(l) && l.includes(from) && l.includes(to) && l.indexOf(from) < l.indexOf(to));
      assert.ok(line, `${h.ns}: no DROP rule ${from} → ${to} in\n${out}`);
      return Number(line.trim().split(/\s+/)[0]);
    };
    assert.ok((await dropped(h1, ov.network, blue.network)) > 0, 'h1 dropped wireguard → vxlan');
    assert.ok((await dropped(h2, blue.network, ov.network)) > 0, 'h2 dropped vxlan → wireguard');
    await Promise.all([L.pingOk(d1, C1, ips[C2]!), L.pingOk(d2, B2, ips[B1]!)]);
  });

  it('6. the status API and page: backend wireguard, userspace wireguard-go and why, the peer programmed and its path probed through flannel-wg', async () => {
    const o = (await api<OverlaysJson>(h1, '/api/v1/overlays')).overlays;
    assert.deepEqual(o.map((x) => [x.name, x.config?.backend.type]).sort(), [['blue', 'vxlan'], ['default', 'wireguard']]);
    const k = (await api<KernelJson>(h1, '/api/v1/kernel')).overlays.find((x) => x.name === 'default')!;
    assert.equal(k.device, 'flannel-wg');
    assert.equal(k.mtu, 1420);
    assert.equal(k.wireguard?.implementation, 'userspace');
    assert.match(k.wireguard!.reason, /no wireguard link kind: using wireguard-go \(userspace/);
    const pub = /"PublicKey":"([^"]+)"/.exec((await etcd!.etcdctl(['get', '--print-value-only', `${ov.prefix}/subnets/${lease.get(d1)!.replace('/', '-')}`])).stdout)?.[1];
    assert.equal(k.wireguard!.publicKey, pub, "the status page's public key is the lease's");
    // h2 as h1's page shows it: programmed (the device has its peer), its path probed through flannel-wg.
    const peer = await waitFor(async () => {
      const p = (await api<ClusterJson>(h1, '/api/v1/cluster')).hosts.find((x) => x.overlay === 'default' && x.subnet === lease.get(d2));
      return p?.path?.state === 'reachable' ? p : undefined;
    }, { timeoutMs: 20_000, what: `h2 (${lease.get(d2)}) reachable in h1's cluster view` });
    assert.equal(peer.programmed, true, `h1's kernel has h2's wireguard peer: ${JSON.stringify(peer)}`);
    assert.ok(peer.path!.rttMs! > 0, `an RTT: ${JSON.stringify(peer.path)}`);
    const paths = (await api<PathsJson>(h1, '/api/v1/paths')).overlays.find((x) => x.overlay === 'default')!;
    assert.equal(paths.bound, `${lease.get(d1)!.split('/')[0]}:8479`, "probes from h1's .0 (on flannel-wg)");
    const page = (await h1.execOk('curl', ['-sf', '-m', '5', `http://${STATUS}/`], { timeoutMs: 10_000 })).stdout;
    assert.match(page, /"implementation":"userspace","reason":"this kernel has no wireguard link kind: using wireguard-go/);
    assert.match(page, /"backend":\{"type":"wireguard"/);
  });

  it('7. a named overlay on wireguard beside the default one: its own fwg-green, ListenPort and key; pings across, isolated from the default one; a named one on the held port is refused', async () => {
    await configSet(['--name', 'green', '--network', green.network, '--backend', 'wireguard', '--port', String(GREEN_PORT)]);
    const NET3 = `wgg-${tag}`;
    await create(['--ipam-opt', 'network=green'], NET3);
    await Promise.all([L.runBox(d1, G1, NET3), L.runBox(d2, G2, NET3)]);
    for (const [d, c] of [[d1, G1], [d2, G2]] as const) ips[c] = (await L.endpointOf(d, c, NET3)).ip;
    const gPrefix = `${ov.prefix}-green`;
    const gLease = await waitFor(async () => {
      const l = await L.leases(etcd!, gPrefix);
      return l.has(h1.ip) && l.has(h2.ip) && l;
    }, { timeoutMs: 30_000, what: 'green leases of both hosts' });
    const [gKeys, defKeys] = [await wgKeys(gPrefix), await wgKeys(ov.prefix)];
    for (const [h, other] of [[h1, h2], [h2, h1]] as const) {
      const mine = gLease.get(h.ip)!, theirs = gLease.get(other.ip)!;
      assert.ok(wgPid(h, 'fwg-green'), `a wireguard-go for fwg-green in ${h.ns}`);
      const dev = await waitFor(async () => {
        const u = await uapiGet(h, 'fwg-green');
        return u.peers.length === 1 && u;
      }, { timeoutMs: 20_000, what: `${h.ns}'s fwg-green has its peer` });
      assert.equal(dev.listenPort, GREEN_PORT, "green's ListenPort from its config");
      assert.deepEqual(dev.peers.map((p) => [p.publicKey, p.endpoint, [...p.allowedIPs]]), [[gKeys.get(theirs), `${other.ip}:${GREEN_PORT}`, [theirs]]]);
      assert.notEqual(gKeys.get(mine), defKeys.get(lease.get(h === h1 ? d1 : d2)!), 'its own key, not the default overlay\'s');
      const flannelWg = await uapiGet(h);
      assert.deepEqual([flannelWg.listenPort, flannelWg.peers.length], [51820, 1], 'flannel-wg as before');
      assert.deepEqual(await L.linkAddrs(h, 'fwg-green'), [`${mine.split('/')[0]}/32`]);
    }
    await L.pingOk(d1, G1, ips[G2]!);
    await L.pingOk(d2, G2, ips[G1]!);
    await Promise.all([pingFails(d1, G1, ips[C2]!), pingFails(d2, C2, ips[G1]!), pingFails(d1, C1, ips[G2]!)]);
    await L.pingOk(d1, C1, ips[C2]!);
    const k = (await api<KernelJson>(h1, '/api/v1/kernel')).overlays.find((x) => x.name === 'green');
    assert.deepEqual([k?.device, k?.mtu, k?.wireguard?.implementation, k?.wireguard?.publicKey], ['fwg-green', 1420, 'userspace', gKeys.get(gLease.get(h1.ip)!)]);
    // A named wireguard overlay without its own ListenPort: 51820 is the default overlay's here.
    let red = L.randomOverlay();
    while ([ov.network, blue.network, green.network].includes(red.network)) red = L.randomOverlay();
    await configSet(['--name', 'red', '--network', red.network, '--backend', 'wireguard']);
    const r = await d1.docker(['network', 'create', '-d', L.DRIVER, '--ipam-driver', L.DRIVER, '--ipam-opt', 'network=red', `wgr-${tag}`], { timeoutMs: 90_000 });
    assert.notEqual(r.code, 0, 'red on the default overlay\'s port is refused');
    assert.match(r.stderr, /ListenPort 51820 is already the port of the wireguard overlay "default" \(flannel-wg\) on this host/);
  });

  it('8. Docker --ipv6 over a dual-stack wireguard overlay: v6 addresses in the hosts\' v6 leases, fw6-six peers and routes, ping6 across hosts with ip6 FORWARD policy DROP (through our accepts), v6 egress masqueraded, the LAN sees only UDP to ListenPortV6', async (t) => {
    await checkWireguardV6({ etcd: etcd!, h1, h2, d1, d2, lan, prefix: ov.prefix, lan6, www, taken: [ov.network, blue.network, green.network], tag, create, diagnostic: (m) => t.diagnostic(m) });
  });
});
