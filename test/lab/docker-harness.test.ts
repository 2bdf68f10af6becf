/**
 * docker-harness.test.ts — self-test of test/helpers/docker-lab.ts and of the managed-plugin
 * packaging (plugin/config.json, scripts/plugin-build.ts, scripts/plugin-create.ts, Dockerfile).
 *
 * A 2-host lab (LAN with etcd and a docker-registry on 192.0.2.254), a dockerd in h1 and h2:
 * busybox runs on both; the plugin built from host files is created on h1 as
 * 192.0.2.254:5000/overlay-flannel:latest, pushed to the LAN registry and installed (disabled,
 * alias overlay-flannel) on h2, whose inspect shows our config; a probe entrypoint in the same
 * rootfs is enabled on h1 through scripts/plugin-create.ts and reports, from inside the plugin,
 * capabilities, host namespace, netlink with CAP_NET_ADMIN only, the Docker socket and
 * /run/flannel mounts; the plugin installed on h2 is configured and enabled when dist/main.js
 * serves the plugin socket; the Dockerfile path is built offline on h2 from a node base image made of host files.
 * Everything is removed at the end (namespaces, daemons, mounts, /tmp/of-docker-<run>).
 * Needs root, dockerd/docker (docker.io), docker-registry, busybox-static, etcd; fails (never skips) otherwise.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildPlugin, treeBytes, type BuildResult } from '../../scripts/plugin-build';
import {
  DOCKER,
  DOCKERD,
  createDockerLab,
  dockerfilePlugin,
  importBusybox,
  labRoot,
  leftovers,
  REGISTRY_BIN,
  startDockerd,
  startRegistry,
  stopAll,
  type DockerHost,
  type Registry,
} from '../helpers/docker-lab';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import type { Lab } from '../helpers/netns-lab';
import { run } from '../helpers/run';
import { waitFor } from '../helpers/wait';

const ROOT = resolve(__dirname, '../..');
const missing = [DOCKERD, DOCKER, REGISTRY_BIN, '/bin/busybox'].filter((f) => !existsSync(f));
// Never skip: a machine without the tools fails loudly (.ci/run installs them).
if (process.getuid?.() !== 0) throw new Error('the docker lab needs root');
if (missing.length) throw new Error(`the docker lab needs ${missing.join(', ')} (apt-get install docker.io docker-registry busybox-static)`);

const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;

/** Package folders (name@version) under a node_modules tree. */
function packages(nm: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d)) {
      if (f.startsWith('.')) continue;
      const p = join(d, f);
      if (f.startsWith('@')) walk(p);
      else if (existsSync(join(p, 'package.json'))) {
        const pj = JSON.parse(readFileSync(join(p, 'package.json'), 'utf8')) as { name?: string; version?: string };
        out.push(`${p.slice(nm.length + 1)}@${pj.version}`);
        if (existsSync(join(p, 'node_modules'))) walk(join(p, 'node_modules'));
      }
    }
  };
  walk(nm);
  return out.sort();
}

/** POST /Plugin.Activate on a unix socket; resolves with the body or undefined. */
function activate(sock: string): Promise<string | undefined> {
  return new Promise((res) => {
    const req = request({ socketPath: sock, path: '/Plugin.Activate', method: 'POST', timeout: 2_000 }, (r) => {
      let body = '';
      r.on('data', (d: Buffer) => (body += d.toString()));
      r.on('end', () => res(r.statusCode === 200 ? body : undefined));
    });
    req.on('error', () => res(undefined));
    req.on('timeout', () => req.destroy());
    req.end('{}');
  });
}

interface PluginInspect {
  Name: string;
  Enabled: boolean;
  Config: {
    Entrypoint: string[];
    Interface: { Types: string[]; Socket: string };
    Network: { Type: string };
    Linux: { Capabilities: string[] };
    Mounts: Array<{ Name: string; Destination: string; Settable: string[] | null }>;
    Env: Array<{ Name: string; Settable: string[] | null; Value: string }>;
    PropagatedMount: string;
  };
  Settings: { Env: string[] };
}

describe('docker lab harness and plugin packaging', { timeout: 300_000 }, () => {
  let lab: Lab | undefined;
  let etcd: EtcdServer | undefined;
  let reg: Registry | undefined;
  let d1: DockerHost;
  let d2: DockerHost;
  let built: BuildResult;
  let root = '';
  const NAME = '192.0.2.254:5000/overlay-flannel:latest';

  before(async () => {
    lab = await createDockerLab('of');
    root = labRoot(lab.runId);
    const lan = await lab.lan();
    [etcd, reg] = await Promise.all([startEtcd({ netns: lan.ns, host: '192.0.2.254' }), startRegistry(lab)]);
    const h1 = await lab.addHost(1);
    const h2 = await lab.addHost(2);
    [d1, d2, built] = await Promise.all([
      startDockerd(h1, { insecureRegistry: reg.url }),
      startDockerd(h2, { insecureRegistry: reg.url }),
      buildPlugin({ out: join(root, 'plugin'), build: !existsSync(join(ROOT, 'dist/main.js')) }),
    ]);
  });

  after(async () => {
    const runId = lab?.runId;
    await etcd?.cleanup();
    await stopAll(lab);
    if (runId) {
      const left = await leftovers(runId);
      assert.deepEqual(left, { namespaces: [], folder: false, mounts: [], processes: [] }, 'the lab left something behind');
    }
  });

  it('busybox runs with --network none on both daemons', async () => {
    await Promise.all([importBusybox(d1), importBusybox(d2)]);
    for (const d of [d1, d2]) {
      const r = await d.dockerOk(['run', '--rm', '--network', 'none', 'ofbox:1', 'echo', 'hi']);
      assert.equal(r.stdout, 'hi\n');
    }
    const ip = await d1.dockerOk(['run', '--rm', '--network', 'none', 'ofbox:1', 'ip', 'link']);
    assert.match(ip.stdout, /lo:/);
  });

  it('the plugin rootfs holds node, the production modules and no dev dependencies', async (t) => {
    const fs = built.rootfs;
    t.diagnostic(`rootfs ${mib(built.bytes)} (node ${mib(treeBytes(join(fs, 'usr/local/bin')))}, app ${mib(treeBytes(join(fs, 'app')))})`);
    for (const f of ['usr/local/bin/node', 'lib64/ld-linux-x86-64.so.2', 'app/dist/main.js', 'app/package.json', 'etc/passwd', 'run/docker/plugins', 'var/lib/overlay-flannel']) {
      assert.ok(existsSync(join(fs, f)), `${f} in rootfs`);
    }
    for (const dev of ['typescript', 'tsx', 'esbuild', '@types/dockerode']) assert.ok(!existsSync(join(fs, 'app/node_modules', dev)), `${dev} pruned`);
    const script = `const r=require('module').createRequire('/app/');for(const d of Object.keys(require('/app/package.json').dependencies))r(d);console.log('loaded')`;
    assert.equal((await run('chroot', [fs, '/usr/local/bin/node', '-e', script])).stdout.trim(), 'loaded');
    assert.match((await run('chroot', [fs, '/usr/local/bin/node', '/app/dist/main.js', 'help'])).stdout, /Usage:/);
    const cfg = JSON.parse(readFileSync(join(built.dir, 'config.json'), 'utf8')) as { entrypoint: string[] };
    assert.deepEqual(cfg.entrypoint, ['/usr/local/bin/node', '--max-semi-space-size=4', '--heap-growing-percent=20', '/app/dist/main.js']);
  });

  it('create on h1, push to the LAN registry, install --disable on h2: inspect shows our config', async () => {
    await d1.dockerOk(['plugin', 'create', NAME, built.dir], { timeoutMs: 180_000 });
    await d1.dockerOk(['plugin', 'push', NAME], { timeoutMs: 180_000 });
    await d2.dockerOk(['plugin', 'install', '--grant-all-permissions', '--disable', '--alias', 'overlay-flannel', NAME], { timeoutMs: 180_000 });
    const ls = await d2.dockerOk(['plugin', 'ls', '--format', '{{.Name}} {{.Enabled}}']);
    assert.match(ls.stdout, /^overlay-flannel:latest false$/m);
    const [p] = JSON.parse((await d2.dockerOk(['plugin', 'inspect', 'overlay-flannel'])).stdout) as PluginInspect[];
    assert.ok(p);
    assert.equal(p.Enabled, false);
    assert.deepEqual(p.Config.Interface.Types, ['docker.networkdriver/1.0', 'docker.ipamdriver/1.0']);
    assert.equal(p.Config.Interface.Socket, 'overlay-flannel.sock');
    assert.equal(p.Config.Network.Type, 'host');
    assert.deepEqual(p.Config.Linux.Capabilities, ['CAP_NET_ADMIN']);
    assert.deepEqual(p.Config.Entrypoint, ['/usr/local/bin/node', '--max-semi-space-size=4', '--heap-growing-percent=20', '/app/dist/main.js']);
    const settable = p.Config.Env.filter((e) => e.Settable?.includes('value')).map((e) => e.Name).sort();
    assert.deepEqual(settable, [
      'ADDRESS_AUDIT_INTERVAL', 'ETCD_CAFILE', 'ETCD_CERTFILE', 'ETCD_ENDPOINTS', 'ETCD_KEYFILE', 'ETCD_PASSWORD', 'ETCD_PREFIX', 'ETCD_USERNAME',
      'FASTPATH', 'IFACE', 'IP_MASQ', 'LEASE_RENEW_MARGIN', 'LEASE_TTL', 'LEGACY_SOCKET_DIR', 'LOG_LEVEL', 'NAMES', 'NAME_ANSWER_ADDR', 'NAME_CT_ZONE', 'NAME_MARK_BIT', 'NAME_QUEUE', 'NAME_TTL', 'NOTRACK', 'PROBE_PORT', 'PUBLIC_IP', 'STATUS_ADDR', 'SUBNET_FILE',
    ]);
    assert.ok(p.Settings.Env.includes('PLUGIN_SOCKET=/run/docker/plugins/overlay-flannel.sock'));
    // STATE_DIR (fixed) is the folder Docker keeps outside the rootfs, across upgrades.
    assert.equal(p.Config.PropagatedMount, '/var/lib/overlay-flannel');
    assert.ok(p.Settings.Env.includes('STATE_DIR=/var/lib/overlay-flannel'));
    assert.deepEqual(
      p.Config.Mounts.map((m) => `${m.Name} ${m.Destination} ${m.Settable?.join(',')}`),
      ['docker-socket /var/run/docker.sock source', 'host-root /host/root source', 'plugin-sockets /host/run/docker/plugins source', 'host-etc /host/etc source'],
    );
    // Settable at install time too, as an operator would: then enabled later.
    await d2.dockerOk(['plugin', 'set', 'overlay-flannel', `ETCD_ENDPOINTS=${etcd?.endpoint}`, 'IFACE=eth0']);
    const [q] = JSON.parse((await d2.dockerOk(['plugin', 'inspect', 'overlay-flannel'])).stdout) as PluginInspect[];
    assert.ok(q?.Settings.Env.includes(`ETCD_ENDPOINTS=${etcd?.endpoint}`));
  });

  it('a probe entrypoint in the same rootfs enables on h1 via plugin:create and sees what config.json grants', async (t) => {
    const dir = join(root, 'probe');
    await run('mkdir', ['-p', dir]);
    await run('cp', ['-al', built.rootfs, join(dir, 'rootfs')]); // hard links: instant, no space
    copyFileSync(join(__dirname, 'fixtures/plugin-probe.js'), join(dir, 'rootfs/app/probe.js'));
    const cfg = JSON.parse(readFileSync(join(built.dir, 'config.json'), 'utf8')) as { entrypoint: string[]; mounts: unknown[] };
    cfg.entrypoint = ['/usr/local/bin/node', '/app/probe.js'];
    const flannelRun = join(root, 'h1-run-flannel');
    // The probe reports through a writable folder of the test's own (the product mounts only what always exists).
    cfg.mounts.push({ name: 'flannel-run', source: flannelRun, destination: '/run/flannel', type: 'bind', options: ['rbind', 'rw'], settable: ['source'] });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    const etcDir = join(root, 'h1-etc'); // created by plugin-create (DOCKER_HOST is a unix socket)
    const r = await run(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'scripts/plugin-create.ts'), '--name', 'ofprobe', '--dir', dir, '--timeout', '20',
        `docker-socket.source=${d1.sock}`, `host-etc.source=${etcDir}`],
      { cwd: ROOT, env: { ...process.env, DOCKER_HOST: d1.url, ETCD_ENDPOINTS: etcd?.endpoint ?? '', LOG_LEVEL: 'debug' }, timeoutMs: 120_000 },
    );
    assert.match(r.stdout, /ofprobe:latest\s.*true/);
    assert.match(r.stdout, /mkdir -p .*h1-run-flannel/);
    const report = await waitFor(
      async () => existsSync(join(flannelRun, 'probe.json')) && (JSON.parse(readFileSync(join(flannelRun, 'probe.json'), 'utf8')) as Record<string, unknown>),
      { timeoutMs: 20_000, what: 'the probe report in /run/flannel' },
    );
    t.diagnostic(`probe report: ${JSON.stringify(report)}`);
    assert.equal(report.uid, 0);
    assert.ok(Array.isArray(report.capEff) && report.capEff.includes('NET_ADMIN'), `caps ${JSON.stringify(report.capEff)}`);
    assert.ok(!(report.capEff as string[]).includes('SYS_ADMIN'));
    assert.ok(Array.isArray(report.modules), `modules: ${JSON.stringify(report.modules)}`);
    assert.ok(Array.isArray(report.links) && report.links.includes('eth0'), `links ${JSON.stringify(report.links)} (h1's, as network: host)`);
    assert.equal(report.netlink, undefined);
    assert.equal(report.bridge, 'created');
    assert.equal(report.bridgeAfterDelete, 'deleted');
    assert.equal(report.dockerPing, 'OK');
    assert.deepEqual(report.env, { ETCD_ENDPOINTS: etcd?.endpoint, PLUGIN_SOCKET: '/run/docker/plugins/overlay-flannel.sock', LOG_LEVEL: 'debug' });
    await d1.dockerOk(['plugin', 'disable', 'ofprobe'], { timeoutMs: 30_000 });
  });

  it('the real daemon, installed from the registry on h2, enables (when it serves the plugin socket)', async (t) => {
    // Does dist/main.js answer Plugin.Activate within 10 s? Tried outside Docker first.
    const sock = join(root, 'try.sock');
    const env = { ETCD_ENDPOINTS: etcd?.endpoint ?? '', ETCD_PREFIX: `/of-${lab?.runId}/network`, IFACE: 'eth0', LOG_LEVEL: 'debug' };
    const tryRun = d2.host.spawnDaemon('node', [join(ROOT, 'dist/main.js')], { ...env, PLUGIN_SOCKET: sock });
    const answered = await waitFor(async () => (await activate(sock)) ?? false, { timeoutMs: 10_000, intervalMs: 200 }).catch(() => undefined);
    tryRun.kill('SIGTERM');
    await Promise.race([tryRun.exited, new Promise((r) => setTimeout(r, 5_000))]);
    tryRun.kill('SIGKILL');
    assert.ok(answered, `dist/main.js did not answer Plugin.Activate on PLUGIN_SOCKET within 10 s; log tail:\n${tryRun.logs().slice(-800)}`);
    // The plugin installed (disabled) on h2 by the push/install test: configure it and enable it.
    // (Creating the same rootfs again under another name on one daemon fails: "content sha256:… already exists".)
    const etcDir = join(root, 'h2-etc');
    await run('mkdir', ['-p', etcDir]);
    const pairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    await d2.dockerOk(['plugin', 'set', 'overlay-flannel', ...pairs, `docker-socket.source=${d2.sock}`, `host-etc.source=${etcDir}`]);
    const en = await d2.docker(['plugin', 'enable', '--timeout', '30', 'overlay-flannel'], { timeoutMs: 60_000 });
    assert.equal(en.code, 0, `enable failed: ${en.stderr}\n--- dockerd log ---\n${d2.logs().slice(-3000)}`);
    const [p] = JSON.parse((await d2.dockerOk(['plugin', 'inspect', 'overlay-flannel'])).stdout) as PluginInspect[];
    assert.equal(p?.Enabled, true);
    await d2.dockerOk(['plugin', 'disable', '-f', 'overlay-flannel'], { timeoutMs: 30_000 });
  });

  it('the Dockerfile builds offline on a node base made of host files; its rootfs matches plugin:build', async (t) => {
    const out = join(root, 'dockerfile-plugin');
    const r = await dockerfilePlugin(d2, out);
    t.diagnostic(`Dockerfile rootfs ${mib(r.bytes)}`);
    for (const f of ['usr/local/bin/node', 'app/dist/main.js', 'app/package-lock.json', 'run/docker/plugins', 'host/etc', 'var/lib/overlay-flannel']) {
      assert.ok(existsSync(join(r.rootfs, f)), `${f} in the exported rootfs`);
    }
    assert.ok(!existsSync(join(r.rootfs, 'tmp/prune-dev.js')), 'prune script removed');
    assert.deepEqual(packages(join(r.rootfs, 'app/node_modules')), packages(join(built.rootfs, 'app/node_modules')));
    await d2.dockerOk(['plugin', 'create', 'of-dockerfile', r.dir], { timeoutMs: 180_000 });
    const [p] = JSON.parse((await d2.dockerOk(['plugin', 'inspect', 'of-dockerfile'])).stdout) as PluginInspect[];
    assert.equal(p?.Config.Network.Type, 'host');
    const run1 = await d2.dockerOk(['run', '--rm', '--network', 'none', '--entrypoint', '/usr/local/bin/node', 'of-plugin-rootfs:test', '/app/dist/main.js', 'help']);
    assert.match(run1.stdout, /Usage:/);
  });
});
