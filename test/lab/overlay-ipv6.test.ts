/**
 * Issue 21, the dual-stack vxlan data plane on the real kernel (namespaces only, no Docker): a LAN
 * with 192.0.2.0/24 and a random /64 of 2001:db8::/32, etcd on it, our daemon on host 1, and host 2
 * programmed by hand as flanneld's vxlan backend programs itself (flannel.<VNI> and flannel-v6.<VNI>,
 * the commands of docs/spikes/ipv6/flannel-v6.sh) with a flanneld-format dual-stack lease written
 * to etcd. VNI, overlay networks and the /64 are random per run. Steps build on each other.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { OverlayLab } from './overlay-lab';
import { waitFor } from '../helpers/wait';
import { run } from '../helpers/run';
import type { Host } from '../helpers/netns-lab';

const hex = () => randomInt(1, 0xffff).toString(16);

describe('dual-stack vxlan: our daemon and a flanneld-programmed host', () => {
  let lab: OverlayLab;
  let a: Host;
  let b: Host;
  const lan6 = `2001:db8:${hex()}:${hex()}`; // the LAN's /64
  const [a6, b6] = [`${lan6}::1`, `${lan6}::2`];
  const ula = `fd${randomInt(0, 255).toString(16).padStart(2, '0')}:${hex()}`; // IPv6Network <ula>::/32 … a /48
  let net6 = '';
  let vni = 0;
  // host 2's lease, as flanneld writes it (third octet / v6 subnet id 0x4d = 77)
  let bSubnet = '';
  const bSubnet6 = () => `${net6}:4d::`;
  const [bMac, bMac6] = ['0e:2a:4d:00:00:02', '0e:2a:4d:00:06:02'];
  let bKey = '';
  let aLease: { key: string; subnet: string; subnet6: string; raw: string } | null = null;

  const sh = (h: Host, args: string[]) => h.execOk(args[0], args.slice(1), { timeoutMs: 10_000 });
  const dev = () => `flannel.${vni}`;
  const dev6 = () => `flannel-v6.${vni}`;

  /** host `h`'s v6 entries on flannel-v6 as `ip -6`/`bridge` print them. */
  async function v6Entries(h: Host) {
    const neigh = (await h.execJson<{ dst: string; lladdr: string; state: string[] }[]>(['-6', 'neigh', 'show', 'dev', dev6()]))
      .filter((n) => n.state?.includes('PERMANENT'))
      .map((n) => `${n.dst} ${n.lladdr}`);
    const fdbOut = await run('bridge', ['-n', h.ns, '-j', 'fdb', 'show', 'dev', dev6()]);
    const fdb = (JSON.parse(fdbOut.stdout || '[]') as { mac: string; dst?: string }[]).filter((f) => f.dst).map((f) => `${f.mac} ${f.dst}`);
    const routes = (await h.execJson<{ dst: string; gateway?: string; flags?: string[] }[]>(['-6', 'route', 'show', 'dev', dev6()]))
      .filter((r) => r.gateway)
      .map((r) => `${r.dst} via ${r.gateway}${r.flags?.includes('onlink') ? ' onlink' : ''}`);
    return { neigh, fdb, routes };
  }

  async function ping(h: Host, from: string, to: string, v6: boolean): Promise<boolean> {
    const r = await h.exec('ping', [v6 ? '-6' : '-4', '-c', '1', '-W', '1', '-I', from, to], { timeoutMs: 5_000 });
    return r.code === 0;
  }

  before(async () => {
    lab = await OverlayLab.create(2);
    [a, b] = [lab.host(1), lab.host(2)];
    vni = lab.vni; // 2..3999: flannel-v6.<VNI> fits in 15 characters
    net6 = `${ula}:${hex()}`; // the /48 is `${net6}::/48`; subnets are /64s `${net6}:<id>::`
    for (const [h, ip] of [[a, a6], [b, b6]] as const) await sh(h, ['ip', '-6', 'addr', 'add', `${ip}/64`, 'dev', 'eth0', 'nodad']);
    await lab.cli(['config', 'set', '--network', lab.network, '--ipv6-network', `${net6}::/48`, '--vni', String(vni)]);
    // host 2's lease first, so host 1 cannot pick its subnets
    bSubnet = `10.${lab.thirdOctet}.77.0`;
    bKey = `${lab.prefix}/subnets/${bSubnet}-24&${bSubnet6()}-64`;
    const bValue = `{"PublicIP":"192.0.2.2","PublicIPv6":"${b6}","BackendType":"vxlan","BackendData":{"VNI":${vni},"VtepMAC":"${bMac}"},"BackendV6Data":{"VNI":${vni},"VtepMAC":"${bMac6}"}}`;
    await lab.etcd.etcdctl(['put', bKey, bValue]);
    lab.startDaemon(1, { LEASE_TTL: '30' });
    aLease = await waitFor(
      async () => {
        const { stdout } = await lab.etcd.etcdctl(['get', '--prefix', `${lab.prefix}/subnets/`]);
        const lines = stdout.split('\n').filter(Boolean);
        for (let i = 0; i + 1 < lines.length; i += 2) {
          const m = /\/subnets\/(\d+\.\d+\.\d+\.\d+)-24&([0-9a-f:]+)-64$/.exec(lines[i]);
          if (m && lines[i] !== bKey) return { key: lines[i], subnet: m[1], subnet6: m[2], raw: lines[i + 1] };
        }
        return undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: `host 1's dual-stack lease; log:\n${lab.logs(1)}` },
    );
    // the lease carries the MACs before the devices exist (they are derived, vtepMacFor): wait for both
    await waitFor(async () => (await a.exec('ip', ['link', 'show', dev()])).code === 0 && (await a.exec('ip', ['link', 'show', dev6()])).code === 0, { timeoutMs: 15_000, intervalMs: 100, what: `host 1's ${dev()} and ${dev6()}` });
    // host 2, by hand, as flanneld: v4 device and v6 device, then host 1 as its peer in both families
    const l = aLease;
    const aMac = JSON.parse(l.raw).BackendData.VtepMAC as string;
    const aMac6 = JSON.parse(l.raw).BackendV6Data.VtepMAC as string;
    for (const cmd of [
      `ip link add ${dev()} type vxlan id ${vni} dev eth0 local 192.0.2.2 dstport 0 nolearning`,
      `ip link set ${dev()} address ${bMac} mtu 1450 up`,
      `ip addr add ${bSubnet}/32 dev ${dev()}`,
      `ip neigh replace ${l.subnet} lladdr ${aMac} dev ${dev()} nud permanent`,
      `bridge fdb replace ${aMac} dev ${dev()} dst 192.0.2.1 self permanent`,
      `ip route replace ${l.subnet}/24 via ${l.subnet} dev ${dev()} onlink`,
      `ip link add ${dev6()} mtu 1450 type vxlan id ${vni} dev eth0 local ${b6} dstport 0 nolearning`,
      `sysctl -qw net.ipv6.conf.${dev6().replace('.', '/')}.accept_ra=0`,
      `ip link set ${dev6()} address ${bMac6} up`,
      `ip -6 addr add ${bSubnet6()}/128 dev ${dev6()}`,
      `ip -6 neigh replace ${l.subnet6} lladdr ${aMac6} dev ${dev6()} nud permanent`,
      `bridge fdb replace ${aMac6} dev ${dev6()} dst ${a6} self permanent`,
      `ip -6 route replace ${l.subnet6}/64 via ${l.subnet6} dev ${dev6()} onlink`,
    ]) await sh(b, cmd.split(' '));
  });

  after(async () => {
    await lab?.destroy();
  });

  it("host 1's lease is flanneld's dual-stack vxlan lease: PublicIPv6 and BackendV6Data with flannel-v6's MAC", async () => {
    const l = aLease!;
    const [v4] = await a.execJson<{ address: string }[]>(['link', 'show', dev()]);
    const [v6] = await a.execJson<{ address: string; mtu: number; linkinfo: { info_data: { id: number; local6: string; port: number; learning: boolean } } }[]>(['-d', 'link', 'show', dev6()]);
    assert.equal(l.raw, `{"PublicIP":"192.0.2.1","PublicIPv6":"${a6}","BackendType":"vxlan","BackendData":{"VNI":${vni},"VtepMAC":"${v4.address}"},"BackendV6Data":{"VNI":${vni},"VtepMAC":"${v6.address}"}}`);
    assert.ok(l.subnet6.startsWith(`${net6}:`), `${l.subnet6} inside ${net6}::/48`);
    const d = v6.linkinfo.info_data;
    assert.deepEqual([d.id, d.local6, d.port, d.learning, v6.mtu], [vni, a6, 8472, false, 1430]);
    const addrs = (await a.execJson<{ addr_info: { local: string; prefixlen: number; scope: string }[] }[]>(['-6', 'addr', 'show', 'dev', dev6()]))[0].addr_info;
    assert.deepEqual(addrs.filter((x) => x.scope === 'global').map((x) => `${x.local}/${x.prefixlen}`), [`${l.subnet6}/128`]);
    const ra = (h: Host, d: string) => sh(h, ['cat', `/proc/sys/net/ipv6/conf/${d}/accept_ra`]).then((r) => r.stdout.trim());
    assert.deepEqual([await ra(a, dev6()), await ra(a, 'eth0')], ['0', '1'], 'accept_ra=0 on flannel-v6 as flanneld; the LAN interface left alone');
  });

  it("host 1 programs host 2's v6 neighbour, FDB entry and route on flannel-v6, as flanneld would", async () => {
    const want = { neigh: [`${bSubnet6()} ${bMac6}`], fdb: [`${bMac6} ${b6}`], routes: [`${bSubnet6()}/64 via ${bSubnet6()} onlink`] };
    await waitFor(async () => JSON.stringify(await v6Entries(a)) === JSON.stringify(want), {
      timeoutMs: 20_000,
      intervalMs: 200,
      what: `host 1 holds ${JSON.stringify(want)}; log:\n${lab.logs(1)}`,
    });
  });

  it('ping6 between the two hosts\' v6 subnet addresses, both ways, and v4 still works', async () => {
    const l = aLease!;
    await waitFor(() => ping(a, l.subnet6, bSubnet6(), true), { timeoutMs: 15_000, intervalMs: 300, what: `ping6 ${l.subnet6} → ${bSubnet6()}` });
    await waitFor(() => ping(b, bSubnet6(), l.subnet6, true), { timeoutMs: 15_000, intervalMs: 300, what: `ping6 ${bSubnet6()} → ${l.subnet6}` });
    await waitFor(() => ping(a, l.subnet, bSubnet, false), { timeoutMs: 15_000, intervalMs: 300, what: `ping ${l.subnet} → ${bSubnet}` });
    await waitFor(() => ping(b, bSubnet, l.subnet, false), { timeoutMs: 15_000, intervalMs: 300, what: `ping ${bSubnet} → ${l.subnet}` });
    // the v6 packets really went over flannel-v6 (its counters moved), not some other path
    const [s] = await a.execJson<{ stats64: { rx: { packets: number }; tx: { packets: number } } }[]>(['-s', 'link', 'show', dev6()]);
    assert.ok(s.stats64.rx.packets > 0 && s.stats64.tx.packets > 0, JSON.stringify(s.stats64));
  });

  it("removing host 2's lease removes host 1's v6 (and v4) entries for it", async () => {
    await lab.etcd.etcdctl(['del', bKey]);
    const empty = JSON.stringify({ neigh: [], fdb: [], routes: [] });
    await waitFor(async () => JSON.stringify(await v6Entries(a)) === empty, { timeoutMs: 20_000, intervalMs: 200, what: `host 1 drops host 2's v6 entries; log:\n${lab.logs(1)}` });
    await waitFor(async () => !(await a.execJson<{ dst: string }[]>(['route', 'show', 'dev', dev()])).some((r) => r.dst === `${bSubnet}/24`), { timeoutMs: 20_000, what: "host 1 drops host 2's v4 route" });
    assert.equal(await ping(a, aLease!.subnet6, bSubnet6(), true), false, 'no v6 path to host 2 any more');
  });
});
