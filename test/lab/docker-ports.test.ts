/**
 * docker-ports.test.ts — published ports (`docker run -p`) with the managed plugin on one real
 * dockerd. Own small lab, as docker-egress.test.ts: LAN namespace (etcd at 192.0.2.254), host h1
 * with dockerd (--bridge=none) and the plugin made with `docker plugin create` from buildPlugin's
 * output, and an "outside" namespace 198.51.100.1/24 routed by the LAN namespace. The outside has
 * no route to the overlay: it only reaches a container through the host's published port (DNAT).
 * TCP: busybox httpd in the container, fetched with busybox nc (HTTP/1.0 by hand). UDP: a node
 * echo server (busybox has no UDP server) in the ofnode image, asked with node's dgram.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildPlugin } from '../../scripts/plugin-build';
import { DOCKER, DOCKERD, createDockerLab, importBusybox, importNodeBase, labRoot, leftovers, startDockerd, stopAll, type DockerHost } from '../helpers/docker-lab';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import type { Host, Lab, Ns } from '../helpers/netns-lab';
import { run } from '../helpers/run';
import { waitFor } from '../helpers/wait';
import * as L from './docker-plugin-lab';

const ROOT = resolve(__dirname, '../..');
const MAIN = join(ROOT, 'dist/main.js');
const missing = [DOCKERD, DOCKER, '/bin/busybox', MAIN].filter((f) => !existsSync(f));
if (process.getuid?.() !== 0) throw new Error('the docker ports lab needs root');
if (missing.length) throw new Error(`the docker ports lab needs ${missing.join(', ')} (apt-get install docker.io busybox-static; npm run build)`);

const NET = 'ports';
const PLUGIN = 'overlay-flannel';
const OUTSIDE = '198.51.100.1';
const UDP_ECHO = "const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send('echo '+m,r.port,r.address));s.bind(53)";
const udpAsk = (ip: string, port: number) =>
  `const s=require('dgram').createSocket('udp4');const t=setTimeout(()=>process.exit(1),2000);s.on('message',(m)=>{console.log(String(m));clearTimeout(t);s.close()});s.send('ping',${port},'${ip}')`;

describe('published ports with the managed plugin', { timeout: 240_000 }, () => {
  const ov = L.randomOverlay();
  let lab: Lab | undefined;
  let etcd: EtcdServer | undefined;
  let h1: Host;
  let d1: DockerHost;
  let outside: Ns;
  let webEid = '';
  let udpEid = '';

  /** The body of GET / on ip:port asked from namespace `from` with busybox nc; '' when no answer. */
  const fetchFrom = async (from: Ns | Host, ip: string, port: number): Promise<string> => {
    const r = await from.exec('/bin/busybox', ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 ${ip} ${port}`], { timeoutMs: 15_000 });
    return r.stdout.split(/\r?\n\r?\n/).slice(1).join('\n').trim();
  };
  const portRules = async (eid: string): Promise<string[]> => {
    const out: string[] = [];
    for (const chain of ['PREROUTING', 'OUTPUT']) {
      out.push(...(await h1.execOk('iptables', ['-t', 'nat', '-S', chain])).stdout.split('\n').filter((l) => l.includes(`overlay-flannel port ${eid.slice(0, 12)}`)));
    }
    return out;
  };

  before(async () => {
    lab = await createDockerLab('op');
    const lan = await lab.lan();
    etcd = await startEtcd({ netns: lan.ns, host: '192.0.2.254' });
    h1 = await lab.addHost(1);
    outside = await L.addOutsideNamespace(lab, lan, OUTSIDE);

    let built;
    [d1, built] = await Promise.all([startDockerd(h1), buildPlugin({ out: join(labRoot(lab.runId), 'plugin'), build: false })]);
    const env = { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, ETCD_PREFIX: ov.prefix };
    await h1.execOk('node', [MAIN, 'config', 'set', '--network', ov.network, '--vni', String(ov.vni)], { env, timeoutMs: 20_000 });
    await Promise.all([importBusybox(d1), importNodeBase(d1)]);
    await d1.dockerOk(['plugin', 'create', PLUGIN, built.dir], { timeoutMs: 180_000 });
    await d1.dockerOk(['plugin', 'set', PLUGIN, `ETCD_ENDPOINTS=${etcd.endpoint}`, `ETCD_PREFIX=${ov.prefix}`, 'IFACE=eth0', 'LOG_LEVEL=debug', `docker-socket.source=${d1.sock}`]);
    await d1.dockerOk(['plugin', 'enable', PLUGIN], { timeoutMs: 60_000 });
    await waitFor(async () => (await L.leases(etcd!, ov.prefix)).has(h1.ip), { timeoutMs: 30_000, what: 'lease of h1 in etcd' });
    await d1.dockerOk(['network', 'create', '-d', L.DRIVER, '--ipam-driver', L.DRIVER, NET], { timeoutMs: 60_000 });
    await d1.dockerOk(
      ['run', '-d', '--init', '--name', 'web', '-p', '8080:80', '--network', NET, 'ofbox:1', 'sh', '-c', 'mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www'],
      { timeoutMs: 120_000 },
    );
    await d1.dockerOk(['run', '-d', '--init', '--name', 'udp', '-p', `${h1.ip}:5353:53/udp`, '--network', NET, 'ofnode:20', '/usr/local/bin/node', '-e', UDP_ECHO], { timeoutMs: 120_000 });
    webEid = (await L.endpointOf(d1, 'web', NET)).eid;
    udpEid = (await L.endpointOf(d1, 'udp', NET)).eid;
  });

  after(async () => {
    const runId = lab?.runId;
    await etcd?.cleanup();
    await stopAll(lab);
    if (runId) assert.deepEqual(await leftovers(runId), { namespaces: [], folder: false, mounts: [], processes: [] }, 'the lab left something behind');
  });

  it('1. DNAT rules in nat PREROUTING and OUTPUT, readable by iptables, commented with the endpoint', async () => {
    const { ip: webIp } = await L.endpointOf(d1, 'web', NET);
    const rules = await portRules(webEid);
    const c = `-m comment --comment "overlay-flannel port ${webEid.slice(0, 12)} tcp *:8080 > ${webIp}:80"`;
    assert.deepEqual(rules, [
      `-A PREROUTING -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 8080 ${c} -j DNAT --to-destination ${webIp}:80`,
      `-A OUTPUT ! -d 127.0.0.0/8 -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 8080 ${c} -j DNAT --to-destination ${webIp}:80`,
    ]);
    assert.equal((await portRules(udpEid)).length, 2);
    assert.match((await portRules(udpEid))[0]!, new RegExp(`-d ${h1.ip}/32 -p udp .*--dport 5353 .*-j DNAT --to-destination [\\d.]+:53$`));
  });

  it('2. the outside reaches the container through the host port (tcp), and so does the host itself', async () => {
    const body = await waitFor(async () => (await fetchFrom(outside, h1.ip, 8080)) || undefined, { timeoutMs: 20_000, what: `outside → ${h1.ip}:8080` });
    assert.equal(body, 'hello-from-web');
    assert.equal(await fetchFrom(h1, h1.ip, 8080), 'hello-from-web', 'host → its own published port (OUTPUT)');
  });

  it('2b. a second container on the same host port is refused clearly; the first keeps its rules', async () => {
    const r = await d1.docker(['run', '-d', '--init', '--name', 'web2', '-p', '8080:80', '--network', NET, 'ofbox:1', 'sleep', '60'], { timeoutMs: 60_000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`already published by endpoint ${webEid.slice(0, 12)} \\(tcp \\*:8080\\)`));
    assert.equal((await portRules(webEid)).length, 2);
    assert.equal(await fetchFrom(outside, h1.ip, 8080), 'hello-from-web');
    await d1.dockerOk(['rm', '-f', 'web2']);
  });

  it('3. a udp mapping works from the outside', async () => {
    const got = await waitFor(async () => {
      const r = await outside.exec(process.execPath, ['-e', udpAsk(h1.ip, 5353)], { timeoutMs: 10_000 });
      return r.code === 0 && r.stdout.trim();
    }, { timeoutMs: 20_000, what: `outside → udp ${h1.ip}:5353` });
    assert.equal(got, 'echo ping');
  });

  it('4. after docker stop the rules are gone and the port no longer answers', async () => {
    await d1.dockerOk(['stop', '-t', '2', 'web', 'udp'], { timeoutMs: 60_000 });
    assert.deepEqual(await portRules(webEid), []);
    assert.deepEqual(await portRules(udpEid), []);
    assert.equal(await fetchFrom(outside, h1.ip, 8080), '');
  });
});
