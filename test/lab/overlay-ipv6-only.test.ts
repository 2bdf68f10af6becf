/**
 * Issue 21, an IPv6-only vxlan overlay (`EnableIPv4: false`) on the real kernel (namespaces only, no
 * Docker): a LAN with a random /64 of 2001:db8::/32 (and 192.0.2.0/24, which the daemon still needs
 * on its public interface), etcd on it, our daemon on hosts 1 and 2, and host 3 programmed by hand as
 * flanneld's vxlan backend programs an IPv6-only host (flannel-v6.<VNI> only, docs/spikes/ipv6/
 * flannel-v6.sh) with a flanneld-format IPv6-only lease written to etcd. VNI, IPv6Network and the
 * /64 are random per run. Steps build on each other.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OverlayLab } from './overlay-lab';
import { waitFor } from '../helpers/wait';
import { run } from '../helpers/run';
import type { Host } from '../helpers/netns-lab';

const hex = () => randomInt(1, 0xffff).toString(16);

interface Lease6 {
  key: string;
  subnet6: string; // the /64's base, e.g. fd12:3:4:9a::
  raw: string;
}

describe('IPv6-only vxlan: two daemons and a flanneld-programmed host, flannel-v6.<VNI> only', () => {
  let lab: OverlayLab;
  let hosts: Host[] = [];
  const lan6 = `2001:db8:${hex()}:${hex()}`;
  const ip6 = (n: number) => `${lan6}::${n}`;
  const ula = `fd${randomInt(0, 255).toString(16).padStart(2, '0')}:${hex()}`;
  let net6 = '';
  let vni = 0;
  const cMac6 = '0e:2a:4d:00:06:03'; // host 3's flannel-v6 MAC
  const cSubnet6 = () => `${net6}:4d::`;
  let cKey = '';
  let cValue = '';
  const leases = new Map<number, Lease6>(); // host → its lease (1, 2: ours; 3: flanneld's)
  const tmp = mkdtempSync(join(tmpdir(), 'of-v6only-'));
  const subnetFile = (n: number) => join(tmp, `subnet-${n}.env`);

  const sh = (h: Host, cmd: string) => h.execOk(cmd.split(' ')[0], cmd.split(' ').slice(1), { timeoutMs: 10_000 });
  const dev6 = () => `flannel-v6.${vni}`;

  async function v6Entries(h: Host) {
    const neigh = (await h.execJson<{ dst: string; lladdr: string; state: string[] }[]>(['-6', 'neigh', 'show', 'dev', dev6()]))
      .filter((n) => n.state?.includes('PERMANENT'))
      .map((n) => `${n.dst} ${n.lladdr}`)
      .sort();
    const fdbOut = await run('bridge', ['-n', h.ns, '-j', 'fdb', 'show', 'dev', dev6()]);
    const fdb = (JSON.parse(fdbOut.stdout || '[]') as { mac: string; dst?: string }[]).filter((f) => f.dst).map((f) => `${f.mac} ${f.dst}`).sort();
    const routes = (await h.execJson<{ dst: string; gateway?: string; flags?: string[] }[]>(['-6', 'route', 'show', 'dev', dev6()]))
      .filter((r) => r.gateway)
      .map((r) => `${r.dst} via ${r.gateway}${r.flags?.includes('onlink') ? ' onlink' : ''}`)
      .sort();
    return { neigh, fdb, routes };
  }

  /** What host `n` should hold for the other hosts `peers`: flanneld's three entries per peer. */
  function expected(peers: number[]) {
    const mac = (p: number) => JSON.parse(leases.get(p)!.raw).BackendV6Data.VtepMAC as string;
    return {
      neigh: peers.map((p) => `${leases.get(p)!.subnet6} ${mac(p)}`).sort(),
      fdb: peers.map((p) => `${mac(p)} ${ip6(p)}`).sort(),
      routes: peers.map((p) => `${leases.get(p)!.subnet6}/64 via ${leases.get(p)!.subnet6} onlink`).sort(),
    };
  }

  const ping6 = (h: Host, from: string, to: string) => h.exec('ping', ['-6', '-c', '1', '-W', '1', '-I', from, to], { timeoutMs: 5_000 }).then((r) => r.code === 0);

  before(async () => {
    lab = await OverlayLab.create(3);
    hosts = [lab.host(1), lab.host(2), lab.host(3)];
    vni = lab.vni;
    net6 = `${ula}:${hex()}`; // IPv6Network `${net6}::/48`
    for (const [i, h] of hosts.entries()) await sh(h, `ip -6 addr add ${ip6(i + 1)}/64 dev eth0 nodad`);
    await lab.cli(['config', 'set', '--ipv6-only', '--ipv6-network', `${net6}::/48`, '--vni', String(vni)]);
    // host 3's lease first, as flanneld writes an IPv6-only one: PublicIP zero, no BackendData
    cKey = `${lab.prefix}/subnets/0.0.0.0-0&${cSubnet6()}-64`;
    cValue = `{"PublicIP":"0.0.0.0","PublicIPv6":"${ip6(3)}","BackendType":"vxlan","BackendV6Data":{"VNI":${vni},"VtepMAC":"${cMac6}"}}`;
    await lab.etcd.etcdctl(['put', cKey, cValue]);
    leases.set(3, { key: cKey, subnet6: cSubnet6(), raw: cValue });
    for (const n of [1, 2]) lab.startDaemon(n, { LEASE_TTL: '30', IP_MASQ: 'true', SUBNET_FILE: subnetFile(n) });
    await waitFor(
      async () => {
        const { stdout } = await lab.etcd.etcdctl(['get', '--prefix', `${lab.prefix}/subnets/`]);
        const lines = stdout.split('\n').filter(Boolean);
        for (let i = 0; i + 1 < lines.length; i += 2) {
          const m = /\/subnets\/0\.0\.0\.0-0&([0-9a-f:]+)-64$/.exec(lines[i]);
          const n = [1, 2].find((x) => JSON.parse(lines[i + 1]).PublicIPv6 === ip6(x));
          if (m && n) leases.set(n, { key: lines[i], subnet6: m[1], raw: lines[i + 1] });
        }
        return leases.has(1) && leases.has(2);
      },
      { timeoutMs: 30_000, intervalMs: 200, what: `both daemons' IPv6-only leases; logs:\n${lab.logs(1)}\n${lab.logs(2)}` },
    );
    // host 3, by hand, as flanneld with EnableIPv4 false: flannel-v6 only, hosts 1 and 2 as its peers
    const cmds = [
      `ip link add ${dev6()} mtu 1430 type vxlan id ${vni} dev eth0 local ${ip6(3)} dstport 0 nolearning`,
      `sysctl -qw net.ipv6.conf.${dev6().replace('.', '/')}.accept_ra=0`,
      `ip link set ${dev6()} address ${cMac6} up`,
      `ip -6 addr add ${cSubnet6()}/128 dev ${dev6()} nodad`,
    ];
    for (const p of [1, 2]) {
      const l = leases.get(p)!;
      const mac = JSON.parse(l.raw).BackendV6Data.VtepMAC as string;
      cmds.push(
        `ip -6 neigh replace ${l.subnet6} lladdr ${mac} dev ${dev6()} nud permanent`,
        `bridge fdb replace ${mac} dev ${dev6()} dst ${ip6(p)} self permanent`,
        `ip -6 route replace ${l.subnet6}/64 via ${l.subnet6} dev ${dev6()} onlink`,
      );
    }
    for (const c of cmds) await sh(hosts[2], c);
  });

  after(async () => {
    await lab?.destroy();
    rmSync(tmp, { recursive: true, force: true });
  });

  it("each daemon's lease is flanneld's IPv6-only vxlan lease, byte for byte: key 0.0.0.0-0&<v6>-64, PublicIP 0.0.0.0, no BackendData", async () => {
    const flanneldKeys = Object.keys(JSON.parse(cValue));
    for (const n of [1, 2]) {
      const l = leases.get(n)!;
      const [link] = await hosts[n - 1].execJson<{ address: string }[]>(['link', 'show', dev6()]);
      assert.equal(l.raw, `{"PublicIP":"0.0.0.0","PublicIPv6":"${ip6(n)}","BackendType":"vxlan","BackendV6Data":{"VNI":${vni},"VtepMAC":"${link.address}"}}`);
      assert.deepEqual(Object.keys(JSON.parse(l.raw)), flanneldKeys, "the same fields in the same order as host 3's flanneld lease");
      assert.equal(l.key, `${lab.prefix}/subnets/0.0.0.0-0&${l.subnet6}-64`);
      assert.ok(l.subnet6.startsWith(`${net6}:`), `${l.subnet6} inside ${net6}::/48`);
    }
    assert.notEqual(leases.get(1)!.subnet6, leases.get(2)!.subnet6, 'two distinct v6 subnets');
  });

  it('each daemon makes flannel-v6.<VNI> with its /128 (MTU parent − 70, accept_ra 0) and no flannel.<VNI>', async () => {
    for (const n of [1, 2]) {
      const h = hosts[n - 1];
      const [v6] = await h.execJson<{ mtu: number; linkinfo: { info_data: { id: number; local6: string; port: number; learning: boolean } } }[]>(['-d', 'link', 'show', dev6()]);
      const d = v6.linkinfo.info_data;
      assert.deepEqual([d.id, d.local6, d.port, d.learning, v6.mtu], [vni, ip6(n), 8472, false, 1430]);
      const addrs = (await h.execJson<{ addr_info: { local: string; prefixlen: number; scope: string }[] }[]>(['-6', 'addr', 'show', 'dev', dev6()]))[0].addr_info;
      assert.deepEqual(addrs.filter((x) => x.scope === 'global').map((x) => `${x.local}/${x.prefixlen}`), [`${leases.get(n)!.subnet6}/128`]);
      assert.equal((await sh(h, `cat /proc/sys/net/ipv6/conf/${dev6()}/accept_ra`)).stdout.trim(), '0');
      const vxlans = (await h.execJson<{ ifname: string }[]>(['-d', 'link', 'show', 'type', 'vxlan'])).map((l) => l.ifname);
      assert.deepEqual(vxlans, [dev6()], `host ${n}: flannel-v6 is its only vxlan device (no flannel.${vni})`);
    }
  });

  it("each daemon programs the other daemon's and the flanneld host's neighbour, FDB entry and route", async () => {
    for (const [n, peers] of [[1, [2, 3]], [2, [1, 3]]] as const) {
      const want = expected([...peers]);
      await waitFor(async () => JSON.stringify(await v6Entries(hosts[n - 1])) === JSON.stringify(want), {
        timeoutMs: 20_000,
        intervalMs: 200,
        what: `host ${n} holds ${JSON.stringify(want)}; log:\n${lab.logs(n)}`,
      });
    }
  });

  it("ping6 between every two hosts' flannel-v6 addresses, both ways, over flannel-v6", async () => {
    const s = (n: number) => leases.get(n)!.subnet6;
    for (const [x, y] of [[1, 2], [2, 1], [1, 3], [3, 1], [2, 3], [3, 2]] as const) {
      await waitFor(() => ping6(hosts[x - 1], s(x), s(y)), { timeoutMs: 15_000, intervalMs: 300, what: `ping6 ${s(x)} (host ${x}) → ${s(y)} (host ${y})` });
    }
    const [st] = await hosts[0].execJson<{ stats64: { rx: { packets: number }; tx: { packets: number } } }[]>(['-s', 'link', 'show', dev6()]);
    assert.ok(st.stats64.rx.packets > 0 && st.stats64.tx.packets > 0, JSON.stringify(st.stats64));
  });

  it("subnet.env is flanneld's IPv6-only one: FLANNEL_IPV6_* and no FLANNEL_NETWORK/FLANNEL_SUBNET", () => {
    const want = `FLANNEL_IPV6_NETWORK=${net6}::/48\nFLANNEL_IPV6_SUBNET=${leases.get(1)!.subnet6}1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n`;
    assert.equal(readFileSync(subnetFile(1), 'utf8'), want);
  });

  it('the ip6 masquerade and NOTRACK rules are written for IPv6Network, and no v4 one (Network is 0.0.0.0/0)', async () => {
    const h = hosts[0];
    const nat6 = (await sh(h, 'ip6tables -t nat -S')).stdout;
    assert.match(nat6, new RegExp(`-s ${net6}::/48 .*overlay-flannel masq ${net6}::/48`), nat6);
    assert.match((await sh(h, 'ip6tables -t raw -S')).stdout, /--notrack/);
    const v4 = (await sh(h, 'iptables-save')).stdout;
    assert.doesNotMatch(v4, /overlay-flannel masq|--notrack|0\.0\.0\.0\/0 -j ACCEPT/, v4);
  });

  it('a restarted daemon finds its IPv6-only lease again (by PublicIPv6) and keeps its v6 subnet and peers', async () => {
    const before1 = leases.get(1)!;
    const dev = async () => (await hosts[0].execJson<{ ifindex: number }[]>(['link', 'show', dev6()]))[0].ifindex;
    const index = await dev();
    const env1 = readFileSync(subnetFile(1), 'utf8');
    await lab.stopDaemon(1);
    rmSync(subnetFile(1));
    lab.startDaemon(1, { LEASE_TTL: '30', IP_MASQ: 'true', SUBNET_FILE: subnetFile(1) });
    await waitFor(async () => existsSync(subnetFile(1)), { timeoutMs: 20_000, intervalMs: 200, what: `host 1 ready again (subnet.env written); log:\n${lab.logs(1)}` });
    assert.equal(readFileSync(subnetFile(1), 'utf8'), env1, 'the same subnet.env');
    const { stdout } = await lab.etcd.etcdctl(['get', '--prefix', `${lab.prefix}/subnets/`, '--keys-only']);
    const keys = stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(keys, [before1.key, leases.get(2)!.key, cKey].sort(), 'the same three leases: host 1 took no second one');
    assert.equal((await lab.etcd.etcdctl(['get', before1.key, '--print-value-only'])).stdout.trim(), before1.raw);
    assert.equal(await dev(), index, 'flannel-v6 reused, not remade');
    assert.deepEqual(await v6Entries(hosts[0]), expected([2, 3]));
  });

  it("removing the flanneld host's lease removes the daemons' v6 entries for it, and only those", async () => {
    await lab.etcd.etcdctl(['del', cKey]);
    for (const [n, other] of [[1, 2], [2, 1]] as const) {
      const want = expected([other]);
      await waitFor(async () => JSON.stringify(await v6Entries(hosts[n - 1])) === JSON.stringify(want), { timeoutMs: 20_000, intervalMs: 200, what: `host ${n} drops host 3's entries; log:\n${lab.logs(n)}` });
    }
    assert.equal(await ping6(hosts[0], leases.get(1)!.subnet6, cSubnet6()), false, 'no v6 path to host 3 any more');
  });
});
