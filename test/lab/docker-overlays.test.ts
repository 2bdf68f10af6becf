/**
 * docker-overlays.test.ts — several isolated overlays, and networks defined once: two real dockerds
 * (h1, h2) with the managed plugin (`docker plugin create` from buildPlugin's output, `plugin set`
 * with this lab's etcd and each host's own Docker socket, `enable`; no registry), two overlays
 * written with the CLI (the default one and `--name blue`, random Networks and VNIs).
 *
 * Scenarios, in order: network A created on h1 only appears on h2 (same name, that host's lease);
 * network B on the named overlay (`--ipam-opt network=blue`) likewise; containers on h2 run on them
 * without anything created there; A↔A and B↔B work across hosts while A↔B is dropped on the same
 * host and across hosts (FORWARD drop rules); `docker network rm` on h1 removes the network on h2
 * where no container uses it and keeps it where one does; re-adding works; a container on two routed
 * networks (docker network connect) gets one link-local gateway per network; a plugin restarted
 * beside a network on the named overlay rejoins that overlay by itself (a new peer lease on it is
 * programmed though Docker sends no IPAM call after a restart). after() tears
 * everything down and asserts nothing is left. Needs root, docker.io, busybox-static, etcd.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
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
if (process.getuid?.() !== 0) throw new Error('the docker overlays lab needs root');
if (missing.length) throw new Error(`the docker overlays lab needs ${missing.join(', ')} (apt-get install docker.io busybox-static; npm run build)`);

const DRIVER = 'overlay-flannel:latest';
const NAMED = 'blue';

describe('several isolated overlays, networks defined once', { timeout: 300_000 }, () => {
  const a = L.randomOverlay();
  let bOctet = randomInt(100, 251);
  while (`10.${bOctet}.0.0/16` === a.network) bOctet = randomInt(100, 251);
  const b = { network: `10.${bOctet}.0.0/16`, vni: a.vni + 1 + randomInt(0, 3000) };
  const bPrefix = `${a.prefix}-${NAMED}`;
  let lab: Lab | undefined;
  let etcd: EtcdServer | undefined;
  let h1: Host, h2: Host;
  let d1: DockerHost, d2: DockerHost;
  const ips: Record<string, string> = {};

  const names = async (d: DockerHost): Promise<string[]> => (await d.dockerOk(['network', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').filter(Boolean);
  const appears = (d: DockerHost, net: string, present = true): Promise<unknown> =>
    waitFor(async () => (await names(d)).includes(net) === present, { timeoutMs: 15_000, intervalMs: 200, what: `network ${net} ${present ? 'on' : 'gone from'} ${d.host.ns}` });
  const ipamOf = async (d: DockerHost, net: string) =>
    JSON.parse((await d.dockerOk(['network', 'inspect', '-f', '{{json .IPAM}}', net])).stdout) as { Driver: string; Options: Record<string, string> | null; Config: { Subnet: string }[] };
  const pingFails = async (d: DockerHost, from: string, ip: string): Promise<void> => {
    const r = await d.docker(['exec', from, 'ping', '-c', '2', '-W', '1', ip], { timeoutMs: 15_000 });
    assert.notEqual(r.code, 0, `${from} on ${d.host.ns} must not reach ${ip} (another overlay): ${r.stdout}`);
  };
  const dockerLog = (d: DockerHost): string => d.logs().split('\n').slice(-60).join('\n');

  before(async () => {
    lab = await createDockerLab('ofo');
    etcd = await startEtcd({ netns: (await lab.lan()).ns, host: '192.0.2.254' });
    let pluginDir: string;
    ({ h1, h2, d1, d2, pluginDir } = await L.twoDockerHosts(lab));
    const env = { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, ETCD_PREFIX: a.prefix };
    await h1.execOk('node', [MAIN, 'config', 'set', '--network', a.network, '--vni', String(a.vni)], { env, timeoutMs: 20_000 });
    const named = await h1.execOk('node', [MAIN, 'config', 'set', '--name', NAMED, '--network', b.network, '--vni', String(b.vni)], { env, timeoutMs: 20_000 });
    assert.match(named.stdout, new RegExp(`wrote ${bPrefix}/config`));
    assert.match((await h1.execOk('node', [MAIN, 'config', 'show', '--name', NAMED], { env, timeoutMs: 20_000 })).stdout, new RegExp(b.network.replace(/\./g, '\\.')));
    await Promise.all([d1, d2].map((d) => L.installPlugin(d, pluginDir, L.pluginSettings(etcd!, a.prefix, d))));
  });

  after(async () => {
    const runId = lab?.runId;
    await etcd?.cleanup();
    await stopAll(lab);
    if (runId) assert.deepEqual(await leftovers(runId), { namespaces: [], folder: false, mounts: [], processes: [] }, 'the lab left something behind');
  });

  it('1. network A created on h1 only appears on h2 within seconds, with h2\'s own lease', async (t) => {
    t.diagnostic(`A ${a.network} VNI ${a.vni}; B (${NAMED}) ${b.network} VNI ${b.vni}; prefix ${a.prefix}`);
    const r = await d1.docker(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, 'netA'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `network create on h1: ${r.stderr}\n${dockerLog(d1)}`);
    const t0 = Date.now();
    await appears(d2, 'netA').catch((e) => assert.fail(`${e}\n${dockerLog(d2)}`));
    t.diagnostic(`netA on h2 after ${Date.now() - t0} ms`);
    const held = await L.leases(etcd!, a.prefix);
    const [i1, i2] = [await ipamOf(d1, 'netA'), await ipamOf(d2, 'netA')];
    assert.equal(i1.Config[0]?.Subnet, held.get(h1.ip));
    assert.equal(i2.Config[0]?.Subnet, held.get(h2.ip));
    assert.equal(i2.Driver, DRIVER);
    assert.equal((await d2.dockerOk(['network', 'inspect', '-f', '{{.Driver}}', 'netA'])).stdout.trim(), DRIVER);
    const rec = JSON.parse((await etcd!.etcdctl(['get', '--print-value-only', `${a.prefix}/overlay-flannel/networks/netA`])).stdout) as { name: string; createdBy: string };
    assert.equal(rec.name, 'netA');
    assert.equal(rec.createdBy, h1.ip);
  });

  it('2. network B on the named overlay (--ipam-opt network=blue, -o datapath=bridge) appears on h2 with its options', async () => {
    const r = await d1.docker(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '--ipam-opt', `network=${NAMED}`, '-o', 'datapath=bridge', 'netB'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `network create netB on h1: ${r.stderr}\n${dockerLog(d1)}`);
    await appears(d2, 'netB').catch((e) => assert.fail(`${e}\n${dockerLog(d2)}`));
    const held = await L.leases(etcd!, bPrefix);
    const i2 = await ipamOf(d2, 'netB');
    assert.deepEqual(i2.Options, { network: NAMED });
    assert.equal((await d2.dockerOk(['network', 'inspect', '-f', '{{index .Options "datapath"}}', 'netB'])).stdout.trim(), 'bridge');
    assert.equal(i2.Config[0]?.Subnet, held.get(h2.ip));
    assert.ok(L.inCidr(held.get(h2.ip)!.split('/')[0]!, b.network));
    for (const h of [h1, h2]) {
      const links = await L.linkNames(h);
      assert.ok(links.includes(`flannel.${a.vni}`) && links.includes(`flannel.${b.vni}`), `${h.ns}: both vxlan devices in ${links.join(' ')}`);
    }
    // A second Docker network on the same overlay on one host is refused with a clear error.
    const t0 = Date.now();
    const dup = await d2.docker(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '--ipam-opt', `network=${NAMED}`, 'netB2'], { timeoutMs: 30_000 });
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /already has a Docker network on this host/, `after ${Date.now() - t0} ms: ${dup.stdout}\n${dockerLog(d2)}`);
  });

  it('3. containers on both hosts: A↔A (routed) and B↔B (bridge) across hosts work, A↔B is dropped on the same host and across hosts', async () => {
    await Promise.all([L.runBox(d1, 'a1', 'netA'), L.runBox(d2, 'a2', 'netA'), L.runBox(d1, 'b1', 'netB'), L.runBox(d2, 'b2', 'netB')]);
    const eid: Record<string, string> = {};
    for (const [d, c, n] of [[d1, 'a1', 'netA'], [d2, 'a2', 'netA'], [d1, 'b1', 'netB'], [d2, 'b2', 'netB']] as const) ({ ip: ips[c], eid: eid[c] } = await L.endpointOf(d, c, n));
    // The data path of each network on each host: routed veths have a /32 route and no master; bridged ones a master.
    for (const [h, c, routed] of [[h1, 'a1', true], [h2, 'a2', true], [h1, 'b1', false], [h2, 'b2', false]] as const) {
      const dev = `ofh${eid[c]!.slice(0, 12)}`;
      const [link] = await h.execJson<{ master?: string }[]>(['link', 'show', 'dev', dev]);
      const routes = (await h.execJson<{ dst: string }[]>(['route', 'show', 'dev', dev])).map((r) => r.dst);
      if (routed) assert.deepEqual([link?.master, routes], [undefined, [ips[c]]], `${c}: routed veth ${dev}`);
      else assert.deepEqual([link?.master?.startsWith('ofb-'), routes], [true, []], `${c}: bridged veth ${dev}`);
    }
    assert.ok(L.inCidr(ips.a2!, a.network) && L.inCidr(ips.b2!, b.network));
    await Promise.all([L.pingOk(d1, 'a1', ips.a2!), L.pingOk(d2, 'b2', ips.b1!)]);
    for (const h of [h1, h2]) {
      const fw = (await h.execOk('iptables', ['-S', 'FORWARD'])).stdout;
      for (const [x, y] of [[a.network, b.network], [b.network, a.network]]) {
        assert.match(fw, new RegExp(`-A FORWARD -s ${x.replace(/\./g, '\\.')} -d ${y.replace(/\./g, '\\.')} .*-j DROP`), `${h.ns} FORWARD:\n${fw}`);
      }
    }
    await Promise.all([
      pingFails(d1, 'a1', ips.b1!), // same host h1
      pingFails(d2, 'b2', ips.a2!), // same host h2
      pingFails(d1, 'a1', ips.b2!), // across
      pingFails(d2, 'b2', ips.a1!), // across
    ]);
    // Dropped by our rules (their counters moved), not lost for another reason.
    const dropped = async (h: Host, from: string, to: string): Promise<number> => {
      const out = (await h.execOk('iptables', ['-L', 'FORWARD', '-v', '-n', '-x'])).stdout;
      const line = out.split('\n').find((l) => /\bDROP\b/.test(l) && l.includes(from) && l.includes(to) && l.indexOf(from) < l.indexOf(to));
      assert.ok(line, `${h.ns}: no DROP rule ${from} → ${to} in\n${out}`);
      return Number(line.trim().split(/\s+/)[0]);
    };
    assert.ok((await dropped(h1, a.network, b.network)) > 0, 'h1 dropped A → B');
    assert.ok((await dropped(h2, b.network, a.network)) > 0, 'h2 dropped B → A');
    // And the working paths still work after the failed attempts.
    await Promise.all([L.pingOk(d2, 'a2', ips.a1!), L.pingOk(d1, 'b1', ips.b2!)]);
  });

  it('4. network rm on h1 removes it on h2 where unused, keeps it where a container uses it; re-adding works', async () => {
    await Promise.all([d1.dockerOk(['rm', '-f', 'a1', 'b1']), d2.dockerOk(['rm', '-f', 'a2'])]); // b2 stays on h2's netB
    await d1.dockerOk(['network', 'rm', 'netA', 'netB'], { timeoutMs: 60_000 });
    await appears(d2, 'netA', false).catch((e) => assert.fail(`${e}\n${dockerLog(d2)}`));
    await waitFor(async () => (await L.etcdKeys(etcd!, `${a.prefix}/overlay-flannel/networks/`)).length === 0, { timeoutMs: 10_000, what: 'records gone' });
    await new Promise((r) => setTimeout(r, 2000));
    assert.ok((await names(d2)).includes('netB'), 'netB is kept on h2: b2 uses it');
    await L.pingOk(d2, 'b2', L.gatewayOf((await ipamOf(d2, 'netB')).Config[0]!.Subnet));

    // Re-add A on h1; it comes back on h2 and carries traffic again.
    await d1.dockerOk(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, 'netA'], { timeoutMs: 60_000 });
    await appears(d2, 'netA');
    await Promise.all([L.runBox(d1, 'a3', 'netA'), L.runBox(d2, 'a4', 'netA')]);
    await L.pingOk(d2, 'a4', (await L.endpointOf(d1, 'a3', 'netA')).ip);
    await Promise.all([d1.dockerOk(['rm', '-f', 'a3']), d2.dockerOk(['rm', '-f', 'a4', 'b2'])]);
  });

  it('5. one container on two routed networks (docker network connect): each network has its own link-local gateway, both paths work', async () => {
    await d1.dockerOk(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '--ipam-opt', `network=${NAMED}`, 'netC'], { timeoutMs: 60_000 });
    await Promise.all([L.runBox(d1, 'x1', 'netA'), L.runBox(d1, 'c1', 'netC'), L.runBox(d2, 'a5', 'netA')]);
    const r = await d1.docker(['network', 'connect', 'netC', 'x1'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `connect x1 to a second routed network: ${r.stderr}`);
    const routes = (await d1.dockerOk(['exec', 'x1', 'ip', 'route'])).stdout;
    const gws = [...routes.matchAll(/^(169\.254\.1\.\d+) dev (eth\d)/gm)].map((m) => `${m[1]} ${m[2]}`).sort();
    assert.equal(gws.length, 2, `two on-link gateways, one per interface:\n${routes}`);
    assert.notEqual(gws[0]!.split(' ')[0], gws[1]!.split(' ')[0], `distinct gateways:\n${routes}`);
    await L.pingOk(d1, 'x1', (await L.endpointOf(d1, 'c1', 'netC')).ip);
    await L.pingOk(d1, 'x1', (await L.endpointOf(d2, 'a5', 'netA')).ip);
    await Promise.all([d1.dockerOk(['rm', '-f', 'x1', 'c1']), d2.dockerOk(['rm', '-f', 'a5'])]);
    await d1.dockerOk(['network', 'rm', 'netC'], { timeoutMs: 60_000 });
  });

  it('6. a restarted plugin rejoins the named overlay its network uses: a new peer lease on it is programmed with no Docker call naming it', async (t) => {
    // h2 still has netB (kept for b2 in 4.): only h1 gets a network on the named overlay here.
    await d1.dockerOk(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '--ipam-opt', `network=${NAMED}`, 'netD'], { timeoutMs: 60_000 });
    await L.runBox(d1, 'd1c', 'netD');
    await d1.dockerOk(['plugin', 'disable', '-f', 'overlay-flannel'], { timeoutMs: 60_000 });
    await d1.dockerOk(['plugin', 'enable', 'overlay-flannel'], { timeoutMs: 60_000 });
    // A peer that joins the named overlay after the restart (a flanneld-format lease, no such host).
    const held = new Set((await L.vxlanLeases(etcd!, bPrefix)).map((l) => l.subnet));
    const base = b.network.split('.').slice(0, 2).join('.');
    const subnet = Array.from({ length: 200 }, (_, i) => `${base}.${240 - i}.0/24`).find((x) => !held.has(x))!;
    const dot0 = subnet.replace(/\/\d+$/, '');
    const key = `${bPrefix}/subnets/${subnet.replace('/', '-')}`;
    await etcd!.etcdctl(['put', key, `{"PublicIP":"192.0.2.77","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":${b.vni},"VtepMAC":"0a:58:0a:0b:0c:0d"}}`]);
    const t0 = Date.now();
    try {
      await waitFor(async () => (await h1.execOk('ip', ['route', 'show', subnet])).stdout.includes(`via ${dot0} dev flannel.${b.vni}`), {
        timeoutMs: 30_000,
        intervalMs: 250,
        what: `h1 programs ${subnet} of the named overlay after its plugin restarted`,
      });
      t.diagnostic(`${subnet} in h1's kernel ${Date.now() - t0} ms after its lease was written`);
      await L.pingOk(d1, 'd1c', L.gatewayOf((await ipamOf(d1, 'netD')).Config[0]!.Subnet));
    } finally {
      await etcd!.etcdctl(['del', key]);
      await d1.dockerOk(['rm', '-f', 'd1c']);
      await d1.dockerOk(['network', 'rm', 'netD'], { timeoutMs: 60_000 });
    }
  });
});
