/**
 * Step 3c of docker-ipv6.test.ts (issue 21's proof: "a host programmed as flanneld's v6 device
 * reaching a container"): a third host h3 on the LAN is set up by hand as flanneld's dual-stack
 * vxlan backend would set it up: its lease in flanneld's bytes (dual-stack key, PublicIPv6,
 * BackendData and BackendV6Data with a random VtepMAC each), `flannel-v6.<VNI>` local its v6
 * address with its v6 subnet address /128, and the three per-peer entries toward h1 (neighbour,
 * FDB, route onlink). The plugins program h3 as a peer; then h3 pings c1 (on h1) from its subnet
 * address and c1 pings h3's, with h1's ip6 FORWARD policy DROP. Deleting h3's lease removes h1's
 * v6 route to it. Kept apart to hold the lab file under 400 lines.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { DockerHost } from '../helpers/docker-lab';
import type { EtcdServer } from '../helpers/etcd-server';
import type { Host, Lab } from '../helpers/netns-lab';
import { waitFor } from '../helpers/wait';

export interface FlanneldV6Lab {
  lab: Lab;
  etcd: EtcdServer;
  prefix: string;
  vni: number;
  /** the overlay's v4 Network (a /16) and IPv6Network's /48 prefix (`fd..:..:..`, no `::/48`). */
  network: string;
  net6: string;
  lan6: string;
  h1: Host;
  d1: DockerHost;
  /** c1 (on h1): its GlobalIPv6Address. */
  c1ip6: string;
  ping6Ok: (d: DockerHost, from: string, ip: string) => Promise<unknown>;
}

interface LeaseRow {
  key: string;
  value: { PublicIP?: string; PublicIPv6?: string; BackendV6Data?: { VtepMAC?: string } };
}

async function leaseRows(etcd: EtcdServer, prefix: string): Promise<LeaseRow[]> {
  const lines = (await etcd.etcdctl(['get', '--prefix', `${prefix}/subnets/`])).stdout.split('\n').filter(Boolean);
  const out: LeaseRow[] = [];
  for (let i = 0; i + 1 < lines.length; i += 2) out.push({ key: lines[i]!, value: JSON.parse(lines[i + 1]!) as LeaseRow['value'] });
  return out;
}

const mac = (): string => `0a:58:${randomBytes(4).toString('hex').match(/../g)!.join(':')}`;

export async function checkFlanneldV6Peer(x: FlanneldV6Lab): Promise<void> {
  const rows = await leaseRows(x.etcd, x.prefix);
  const mine = rows.find((r) => r.value.PublicIP === x.h1.ip);
  const m1 = mine && /\/subnets\/([0-9.]+)-24&([0-9a-f:]+)-64$/.exec(mine.key);
  assert.ok(mine && m1 && mine.value.PublicIPv6 && mine.value.BackendV6Data?.VtepMAC, `h1's dual-stack lease: ${JSON.stringify(mine)}`);
  const [h1v6, h1mac6, h1sub6] = [mine.value.PublicIPv6, mine.value.BackendV6Data.VtepMAC, m1[2]!];
  // h3's subnets: ones no lease holds (v4 third octet and v6 subnet id from the top down).
  const base = x.network.split('.').slice(0, 2).join('.');
  const held = rows.map((r) => r.key);
  const k = Array.from({ length: 200 }, (_, i) => 250 - i).find((n) => !held.some((key) => key.includes(`/${base}.${n}.0-24`) || key.includes(`&${x.net6}:${n.toString(16)}::-64`)))!;
  const [sub4, sub6] = [`${base}.${k}.0`, `${x.net6}:${k.toString(16)}::`];
  const h3 = await x.lab.addHost(3);
  const h3v6 = `${x.lan6}::3`;
  const dev6 = `flannel-v6.${x.vni}`;
  const [mac4, mac6] = [mac(), mac()];
  const sh = (...a: string[]) => h3.execOk(a[0]!, a.slice(1), { timeoutMs: 10_000 });
  await sh('ip', '-6', 'addr', 'add', `${h3v6}/64`, 'dev', 'eth0', 'nodad');
  const id = /lease ([0-9a-f]+) granted/.exec((await x.etcd.etcdctl(['lease', 'grant', '600'])).stdout)![1]!;
  const key = `${x.prefix}/subnets/${sub4}-24&${sub6}-64`;
  await x.etcd.etcdctl(['put', `--lease=${id}`, key,
    `{"PublicIP":"${h3.ip}","PublicIPv6":"${h3v6}","BackendType":"vxlan","BackendData":{"VNI":${x.vni},"VtepMAC":"${mac4}"},"BackendV6Data":{"VNI":${x.vni},"VtepMAC":"${mac6}"}}`]);
  // flanneld's v6 device and its entries toward h1 (pkg/backend/vxlan, as docs/ipv6.md §1–§2 list them).
  await sh('ip', 'link', 'add', dev6, 'address', mac6, 'mtu', '1430', 'type', 'vxlan', 'id', String(x.vni), 'local', h3v6, 'dev', 'eth0', 'dstport', '8472', 'nolearning');
  await sh('ip', '-6', 'addr', 'add', `${sub6}/128`, 'dev', dev6, 'nodad');
  await sh('ip', 'link', 'set', dev6, 'up');
  await sh('ip', '-6', 'neigh', 'replace', h1sub6, 'lladdr', h1mac6, 'dev', dev6, 'nud', 'permanent');
  await sh('bridge', 'fdb', 'append', h1mac6, 'dev', dev6, 'dst', h1v6);
  await sh('ip', '-6', 'route', 'replace', `${h1sub6}/64`, 'via', h1sub6, 'dev', dev6, 'onlink');
  const routeOnH1 = async (): Promise<boolean> =>
    (await x.h1.execJson<{ dst: string; gateway?: string }[]>(['-6', 'route', 'show', 'dev', dev6])).some((r) => r.dst === `${sub6}/64` && r.gateway === sub6);
  await waitFor(routeOnH1, { timeoutMs: 15_000, what: `h1's v6 route to the flanneld host's ${sub6}/64` });
  // h3 → c1 from its subnet address, and c1 → h3's subnet address (h1: ip6 FORWARD policy DROP).
  await waitFor(async () => (await h3.exec('ping', ['-6', '-c', '1', '-W', '1', '-I', sub6, x.c1ip6], { timeoutMs: 5_000 })).code === 0, { timeoutMs: 20_000, intervalMs: 300, what: `flanneld host ${sub6} → c1 ${x.c1ip6}` });
  await x.ping6Ok(x.d1, 'c1', sub6);
  const [s] = await h3.execJson<{ stats64: { rx: { packets: number } } }[]>(['-s', 'link', 'show', dev6]);
  assert.ok(s!.stats64.rx.packets > 0, `h3's ${dev6} received the replies: ${JSON.stringify(s!.stats64)}`);
  await x.etcd.etcdctl(['del', key]);
  await waitFor(async () => !(await routeOnH1()), { timeoutMs: 15_000, what: `h1 removes its route to ${sub6}/64 with the lease` });
}
