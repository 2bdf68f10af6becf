/**
 * Issue 22, the wireguard backend on the userspace path (wireguard-go: this kernel has no
 * WireGuard): three real daemons in lab host namespaces, real etcd, a config with a PSK.
 * Checked: leases byte for byte as flanneld writes them; each host's flannel-wg (read with `wg show
 * dump` through its wireguard-go's own mount namespace) has one peer per remote lease with the PSK;
 * containers ping across hosts; a capture on the LAN bridge shows only UDP between the hosts' listen
 * ports, never ICMP or the ping's payload pattern; a host set up by hand as flanneld's wireguard
 * backend (wireguard-go + `wg set`, its lease written with etcdctl) is a peer both ways; a restart
 * keeps the public key (key file 0600, the private key never in the log); a host whose lease goes
 * disappears from the others' peers; last, a dual-stack config (v6 underlay 2001:db8::/64, Mode
 * "separate"): flannel-wg-v6 with one v6 peer per remote lease, listed in /api/v1/kernel beside
 * flannel-wg (name, implementation, port, its peer; no key), and ping6 across it.
 * Needs root, wireguard-go, wireguard-tools, tcpdump, etcd, chromium and `npm run build`; fails (never skips).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OverlayLab, LeaseView, MAIN } from './overlay-lab';
import type { DaemonHandle, Host } from '../helpers/netns-lab';
import { dump, packetsOf, uapiGet, wg, wgPid } from './wireguard-lab';
import { run } from '../helpers/run';
import { waitFor } from '../helpers/wait';
import { launchBrowserIn } from './status-browser';

const missing = ['/usr/bin/wireguard-go', '/usr/bin/wg', '/usr/bin/tcpdump', MAIN].filter((f) => !existsSync(f));
if (process.getuid?.() !== 0) throw new Error('the wireguard lab needs root');
if (missing.length) throw new Error(`the wireguard lab needs ${missing.join(', ')} (apt-get install wireguard-go wireguard-tools tcpdump; npm run build)`);

const PORT = 51820;
const STATUS_PORT = 9890;

const KEY_RE = /^[A-Za-z0-9+/]{43}=$/;

describe('three hosts on the wireguard backend (userspace wireguard-go), real daemons', { timeout: 600_000 }, () => {
  let lab: OverlayLab;
  let leases: Map<string, LeaseView>;
  const ips = ['192.0.2.1', '192.0.2.2', '192.0.2.3'];
  const psk = randomBytes(32).toString('base64');
  const key = (l: LeaseView) => (JSON.parse(l.raw) as { BackendData: { PublicKey: string } }).BackendData.PublicKey;
  const stateDir = (n: number) => `/tmp/of-wg-${lab.lab.runId}-h${n}`;
  const start = (n: number): DaemonHandle => lab.startDaemon(n, { LEASE_TTL: '20', STATE_DIR: stateDir(n), WIREGUARD_PRIVATE_SOCKET: '1', ...(n === 2 ? { STATUS_ADDR: `192.0.2.2:${STATUS_PORT}` } : {}) });
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
    // and the status API of host 2 says it too
    const kv = await waitFor(
      async () => {
        const r = await lab.host(2).exec('curl', ['-sf', `http://192.0.2.2:${STATUS_PORT}/api/v1/kernel`], { timeoutMs: 5000 });
        const o = r.code === 0 ? (JSON.parse(r.stdout) as { overlays: { device: string; wireguard: { implementation: string; reason: string; publicKey: string } | null }[] }).overlays[0] : undefined;
        return o?.wireguard?.implementation === 'userspace' ? o : undefined;
      },
      { timeoutMs: 20_000, what: 'host 2 status API shows the WireGuard implementation' },
    );
    assert.equal(kv.device, 'flannel-wg');
    assert.match(kv.wireguard!.reason, /no wireguard link kind: using wireguard-go/);
    assert.equal(kv.wireguard!.publicKey, key(leases.get('192.0.2.2')!));
  });

  it('flannel-wg as flanneld: the subnet address /32, MTU 1420; one peer per remote lease with the PSK and a route for its subnet', async () => {
    for (const n of [1, 2, 3]) {
      const h = lab.host(n);
      const sub = leases.get(`192.0.2.${n}`)!.subnet.split('/')[0];
      const addrs = await h.execJson<{ addr_info: { family: string; local: string; prefixlen: number }[]; mtu: number }[]>(['addr', 'show', 'dev', 'flannel-wg']);
      assert.deepEqual(addrs[0].addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`), [`${sub}/32`]);
      assert.equal(addrs[0].mtu, 1420);
      const routes = await h.execJson<{ dst: string; dev: string }[]>(['route', 'show', 'dev', 'flannel-wg']);
      const others = [1, 2, 3].filter((m) => m !== n).map((m) => leases.get(`192.0.2.${m}`)!.subnet);
      assert.deepEqual(routes.map((r) => r.dst).sort(), others.sort());
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

  it('measured: throughput, RTT and wireguard-go CPU through the overlay, beside the bare underlay (same run)', async (t) => {
    const cpu = (n: number) => {
      const f = readFileSync(`/proc/${wgPid(lab.host(n))}/stat`, 'utf8').split(') ')[1].split(' ');
      return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, clock ticks (100 Hz)
    };
    const iperf = async (server: Awaited<ReturnType<OverlayLab['attachContainer']>>['ns'] | Host, client: typeof server, ip: string) => {
      const s = server.spawnDaemon('iperf3', ['-s', '-1', '-B', ip]);
      try {
        // the server's "listening" line is buffered in a pipe: retry the client until a run reports a
        // received rate (a client that reached the server before it listened, or a run that ended early,
        // can exit 0 with no `end.sum_received`: CI saw one)
        return await waitFor(
          async () => {
            const x = await client.exec('iperf3', ['-c', ip, '-t', '3', '-J'], { timeoutMs: 30_000 });
            let j: { error?: string; end?: { sum_received?: { bits_per_second?: number } } };
            try {
              j = JSON.parse(x.stdout);
            } catch {
              throw new Error(`iperf3 exit ${x.code}: ${`${x.stderr}${x.stdout}`.slice(0, 300)}`);
            }
            const bps = j.end?.sum_received?.bits_per_second;
            if (x.code === 0 && typeof bps === 'number' && bps > 0) return bps;
            throw new Error(`iperf3 exit ${x.code}: ${j.error ?? x.stdout.slice(0, 300)}`); // remembered for the timeout message
          },
          { timeoutMs: 40_000, intervalMs: 300, what: `iperf3 to ${ip}` },
        );
      } finally {
        s.kill('SIGTERM');
        await s.exited;
      }
    };
    const cpu0 = cpu(1) + cpu(2);
    const wgBps = await iperf(c(2), c(1), ipOf(2));
    const cpuPerGbit = (cpu(1) + cpu(2) - cpu0) / ((wgBps / 1e9) * 3); // CPU seconds per Gbit sent = cores per Gbit/s
    const rtt = async (from: { exec: Host['exec'] }, ip: string) => Number(/= [\d.]+\/([\d.]+)\//.exec((await from.exec('ping', ['-c', '20', '-i', '0.05', ip], { timeoutMs: 20_000 })).stdout)?.[1]);
    const wgRtt = await rtt(c(1), ipOf(2));
    const bareBps = await iperf(lab.host(2), lab.host(1), '192.0.2.2');
    const bareRtt = await rtt(lab.host(1), '192.0.2.2');
    t.diagnostic(`wireguard-go c1→c2: ${(wgBps / 1e9).toFixed(2)} Gbit/s, RTT ${wgRtt} ms, wireguard-go CPU (both ends) ${cpuPerGbit.toFixed(2)} cores per Gbit/s; bare underlay h1→h2: ${(bareBps / 1e9).toFixed(2)} Gbit/s, RTT ${bareRtt} ms`);
    assert.ok(wgBps > 10e6, `throughput through wireguard ${wgBps} bit/s`);
    assert.ok(wgRtt > 0 && bareRtt > 0);
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

  it('dual-stack (Mode "separate"): flannel-wg-v6 on 51821 with the v6 subnet /128, one v6 peer per remote lease ([PublicIPv6]:51821, its v6 subnet, the PSK); ping6 across it', async (t) => {
    for (const n of [1, 2, 3]) await lab.stopDaemon(n);
    const lan6 = `2001:db8:${randomInt(1, 0xffff).toString(16)}:${randomInt(1, 0xffff).toString(16)}`;
    for (const n of [1, 2]) await lab.host(n).execOk('ip', ['-6', 'addr', 'add', `${lan6}::${n}/64`, 'dev', 'eth0', 'nodad']);
    const net6 = `fd${randomInt(0, 255).toString(16).padStart(2, '0')}:${randomInt(1, 0xffff).toString(16)}::/48`;
    await lab.etcd.etcdctl(['del', '--prefix', `${lab.prefix}/subnets/`]);
    await lab.etcd.etcdctl(['put', `${lab.prefix}/config`, JSON.stringify({ Network: lab.network, EnableIPv6: true, IPv6Network: net6, Backend: { Type: 'wireguard', PSK: psk } })]);
    for (const n of [1, 2]) lab.startDaemon(n, { LEASE_TTL: '20', STATE_DIR: stateDir(n), WIREGUARD_PRIVATE_SOCKET: '1', PUBLIC_IPV6: `${lan6}::${n}`, ...(n === 2 ? { STATUS_ADDR: `192.0.2.2:${STATUS_PORT}` } : {}) });
    // host n → its lease value and v6 subnet (the key's `&v6-len` part)
    const leases6 = await waitFor(async () => {
      const out = (await lab.etcd.etcdctl(['get', '--prefix', `${lab.prefix}/subnets/`])).stdout.trim().split('\n');
      const m = new Map<number, { raw: string; subnet6: string }>();
      for (let i = 0; i + 1 < out.length; i += 2) {
        const k = /&([0-9a-f:]+)-(\d+)$/.exec(out[i]);
        const v = JSON.parse(out[i + 1]) as { PublicIP: string };
        if (k) m.set(Number(v.PublicIP.split('.')[3]), { raw: out[i + 1], subnet6: `${k[1]}/${k[2]}` });
      }
      return m.has(1) && m.has(2) ? m : undefined;
    }, { timeoutMs: 30_000, what: `dual-stack leases of h1, h2; logs:\n${lab.logs(1)}\n${lab.logs(2)}` });
    const k6 = new Map<number, string>();
    for (const n of [1, 2]) {
      const l = leases6.get(n)!;
      const m = new RegExp(`^\\{"PublicIP":"192\\.0\\.2\\.${n}","PublicIPv6":"${lan6}::${n}","BackendType":"wireguard","BackendData":\\{"PublicKey":"([A-Za-z0-9+/]{43}=)"\\},"BackendV6Data":\\{"PublicKey":"([A-Za-z0-9+/]{43}=)"\\}\\}$`).exec(l.raw);
      assert.ok(m, `h${n}'s lease is flanneld's dual-stack wireguard lease: ${l.raw}`);
      assert.equal(m[1], m[2], 'flannel-wg-v6 has the same key as flannel-wg (flanneld: one key file)');
      k6.set(n, m[2]);
    }
    const addr6 = (n: number) => leases6.get(n)!.subnet6.split('/')[0];
    const peerList: string[] = [];
    for (const n of [1, 2]) {
      const o = 3 - n;
      const d = await waitFor(async () => {
        const got = await uapiGet(lab.host(n), 'flannel-wg-v6').catch(() => null);
        return got?.peers.length === 1 && got.peers[0].allowedIPs.length === 1 ? got : undefined;
      }, { timeoutMs: 30_000, what: `h${n}'s flannel-wg-v6 with one peer; log:\n${lab.logs(n)}` });
      assert.equal(d.listenPort, 51821);
      const p = d.peers[0];
      assert.deepEqual([p.publicKey, p.endpoint, p.allowedIPs, p.presharedKey === psk], [k6.get(o), `[${lan6}::${o}]:51821`, [leases6.get(o)!.subnet6], true]);
      peerList.push(`h${n} flannel-wg-v6 peer ${p.publicKey} endpoint ${p.endpoint} allowed ${p.allowedIPs}`);
      const addrs = await lab.host(n).execJson<{ addr_info: { family: string; local: string; prefixlen: number }[] }[]>(['addr', 'show', 'dev', 'flannel-wg-v6']);
      assert.deepEqual(addrs[0].addr_info.filter((a) => a.family === 'inet6' && !a.local.startsWith('fe80')).map((a) => `${a.local}/${a.prefixlen}`), [`${addr6(n)}/128`]);
    }
    t.diagnostic(peerList.join('\n'));
    // h2's /api/v1/kernel lists flannel-wg-v6 as it lists flannel-wg: name, implementation, port, its peer; no key in it.
    type Wg6 = { device: string; implementation: string; reason: string; listenPort: number; mtu: number; peers: { subnet: string; endpoint: string | null }[] };
    const kv = await waitFor(async () => {
      const r = await lab.host(2).exec('curl', ['-sf', `http://192.0.2.2:${STATUS_PORT}/api/v1/kernel`], { timeoutMs: 5000 });
      const o = r.code === 0 ? (JSON.parse(r.stdout) as { overlays: { device: string; wireguard: { listenPort: number } | null; wireguard6: Wg6 | null }[] }).overlays[0] : undefined;
      return o?.wireguard6?.peers.length === 1 ? o : undefined;
    }, { timeoutMs: 20_000, what: `h2's /api/v1/kernel with flannel-wg-v6 and its one peer; log:\n${lab.logs(2)}` });
    assert.deepEqual([kv.device, kv.wireguard?.listenPort], ['flannel-wg', 51820]);
    const w6 = kv.wireguard6!;
    assert.deepEqual([w6.device, w6.implementation, w6.listenPort, w6.mtu], ['flannel-wg-v6', 'userspace', 51821, 1420]);
    assert.match(w6.reason, /no wireguard link kind: using wireguard-go/);
    assert.deepEqual(w6.peers, [{ subnet: leases6.get(1)!.subnet6, endpoint: `[${lan6}::1]:51821` }]);
    for (const secret of [psk, k6.get(1)!, k6.get(2)!]) assert.ok(!JSON.stringify(w6).includes(secret), 'no key in the v6 device entry');
    const page = await lab.host(2).exec('curl', ['-sf', `http://192.0.2.2:${STATUS_PORT}/`], { timeoutMs: 5000 });
    assert.match(page.stdout, /"wireguard6":\{"device":"flannel-wg-v6","implementation":"userspace"/, "the page's inlined data carries the v6 device");
    t.diagnostic(`h2 /api/v1/kernel wireguard6: ${JSON.stringify(w6)}`);
    const nsb = await launchBrowserIn(lab.host(2), `wg6-${lab.lab.runId}`); // the page as drawn, in h2's namespace
    try {
      const tab = await nsb.browser.newPage();
      await tab.goto(`http://192.0.2.2:${STATUS_PORT}/`, { waitUntil: 'load', timeout: 30_000 });
      const line = await tab.locator('.overlay[data-overlay="default"] .kernel .wg6').innerText({ timeout: 10_000 });
      assert.equal(line, 'v6 device flannel-wg-v6 · WireGuard userspace, port 51821, 1 peer');
      assert.match(await tab.locator('.overlay[data-overlay="default"] .kernel').innerText(), /^device flannel-wg · mtu 1420 · WireGuard userspace \(.*\), port 51820, public key /);
    } finally {
      await nsb.close();
    }
    for (const [from, to] of [[1, 2], [2, 1]]) {
      await waitFor(async () => (await lab.host(from).exec('ping', ['-6', '-c', '1', '-W', '1', '-I', addr6(from), addr6(to)], { timeoutMs: 5000 })).code === 0, { timeoutMs: 20_000, what: `ping6 h${from} → h${to}'s ${addr6(to)} over flannel-wg-v6` });
    }
  });
});
