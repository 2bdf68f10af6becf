/**
 * Scenario 10 of docker-ipv6.test.ts, names across hosts on a `--ipv6` network: from h1, AAAA of an
 * h2 container answers its v6 address (busybox nslookup, and the exact answer asked of Docker's
 * embedded DNS with ASK_PY), ping6 by name uses it, a v4-only network's container gets an empty
 * NOERROR AAAA, none of these reach the fake upstream in the LAN namespace, and a name of the
 * other network is the upstream's (NXDOMAIN). Also the lab's v6 address helpers (v6, inCidr6),
 * independent of src/domain. Kept apart to hold the lab file under 400 lines.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import type { DockerHost } from '../helpers/docker-lab';
import type { EtcdServer } from '../helpers/etcd-server';
import type { Host, Lab } from '../helpers/netns-lab';
import { waitFor } from '../helpers/wait';
import { startFakeUpstream } from './fake-upstream-dns';
import * as L from './docker-plugin-lab';

const MAIN = join(resolve(__dirname, '../..'), 'dist/main.js');
const DRIVER = 'overlay-flannel:latest';

/** The v6 address as bigint (independent of src/domain), for containment checks. */
export function v6(ip: string): bigint {
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g, 16)), 0n);
}
export function inCidr6(ip: string, cidr: string): boolean {
  const [base = '', len = '128'] = cidr.split('/');
  const shift = BigInt(128 - Number(len));
  return v6(ip) >> shift === v6(base) >> shift;
}

/**
 * python3 run in a container's network namespace (nsenter from the host): ask Docker's embedded
 * DNS (127.0.0.11) for NAME with QTYPE (1 = A, 28 = AAAA) over UDP and print the answer's rcode
 * and addresses (busybox nslookup prints NODATA and NXDOMAIN alike as "can't find").
 */
const ASK_PY = String.raw`
import socket, struct, sys, json
name, qtype = sys.argv[1], int(sys.argv[2])
q = struct.pack('!HHHHHH', 0x4343, 0x0100, 1, 0, 0, 0) + b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\0' + struct.pack('!HH', qtype, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5); u.sendto(q, ('127.0.0.11', 53))
m = u.recv(4096); an = struct.unpack('!H', m[6:8])[0]; p = 12
while m[p]: p += 1 + m[p]
def skip(p):
    while not m[p] & 0xc0 and m[p]: p += 1 + m[p]
    return p + (2 if m[p] & 0xc0 else 1)
p += 5; ips = []
for _ in range(an):
    p = skip(p)
    t, c, ttl, n = struct.unpack('!HHIH', m[p:p + 10]); p += 10
    if t == 1: ips.append(socket.inet_ntop(socket.AF_INET, m[p:p + 4]))
    if t == 28: ips.append(socket.inet_ntop(socket.AF_INET6, m[p:p + 16]))
    p += n
print(json.dumps({'rcode': m[3] & 15, 'addresses': ips}))
`;

export interface V6NamesLab {
  lab: Lab;
  etcd: EtcdServer;
  ov: { prefix: string; network: string; vni: number };
  /** IPv6Network's /48 prefix (`fd..:..:..`). */
  net6: string;
  h1: Host;
  d1: DockerHost;
  d2: DockerHost;
  dockerLog: (d: DockerHost) => string;
  diagnostic: (m: string) => void;
}

export async function checkV6Names({ lab, etcd, ov, net6, h1, d1, d2, dockerLog, diagnostic }: V6NamesLab): Promise<void> {
  const tag = randomBytes(3).toString('hex');
  const N6 = `n6-${tag}`, N4 = `n4-${tag}`, S6 = `s6-${tag}`, S4 = `s4-${tag}`, Q6 = `q6-${tag}`, Q4 = `q4-${tag}`;
  const upstream = await startFakeUpstream(await lab!.lan(), {});
  await d1.dockerOk(['network', 'create', '--ipv6', '-d', DRIVER, '--ipam-driver', DRIVER, N6], { timeoutMs: 60_000 });
  // one Docker network per overlay and host: the v4-only network gets a named v4-only overlay of its own
  let ov4 = L.randomOverlay();
  while (ov4.network === ov.network || ov4.vni === ov.vni) ov4 = L.randomOverlay();
  const env = { ...process.env, ETCD_ENDPOINTS: etcd!.endpoint, ETCD_PREFIX: ov.prefix };
  await h1.execOk('node', [MAIN, 'config', 'set', '--name', `v4${tag}`, '--network', ov4.network, '--vni', String(ov4.vni)], { env, timeoutMs: 20_000 });
  await d1.dockerOk(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '--ipam-opt', `network=v4${tag}`, N4], { timeoutMs: 60_000 });
  for (const n of [N6, N4]) await waitFor(async () => (await d2.docker(['network', 'inspect', n])).code === 0, { timeoutMs: 20_000, intervalMs: 200, what: `${n} on h2` });
  // the clients' Docker forwards what it does not know to the lab's fake upstream (their own --dns; the daemons have none)
  const client = (name: string, net: string) => d1.dockerOk(['run', '-d', '--init', '--name', name, '--network', net, '--dns', '192.0.2.254', 'ofbox:1', 'sleep', '3600'], { timeoutMs: 120_000 });
  await Promise.all([L.runBox(d2, S6, N6), L.runBox(d2, S4, N4), client(Q6, N6), client(Q4, N4)]);
  const f = (net: string) => `{{with index .NetworkSettings.Networks "${net}"}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}`;
  const [s6ip = '', s6ip6 = ''] = (await d2.dockerOk(['inspect', '-f', f(N6), S6])).stdout.trim().split(' ');
  const [s4ip = '', s4ip6 = ''] = (await d2.dockerOk(['inspect', '-f', f(N4), S4])).stdout.trim().split(' ');
  assert.ok(s6ip6 && inCidr6(s6ip6, `${net6}::/48`), `${S6} has a v6 address: "${s6ip6}"`);
  assert.equal(s4ip6, '', `${S4} on a v4-only network has no v6 address`);
  diagnostic(`${S6} ${s6ip} ${s6ip6}; ${S4} ${s4ip}`);
  const ask = async (c: string, name: string, qtype: 1 | 28) => {
    const pid = (await d1.dockerOk(['inspect', '-f', '{{.State.Pid}}', c])).stdout.trim();
    const out = (await h1.execOk('nsenter', [`--net=/proc/${pid}/ns/net`, 'python3', '-c', ASK_PY, name, String(qtype)], { timeoutMs: 30_000 })).stdout;
    return JSON.parse(out) as { rcode: number; addresses: string[] };
  };
  // the records reach h1 through etcd within a few seconds (A queries until then may go to the upstream)
  await waitFor(async () => (await ask(Q6, S6, 1)).addresses.includes(s6ip), { timeoutMs: 30_000, intervalMs: 300, what: `A ${S6} from ${Q6} on h1\n${dockerLog(d1)}` });
  await waitFor(async () => (await ask(Q4, S4, 1)).addresses.includes(s4ip), { timeoutMs: 30_000, intervalMs: 300, what: `A ${S4} from ${Q4} on h1` });
  const mark = upstream.queries().length;
  // busybox nslookup, as a user would
  const r = await d1.docker(['exec', Q6, 'nslookup', '-type=AAAA', S6], { timeoutMs: 20_000 });
  const shownBy = [...r.stdout.split(/^Name:/m).slice(1).join('\n').matchAll(/^Address:\s*([0-9a-f:]+)\s*$/gim)].map((m) => m[1]!);
  assert.deepEqual(shownBy.map((a) => v6(a)), [v6(s6ip6)], `nslookup -type=AAAA ${S6}: ${r.stdout}${r.stderr}`);
  // the exact answers: AAAA and A of the dual-stack container; A and an empty NOERROR AAAA (not NXDOMAIN) of the v4-only one
  const aaaa = await ask(Q6, S6, 28);
  assert.deepEqual({ rcode: aaaa.rcode, addresses: aaaa.addresses.map((a) => v6(a)) }, { rcode: 0, addresses: [v6(s6ip6)] }, JSON.stringify(aaaa));
  assert.deepEqual(await ask(Q6, S6, 1), { rcode: 0, addresses: [s6ip] });
  assert.deepEqual(await ask(Q4, S4, 28), { rcode: 0, addresses: [] }, 'a v4-only container: AAAA is NODATA (NOERROR, no answer)');
  // ping6 by name goes to the v6 address across hosts
  const p6 = await d1.docker(['exec', Q6, 'ping6', '-c', '1', '-W', '5', S6], { timeoutMs: 30_000 });
  assert.equal(p6.code, 0, `ping6 ${S6}: ${p6.stdout}${p6.stderr}`);
  const pinged = /PING \S+ \(([0-9a-f:]+)\)/i.exec(p6.stdout)?.[1] ?? '';
  assert.equal(pinged && v6(pinged), v6(s6ip6), `ping6 used ${S6}'s v6 address: ${p6.stdout}`);
  // all of that was answered on h1 on the way out: the upstream saw none of it
  const names = new Set([S6, S4].map((n) => n.toLowerCase()));
  const leaked = upstream.queries().slice(mark).filter((q) => names.has(q.name));
  assert.deepEqual(leaked, [], 'the upstream saw no query for the overlay names');
  // isolation: the v4-only network's name asked from the --ipv6 network is not ours to answer: the upstream's NXDOMAIN
  assert.equal((await ask(Q6, S4, 28)).rcode, 3, `AAAA ${S4} from ${N6}`);
  assert.ok(upstream.queries().slice(mark).some((q) => q.name === S4.toLowerCase() && q.qtype === 28), 'that one reached the upstream');
  for (const c of [Q6, Q4]) await d1.dockerOk(['rm', '-f', c], { timeoutMs: 60_000 });
  for (const c of [S6, S4]) await d2.dockerOk(['rm', '-f', c], { timeoutMs: 60_000 });
  for (const n of [N6, N4]) await d1.dockerOk(['network', 'rm', n]);
}
