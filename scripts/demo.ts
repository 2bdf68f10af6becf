/**
 * The demo: two simulated hosts on a LAN (network namespaces), etcd on the LAN, the real
 * overlay-flannel daemon on each host, a "container" namespace on each, and traffic between them
 * over the vxlan overlay: flannel's classic demo (ping, then a netcat chat).
 * The Docker plugin API is the next milestone; until then containers are plain namespaces wired
 * by the daemon's own kernel module, which is exactly what the plugin will do for Docker.
 *   node --import tsx scripts/demo.ts [--keep]
 */
import { OverlayLab } from '../test/lab/overlay-lab';
import { waitFor } from '../test/helpers/wait';
import { run } from '../test/helpers/run';

const keep = process.argv.includes('--keep');
const say = (s: string) => process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);

async function main(): Promise<void> {
  say('building a lab: a LAN namespace with etcd, hosts h1 and h2 (192.0.2.1, 192.0.2.2)');
  const lab = await OverlayLab.create(2);
  let ok = false;
  try {
    say(`writing the overlay config: Network ${lab.network}, vxlan VNI ${lab.vni}`);
    process.stdout.write(await lab.cli(['config', 'set', '--network', lab.network, '--vni', String(lab.vni)]));
    say('starting overlay-flannel on each host (node dist/main.js inside the host namespace)');
    for (const n of [1, 2]) lab.startDaemon(n, { LOG_LEVEL: 'info' });
    const leases = await lab.waitForLeases(['192.0.2.1', '192.0.2.2']);
    process.stdout.write(await lab.cli(['status']));
    const c1 = await lab.attachContainer(1, leases.get('192.0.2.1')!, '1');
    const c2 = await lab.attachContainer(2, leases.get('192.0.2.2')!, '2');
    say(`containers: c1 ${c1.ip} on h1, c2 ${c2.ip} on h2`);
    const dev = `flannel.${lab.vni}`;
    say(`what the daemon on h1 programmed for h2 (${dev})`);
    for (const args of [['route', 'show', 'dev', dev], ['neigh', 'show', 'dev', dev]]) {
      process.stdout.write((await run('ip', ['-n', lab.host(1).ns, ...args])).stdout);
    }
    process.stdout.write((await run('bridge', ['-n', lab.host(1).ns, 'fdb', 'show', 'dev', dev])).stdout);
    say(`ping c1 → c2 (${c2.ip}) across hosts`);
    await waitFor(() => lab.ping(c1.ns, c2.ip), { timeoutMs: 15_000, what: 'first ping' });
    process.stdout.write((await c1.ns.exec('ping', ['-c', '3', c2.ip])).stdout);
    say('a netcat chat: c2 listens on 7000, c1 says hello');
    const server = run('nsenter', [`--net=${c2.ns.nsPath}`, 'busybox', 'nc', '-l', '-p', '7000'], { timeoutMs: 15_000, check: false });
    await waitFor(async () => (await c2.ns.exec('sh', ['-c', 'busybox netstat -ltn | grep -q ":7000"'])).code === 0, { timeoutMs: 5_000, what: 'nc listening' });
    await c1.ns.execOk('sh', ['-c', `echo "hello from c1 (${c1.ip}) on h1" | busybox nc -w 2 ${c2.ip} 7000`]);
    process.stdout.write(`c2 received: ${(await server).stdout}`);
    ok = true;
    if (keep) {
      say('left running (--keep). Shells:');
      for (const [name, ns] of [['h1', lab.host(1)], ['h2', lab.host(2)], ['c1', c1.ns], ['c2', c2.ns]] as const) {
        process.stdout.write(`  ${name}: nsenter --net=${ns.nsPath} bash\n`);
      }
      process.stdout.write(`  etcd: ETCDCTL_API=3 etcdctl --endpoints ${lab.etcd.endpoint} (from a host shell)\n  stop: Ctrl-C\n`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
  } finally {
    say(ok ? 'tearing down' : 'demo failed; tearing down');
    await lab.destroy();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`demo: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
