/**
 * Issue 22, the wireguard backend on the userspace path (wireguard-go: this kernel has no
 * WireGuard): three real daemons in lab host namespaces, real etcd, a config with a PSK.
 * Checked: leases byte for byte as flanneld writes them; each host's flannel-wg (read with `wg show
 * dump` through its wireguard-go's own mount namespace) has one peer per remote lease with the PSK;
 * containers ping across hosts; a capture on the LAN bridge shows only UDP between the hosts' listen
 * ports, never ICMP or the ping's payload pattern; a host set up by hand as flanneld's wireguard
 * backend (wireguard-go + `wg set`, its lease written with etcdctl) is a peer both ways; a restart
 * keeps the public key (key file 0600, the private key never in the log); a host whose lease goes
 * disappears from the others' peers.
 * Needs root, wireguard-go, wireguard-tools, tcpdump, etcd and `npm run build`; fails (never skips).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OverlayLab, LeaseView, MAIN } from './overlay-lab';
import type { DaemonHandle, Host } from '../helpers/netns-lab';
import { run } from '../helpers/run';
import { waitFor } from '../helpers/wait';

const missing = ['/usr/bin/wireguard-go', '/usr/bin/wg', '/usr/bin/tcpdump', MAIN].filter((f) => !existsSync(f));
if (process.getuid?.() !== 0) throw new Error('the wireguard lab needs root');
if (missing.length) throw new Error(`the wireguard lab needs ${missing.join(', ')} (apt-get install wireguard-go wireguard-tools tcpdump; npm run build)`);

const PORT = 51820;

/** tcpdump -n -l -x text: each packet's header line and its bytes (from the IP header on) as hex. */
function packetsOf(text: string): { header: string; hex: string }[] {
  const out: { header: string; hex: string }[] = [];
  for (const line of text.split('\n')) {
    if (/^\d\d:\d\d:\d\d\.\d+ /.test(line)) out.push({ header: line, hex: '' });
    else if (/^\s+0x[0-9a-f]+:/.test(line) && out.length) out[out.length - 1].hex += line.replace(/^\s+0x[0-9a-f]+:/, '').replace(/\s+/g, '');
  }
  return out;
}
const KEY_RE = /^[A-Za-z0-9+/]{43}=$/;

/** The pid of the wireguard-go running flannel-wg in host h's network namespace. */
function wgPid(h: Host): number | undefined {
  const want = statSync(h.nsPath).ino;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (cmd[0]?.endsWith('wireguard-go') && cmd[1] === 'flannel-wg' && statSync(`/proc/${d}/ns/net`).ino === want) return Number(d);
    } catch {
      // the process ended while we looked
    }
  }
  return undefined;
}

/** `wg <args>` against host h's flannel-wg, through its wireguard-go's mount and net namespaces. */
async function wg(h: Host, args: string[]): Promise<string> {
  const pid = wgPid(h);
  if (!pid) throw new Error(`no wireguard-go flannel-wg in ${h.ns}`);
  const r = await run('nsenter', [`--mount=/proc/${pid}/ns/mnt`, `--net=/proc/${pid}/ns/net`, 'wg', ...args], { timeoutMs: 10_000 });
  return r.stdout;
}

interface Dump {
  publicKey: string;
  listenPort: number;
  peers: { publicKey: string; psk: string; endpoint: string; allowedIPs: string }[];
}
async function dump(h: Host): Promise<Dump> {
  const [dev, ...peers] = (await wg(h, ['show', 'flannel-wg', 'dump'])).trim().split('\n').map((l) => l.split('\t'));
  // dev[0] is the private key: never kept, never printed
  return { publicKey: dev[1], listenPort: Number(dev[2]), peers: peers.map((p) => ({ publicKey: p[0], psk: p[1], endpoint: p[2], allowedIPs: p[3] })) };
}

describe('three hosts on the wireguard backend (userspace wireguard-go), real daemons', { timeout: 600_000 }, () => {
  let lab: OverlayLab;
  let leases: Map<string, LeaseView>;
  const ips = ['192.0.2.1', '192.0.2.2', '192.0.2.3'];
  const psk = randomBytes(32).toString('base64');
  const key = (l: LeaseView) => (JSON.parse(l.raw) as { BackendData: { PublicKey: string } }).BackendData.PublicKey;
  const stateDir = (n: number) => `/tmp/of-wg-${lab.lab.runId}-h${n}`;
  const start = (n: number): DaemonHandle => lab.startDaemon(n, { LEASE_TTL: '20', STATE_DIR: stateDir(n), WIREGUARD_PRIVATE_SOCKET: '1' });
  const containers = new Map<number, Awaited<ReturnType<OverlayLab['attachContainer']>>>();
  const c = (n: number) => containers.get(n)!.ns;
  const ipOf = (n: number) => containers.get(n)!.ip;

  /** Until host n's peers are exactly those of the given hosts' leases (with endpoint and PSK). */
  const peersOf = (n: number, hosts: number[], extra: string[] = []) =>
    waitFor(
      async () => {
        const got = (await dump(lab.host(n))).peers.map((p) => `${p.publicKey} ${p.endpoint} ${p.allowedIPs} ${p.psk === psk}`).sort();
        const want = hosts.map((m) => leases.get(`192.0.2.${m}`)!).map((l) => `${key(l)} ${l.publicIP}:${PORT} ${l.subnet} true`).concat(extra).sort();
        return JSON.stringify(got) === JSON.stringify(want) ? got : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 300, what: `host ${n}'s wireguard peers = hosts ${hosts}; log:\n${lab.logs(n)}` },
    );

  before(async () => {
    lab = await OverlayLab.create(3);
    const cfg = JSON.stringify({ Network: lab.network, Backend: { Type: 'wireguard', PSK: psk } });
    await lab.etcd.etcdctl(['put', `${lab.prefix}/config`, cfg]);
    for (const n of [1, 2, 3]) start(n);
    leases = await lab.waitForLeases(ips);
  });

  after(async () => {
    await lab?.destroy();
    for (const n of [1, 2, 3]) if (lab) rmSync(stateDir(n), { recursive: true, force: true });
  });

  it('leases are flanneld\'s bytes; each host says it runs wireguard-go', async () => {
    for (const l of leases.values()) {
      assert.match(l.raw, new RegExp(`^\\{"PublicIP":"${l.publicIP.replace(/\./g, '\\.')}","PublicIPv6":null,"BackendType":"wireguard","BackendData":\\{"PublicKey":"[A-Za-z0-9+/]{43}="\\}\\}$`));
      assert.match(key(l), KEY_RE);
    }
    assert.equal(new Set([...leases.values()].map(key)).size, 3);
    for (const n of [1, 2, 3]) {
      await waitFor(async () => /kernel has no wireguard link kind: using wireguard-go/.test(lab.logs(n)), { timeoutMs: 20_000, what: `host ${n} logs which WireGuard runs` });
      const d = await dump(lab.host(n));
      assert.deepEqual([d.publicKey, d.listenPort], [key(leases.get(`192.0.2.${n}`)!), PORT]);
    }
  });

  it('flannel-wg as flanneld: the subnet address /32, the Network routed via it, MTU 1420; one peer per remote lease with the PSK', async () => {
    for (const n of [1, 2, 3]) {
      const h = lab.host(n);
      const sub = leases.get(`192.0.2.${n}`)!.subnet.split('/')[0];
      const addrs = await h.execJson<{ addr_info: { family: string; local: string; prefixlen: number }[]; mtu: number }[]>(['addr', 'show', 'dev', 'flannel-wg']);
      assert.deepEqual(addrs[0].addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`), [`${sub}/32`]);
      assert.equal(addrs[0].mtu, 1420);
      const routes = await h.execJson<{ dst: string; dev: string }[]>(['route', 'show', 'dev', 'flannel-wg']);
      assert.deepEqual(routes.map((r) => r.dst), [lab.network]);
      await peersOf(n, [1, 2, 3].filter((m) => m !== n));
    }
  });

  it('containers ping across hosts; the LAN carries only UDP between the listen ports, never ICMP or the payload', async () => {
    for (const n of [1, 2, 3]) containers.set(n, await lab.attachContainer(n, leases.get(`192.0.2.${n}`)!, `w${n}`, 10, 1420));
    const lan = await lab.lab.lan();
    const pattern = 'c0ffee5eed' + randomBytes(3).toString('hex');
    const cap = lan.spawnDaemon('tcpdump', ['-i', 'br0', '-n', '-l', '-x', 'ip and not tcp port 2379']);
    try {
      await waitFor(async () => /listening on br0/.test(cap.logs()), { timeoutMs: 10_000, what: 'tcpdump started' });
      const ping = async (from: number, to: number) => {
        await waitFor(async () => (await c(from).exec('ping', ['-c', '1', '-W', '1', '-p', pattern, ipOf(to)], { timeoutMs: 5000 })).code === 0, { timeoutMs: 20_000, what: `ping c${from} → c${to} over wireguard` });
      };
      await ping(1, 2);
      await ping(2, 3);
      await ping(3, 1);
      await waitFor(async () => packetsOf(cap.logs()).length >= 6, { timeoutMs: 10_000, what: `the capture holds the datagrams:\n${cap.logs().slice(-2000)}` });
    } finally {
      cap.kill('SIGINT');
      await cap.exited;
    }
    const packets = packetsOf(cap.logs());
    const hostRe = /^\S+ IP 192\.0\.2\.[123]\.(\d+) > 192\.0\.2\.[123]\.(\d+): UDP/;
    const other = packets.filter((p) => {
      const m = hostRe.exec(p.header);
      return !m || Number(m[1]) !== PORT || Number(m[2]) !== PORT;
    });
    assert.deepEqual(other.map((p) => p.header), [], 'only UDP between port 51820 of the hosts');
    assert.ok(packets.length >= 6, `WireGuard datagrams seen: ${packets.length}`);
    assert.ok(!packets.some((p) => p.hex.includes(pattern)), 'the ping payload never appears on the wire');
  });

  it('a host set up by hand as flanneld\'s wireguard backend (wireguard-go + wg set, lease via etcdctl) is a peer both ways', async () => {
    const h4 = await lab.lab.addHost(4);
    const dir = `/tmp/of-wg-${lab.lab.runId}-h4`;
    const priv = (await run('sh', ['-c', 'umask 077; wg genkey'])).stdout.trim();
    const pub4 = (await run('sh', ['-c', `echo "${priv}" | wg pubkey`])).stdout.trim(); // the lab's throwaway key
    await run('mkdir', ['-m', '700', '-p', dir]);
    writeFileSync(join(dir, 'key'), priv + '\n', { mode: 0o600 });
    writeFileSync(join(dir, 'psk'), psk + '\n', { mode: 0o600 });
    h4.spawnDaemon('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mkdir -p /run/wireguard && mount -t tmpfs none /run/wireguard && exec wireguard-go flannel-wg'], { WG_PROCESS_FOREGROUND: '1' });
    await waitFor(async () => wgPid(h4) !== undefined && (await wg(h4, ['show', 'flannel-wg']).then(() => true, () => false)), { timeoutMs: 10_000, what: 'wireguard-go on h4' });
    const taken = new Set([...(await lab.leases()).values()].map((l) => l.subnet));
    const third = [200, 201, 202, 203].find((t) => !taken.has(`10.${lab.thirdOctet}.${t}.0/24`))!;
    const subnet = `10.${lab.thirdOctet}.${third}.0/24`;
    const peerArgs = [1, 2, 3].flatMap((m) => {
      const l = leases.get(`192.0.2.${m}`)!;
      return ['peer', key(l), 'preshared-key', join(dir, 'psk'), 'endpoint', `${l.publicIP}:${PORT}`, 'allowed-ips', l.subnet];
    });
    await wg(h4, ['set', 'flannel-wg', 'private-key', join(dir, 'key'), 'listen-port', String(PORT), ...peerArgs]);
    await h4.execOk('ip', ['addr', 'add', `10.${lab.thirdOctet}.${third}.0/32`, 'dev', 'flannel-wg']);
    await h4.execOk('ip', ['link', 'set', 'flannel-wg', 'mtu', '1420', 'up']);
    await h4.execOk('ip', ['route', 'add', lab.network, 'dev', 'flannel-wg']);
    const grant = (await lab.etcd.etcdctl(['lease', 'grant', '600'])).stdout;
    const id = /lease ([0-9a-f]+) granted/.exec(grant)![1];
    const value = `{"PublicIP":"192.0.2.4","PublicIPv6":null,"BackendType":"wireguard","BackendData":{"PublicKey":"${pub4}"}}`;
    await lab.etcd.etcdctl(['put', `--lease=${id}`, `${lab.prefix}/subnets/10.${lab.thirdOctet}.${third}.0-24`, value]);
    for (const n of [1, 2, 3]) await peersOf(n, [1, 2, 3].filter((m) => m !== n), [`${pub4} 192.0.2.4:${PORT} ${subnet} true`]);
    await waitFor(async () => (await h4.exec('ping', ['-c', '1', '-W', '1', ipOf(1)], { timeoutMs: 5000 })).code === 0, { timeoutMs: 20_000, what: 'ping flanneld-style h4 → c1' });
    await waitFor(() => lab.ping(c(3), `10.${lab.thirdOctet}.${third}.0`), { timeoutMs: 20_000, what: 'ping c3 → h4 over wireguard' });
    await lab.etcd.etcdctl(['del', `${lab.prefix}/subnets/10.${lab.thirdOctet}.${third}.0-24`]);
    for (const n of [1, 2, 3]) await peersOf(n, [1, 2, 3].filter((m) => m !== n));
    rmSync(dir, { recursive: true, force: true });
  });

  it('a restart keeps the key (file 0600, the private key never logged) and the peers need no change', async () => {
    const before1 = key(leases.get('192.0.2.1')!);
    const keyFile = join(stateDir(1), 'wireguard.key');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const priv = readFileSync(keyFile, 'utf8').trim();
    const logs1 = lab.daemons.get(1)!.logs();
    await lab.stopDaemon(1);
    start(1);
    await waitFor(async () => (await dump(lab.host(1)).catch(() => null))?.publicKey === before1, { timeoutMs: 30_000, what: `host 1 back with the same public key; log:\n${lab.logs(1)}` });
    const after = await lab.waitForLeases(ips);
    assert.equal(key(after.get('192.0.2.1')!), before1);
    assert.equal(after.get('192.0.2.1')!.subnet, leases.get('192.0.2.1')!.subnet, 'the lease is found again by PublicIP (restart within LEASE_TTL)');
    leases = after;
    await peersOf(1, [2, 3]);
    await waitFor(() => lab.ping(c(2), ipOf(1)), { timeoutMs: 20_000, what: 'ping c2 → c1 after host 1 restarted' });
    for (const l of [logs1, lab.daemons.get(1)!.logs()]) assert.ok(!l.includes(priv), 'the private key is never in the log');
    assert.match(lab.daemons.get(1)!.logs(), /wireguard key pair loaded from the state dir/);
  });

  it('a host whose lease goes is removed from the others\' peers', async () => {
    await lab.stopDaemon(3);
    await waitFor(async () => !(await lab.leases()).has('192.0.2.3'), { timeoutMs: 45_000, what: 'lease of h3 expires' });
    await peersOf(1, [2]);
    await peersOf(2, [1]);
  });
});
