/**
 * The demo, as a user would see overlay-flannel: two Docker hosts (network namespaces, each with
 * its own dockerd), etcd on their LAN, the managed plugin installed on both, one overlay network,
 * a container on each host, and traffic between them by name: nslookup and ping of c2 from c1,
 * then a netcat chat (flannel's classic demo, without passing addresses around). The dockerds ask
 * a small DNS server on the LAN (192.0.2.254, test/lab/fake-upstream-dns.ts) for outside names, so
 * no query leaves the lab. Everything lives in namespaces this script creates and removes.
 *   node --import tsx scripts/demo.ts [--keep]
 */
import { join, resolve } from 'node:path';
import { buildPlugin } from './plugin-build';
import { createDockerLab, importBusybox, labRoot, startDockerd, stopAll, type DockerHost } from '../test/helpers/docker-lab';
import { startEtcd, type EtcdServer } from '../test/helpers/etcd-server';
import type { Lab } from '../test/helpers/netns-lab';
import { waitFor } from '../test/helpers/wait';
import { endpointOf, randomOverlay } from '../test/lab/docker-plugin-lab';
import { startFakeUpstream } from '../test/lab/fake-upstream-dns';

const ROOT = resolve(__dirname, '..');
const MAIN = join(ROOT, 'dist/main.js');
const NET = 'demo';
const keep = process.argv.includes('--keep');
const say = (s: string) => process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);
const show = (s: string) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);

async function main(): Promise<void> {
  const ov = randomOverlay();
  let lab: Lab | undefined;
  let etcd: EtcdServer | undefined;
  let ok = false;
  try {
    say('a LAN (192.0.2.0/24) with etcd, and two Docker hosts h1 (192.0.2.1) and h2 (192.0.2.2), each running its own dockerd');
    lab = await createDockerLab('of');
    const lan = await lab.lan();
    etcd = await startEtcd({ netns: lan.ns, host: '192.0.2.254' });
    await startFakeUpstream(lan, { 'www.example.org': ['203.0.113.80'] }); // the LAN's DNS server; stopped with the lab
    const h1 = await lab.addHost(1);
    const h2 = await lab.addHost(2);
    const dockerd = { extraArgs: ['--dns', '192.0.2.254'] };
    const [d1, d2, built] = await Promise.all([startDockerd(h1, dockerd), startDockerd(h2, dockerd), buildPlugin({ out: join(labRoot(lab.runId), 'plugin'), build: false })]);
    await Promise.all([importBusybox(d1), importBusybox(d2)]);

    say(`the overlay, written once to etcd: Network ${ov.network}, vxlan VNI ${ov.vni}`);
    const env = { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, ETCD_PREFIX: ov.prefix };
    show((await h1.execOk('node', [MAIN, 'config', 'set', '--network', ov.network, '--vni', String(ov.vni)], { env })).stdout);

    const hosts: [string, DockerHost][] = [['h1', d1], ['h2', d2]];
    for (const [name, d] of hosts) {
      say(`${name}: docker plugin create overlay-flannel + set + enable${d === d1 ? ', then docker network create (once: the plugin replicates it)' : ''}`);
      await d.dockerOk(['plugin', 'create', 'overlay-flannel', built.dir], { timeoutMs: 180_000 });
      await d.dockerOk(['plugin', 'set', 'overlay-flannel', `ETCD_ENDPOINTS=${etcd.endpoint}`, `ETCD_PREFIX=${ov.prefix}`, 'IFACE=eth0', `docker-socket.source=${d.sock}`]);
      await d.dockerOk(['plugin', 'enable', 'overlay-flannel'], { timeoutMs: 60_000 });
      if (d === d1) await d.dockerOk(['network', 'create', '-d', 'overlay-flannel:latest', '--ipam-driver', 'overlay-flannel:latest', NET], { timeoutMs: 60_000 });
      else {
        await waitFor(async () => (await d.docker(['network', 'inspect', NET])).code === 0, { timeoutMs: 30_000, what: `network ${NET} replicated to ${name}` });
        say(`${name}: network "${NET}" appeared by itself (defined once on h1, replicated through etcd)`);
      }
      const cfg = (await d.dockerOk(['network', 'inspect', '-f', '{{json .IPAM.Config}}', NET])).stdout.trim();
      show(`${name}: network "${NET}" ${cfg}`);
    }
    say('every host leased its own subnet of the overlay (overlay-flannel status)');
    show((await h1.execOk('node', [MAIN, 'status'], { env })).stdout);

    say('a container on each host');
    await d1.dockerOk(['run', '-d', '--init', '--name', 'c1', '--network', NET, 'ofbox:1', 'sleep', '3600'], { timeoutMs: 120_000 });
    await d2.dockerOk(['run', '-d', '--init', '--name', 'c2', '--network', NET, 'ofbox:1', 'sleep', '3600'], { timeoutMs: 120_000 });
    const ip1 = (await endpointOf(d1, 'c1', NET)).ip;
    const ip2 = (await endpointOf(d2, 'c2', NET)).ip;
    show(`c1 on h1: ${ip1}\nc2 on h2: ${ip2}\nroutes in c1:`);
    show((await d1.dockerOk(['exec', 'c1', 'ip', 'route'])).stdout);

    say('c1 (h1) looks up c2 (h2) by name: Docker\'s own DNS in c1, answered by the plugin on h1 from the names in etcd');
    const looked = await waitFor(async () => {
      const r = await d1.docker(['exec', 'c1', 'nslookup', 'c2']);
      return r.code === 0 && r.stdout.includes(ip2) ? r.stdout : undefined;
    }, { timeoutMs: 20_000, what: 'c2 resolvable from c1' });
    show(looked);
    say('c1 pings c2 by name');
    await waitFor(async () => (await d1.docker(['exec', 'c1', 'ping', '-c', '1', '-W', '2', 'c2'])).code === 0, { timeoutMs: 20_000, what: 'first ping' });
    show((await d1.dockerOk(['exec', 'c1', 'ping', '-c', '3', 'c2'])).stdout);
    say('names outside the overlay still go to the LAN\'s DNS server, as without the plugin');
    show((await d1.dockerOk(['exec', 'c1', 'nslookup', 'www.example.org'])).stdout);

    say('a netcat chat across hosts, by name: c2 listens on port 7000, c1 says hello to c2');
    await d2.dockerOk(['exec', '-d', 'c2', 'sh', '-c', 'nc -l -p 7000 > /tmp/chat']);
    const msg = `hello from c1 (${ip1}) on h1`;
    const got = await waitFor(
      async () => {
        await d1.docker(['exec', 'c1', 'sh', '-c', `echo "${msg}" | nc -w 2 c2 7000`], { timeoutMs: 10_000 });
        const seen = (await d2.docker(['exec', 'c2', 'cat', '/tmp/chat'])).stdout;
        return seen.includes(msg) ? seen : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 300, what: 'the message in c2' },
    );
    show(`c2 received: ${got.trim()}`);
    ok = true;
    if (keep) {
      say('left running (--keep); Ctrl-C tears it down. Shells:');
      for (const [name, d] of hosts) show(`  ${name}: docker -H unix://${d.sock} ps      (host shell: nsenter --net=${d.host.nsPath} bash)`);
      show(`  etcd: ETCDCTL_API=3 etcdctl --endpoints ${etcd.endpoint}   (from a host shell)`);
      await new Promise<void>((r) => process.once('SIGINT', () => r()));
    }
  } finally {
    say(ok ? 'tearing down' : 'the demo failed; tearing down');
    await etcd?.cleanup().catch(() => undefined);
    await stopAll(lab);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`demo: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
