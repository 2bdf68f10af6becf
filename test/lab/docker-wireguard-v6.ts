/**
 * docker-wireguard-parity.test.ts's last case, apart (as docker-ipv6-fastpath.ts is from its lab):
 * Docker `--ipv6` containers over a dual-stack wireguard overlay (issue 21/22, Mode "separate").
 * The lab gave h1/h2 `<lan6>::1/2` on eth0 and an ip6 FORWARD policy DROP before the plugins
 * started; this writes a named overlay `six` (Network, IPv6Network, its own ListenPort and
 * ListenPortV6), makes a `--ipv6` network on it and a container on each host, then checks: each
 * container's GlobalIPv6Address is in its host's v6 lease; each host's fw6-six has the other as its
 * one peer (`[<lan6>::n]:ListenPortV6`, allowed IPs = its v6 subnet) and routes the other container
 * via fw6-six; v6 leaving the overlay is masqueraded and let through the DROP policy (a v6 host
 * `<lan6>::fe` on the LAN bridge, with no route to the overlay, answers each container and sees its
 * host's v6 address: this is what needs flannel's ip6 FORWARD accepts and ip6 masquerade, where
 * container ↔ container across hosts already passed the isolation block's intra accept); ping6 both
 * ways with a one-byte payload pattern passes (the ip6 FORWARD accepts of IPv6Network count at least
 * the packets forwarded), flannel's ip6 masquerade rules are there, and a capture on the LAN bridge
 * meanwhile holds only UDP between the hosts' ListenPortV6 (and the underlay's own neighbour
 * discovery), no ICMPv6 echo and no payload pattern.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import type { DockerHost } from '../helpers/docker-lab';
import type { EtcdServer } from '../helpers/etcd-server';
import type { Host, Ns } from '../helpers/netns-lab';
import { waitFor } from '../helpers/wait';
import * as L from './docker-plugin-lab';
import { inCidr6, v6 } from './docker-ipv6-names';
import { packetsOf, uapiGet } from './wireguard-lab';

export interface WireguardV6Lab {
  etcd: EtcdServer;
  h1: Host;
  h2: Host;
  d1: DockerHost;
  d2: DockerHost;
  lan: Ns;
  /** The default overlay's prefix: `six` lives under `<prefix>-six`. */
  prefix: string;
  /** `2001:db8:x:y`: h1 is `<lan6>::1`, h2 `<lan6>::2` (eth0). */
  lan6: string;
  /** A folder with cgi-bin/peer (prints $REMOTE_ADDR), served by busybox httpd from the LAN namespace. */
  www: string;
  /** IPv4 Networks already in use in the lab (six's is picked apart from them). */
  taken: string[];
  tag: string;
  /** The lab's `docker network create` on h1, waiting for h2's replica. */
  create: (args: string[], net: string) => Promise<void>;
  diagnostic: (m: string) => void;
}

const PINGS = 5;
const hex = (): string => randomInt(1, 0xffff).toString(16);
const esc = (s: string): string => s.replace(/[.:]/g, (c) => `\\${c}`);

export async function checkWireguardV6(x: WireguardV6Lab): Promise<void> {
  const { etcd, h1, h2, d1, d2, lan6 } = x;
  let network = L.randomOverlay().network;
  while (x.taken.includes(network)) network = L.randomOverlay().network;
  const n6 = `fd${randomInt(0, 255).toString(16).padStart(2, '0')}:${hex()}:${hex()}::/48`;
  const port = randomInt(52_100, 52_400), port6 = port + 400;
  const tunnel = new RegExp(`^\\S+ IP6 ${esc(lan6)}::[12]\\.(\\d+) > ${esc(lan6)}::[12]\\.(\\d+): UDP`);
  const isTunnel = (header: string): boolean => tunnel.exec(header)?.slice(1).every((v) => Number(v) === port6) ?? false;
  const prefix = `${x.prefix}-six`;
  await etcd.etcdctl(['put', `${prefix}/config`, JSON.stringify({ Network: network, EnableIPv6: true, IPv6Network: n6, Backend: { Type: 'wireguard', ListenPort: port, ListenPortV6: port6 } })]);
  const NET = `wg6-${x.tag}`, S1 = `s1-${x.tag}`, S2 = `s2-${x.tag}`;
  await x.create(['--ipv6', '--ipam-opt', 'network=six'], NET);
  await Promise.all([L.runBox(d1, S1, NET), L.runBox(d2, S2, NET)]);
  // public IP → v6 lease, from the dual-stack lease keys (`…/subnets/10.x.y.0-24&fd..::-64`)
  const lines = (await etcd.etcdctl(['get', '--prefix', `${prefix}/subnets/`])).stdout.split('\n').filter(Boolean);
  const held6 = new Map<string, string>();
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const m = /&([0-9a-f:]+)-(\d+)$/.exec(lines[i]!);
    if (m) held6.set((JSON.parse(lines[i + 1]!) as { PublicIP: string }).PublicIP, `${m[1]}/${m[2]}`);
  }
  const ip6: Record<string, string> = {};
  for (const [d, h, c] of [[d1, h1, S1], [d2, h2, S2]] as const) {
    ip6[c] = (await d.dockerOk(['inspect', '-f', `{{with index .NetworkSettings.Networks "${NET}"}}{{.GlobalIPv6Address}}{{end}}`, c])).stdout.trim();
    assert.ok(held6.get(h.ip) && inCidr6(ip6[c]!, held6.get(h.ip)!), `${c}: GlobalIPv6Address "${ip6[c]}" in ${h.ip}'s v6 lease of six (${JSON.stringify([...held6])})`);
  }
  x.diagnostic(`six: ${network} + ${n6}, ListenPort ${port}, ListenPortV6 ${port6}; ${S1} ${ip6[S1]}, ${S2} ${ip6[S2]}`);
  for (const [h, n, other, c] of [[h1, 1, h2, S2], [h2, 2, h1, S1]] as const) {
    const dev = await waitFor(async () => {
      const u = await uapiGet(h, 'fw6-six').catch(() => null);
      return u?.peers.length === 1 ? u : undefined;
    }, { timeoutMs: 20_000, what: `${h.ns}'s fw6-six with its one peer` });
    assert.deepEqual([dev.listenPort, dev.peers.map((p) => [p.endpoint, [...p.allowedIPs]])], [port6, [[`[${lan6}::${3 - n}]:${port6}`, [held6.get(other.ip)]]]]);
    const [route] = await h.execJson<{ dev: string }[]>(['-6', 'route', 'get', ip6[c]!]);
    assert.equal(route?.dev, 'fw6-six', `${h.ns} routes ${c}'s ${ip6[c]} via fw6-six`);
  }
  // v6 leaving the overlay: answered by a LAN host only if masqueraded (it has no route to n6) and let through FORWARD
  const lanHost6 = `${lan6}::fe`;
  await x.lan.execOk('ip', ['-6', 'addr', 'add', `${lanHost6}/64`, 'dev', 'br0', 'nodad']);
  x.lan.spawnDaemon('/bin/busybox', ['httpd', '-f', '-p', '[::]:8080', '-h', x.www]);
  for (const [d, c, n] of [[d1, S1, 1], [d2, S2, 2]] as const) {
    const seen = await waitFor(async () => (await L.peerSeen(d, c, lanHost6)) || undefined, { timeoutMs: 20_000, what: `${c} → ${lanHost6} (ip6 FORWARD accepts and masquerade)` });
    assert.equal(v6(seen), v6(`${lan6}::${n}`), `the LAN host saw ${c} as ${seen}, not as its host's v6 address`);
  }
  const accepted = async (h: Host): Promise<number> =>
    (await h.execOk('ip6tables', ['-v', '-S', 'FORWARD'])).stdout.split('\n').filter((l) => l.includes(n6) && l.endsWith('-j ACCEPT')).reduce((s, l) => s + Number(/ -c (\d+) \d+/.exec(l)?.[1] ?? 0), 0);
  // a first ping6 each way until answered (peers and routes settle), then the counted ones under capture
  for (const [d, from, to] of [[d1, S1, S2], [d2, S2, S1]] as const) {
    await waitFor(async () => (await d.docker(['exec', from, 'ping6', '-c', '1', '-W', '2', ip6[to]!], { timeoutMs: 10_000 })).code === 0, { timeoutMs: 20_000, what: `ping6 ${from} → ${to} over fw6-six` });
  }
  const before = [await accepted(h1), await accepted(h2)];
  const byte = randomInt(0x11, 0xef).toString(16);
  const cap = x.lan.spawnDaemon('tcpdump', ['-i', 'br0', '-n', '-l', '-x', 'ip6']);
  try {
    await waitFor(async () => /listening on br0/.test(cap.logs()), { timeoutMs: 10_000, what: 'tcpdump started' });
    for (const [d, from, to] of [[d1, S1, S2], [d2, S2, S1]] as const) {
      const r = await d.docker(['exec', from, 'ping6', '-c', String(PINGS), '-i', '0.2', '-W', '2', '-p', byte, ip6[to]!], { timeoutMs: 20_000 });
      assert.equal(r.code, 0, `ping6 -c ${PINGS} ${from} → ${to}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, new RegExp(`${PINGS} packets received`));
    }
    // all the tunnel's datagrams, not just as many packets (the LAN's NDP/MLD are captured too)
    await waitFor(async () => packetsOf(cap.logs()).filter((p) => isTunnel(p.header)).length >= 4 * PINGS, { timeoutMs: 10_000, what: `the capture holds the datagrams:\n${cap.logs().slice(-2000)}` });
  } finally {
    cap.kill('SIGINT');
    await cap.exited;
  }
  // each host forwards PINGS requests and PINGS replies per direction, all through the accepts (policy DROP)
  const grown: number[] = [];
  for (const [i, h] of [h1, h2].entries()) {
    assert.match((await h.execOk('ip6tables', ['-S', 'FORWARD'])).stdout, /^-P FORWARD DROP$/m, `${h.ns}: ip6 FORWARD policy DROP`);
    const grew = (await accepted(h)) - before[i]!;
    grown.push(grew);
    assert.ok(grew >= 4 * PINGS, `${h.ns}: the ip6 FORWARD accepts of ${n6} counted ${grew} packets, want ≥ ${4 * PINGS}`);
    const masq = (await h.execOk('ip6tables', ['-t', 'nat', '-S', 'POSTROUTING'])).stdout.split('\n').filter((l) => l.includes(L.masqMark(n6)));
    assert.deepEqual(masq, L.flannelMasqRules(held6.get(h.ip)!, n6).map((l) => l.replace('224.0.0.0/4', 'ff00::/8')), `${h.ns}: flannel's ip6 masquerade rules`);
  }
  const packets = packetsOf(cap.logs());
  // the LAN's own neighbour discovery and MLD, from the hosts' underlay or link-local addresses
  const underlay = new RegExp(`^\\S+ IP6 (${esc(lan6)}::(1|2|fe)|fe80::[0-9a-f:]+|::) > \\S+: (HBH )?ICMP6, (neighbor (solicitation|advertisement)|multicast listener|router solicitation)`);
  const udp = packets.filter((p) => isTunnel(p.header));
  const other = packets.filter((p) => !udp.includes(p) && !underlay.test(p.header));
  assert.deepEqual(other.map((p) => p.header), [], `only UDP between the hosts' ListenPortV6 ${port6} on the LAN`);
  assert.ok(udp.length >= 4 * PINGS, `WireGuard datagrams on ${port6}: ${udp.length}`);
  x.diagnostic(`ip6 FORWARD accepts of ${n6} grew by ${grown.join(' / ')} packets (h1 / h2) for ${4 * PINGS} forwarded each; LAN capture: ${packets.length} IPv6 packets, ${udp.length} UDP ${port6}↔${port6}, ${packets.length - udp.length} underlay NDP/MLD`);
  assert.ok(!packets.some((p) => /ICMP6, echo/.test(p.header)), 'no ICMPv6 echo in clear');
  assert.ok(!packets.some((p) => p.hex.includes(byte.repeat(16))), `the ping payload (0x${byte} × 56) never appears on the wire`);
}
