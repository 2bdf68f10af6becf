/**
 * docker-wireguard.test.ts — the wireguard backend with the managed plugin on two real dockerds
 * (issue 22): the plugin built from this machine's files (wireguard-go and setpriv in its rootfs,
 * /dev/net/tun granted in config.json), a config with `"Backend":{"Type":"wireguard"}` in this
 * lab's etcd. Checked: each plugin writes flanneld's wireguard lease with the public key its
 * flannel-wg has (read over wireguard-go's UAPI socket inside the plugin, as `wg` is not there);
 * the device is a TUN of a wireguard-go child of the plugin; the other host is its one peer;
 * the private key file is on the host in Docker's propagated-mount folder of the plugin (outside
 * its rootfs), 0600 in a 0700 plugin folder; containers get MTU 1420 and ping across hosts; a
 * disable/enable, and a `docker plugin upgrade` to a second release (same build plus one file,
 * from the lab's registry), keep the lease's public key and the device's key, and traffic comes back.
 * Needs root, docker.io, docker-registry, busybox-static, wireguard-go, etcd and `npm run build`; fails (never skips).
 */
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DOCKER, DOCKERD, REGISTRY_BIN, createDockerLab, leftovers, startRegistry, stopAll, type DockerHost } from '../helpers/docker-lab';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import type { Host, Lab } from '../helpers/netns-lab';
import { waitFor } from '../helpers/wait';
import * as L from './docker-plugin-lab';
import { uapiGet, wgPid } from './wireguard-lab';
import { wireguardPublicKey } from '../../src/host/wireguard-key';

const ROOT = resolve(__dirname, '../..');
const MAIN = join(ROOT, 'dist/main.js');
const missing = [DOCKERD, DOCKER, REGISTRY_BIN, '/bin/busybox', '/usr/bin/wireguard-go', MAIN].filter((f) => !existsSync(f));
if (process.getuid?.() !== 0) throw new Error('the docker wireguard lab needs root');
if (missing.length) throw new Error(`the docker wireguard lab needs ${missing.join(', ')} (apt-get install docker.io docker-registry busybox-static wireguard-go; npm run build)`);

const NET = 'wgnet';
const PLUGIN = 'overlay-flannel';
/** The release `docker plugin upgrade` moves h1's plugin to (pushed to the lab's registry). */
const NEXT_REF = '192.0.2.254:5000/overlay-flannel:next';

describe('the wireguard backend in the managed plugin on two real dockerds', { timeout: 420_000 }, () => {
  const ov = L.randomOverlay();
  let lab: Lab | undefined;
  let etcd: EtcdServer | undefined;
  let h1: Host, h2: Host;
  let d1: DockerHost, d2: DockerHost;
  const ips: Record<string, string> = {};

  /** PublicIP → PublicKey of the wireguard leases in etcd, and the raw values. */
  const wgLeases = async (): Promise<Map<string, { key: string; raw: string }>> => {
    const { stdout } = await etcd!.etcdctl(['get', '--prefix', `${ov.prefix}/subnets/`]);
    const lines = stdout.split('\n').filter(Boolean);
    const out = new Map<string, { key: string; raw: string }>();
    for (let i = 1; i < lines.length; i += 2) {
      const v = JSON.parse(lines[i]!) as { PublicIP: string; BackendData?: { PublicKey?: string } };
      if (v.BackendData?.PublicKey) out.set(v.PublicIP, { key: v.BackendData.PublicKey, raw: lines[i]! });
    }
    return out;
  };
  /** The plugin's id on a host, and the public key of its device's private key (UAPI). */
  const pluginId = async (d: DockerHost): Promise<string> => (await d.dockerOk(['plugin', 'inspect', '-f', '{{.Id}}', PLUGIN])).stdout.trim();
  const devicePublicKey = async (h: Host): Promise<string> => {
    const priv = (await uapiGet(h)).privateKey;
    assert.ok(priv, `${h.ns}'s flannel-wg has a private key`);
    return wireguardPublicKey(priv);
  };

  before(async () => {
    lab = await createDockerLab('ow');
    const lan = await lab.lan();
    etcd = await startEtcd({ netns: lan.ns, host: '192.0.2.254' });
    let pluginDir: string;
    const reg = await startRegistry(lab);
    ({ h1, h2, d1, d2, pluginDir } = await L.twoDockerHosts(lab, { insecureRegistry: reg.url }));
    await etcd.etcdctl(['put', `${ov.prefix}/config`, JSON.stringify({ Network: ov.network, Backend: { Type: 'wireguard' } })]);
    await Promise.all([d1, d2].map((d) => L.installPlugin(d, pluginDir, L.pluginSettings(etcd!, ov.prefix, d), PLUGIN)));
    await L.pushNextRelease(d1, pluginDir, NEXT_REF);
    await waitFor(async () => (await wgLeases()).size === 2, { timeoutMs: 40_000, what: `wireguard leases of both hosts; h1 log:\n${d1.logs().split('\n').slice(-30).join('\n')}` });
    for (const d of [d1, d2]) {
      const r = await d.docker(['network', 'create', '-d', L.DRIVER, '--ipam-driver', L.DRIVER, NET], { timeoutMs: 60_000 });
      assert.ok(r.code === 0 || /already (exists|has a Docker network)/.test(r.stderr), `network create on ${d.host.ns}: ${r.code} ${r.stdout}${r.stderr}\n${d.logs().split('\n').filter((l) => /plugin=|wireguard/.test(l)).slice(-40).join('\n')}`);
      await waitFor(async () => (await d.docker(['network', 'inspect', NET])).code === 0, { timeoutMs: 20_000, what: `network ${NET} on ${d.host.ns}` });
    }
    await Promise.all([L.runBox(d1, 'c1', NET), L.runBox(d2, 'c2', NET)]);
    ips.c1 = (await L.endpointOf(d1, 'c1', NET)).ip;
    ips.c2 = (await L.endpointOf(d2, 'c2', NET)).ip;
  });

  after(async () => {
    const runId = lab?.runId;
    await etcd?.cleanup();
    await stopAll(lab);
    if (runId) assert.deepEqual(await leftovers(runId), { namespaces: [], folder: false, mounts: [], processes: [] }, 'the lab left something behind');
  });

  it("1. flanneld's wireguard lease, with the key of the plugin's own flannel-wg; the other host is its one peer", async () => {
    const leases = await wgLeases();
    for (const [h, other] of [[h1, h2], [h2, h1]] as const) {
      const l = leases.get(h.ip)!;
      assert.match(l.raw, /^\{"PublicIP":"192\.0\.2\.[12]","PublicIPv6":null,"BackendType":"wireguard","BackendData":\{"PublicKey":"[A-Za-z0-9+/]{43}="\}\}$/);
      const pid = wgPid(h);
      assert.ok(pid, `a wireguard-go for flannel-wg in ${h.ns}`);
      const dev = await waitFor(async () => {
        const d = await uapiGet(h);
        return d.peers.length === 1 ? d : undefined;
      }, { timeoutMs: 20_000, what: `${h.ns}'s flannel-wg has its peer` });
      assert.equal(dev.listenPort, 51820);
      assert.deepEqual(dev.peers.map((p) => [p.publicKey, p.endpoint]), [[leases.get(other.ip)!.key, `${other.ip}:51820`]]);
      const link = await h.execJson<{ mtu: number; link_type: string }[]>(['link', 'show', 'flannel-wg']);
      assert.equal(link[0]!.mtu, 1420);
      assert.equal(await devicePublicKey(h), l.key, `${h.ns}'s device key is the lease's`);
    }
  });

  it("1b. the key file is on the host in Docker's propagated-mount folder of the plugin, outside its rootfs, 0600 in a 0700 plugin folder", async () => {
    for (const d of [d1, d2]) {
      const dir = join(d.dataRoot, 'plugins', await pluginId(d));
      const key = join(dir, 'propagated-mount/wireguard.key');
      assert.ok(existsSync(key), `${key} exists`);
      assert.equal(statSync(key).mode & 0o777, 0o600);
      assert.equal(statSync(dir).mode & 0o777, 0o700, `${dir} (Docker's plugin folder) is 0700`);
      assert.ok(!existsSync(join(dir, 'rootfs/var/lib/overlay-flannel/wireguard.key')), 'no key in the rootfs an upgrade replaces');
    }
  });

  it('2. containers get MTU 1420 and ping across hosts through flannel-wg', async () => {
    const mtu = (await d1.dockerOk(['exec', 'c1', 'cat', '/sys/class/net/eth0/mtu'])).stdout.trim();
    assert.equal(mtu, '1420');
    await L.pingOk(d1, 'c1', ips.c2!);
    await L.pingOk(d2, 'c2', ips.c1!);
  });

  it('3. a plugin disable/enable keeps the public key and traffic comes back', async () => {
    const before1 = (await wgLeases()).get(h1.ip)!.key;
    await d1.dockerOk(['plugin', 'disable', '-f', PLUGIN], { timeoutMs: 60_000 });
    await waitFor(async () => wgPid(h1) === undefined, { timeoutMs: 20_000, what: 'wireguard-go gone with the plugin' });
    await d1.dockerOk(['plugin', 'enable', PLUGIN], { timeoutMs: 60_000 });
    await waitFor(async () => wgPid(h1) !== undefined && (await uapiGet(h1)).peers.length === 1, { timeoutMs: 30_000, what: 'flannel-wg back on h1' });
    assert.equal((await wgLeases()).get(h1.ip)!.key, before1);
    await L.pingOk(d2, 'c2', ips.c1!, 30_000);
  });

  it('4. a `docker plugin upgrade` to the next release keeps the public key in the lease and on the device; h2 keeps its peer; traffic comes back both ways', async () => {
    const before1 = (await wgLeases()).get(h1.ip)!.key;
    const id = await pluginId(d1);
    await d1.dockerOk(['plugin', 'disable', '-f', PLUGIN], { timeoutMs: 60_000 });
    await waitFor(async () => wgPid(h1) === undefined, { timeoutMs: 20_000, what: 'wireguard-go gone with the plugin' });
    await d1.dockerOk(['plugin', 'upgrade', '--grant-all-permissions', '--skip-remote-check', PLUGIN, NEXT_REF], { timeoutMs: 180_000 });
    await d1.dockerOk(['plugin', 'enable', PLUGIN], { timeoutMs: 60_000 });
    const ref = (await d1.dockerOk(['plugin', 'inspect', '-f', '{{.PluginReference}}', PLUGIN])).stdout.trim();
    assert.equal(ref, NEXT_REF, 'the plugin runs the next release');
    assert.equal(await pluginId(d1), id, 'an upgrade keeps the plugin id (and so its propagated-mount folder)');
    await waitFor(async () => wgPid(h1) !== undefined && (await uapiGet(h1)).peers.length === 1, { timeoutMs: 30_000, what: 'flannel-wg back on h1' });
    assert.ok(existsSync(`/proc/${wgPid(h1)}/root/etc/overlay-flannel-release`), "the new rootfs is the next release's");
    assert.equal((await wgLeases()).get(h1.ip)!.key, before1, "the lease's public key");
    assert.equal(await devicePublicKey(h1), before1, "the device's key");
    const peersOf2 = (await uapiGet(h2)).peers.map((p) => p.publicKey);
    assert.deepEqual(peersOf2, [before1], "h2's peer for h1 keeps its key");
    await L.pingOk(d2, 'c2', ips.c1!, 30_000);
    await L.pingOk(d1, 'c1', ips.c2!, 30_000);
  });
});
