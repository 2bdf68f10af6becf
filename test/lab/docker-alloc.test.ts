/**
 * docker-alloc.test.ts — flannel's `alloc` backend (subnet leases only, no data plane) on two real
 * dockerds (h1, h2) with the managed plugin, one lab for the whole file.
 *
 * Before the plugins start, etcd already holds leases of three foreign hosts: a vxlan one, an
 * on-link host-gw one and an alloc one (what flanneld hosts of other configs would have written).
 * Scenarios, in order:
 * 1. each host's lease is flanneld's alloc value byte for byte (`{"PublicIP":…,"PublicIPv6":null}`:
 *    flanneld's alloc backend acquires with LeaseAttrs{PublicIP} only, and BackendType/BackendData
 *    are omitempty), under an etcd lease, on a subnet none of the foreign leases holds;
 * 2. no data plane: after the daemons have seen every lease (status API) and run full syncs
 *    since, neither host has a vxlan device, a permanent neighbour, an FDB entry with a
 *    destination, or any route into the overlay's Network; a vxlan lease added later changes
 *    nothing either; masquerade and the FORWARD accepts are there, NOTRACK without vxlan rules;
 * 3. containers get addresses from their host's lease and Join's routes (link-local gateway);
 *    across hosts they do not reach each other until the operator adds the routes the README
 *    asks for; then they do, and the daemons' full syncs leave those routes alone.
 * Needs root, docker.io, busybox-static, etcd, curl.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DOCKER, DOCKERD, createDockerLab, leftovers, stopAll, type DockerHost } from '../helpers/docker-lab';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import type { Host, Lab } from '../helpers/netns-lab';
import { waitFor } from '../helpers/wait';
import * as L from './docker-plugin-lab';

const ROOT = resolve(__dirname, '../..');
const MAIN = join(ROOT, 'dist/main.js');
const missing = [DOCKERD, DOCKER, '/bin/busybox', MAIN].filter((f) => !existsSync(f));
if (process.getuid?.() !== 0) throw new Error('the alloc lab needs root');
if (missing.length) throw new Error(`the alloc lab needs ${missing.join(', ')} (apt-get install docker.io busybox-static; npm run build)`);

const STATUS = '127.0.0.1:9890'; // per host: each plugin runs in its host's network namespace
const NET = 'alloc-net';

interface KernelView {
  overlays: { name: string; device: string | null; mtu: number | null; peers: unknown[]; stats: { fullSyncs: number; errors: number } | null }[];
}
interface OverlaysView {
  overlays: { name: string; config: { backend: { type: string } } | null; leases: { subnet: string; publicIP: string; backend: string }[] }[];
}

describe('alloc backend: leases only, no data plane, the operator routes', { timeout: 300_000 }, () => {
  const ov = L.randomOverlay();
  const octets = ov.network.split('.');
  const sub = (third: number): string => `${octets[0]}.${octets[1]}.${third}.0/24`;
  // Foreign hosts' leases (not running anything): what flanneld writes for vxlan, host-gw and alloc.
  const foreign = [
    { subnet: sub(250), value: '{"PublicIP":"192.0.2.50","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:2a:00:00:00:50"}}' },
    { subnet: sub(251), value: '{"PublicIP":"192.0.2.51","PublicIPv6":null,"BackendType":"host-gw"}' },
    { subnet: sub(252), value: '{"PublicIP":"192.0.2.52","PublicIPv6":null}' },
  ];
  const late = { subnet: sub(253), value: '{"PublicIP":"192.0.2.53","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:2a:00:00:00:53"}}' };
  let lab: Lab | undefined;
  let etcd: EtcdServer | undefined;
  let h1: Host, h2: Host;
  let d1: DockerHost, d2: DockerHost;
  const lease = new Map<Host, string>();

  const keyOf = (subnet: string): string => `${ov.prefix}/subnets/${subnet.replace('/', '-')}`;
  const putLease = async (l: { subnet: string; value: string }): Promise<void> => {
    const granted = (await etcd!.etcdctl(['lease', 'grant', '600'])).stdout;
    const id = /lease ([0-9a-f]+) granted/.exec(granted)?.[1];
    assert.ok(id, `etcdctl lease grant: ${granted}`);
    await etcd!.etcdctl(['put', `--lease=${id}`, keyOf(l.subnet), l.value]);
  };
  const status = async <T>(h: Host, path: string): Promise<T> =>
    JSON.parse((await h.execOk('curl', ['-sf', '-m', '5', `http://${STATUS}${path}`], { timeoutMs: 10_000 })).stdout) as T;
  const defaultKernel = async (h: Host) => (await status<KernelView>(h, '/api/v1/kernel')).overlays.find((o) => o.name === 'default');
  const knownSubnets = async (h: Host): Promise<string[]> =>
    ((await status<OverlaysView>(h, '/api/v1/overlays')).overlays.find((o) => o.name === 'default')?.leases ?? []).map((l) => l.subnet).sort();
  /** Resolves after a full sync that started after this call (the resync timer runs every 10 s). */
  const nextFullSync = async (h: Host): Promise<void> => {
    const start = (await defaultKernel(h))?.stats?.fullSyncs ?? 0;
    await waitFor(async () => ((await defaultKernel(h))?.stats?.fullSyncs ?? 0) >= start + 2, { timeoutMs: 30_000, intervalMs: 500, what: `${h.ns}: a full sync after fullSyncs=${start}` });
  };
  /** Routes whose destination lies in the overlay's Network, as `dst dev X [via Y]`. */
  const overlayRoutes = async (h: Host): Promise<string[]> =>
    (await h.execJson<{ dst: string; dev: string; gateway?: string }[]>(['-4', 'route', 'show', 'table', 'all']))
      .filter((r) => r.dst !== 'default' && L.inCidr(r.dst.split('/')[0]!, ov.network))
      .map((r) => `${r.dst} dev ${r.dev}${r.gateway ? ` via ${r.gateway}` : ''}`)
      .sort();
  const dockerLog = (d: DockerHost): string => d.logs().split('\n').slice(-60).join('\n');

  before(async () => {
    lab = await createDockerLab('ofa');
    etcd = await startEtcd({ netns: (await lab.lan()).ns, host: '192.0.2.254' });
    let pluginDir: string;
    ({ h1, h2, d1, d2, pluginDir } = await L.twoDockerHosts(lab));
    const env = { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, ETCD_PREFIX: ov.prefix };
    const set = await h1.execOk('node', [MAIN, 'config', 'set', '--network', ov.network, '--backend', 'alloc'], { env, timeoutMs: 20_000 });
    assert.match(set.stdout, new RegExp(`wrote ${ov.prefix}/config`));
    assert.equal((await etcd.etcdctl(['get', '--print-value-only', `${ov.prefix}/config`])).stdout.trim(), `{"Network":"${ov.network}","Backend":{"Type":"alloc"}}`);
    assert.match((await h1.execOk('node', [MAIN, 'config', 'show'], { env, timeoutMs: 20_000 })).stdout, /alloc \(leases only: you route the subnets\)/);
    for (const l of foreign) await putLease(l);
    await Promise.all([d1, d2].map((d) => L.installPlugin(d, pluginDir, L.pluginSettings(etcd!, ov.prefix, d, [`STATUS_ADDR=${STATUS}`]))));
  });

  after(async () => {
    const runId = lab?.runId;
    await etcd?.cleanup();
    await stopAll(lab);
    if (runId) assert.deepEqual(await leftovers(runId), { namespaces: [], folder: false, mounts: [], processes: [] }, 'the lab left something behind');
  });

  it('1. each host holds a lease in flanneld\'s alloc format, byte for byte, under an etcd lease, beside the foreign ones', async (t) => {
    t.diagnostic(`overlay ${ov.network} prefix ${ov.prefix}`);
    const held = await waitFor(async () => {
      const l = await L.leases(etcd!, ov.prefix);
      return l.has(h1.ip) && l.has(h2.ip) && l;
    }, { timeoutMs: 60_000, what: `leases of both hosts in etcd\n${dockerLog(d1)}` });
    for (const h of [h1, h2]) {
      const subnet = held.get(h.ip)!;
      lease.set(h, subnet);
      assert.ok(L.inCidr(subnet.split('/')[0]!, ov.network), `${subnet} in ${ov.network}`);
      assert.ok(!foreign.some((f) => f.subnet === subnet), `${h.ns} took a free subnet, not a foreign one: ${subnet}`);
      const [kv] = (JSON.parse((await etcd!.etcdctl(['get', '-w', 'json', keyOf(subnet)])).stdout) as { kvs: { value: string; lease?: number | string }[] }).kvs;
      // Go's json.Marshal(lease.LeaseAttrs{PublicIP: ip}): no BackendType, no BackendData.
      assert.equal(Buffer.from(kv!.value, 'base64').toString('utf8'), `{"PublicIP":"${h.ip}","PublicIPv6":null}`);
      assert.ok(kv!.lease && String(kv!.lease) !== '0', `${h.ns}'s lease key is under an etcd lease (TTL), as flanneld's`);
    }
    assert.notEqual(lease.get(h1), lease.get(h2));
    for (const f of foreign) assert.equal((await etcd!.etcdctl(['get', '--print-value-only', keyOf(f.subnet)])).stdout.trim(), f.value, 'foreign leases untouched');
    // `overlay-flannel status` names the backend of an alloc lease (it carries no BackendType).
    const env = { ...process.env, ETCD_ENDPOINTS: etcd!.endpoint, ETCD_PREFIX: ov.prefix };
    const rows = JSON.parse((await h1.execOk('node', [MAIN, 'status', '--json'], { env, timeoutMs: 20_000 })).stdout) as { subnet: string; backend: string }[];
    for (const h of [h1, h2]) assert.equal(rows.find((r) => r.subnet === lease.get(h))?.backend, 'alloc', `status --json row of ${h.ns}: ${JSON.stringify(rows)}`);
  });

  it('2. no data plane: no vxlan device, neighbours, FDB entries or overlay routes, whatever the peers\' backends; masquerade and FORWARD accepts kept', async () => {
    const all = [...foreign.map((f) => f.subnet), lease.get(h1)!, lease.get(h2)!].sort();
    for (const h of [h1, h2]) {
      await waitFor(async () => JSON.stringify(await knownSubnets(h).catch(() => [])) === JSON.stringify(all), { timeoutMs: 30_000, intervalMs: 500, what: `${h.ns} knows the leases ${all}` });
    }
    await putLease(late);
    await Promise.all(
      [h1, h2].map(async (h) => {
        await waitFor(async () => (await knownSubnets(h)).includes(late.subnet), { timeoutMs: 15_000, intervalMs: 300, what: `${h.ns} sees the late vxlan lease` });
        await nextFullSync(h);
      }),
    );
    for (const [h, d] of [[h1, d1], [h2, d2]] as const) {
      const k = (await defaultKernel(h))!;
      assert.deepEqual([k.device, k.peers, k.stats?.errors], [null, [], 0], `${h.ns} kernel view: ${JSON.stringify(k)}`);
      assert.equal(k.mtu, (await h.execJson<{ mtu: number }[]>(['link', 'show', 'dev', 'eth0']))[0]?.mtu, 'the MTU is the public interface\'s (no encapsulation)');
      assert.deepEqual(await h.execJson(['-d', 'link', 'show', 'type', 'vxlan']), [], `${h.ns}: no vxlan device`);
      assert.ok(!(await L.linkNames(h)).some((n) => n.startsWith('flannel.')));
      assert.deepEqual(await h.execJson(['neigh', 'show', 'nud', 'permanent']), [], `${h.ns}: no permanent neighbours`);
      const fdb = JSON.parse((await h.execOk('bridge', ['-j', 'fdb', 'show'])).stdout || '[]') as { dst?: string }[];
      assert.deepEqual(fdb.filter((f) => f.dst), [], `${h.ns}: no FDB entries toward peers`);
      assert.deepEqual(await overlayRoutes(h), [], `${h.ns}: no route into ${ov.network}`);
      assert.match(d.logs(), /lease acquired/, `${h.ns}: the plugin's log is in dockerd's`);
      assert.doesNotMatch(d.logs(), /peer lease not programmed/, `${h.ns}: other backends' leases are ignored quietly`);
      // What still applies without a data plane (README "alloc"): FORWARD accepts, masquerade, NOTRACK (no vxlan socket).
      assert.match((await h.execOk('iptables', ['-S', 'FORWARD'])).stdout, new RegExp(`-A FORWARD -s ${ov.network.replace(/\./g, '\\.')} .*-j ACCEPT`));
      assert.match((await h.execOk('iptables', ['-t', 'nat', '-S', 'POSTROUTING'])).stdout, new RegExp(`-s ${lease.get(h)!.replace(/\./g, '\\.')} -d ${ov.network.replace(/\./g, '\\.')} .*overlay-flannel masq`));
      const raw = (await h.execOk('iptables', ['-t', 'raw', '-S'])).stdout.split('\n').filter((l) => l.includes('overlay-flannel notrack'));
      assert.ok(raw.length === 2 && raw.every((l) => !/--dport/.test(l)), `${h.ns} NOTRACK rules:\n${raw.join('\n')}`);
    }
  });

  it('3. containers get addresses from their host\'s lease; across hosts they need the operator\'s routes, which the daemons leave alone', async (t) => {
    const r = await d1.docker(['network', 'create', '-d', L.DRIVER, '--ipam-driver', L.DRIVER, NET], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `network create on h1: ${r.stderr}\n${dockerLog(d1)}`);
    await waitFor(async () => (await d2.dockerOk(['network', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').includes(NET), { timeoutMs: 20_000, what: `${NET} replicated to h2` });
    await Promise.all([L.runBox(d1, 'c1', NET), L.runBox(d2, 'c2', NET)]);
    const [c1, c2] = [(await L.endpointOf(d1, 'c1', NET)).ip, (await L.endpointOf(d2, 'c2', NET)).ip];
    for (const [d, ip, h] of [[d1, c1, h1], [d2, c2, h2]] as const) {
      const [cfg] = JSON.parse((await d.dockerOk(['network', 'inspect', '-f', '{{json .IPAM.Config}}', NET])).stdout) as { Subnet: string; Gateway: string }[];
      assert.deepEqual(cfg, { Subnet: lease.get(h), Gateway: L.gatewayOf(lease.get(h)!) });
      assert.ok(L.inCidr(ip, lease.get(h)!), `${ip} in ${h.ns}'s lease ${lease.get(h)}`);
    }
    // Join's routes: the routed data path's, as on every backend (the container reaches the overlay through its host).
    const inside = (await d1.dockerOk(['exec', 'c1', 'ip', '-4', 'route'])).stdout;
    assert.match(inside, /^default via 169\.254\.1\.1 dev eth0/m);
    assert.match(inside, new RegExp(`^${ov.network.replace(/\./g, '\\.')} via 169\\.254\\.1\\.1 dev eth0`, 'm'));
    // No data plane: the other host's container is unreachable until the operator routes the subnets.
    const lost = await d1.docker(['exec', 'c1', 'ping', '-c', '2', '-W', '1', c2], { timeoutMs: 15_000 });
    assert.notEqual(lost.code, 0, `c1 must not reach c2 without routes: ${lost.stdout}`);
    await h1.execOk('ip', ['route', 'add', lease.get(h2)!, 'via', h2.ip, 'dev', 'eth0']);
    await h2.execOk('ip', ['route', 'add', lease.get(h1)!, 'via', h1.ip, 'dev', 'eth0']);
    const t0 = Date.now();
    await Promise.all([L.pingOk(d1, 'c1', c2), L.pingOk(d2, 'c2', c1)]);
    t.diagnostic(`c1 ↔ c2 answered ${Date.now() - t0} ms after the operator's routes`);
    await Promise.all([nextFullSync(h1), nextFullSync(h2)]);
    assert.ok((await overlayRoutes(h1)).includes(`${lease.get(h2)} dev eth0 via ${h2.ip}`), `h1 keeps the operator's route: ${await overlayRoutes(h1)}`);
    assert.ok((await overlayRoutes(h2)).includes(`${lease.get(h1)} dev eth0 via ${h1.ip}`), `h2 keeps the operator's route: ${await overlayRoutes(h2)}`);
    await L.pingOk(d1, 'c1', c2);
    await Promise.all([d1.dockerOk(['rm', '-f', 'c1']), d2.dockerOk(['rm', '-f', 'c2'])]);
  });
});
