/**
 * docker-multicast.test.ts — multicast and broadcast across hosts (issue 17) end to end: three
 * real dockerds with the managed plugin, containers with no flag, Debian's socat (copied into the
 * test image with its libraries) joining groups inside them.
 *
 * One lab for the file: LAN namespace with etcd and the fake upstream DNS (every dockerd runs with
 * `--dns 192.0.2.254`); hosts h1, h2, h3 with dockerd and the plugin; h4 a bare namespace posing
 * as a flanneld host (a lease with a random VtepMAC written into etcd). Networks, random per run:
 * NET on the default overlay (routed data path), NET2 on overlay "blue" (bridge data path), NET3
 * on overlay "green" with `-o multicast=false`. A tcpdump on the LAN bridge decodes every vxlan
 * packet (outer and inner addresses), so copies on the wire are counted exactly, per host.
 * Each datagram carries its own tag (one socat process per datagram), so "exactly once" is
 * checked per datagram. Non-members are read after every member has everything (the barrier).
 * Scenarios: a group with members on h1, h2, h3 and a non-member; a TTL-1 link-local group;
 * 255.255.255.255; the bridge data path; NET2 and NET3 hearing nothing of NET; multicast=false;
 * the flanneld host never flooded; the LAN and the hosts' own stacks hearing nothing; a plugin
 * restart; a host whose lease goes gets no more copies.
 * Needs root, docker.io, busybox-static, socat, tcpdump, etcd and `npm run build`; fails (never skips).
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DOCKER, DOCKERD, createDockerLab, importBusybox, leftovers, startDockerd, stopAll, type DockerHost } from '../helpers/docker-lab';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import type { DaemonHandle, Host, Lab, Ns } from '../helpers/netns-lab';
import { waitFor } from '../helpers/wait';
import { startFakeUpstream } from './fake-upstream-dns';
import * as L from './docker-plugin-lab';

const ROOT = resolve(__dirname, '../..');
const MAIN = join(ROOT, 'dist/main.js');
const missing = [DOCKERD, DOCKER, '/bin/busybox', MAIN, '/usr/bin/socat', '/usr/bin/tcpdump'].filter((f) => !existsSync(f));
if (process.getuid?.() !== 0) throw new Error('the multicast lab needs root');
if (missing.length) throw new Error(`the multicast lab needs ${missing.join(', ')} (apt-get install docker.io busybox-static socat tcpdump; npm run build)`);

const DOCKERD_OPTS = { extraArgs: ['--dns', '192.0.2.254'] };
const IMAGE = 'ofmc:1';
const PORT = 5000;
const MDNS = '224.0.0.251';
const MDNS_PORT = 5353;
const BCAST_PORT = 5001;

/** One vxlan packet on the LAN: outer source/destination host, inner destination address and port. */
interface Copy {
  from: string;
  to: string;
  vni: number;
  inner: string;
}

/** tcpdump -T vxlan prints the outer packet, then the inner one on the next line. */
function parseCopies(out: string): Copy[] {
  const lines = out.split('\n');
  const copies: Copy[] = [];
  for (let i = 0; i + 1 < lines.length; i++) {
    const o = /IP (\d+\.\d+\.\d+\.\d+)\.\d+ > (\d+\.\d+\.\d+\.\d+)\.8472: VXLAN.*vni (\d+)/.exec(lines[i]!);
    if (!o) continue;
    const inner = /IP \d+\.\d+\.\d+\.\d+\.\d+ > (\d+\.\d+\.\d+\.\d+\.\d+):/.exec(lines[i + 1]!);
    copies.push({ from: o[1]!, to: o[2]!, vni: Number(o[3]), inner: inner?.[1] ?? '' });
  }
  return copies;
}

describe('multicast and broadcast across three real dockerds', { timeout: 1_200_000 }, () => {
  const ov = L.randomOverlay();
  let ov2 = L.randomOverlay();
  while (ov2.network === ov.network || ov2.vni === ov.vni) ov2 = L.randomOverlay();
  let ov3 = L.randomOverlay();
  while ([ov.network, ov2.network].includes(ov3.network) || [ov.vni, ov2.vni].includes(ov3.vni)) ov3 = L.randomOverlay();
  const tag = randomBytes(3).toString('hex');
  const GROUP = `239.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
  const NET = `ofm-${tag}`, NET2 = `ofm2-${tag}`, NET3 = `ofm3-${tag}`;
  const S = `s-${tag}`, M1 = `m1-${tag}`, N1 = `n1-${tag}`, M2 = `m2-${tag}`, M3 = `m3-${tag}`;
  const B1 = `b1-${tag}`, B1M = `b1m-${tag}`, B2 = `b2-${tag}`, F1 = `f1-${tag}`, F2 = `f2-${tag}`;
  let lab: Lab | undefined;
  let etcd: EtcdServer | undefined;
  let lan: Ns;
  let h1: Host, h2: Host, h3: Host, h4: Host;
  let d1: DockerHost, d2: DockerHost, d3: DockerHost;
  let wire: DaemonHandle, plain: DaemonHandle, hostStack: DaemonHandle;
  const flanneldMac = `0a:58:${randomBytes(4).toString('hex').match(/../g)!.join(':')}`;
  const notes: string[] = [];
  const hostOf = new Map<string, DockerHost>();

  const env = () => ({ ...process.env, ETCD_ENDPOINTS: etcd!.endpoint, ETCD_PREFIX: ov.prefix });
  const d = (c: string) => hostOf.get(c)!;
  const box = async (dh: DockerHost, name: string, net: string) => {
    await dh.dockerOk(['run', '-d', '--init', '--name', name, '--network', net, IMAGE, 'sleep', '3600'], { timeoutMs: 120_000 });
    hostOf.set(name, dh);
  };
  /** A receiver in container `c`: socat on `port` (joined to `group` on eth0 if given), each datagram appended to /tmp/<file>. */
  const listen = async (c: string, port: number, group: string | null, file: string) => {
    const opts = `reuseaddr${group ? `,ip-add-membership=${group}:eth0` : ''}`;
    await d(c).dockerOk(['exec', '-d', c, 'sh', '-c', `socat -u UDP4-RECV:${port},${opts} OPEN:/tmp/${file},creat,append`]);
    const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
    await waitFor(async () => (await d(c).dockerOk(['exec', c, 'cat', '/proc/net/udp'])).stdout.includes(hex), { timeoutMs: 20_000, what: `${c} listening on ${port}` });
    if (group) {
      const hexGroup = group.split('.').reverse().map((o) => Number(o).toString(16).toUpperCase().padStart(2, '0')).join('');
      await waitFor(async () => (await d(c).dockerOk(['exec', c, 'cat', '/proc/net/igmp'])).stdout.includes(hexGroup), { timeoutMs: 20_000, what: `${c} joined ${group}` });
    }
  };
  /** `n` datagrams "<label>-<i>" from container `c`, one socat each. */
  const send = async (c: string, dst: string, port: number, n: number, label: string, opts = 'ip-multicast-ttl=8') => {
    const script = `for i in $(seq 1 ${n}); do echo "${label}-$i" | socat -u - UDP4-DATAGRAM:${dst}:${port},${opts} || exit 1; done`;
    await d(c).dockerOk(['exec', c, 'sh', '-c', script], { timeoutMs: 120_000 });
  };
  const received = async (c: string, file: string, label: string): Promise<string[]> => {
    const r = await d(c).docker(['exec', c, 'cat', `/tmp/${file}`]);
    return r.stdout.split('\n').filter((l) => l.startsWith(`${label}-`));
  };
  /** Wait until each of `members` has all `n` datagrams, then check: each exactly once. */
  const allExactlyOnce = async (members: [string, string][], label: string, n: number) => {
    for (const [c, file] of members) {
      const got = await waitFor(async () => {
        const r = await received(c, file, label);
        return r.length >= n && r;
      }, { timeoutMs: 30_000, intervalMs: 200, what: `${c} got ${n} × ${label}` }).catch(async (e) => {
        throw new Error(`${String(e)}; it has ${(await received(c, file, label)).length}`);
      });
      const want = Array.from({ length: n }, (_, i) => `${label}-${i + 1}`);
      assert.deepEqual([...got].sort(), [...want].sort(), `${c}: every ${label} datagram exactly once`);
    }
  };
  const none = async (who: [string, string][], label: string) => {
    for (const [c, file] of who) assert.deepEqual(await received(c, file, label), [], `${c} heard none of ${label}`);
  };
  const copiesSince = (mark: number, inner: string) => parseCopies(wire.logs().slice(mark)).filter((c) => c.inner === inner);
  const countTo = (copies: Copy[]) => {
    const out: Record<string, number> = {};
    for (const c of copies) out[`${c.from}>${c.to}`] = (out[`${c.from}>${c.to}`] ?? 0) + 1;
    return out;
  };
  const fdb = async (h: Host, vni: number) => (await h.execOk('bridge', ['fdb', 'show', 'dev', `flannel.${vni}`])).stdout;

  before(async () => {
    lab = await createDockerLab('ofmc');
    lan = await lab.lan();
    etcd = await startEtcd({ netns: lan.ns, host: '192.0.2.254' });
    await startFakeUpstream(lan, {});
    let pluginDir: string;
    ({ h1, h2, d1, d2, pluginDir } = await L.twoDockerHosts(lab, DOCKERD_OPTS));
    h3 = await lab.addHost(3);
    h4 = await lab.addHost(4);
    d3 = await startDockerd(h3, DOCKERD_OPTS);
    await h1.execOk('node', [MAIN, 'config', 'set', '--network', ov.network, '--vni', String(ov.vni)], { env: env(), timeoutMs: 20_000 });
    await h1.execOk('node', [MAIN, 'config', 'set', '--name', 'blue', '--network', ov2.network, '--vni', String(ov2.vni)], { env: env(), timeoutMs: 20_000 });
    await h1.execOk('node', [MAIN, 'config', 'set', '--name', 'green', '--network', ov3.network, '--vni', String(ov3.vni)], { env: env(), timeoutMs: 20_000 });
    await Promise.all([d1, d2, d3].map(async (dh) => {
      await L.installPlugin(dh, pluginDir, L.pluginSettings(etcd!, ov.prefix, dh));
      await importBusybox(dh, IMAGE, { socat: true });
    }));
    // h4: a flanneld host of the default overlay (random VtepMAC), on a subnet nobody holds.
    const held = await waitFor(async () => {
      const l = await L.leases(etcd!, ov.prefix);
      return l.size === 3 && l;
    }, { timeoutMs: 60_000, what: 'three leases' });
    const base = ov.network.split('.').slice(0, 2).join('.');
    const subnet = Array.from({ length: 250 }, (_, i) => `${base}.${250 - i}.0/24`).find((s) => ![...held.values()].includes(s))!;
    const grant = (await etcd.etcdctl(['lease', 'grant', '600'])).stdout;
    const leaseId = /lease ([0-9a-f]+) granted/.exec(grant)![1]!;
    await etcd.etcdctl(['put', `--lease=${leaseId}`, `${ov.prefix}/subnets/${subnet.replace('/', '-')}`,
      `{"PublicIP":"192.0.2.4","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":${ov.vni},"VtepMAC":"${flanneldMac}"}}`]);
    await d1.dockerOk(['network', 'create', '-d', L.DRIVER, '--ipam-driver', L.DRIVER, NET], { timeoutMs: 90_000 });
    await d1.dockerOk(['network', 'create', '-d', L.DRIVER, '--ipam-driver', L.DRIVER, '--ipam-opt', 'network=blue', '-o', 'datapath=bridge', NET2], { timeoutMs: 90_000 });
    await d1.dockerOk(['network', 'create', '-d', L.DRIVER, '--ipam-driver', L.DRIVER, '--ipam-opt', 'network=green', '-o', 'multicast=false', NET3], { timeoutMs: 90_000 });
    for (const dh of [d2, d3]) for (const n of [NET, NET2, NET3]) await waitFor(async () => (await dh.docker(['network', 'inspect', n])).code === 0, { timeoutMs: 60_000, what: `${n} replicated to ${dh.host.ns}` });
    await Promise.all([
      box(d1, S, NET), box(d1, M1, NET), box(d1, N1, NET), box(d2, M2, NET), box(d3, M3, NET),
      box(d1, B1, NET2), box(d1, B1M, NET2), box(d2, B2, NET2), box(d1, F1, NET3), box(d2, F2, NET3),
    ]);
    for (const c of [M1, M2, M3, B1M, B2, F2]) await listen(c, PORT, GROUP, 'g');
    await listen(N1, PORT, null, 'g'); // the port, no membership
    for (const c of [M1, M2, M3]) await listen(c, MDNS_PORT, MDNS, 'mdns');
    for (const c of [M1, N1, M2, M3, B2, F2]) await listen(c, BCAST_PORT, null, 'b');
    wire = lan.spawnDaemon('tcpdump', ['-i', 'br0', '-n', '-l', '-T', 'vxlan', 'udp port 8472']);
    plain = lan.spawnDaemon('tcpdump', ['-i', 'br0', '-n', '-l', `udp and not port 8472 and (dst port ${PORT} or dst port ${BCAST_PORT} or dst port ${MDNS_PORT})`]);
    hostStack = h2.spawnDaemon('socat', ['-u', `UDP4-RECV:${BCAST_PORT},reuseaddr`, '-']);
    await waitFor(async () => /listening on br0/.test(wire.logs()) && /listening on br0/.test(plain.logs()), { timeoutMs: 20_000, what: 'tcpdump on the LAN' });
  });

  after(async () => {
    const runId = lab?.runId;
    for (const n of notes) console.log(`# ${n}`);
    await etcd?.cleanup();
    await stopAll(lab);
    if (runId) assert.deepEqual(await leftovers(runId), { namespaces: [], folder: false, mounts: [], processes: [] }, 'the lab left something behind');
  });

  it('0. Join handed the routes; flood entries for h2 and h3, never for the flanneld host h4', async () => {
    const routes = (await d1.dockerOk(['exec', S, 'ip', 'route'])).stdout;
    assert.match(routes, /^224\.0\.0\.0\/4 dev eth0/m);
    assert.match(routes, /^255\.255\.255\.255 dev eth0/m);
    assert.doesNotMatch((await d1.dockerOk(['exec', F1, 'ip', 'route'])).stdout, /224\.0\.0\.0/, 'multicast=false: no group route');
    const f = await waitFor(async () => {
      const t = await fdb(h1, ov.vni);
      return /00:00:00:00:00:00 dst 192\.0\.2\.2 /.test(t) && /00:00:00:00:00:00 dst 192\.0\.2\.3 /.test(t) && t.includes(`${flanneldMac} dst 192.0.2.4`) && t;
    }, { timeoutMs: 30_000, what: 'flood entries on h1' });
    assert.doesNotMatch(f, /00:00:00:00:00:00 dst 192\.0\.2\.4 /, 'the flanneld host gets no flood entry (its unicast entry stays)');
    assert.doesNotMatch(await fdb(h1, ov3.vni), /00:00:00:00:00:00/, 'multicast=false: no flood entries');
  });

  it('1. a group: members on h1, h2, h3 get every datagram exactly once; one copy per remote host; non-member, NET2, NET3 and flanneld hear none', async () => {
    const mark = wire.logs().length;
    const t0 = Date.now();
    await send(S, GROUP, PORT, 50, `g${tag}`);
    await allExactlyOnce([[M1, 'g'], [M2, 'g'], [M3, 'g']], `g${tag}`, 50);
    notes.push(`50 datagrams to ${GROUP} from h1: every member on h1/h2/h3 had all 50 ${Date.now() - t0} ms after the first was sent (one socat per datagram)`);
    await none([[N1, 'g'], [B1M, 'g'], [B2, 'g'], [F2, 'g']], `g${tag}`);
    const copies = await waitFor(async () => {
      const c = copiesSince(mark, `${GROUP}.${PORT}`);
      return c.length >= 100 && c;
    }, { timeoutMs: 10_000, what: 'the copies on the wire' });
    assert.deepEqual(countTo(copies), { '192.0.2.1>192.0.2.2': 50, '192.0.2.1>192.0.2.3': 50 }, 'exactly one copy per remote overlay-flannel host, none to the flanneld host, none re-replicated');
    assert.ok(copies.every((c) => c.vni === ov.vni), 'on the overlay\'s VNI');
  });

  it('2. a link-local TTL-1 group (224.0.0.251, as mDNS) reaches the members on every host', async () => {
    await send(S, MDNS, MDNS_PORT, 20, `l${tag}`, 'ip-multicast-ttl=1');
    await allExactlyOnce([[M1, 'mdns'], [M2, 'mdns'], [M3, 'mdns']], `l${tag}`, 20);
  });

  it('3. 255.255.255.255 reaches every container of NET on every host exactly once; not NET2, NET3, nor h2\'s own stack', async () => {
    const mark = wire.logs().length;
    await send(S, '255.255.255.255', BCAST_PORT, 20, `b${tag}`, 'broadcast');
    await allExactlyOnce([[M1, 'b'], [N1, 'b'], [M2, 'b'], [M3, 'b']], `b${tag}`, 20);
    await none([[B2, 'b'], [F2, 'b']], `b${tag}`);
    assert.doesNotMatch(hostStack.logs(), new RegExp(`b${tag}`), 'h2\'s own stack heard none');
    assert.deepEqual(countTo(copiesSince(mark, `255.255.255.255.${BCAST_PORT}`)), { '192.0.2.1>192.0.2.2': 20, '192.0.2.1>192.0.2.3': 20 });
  });

  it('4. bridge data path (NET2): the member on h1 and on h2 get each exactly once; NET hears none', async () => {
    await send(B1, GROUP, PORT, 30, `x${tag}`);
    await allExactlyOnce([[B1M, 'g'], [B2, 'g']], `x${tag}`, 30);
    await none([[M1, 'g'], [M2, 'g'], [M3, 'g'], [F2, 'g']], `x${tag}`);
  });

  it('5. -o multicast=false (NET3): the member on h2 hears nothing, no copy leaves h1', async () => {
    const mark = wire.logs().length;
    await send(F1, GROUP, PORT, 20, `f${tag}`);
    await send(F1, '255.255.255.255', BCAST_PORT, 5, `fb${tag}`, 'broadcast');
    // The barrier: a NET datagram sent after them has reached h2.
    await send(S, GROUP, PORT, 1, `after5${tag}`);
    await allExactlyOnce([[M2, 'g']], `after5${tag}`, 1);
    await none([[F2, 'g']], `f${tag}`);
    await none([[F2, 'b']], `fb${tag}`);
    assert.equal(parseCopies(wire.logs().slice(mark)).filter((c) => c.vni === ov3.vni).length, 0, 'no copy on NET3\'s VNI');
  });

  it('6. the LAN never saw one of these datagrams unencapsulated (a LAN broadcast from h4 shows both captures work)', async () => {
    await h4.execOk('sh', ['-c', `echo ctl${tag} | socat -u - UDP4-DATAGRAM:255.255.255.255:${BCAST_PORT},broadcast`]);
    await waitFor(async () => /192\.0\.2\.4\.\d+ > 255\.255\.255\.255\.5001/.test(plain.logs()), { timeoutMs: 10_000, what: 'the LAN capture saw h4\'s broadcast' });
    await waitFor(async () => hostStack.logs().includes(`ctl${tag}`), { timeoutMs: 10_000, what: 'h2\'s own socket got h4\'s LAN broadcast' });
    const ours = plain.logs().split('\n').filter((l) => /> (239|224|255)\./.test(l) && !/ 192\.0\.2\.4\.\d+ >/.test(l));
    assert.deepEqual(ours, [], 'nothing of the overlay on the LAN unencapsulated');
    assert.doesNotMatch(hostStack.logs(), new RegExp(`(b|fb)${tag}`), 'h2\'s own stack heard no overlay broadcast');
  });

  it('7. plugin SIGKILL on h1: after its restart the same group still reaches every member exactly once', async () => {
    const [pid] = await L.pluginPids(h1);
    process.kill(pid!, 'SIGKILL');
    await waitFor(async () => !existsSync(`/proc/${pid}`), { timeoutMs: 10_000, what: `plugin pid ${pid} gone` });
    await waitFor(async () => {
      const p = await L.pluginPids(h1);
      return p.length === 1 && p[0] !== pid;
    }, { timeoutMs: 60_000, what: 'Docker restarted the plugin' }).catch(async () => {
      await d1.docker(['plugin', 'disable', '-f', 'overlay-flannel'], { timeoutMs: 60_000 });
      await d1.dockerOk(['plugin', 'enable', 'overlay-flannel'], { timeoutMs: 60_000 });
    });
    await send(S, GROUP, PORT, 20, `r${tag}`);
    await allExactlyOnce([[M1, 'g'], [M2, 'g'], [M3, 'g']], `r${tag}`, 20);
  });

  it('8. h3 leaves (cut off, its lease deleted): h1 drops its flood entry and sends it no more copies', async () => {
    const leases = await L.leases(etcd!, ov.prefix);
    const h3Subnet = leases.get('192.0.2.3')!;
    await h3.execOk('ip', ['link', 'set', 'eth0', 'down']);
    try {
      await etcd!.etcdctl(['del', `${ov.prefix}/subnets/${h3Subnet.replace('/', '-')}`]);
      const t0 = Date.now();
      await waitFor(async () => !/00:00:00:00:00:00 dst 192\.0\.2\.3 /.test(await fdb(h1, ov.vni)), { timeoutMs: 30_000, what: 'h3\'s flood entry gone from h1' });
      notes.push(`h3's flood entry gone from h1 ${Date.now() - t0} ms after its lease was deleted`);
      const mark = wire.logs().length;
      await send(S, GROUP, PORT, 20, `z${tag}`);
      await allExactlyOnce([[M1, 'g'], [M2, 'g']], `z${tag}`, 20);
      const copies = await waitFor(async () => {
        const c = copiesSince(mark, `${GROUP}.${PORT}`);
        return c.length >= 20 && c;
      }, { timeoutMs: 10_000, what: 'the copies to h2' });
      assert.deepEqual(countTo(copies), { '192.0.2.1>192.0.2.2': 20 });
    } finally {
      await h3.exec('ip', ['link', 'set', 'eth0', 'up']);
    }
  });
});
