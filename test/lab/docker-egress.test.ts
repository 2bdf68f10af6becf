/**
 * docker-egress.test.ts — outbound NAT (IP_MASQ) and subnet.env with the managed plugin on two
 * real dockerds. Own small lab: LAN namespace (etcd at 192.0.2.254), hosts h1/h2 with dockerd
 * (--bridge=none) and the plugin made with `docker plugin create` from buildPlugin's output (no
 * registry), and an "outside" namespace 198.51.100.1/24, routed by the LAN namespace
 * (198.51.100.254 on a veth to it). The outside knows no route to the overlay: a container's packet
 * only gets an answer if it left its host masqueraded.
 *
 * How the peer address is observed: busybox httpd with a CGI script that prints $REMOTE_ADDR (the
 * source address of the TCP connection as the server's kernel sees it, after any NAT on the way),
 * fetched with busybox nc (HTTP/1.0 by hand). It runs in the outside namespace (host busybox) and in container c2.
 * All traffic stays inside the lab's namespaces; 198.51.100.0/24 exists only there.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DOCKER, DOCKERD, createDockerLab, labRoot, leftovers, stopAll, type DockerHost } from '../helpers/docker-lab';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import type { Host, Lab, Ns } from '../helpers/netns-lab';
import { run } from '../helpers/run';
import { waitFor } from '../helpers/wait';
import * as L from './docker-plugin-lab';

const ROOT = resolve(__dirname, '../..');
const MAIN = join(ROOT, 'dist/main.js');
const missing = [DOCKERD, DOCKER, '/bin/busybox', MAIN].filter((f) => !existsSync(f));
if (process.getuid?.() !== 0) throw new Error('the docker egress lab needs root');
if (missing.length) throw new Error(`the docker egress lab needs ${missing.join(', ')} (apt-get install docker.io busybox-static; npm run build)`);

const NET = 'egress';
const PLUGIN = 'overlay-flannel';
const OUTSIDE = '198.51.100.1';
const CGI = '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$REMOTE_ADDR"\n';

describe('outbound NAT and subnet.env with the managed plugin', { timeout: 240_000 }, () => {
  const ov = L.randomOverlay();
  let lab: Lab | undefined;
  let etcd: EtcdServer | undefined;
  let h1: Host, h2: Host;
  let d1: DockerHost, d2: DockerHost;
  let outside: Ns;
  const lease = new Map<DockerHost, string>();
  const ips: Record<string, string> = {};

  const natRules = (h: Host): Promise<string[]> => L.natRules(h, 'POSTROUTING', L.masqMark(ov.network));

  before(async () => {
    lab = await createDockerLab('oe');
    const lan = await lab.lan();
    etcd = await startEtcd({ netns: lan.ns, host: '192.0.2.254' });
    let pluginDir: string;
    ({ h1, h2, d1, d2, pluginDir } = await L.twoDockerHosts(lab));
    outside = await L.addOutsideNamespace(lab, lan, OUTSIDE);
    const www = join(labRoot(lab.runId), 'www');
    mkdirSync(join(www, 'cgi-bin'), { recursive: true });
    writeFileSync(join(www, 'cgi-bin', 'peer'), CGI);
    chmodSync(join(www, 'cgi-bin', 'peer'), 0o755);
    outside.spawnDaemon('/bin/busybox', ['httpd', '-f', '-p', '0.0.0.0:8080', '-h', www]);

    const env = { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, ETCD_PREFIX: ov.prefix };
    await h1.execOk('node', [MAIN, 'config', 'set', '--network', ov.network, '--vni', String(ov.vni)], { env, timeoutMs: 20_000 });
    await Promise.all([d1, d2].map((d) => L.installPlugin(d, pluginDir, L.pluginSettings(etcd!, ov.prefix, d), PLUGIN)));
    const held = await waitFor(async () => {
      const l = await L.leases(etcd!, ov.prefix);
      return l.has(h1.ip) && l.has(h2.ip) && l;
    }, { timeoutMs: 30_000, what: 'leases of both hosts in etcd' });
    lease.set(d1, held.get(h1.ip)!).set(d2, held.get(h2.ip)!);
    for (const d of [d1, d2]) {
      // Network replication may already have made it on the second host (then it refuses a second one).
      const r = await d.docker(['network', 'create', '-d', L.DRIVER, '--ipam-driver', L.DRIVER, NET], { timeoutMs: 60_000 });
      assert.ok(r.code === 0 || /already (exists|has a Docker network)/.test(r.stderr), `network create on ${d.host.ns}: ${r.stderr}`);
      await waitFor(async () => (await d.docker(['network', 'inspect', NET])).code === 0, { timeoutMs: 20_000, what: `network ${NET} on ${d.host.ns}` });
    }
    await Promise.all([L.runBox(d1, 'c1', NET), L.runBox(d2, 'c2', NET)]);
    ips.c1 = (await L.endpointOf(d1, 'c1', NET)).ip;
    ips.c2 = (await L.endpointOf(d2, 'c2', NET)).ip;
    await d2.dockerOk(['exec', 'c2', 'sh', '-c', `mkdir -p /www/cgi-bin && printf '${CGI.replace(/\n/g, '\\n')}' > /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && httpd -p 0.0.0.0:8080 -h /www`]);
  });

  after(async () => {
    const runId = lab?.runId;
    await etcd?.cleanup();
    await stopAll(lab);
    if (runId) assert.deepEqual(await leftovers(runId), { namespaces: [], folder: false, mounts: [], processes: [] }, 'the lab left something behind');
  });

  it("1. each host has flannel's five masquerade rules for its own subnet, readable by iptables", async () => {
    for (const [h, d] of [[h1, d1], [h2, d2]] as const) {
      const sub = lease.get(d)!;
      const rules = await waitFor(async () => {
        const r = await natRules(h);
        return r.length === 5 && r;
      }, { timeoutMs: 20_000, what: `masquerade rules on ${h.ns}` });
      assert.deepEqual(rules, L.flannelMasqRules(sub, ov.network));
    }
  });

  it('2. containers reach the outside with their host\'s address (masqueraded)', async () => {
    for (const [d, c, hostIp] of [[d1, 'c1', h1.ip], [d2, 'c2', h2.ip]] as const) {
      const seen = await waitFor(async () => {
        return (await L.peerSeen(d, c, OUTSIDE)) || undefined;
      }, { timeoutMs: 20_000, what: `${c} → outside` });
      assert.equal(seen, hostIp, `the outside saw ${c} as ${seen}`);
    }
  });

  it('3. overlay ↔ overlay is never translated: c2 sees c1\'s own container address', async () => {
    const seen = await waitFor(async () => {
      return (await L.peerSeen(d1, 'c1', ips.c2!)) || undefined;
    }, { timeoutMs: 20_000, what: 'c1 → c2' });
    assert.equal(seen, ips.c1);
    assert.ok(L.inCidr(ips.c1!, lease.get(d1)!));
  });

  it("4. subnet.env is flanneld's, inside the managed plugin's filesystem", async () => {
    const [pid] = await L.pluginPids(h1);
    assert.ok(pid, 'plugin process on h1');
    const sub = lease.get(d1)!;
    const text = await waitFor(async () => {
      try {
        return readFileSync(`/proc/${pid}/root/run/flannel/subnet.env`, 'utf8');
      } catch {
        return false;
      }
    }, { timeoutMs: 10_000, what: 'subnet.env in the plugin' });
    assert.equal(text, `FLANNEL_NETWORK=${ov.network}\nFLANNEL_SUBNET=${L.gatewayOf(sub)}/${sub.split('/')[1]}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`);
  });

  it('5. disabling the plugin removes its rules; without them the outside cannot answer the container', async () => {
    await d1.dockerOk(['plugin', 'disable', '-f', PLUGIN], { timeoutMs: 60_000 });
    assert.deepEqual(await natRules(h1), []);
    assert.equal(await L.peerSeen(d1, 'c1', OUTSIDE), '', 'c1 still reached the outside');
    assert.equal((await natRules(h2)).length, 5, 'h2 keeps its rules');
    await d1.dockerOk(['plugin', 'enable', PLUGIN], { timeoutMs: 60_000 });
    await waitFor(async () => (await natRules(h1)).length === 5, { timeoutMs: 20_000, what: 'rules back on h1 after enable' });
    assert.equal(await waitFor(async () => (await L.peerSeen(d1, 'c1', OUTSIDE)) || undefined, { timeoutMs: 20_000, what: 'c1 → outside after enable' }), h1.ip);
  });
});
