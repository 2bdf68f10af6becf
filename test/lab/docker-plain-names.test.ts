/**
 * docker-plain-names.test.ts — the managed plugin installed as `overlay-flannel` (Docker lists it
 * as overlay-flannel:latest) answers to the plain names users type:
 * `docker network create -d overlay-flannel --ipam-driver overlay-flannel NET`; and enabling it
 * does not depend on where dockerd's socket is.
 *
 * One lab: LAN namespace with etcd and docker-registry; h1 and h2 with dockerd listening on `unix://<run folder>/docker.sock`
 * (not /var/run/docker.sock), each in its own mount namespace with its own /run/docker/plugins
 * (DockerdOptions.privatePluginDir: a legacy plugin socket is per host, as on real machines).
 * The plugin is created from `npm run plugin:build`'s folder on each host and enabled with no
 * docker-socket setting at all. Scenarios, in order: enable finds the socket by itself and serves
 * overlay-flannel.sock; plain names: create on h1 (replicated to h2), containers on both hosts,
 * cross-host ping; `disable`/`enable`, a dockerd restart and `docker plugin upgrade` (from the
 * lab's registry) on h1 keep the plain names working
 * (a `--restart always` container on the plain-name network is running again after the restart);
 * rm; `:latest` still works; a host root without any Docker socket: enabling still succeeds and
 * the plugin's log says Docker cannot be reached; then, as the control, after a dockerd restart
 * with no one asking Docker to scan, the plain names fail as the issue measured. Needs root, docker.io, busybox-static, etcd and
 * `npm run build`; fails (never skips) otherwise.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildPlugin } from '../../scripts/plugin-build';
import { DOCKER, DOCKERD, REGISTRY_BIN, createDockerLab, importBusybox, labRoot, leftovers, startDockerd, startRegistry, stopAll, type DockerHost } from '../helpers/docker-lab';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import type { Host, Lab } from '../helpers/netns-lab';
import { waitFor } from '../helpers/wait';
import * as L from './docker-plugin-lab';

const ROOT = resolve(__dirname, '../..');
const MAIN = join(ROOT, 'dist/main.js');
const missing = [DOCKERD, DOCKER, REGISTRY_BIN, '/bin/busybox', '/usr/bin/unshare', MAIN].filter((f) => !existsSync(f));
if (process.getuid?.() !== 0) throw new Error('the plain-names lab needs root');
if (missing.length) throw new Error(`the plain-names lab needs ${missing.join(', ')} (apt-get install docker.io docker-registry busybox-static util-linux; npm run build)`);

const PLUGIN = 'overlay-flannel';
const PLAIN = ['-d', 'overlay-flannel', '--ipam-driver', 'overlay-flannel'];
const NET = 'ofplain';
/** The release `docker plugin upgrade` moves h1's plugin to (pushed to the lab's registry). */
const NEXT_REF = '192.0.2.254:5000/overlay-flannel:next';

describe('plain driver names and a Docker socket found by the plugin', { timeout: 480_000 }, () => {
  const ov = L.randomOverlay();
  let lab: Lab | undefined;
  let etcd: EtcdServer | undefined;
  let h1: Host, h2: Host;
  let d1: DockerHost, d2: DockerHost;
  const lease = new Map<DockerHost, string>();
  const ips: Record<string, string> = {};

  /** dockerd's log (the plugin's output is logged there, one JSON line each) after `mark` characters. */
  const logSince = (d: DockerHost, mark: number): string => d.logs().slice(mark);
  /** Wait for one log line after `mark` matching every pattern. */
  const waitLog = (d: DockerHost, mark: number, res: RegExp[], what: string): Promise<unknown> =>
    waitFor(async () => logSince(d, mark).split('\n').some((l) => res.every((re) => re.test(l))), { timeoutMs: 30_000, intervalMs: 200, what: `${what} in the log of ${d.host.ns}` }).catch((e: unknown) => {
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n${logSince(d, mark).split('\n').slice(-30).join('\n')}`);
    });
  const legacySocket = (d: DockerHost): string => join(d.pluginRunDir, 'overlay-flannel.sock');
  const isSocket = (p: string): boolean => existsSync(p) && statSync(p).isSocket();

  before(async () => {
    lab = await createDockerLab('ofpn');
    const lan = await lab.lan();
    let reg;
    [etcd, reg] = await Promise.all([startEtcd({ netns: lan.ns, host: '192.0.2.254' }), startRegistry(lab)]);
    h1 = await lab.addHost(1);
    h2 = await lab.addHost(2);
    let built;
    [d1, d2, built] = await Promise.all([
      startDockerd(h1, { privatePluginDir: true, insecureRegistry: reg.url }),
      startDockerd(h2, { privatePluginDir: true, insecureRegistry: reg.url }),
      buildPlugin({ out: join(labRoot(lab.runId), 'plugin'), build: false }),
    ]);
    for (const d of [d1, d2]) assert.ok(!d.sock.startsWith('/var/run/') && !d.sock.startsWith('/run/'), `dockerd's socket ${d.sock} is elsewhere`);
    const env = { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, ETCD_PREFIX: ov.prefix };
    await h1.execOk('node', [MAIN, 'config', 'set', '--network', ov.network, '--vni', String(ov.vni)], { env, timeoutMs: 20_000 });
    await Promise.all([importBusybox(d1), importBusybox(d2)]);
    await Promise.all([d1, d2].map((d) => d.dockerOk(['plugin', 'create', PLUGIN, built.dir], { timeoutMs: 180_000 })));
    // The next release, for `docker plugin upgrade`: the same build plus one file (Docker refuses a
    // second plugin of identical content), hard-linked so that the copy is cheap.
    await L.pushNextRelease(d1, built.dir, NEXT_REF);
  });

  after(async () => {
    const runId = lab?.runId;
    await etcd?.cleanup();
    await stopAll(lab);
    if (runId) assert.deepEqual(await leftovers(runId), { namespaces: [], folder: false, mounts: [], processes: [] }, 'the lab left something behind');
  });

  it('1. enabled with no docker-socket setting: the plugin finds dockerd\'s socket, serves overlay-flannel.sock on its host only, and Docker registers the plain names', async () => {
    await Promise.all(
      [d1, d2].map(async (d) => {
        const mark = d.logs().length;
        await d.dockerOk(['plugin', 'set', PLUGIN, `ETCD_ENDPOINTS=${etcd!.endpoint}`, `ETCD_PREFIX=${ov.prefix}`, 'IFACE=eth0', 'LOG_LEVEL=debug']);
        const r = await d.docker(['plugin', 'enable', '--timeout', '60', PLUGIN], { timeoutMs: 90_000 });
        assert.equal(r.code, 0, `enable on ${d.host.ns}: ${r.stderr}\n${logSince(d, mark).slice(-3000)}`);
        await waitLog(d, mark, [/found the Docker API socket/, new RegExp(`hostPath[^,]*"${d.sock.replace(/[.]/g, '\\.')}\\\\"`)], `"found the Docker API socket" naming ${d.sock}`);
        await waitLog(d, mark, [/Docker registered the plain driver names/], '"Docker registered the plain driver names"');
        assert.ok(isSocket(legacySocket(d)), `${legacySocket(d)} is a socket`);
      }),
    );
    assert.notEqual(statSync(legacySocket(d1)).ino, statSync(legacySocket(d2)).ino, 'each host has its own legacy socket');
    const held = await waitFor(async () => {
      const l = await L.leases(etcd!, ov.prefix);
      return l.has(h1.ip) && l.has(h2.ip) && l;
    }, { timeoutMs: 30_000, what: 'leases of both hosts' });
    lease.set(d1, held.get(h1.ip)!).set(d2, held.get(h2.ip)!);
  });

  it('2. `-d overlay-flannel --ipam-driver overlay-flannel` creates the network (replicated to h2 under the same names); containers on both hosts ping each other', async () => {
    const r = await d1.docker(['network', 'create', ...PLAIN, NET], { timeoutMs: 90_000 });
    assert.equal(r.code, 0, `plain-name network create: ${r.stderr}\n${d1.logs().slice(-3000)}`);
    for (const d of [d1, d2]) {
      const info = await waitFor(async () => {
        const x = await d.docker(['network', 'inspect', '-f', '{{.Driver}} {{.IPAM.Driver}} {{json .IPAM.Config}}', NET]);
        return x.code === 0 && x.stdout.trim();
      }, { timeoutMs: 30_000, intervalMs: 250, what: `${NET} on ${d.host.ns}` });
      const sub = lease.get(d)!;
      assert.equal(info, `overlay-flannel overlay-flannel ${JSON.stringify([{ Subnet: sub, Gateway: L.gatewayOf(sub) }])}`, d.host.ns);
    }
    await Promise.all([L.runBox(d1, 'c1', NET), L.runBox(d2, 'c2', NET)]);
    ips.c1 = (await L.endpointOf(d1, 'c1', NET)).ip;
    ips.c2 = (await L.endpointOf(d2, 'c2', NET)).ip;
    assert.ok(L.inCidr(ips.c1, lease.get(d1)!) && L.inCidr(ips.c2, lease.get(d2)!), `${ips.c1} ${ips.c2}`);
    await L.pingOk(d1, 'c1', ips.c2);
    await L.pingOk(d2, 'c2', ips.c1);
  });

  it('3. disable/enable on h1: the socket goes and comes back; a dockerd restart: the plugin registers the names again and starts the --restart always container dockerd could not; new containers on the plain-name network reach h2', async (t) => {
    await d1.dockerOk(['plugin', 'disable', '-f', PLUGIN], { timeoutMs: 60_000 });
    await waitFor(async () => !existsSync(legacySocket(d1)), { timeoutMs: 15_000, what: 'legacy socket removed on disable' });
    await d1.dockerOk(['plugin', 'enable', PLUGIN], { timeoutMs: 90_000 });
    await waitFor(async () => isSocket(legacySocket(d1)), { timeoutMs: 20_000, what: 'legacy socket back after enable' });
    await L.runBox(d1, 'c3', NET);
    await L.pingOk(d1, 'c3', (await L.endpointOf(d2, 'c2', NET)).ip);

    await d1.dockerOk(['run', '-d', '--init', '--restart', 'always', '--name', 'c6', '--network', NET, 'ofbox:1', 'sleep', '3600'], { timeoutMs: 120_000 });
    const mark = d1.logs().length;
    const started = Date.now();
    await d1.restart();
    const atBoot = (await d1.docker(['inspect', '-f', '{{.State.Status}} {{.State.Error}}', 'c6'])).stdout.trim();
    await waitLog(d1, mark, [/Docker registered the plain driver names/], 'the plain names registered again after the restart');
    t.diagnostic(`dockerd restart → plain names registered again ${Date.now() - started} ms after the restart began`);
    // dockerd restarts c6 (--restart always) during its boot, before the plugin can have the
    // names registered; the plugin then starts it (domain/docker-host.ts).
    await waitFor(async () => (await d1.docker(['inspect', '-f', '{{.State.Running}}', 'c6'])).stdout.trim() === 'true', { timeoutMs: 30_000, intervalMs: 250, what: 'c6 running again after the dockerd restart' });
    await waitLog(d1, mark, [/started a container dockerd could not restart/, /c6/], 'the plugin starting c6');
    t.diagnostic(`c6 (--restart always) right after dockerd's restart: "${atBoot}"; running ${Date.now() - started} ms after the restart began`);
    const c6 = (await L.endpointOf(d1, 'c6', NET)).ip;
    await L.pingOk(d1, 'c6', ips.c2!);
    await L.runBox(d1, 'c4', NET);
    const c4 = (await L.endpointOf(d1, 'c4', NET)).ip;
    // (c3 stopped with dockerd, freeing its address: only c6 still holds one.)
    assert.ok(L.inCidr(c4, lease.get(d1)!) && c4 !== c6, `c4 ${c4}, c6 ${c6}`);
    await L.pingOk(d1, 'c4', ips.c2!);
    await L.pingOk(d2, 'c2', c4);
  });

  it('3b. docker plugin upgrade on h1 keeps the plain names: the socket is back and a new container on the plain-name network reaches h2', async () => {
    const id = (await d1.dockerOk(['plugin', 'inspect', '-f', '{{.Id}}', PLUGIN])).stdout.trim();
    await d1.dockerOk(['plugin', 'disable', '-f', PLUGIN], { timeoutMs: 60_000 });
    await d1.dockerOk(['plugin', 'upgrade', '--grant-all-permissions', '--skip-remote-check', PLUGIN, NEXT_REF], { timeoutMs: 180_000 });
    await d1.dockerOk(['plugin', 'enable', PLUGIN], { timeoutMs: 90_000 });
    assert.equal((await d1.dockerOk(['plugin', 'inspect', '-f', '{{.Id}} {{.PluginReference}}', PLUGIN])).stdout.trim(), `${id} ${NEXT_REF}`);
    await waitFor(async () => isSocket(legacySocket(d1)), { timeoutMs: 20_000, what: 'legacy socket back after the upgrade' });
    await L.runBox(d1, 'c7', NET);
    await L.pingOk(d1, 'c7', ips.c2!);
    await d1.dockerOk(['rm', '-f', 'c7'], { timeoutMs: 60_000 });
  });

  it('4. rm: containers and the plain-name network go on both hosts; `:latest` still creates a network', async () => {
    await d1.docker(['rm', '-f', 'c1', 'c3', 'c4', 'c6'], { timeoutMs: 60_000 });
    await d2.dockerOk(['rm', '-f', 'c2'], { timeoutMs: 60_000 });
    await d1.dockerOk(['network', 'rm', NET], { timeoutMs: 60_000 });
    await waitFor(async () => (await d2.docker(['network', 'inspect', NET])).code !== 0, { timeoutMs: 30_000, intervalMs: 250, what: `${NET} removed from h2 too` });
    const tagged = `${NET}-latest`;
    await d1.dockerOk(['network', 'create', '-d', 'overlay-flannel:latest', '--ipam-driver', 'overlay-flannel:latest', tagged], { timeoutMs: 60_000 });
    assert.equal((await d1.dockerOk(['network', 'inspect', '-f', '{{.Driver}} {{.IPAM.Driver}}', tagged])).stdout.trim(), 'overlay-flannel:latest overlay-flannel:latest');
    await L.runBox(d1, 'c5', tagged);
    assert.ok(L.inCidr((await L.endpointOf(d1, 'c5', tagged)).ip, lease.get(d1)!));
    await d1.dockerOk(['rm', '-f', 'c5'], { timeoutMs: 60_000 });
    await d1.dockerOk(['network', 'rm', tagged], { timeoutMs: 60_000 });
  });

  it('5. a host root without any Docker socket: enabling still succeeds and the log says Docker cannot be reached, with the fix; unregistered, the plain names fail as the issue measured', async () => {
    const empty = join(labRoot(lab!.runId), 'empty-root');
    mkdirSync(empty, { recursive: true });
    const mark = d2.logs().length;
    await d2.dockerOk(['plugin', 'disable', '-f', PLUGIN], { timeoutMs: 60_000 });
    await d2.dockerOk(['plugin', 'set', PLUGIN, `host-root.source=${empty}`]);
    const r = await d2.docker(['plugin', 'enable', '--timeout', '60', PLUGIN], { timeoutMs: 90_000 });
    assert.equal(r.code, 0, `enable: ${r.stderr}`);
    await waitLog(d2, mark, [/Docker cannot be reached/, /docker-socket\.source=\/path\/to\/docker\.sock/], '"Docker cannot be reached … docker-socket.source="');
    assert.ok(isSocket(legacySocket(d2)), 'the legacy socket is served all the same');
    // The control: after a dockerd restart nobody asks Docker to scan, and Docker 20.10 behaves as
    // the issue measured (moby#33347) — the plain names fail at once (no 30 s wait), `:latest` works.
    await d2.restart();
    await waitFor(async () => isSocket(legacySocket(d2)), { timeoutMs: 30_000, what: 'legacy socket after the restart' });
    const plain = await d2.docker(['network', 'create', ...PLAIN, `${NET}-control`], { timeoutMs: 60_000 });
    assert.notEqual(plain.code, 0, 'without the scan the plain names must fail');
    assert.match(plain.stderr, /could not resolve driver overlay-flannel in registry|invalid ipam driver/);
    await d2.dockerOk(['network', 'create', '-d', 'overlay-flannel:latest', '--ipam-driver', 'overlay-flannel:latest', `${NET}-control`], { timeoutMs: 60_000 });
    await d2.dockerOk(['network', 'rm', `${NET}-control`], { timeoutMs: 60_000 });
  });
});
