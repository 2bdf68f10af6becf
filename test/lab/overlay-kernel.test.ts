/**
 * Issue 4 acceptance, on the real kernel: three simulated hosts (namespaces on a LAN), etcd on the
 * LAN, the real daemon on each. The daemons alone must turn them into one routed overlay, survive
 * SIGKILL without touching traffic, clean up after hosts that vanish, and repair stale entries.
 * One lab for the whole file (CI has 2 cores); steps run in order and build on each other.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OverlayLab, LeaseView } from './overlay-lab';
import { waitFor } from '../helpers/wait';
import type { Ns } from '../helpers/netns-lab';

const TTL = '6'; // seconds: a stopped host's lease expires quickly (renewed every 2 s while running)

describe('three hosts, vxlan, real daemons', () => {
  let lab: OverlayLab;
  let leases: Map<string, LeaseView>;
  const containers = new Map<number, { ns: Ns; ip: string }>();
  const ips = ['192.0.2.1', '192.0.2.2', '192.0.2.3'];
  const leaseOf = (n: number) => leases.get(`192.0.2.${n}`)!;
  const remotesOf = (n: number) => [1, 2, 3].filter((m) => m !== n).map(leaseOf);

  async function assertPeersProgrammed(n: number, what: string): Promise<void> {
    const want = lab.expectedEntries(remotesOf(n));
    await waitFor(
      async () => {
        const got = await lab.peerEntries(n);
        return JSON.stringify(got) === JSON.stringify(want) ? got : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: `${what}: host ${n} programs exactly ${JSON.stringify(want)}; log:\n${lab.logs(n)}` },
    );
  }

  before(async () => {
    lab = await OverlayLab.create(3);
    await lab.cli(['config', 'set', '--network', lab.network, '--vni', String(lab.vni)]);
    for (const n of [1, 2, 3]) lab.startDaemon(n, { LEASE_TTL: TTL });
    leases = await lab.waitForLeases(ips);
  });

  after(async () => {
    await lab?.destroy();
  });

  it('leases three distinct subnets of the overlay in flanneld format', async () => {
    const subnets = new Set([...leases.values()].map((l) => l.subnet));
    assert.equal(subnets.size, 3);
    for (const l of leases.values()) {
      assert.ok(l.subnet.startsWith(`10.${lab.thirdOctet}.`), `${l.subnet} in ${lab.network}`);
      assert.equal(l.raw, `{"PublicIP":"${l.publicIP}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":${lab.vni},"VtepMAC":"${l.vtepMac}"}}`);
    }
  });

  it('every host holds exactly the neighbour, FDB and route entries of the other two', async () => {
    for (const n of [1, 2, 3]) await assertPeersProgrammed(n, 'initial');
    for (const n of [1, 2, 3]) {
      const [dev] = await lab.host(n).execJson<{ mtu: number; address: string; linkinfo: { info_data: { id: number; port: number; local: string; learning: boolean } } }[]>(
        ['-d', 'link', 'show', `flannel.${lab.vni}`],
      );
      assert.equal(dev.address, leaseOf(n).vtepMac);
      assert.equal(dev.mtu, 1450);
      assert.deepEqual([dev.linkinfo.info_data.id, dev.linkinfo.info_data.port, dev.linkinfo.info_data.local, dev.linkinfo.info_data.learning], [lab.vni, 8472, `192.0.2.${n}`, false]);
      const addrs = await lab.host(n).execJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(['-4', 'addr', 'show', 'dev', `flannel.${lab.vni}`]);
      assert.deepEqual(addrs[0].addr_info.map((a) => `${a.local}/${a.prefixlen}`), [`${leaseOf(n).subnet.split('/')[0]}/32`]);
    }
  });

  it('containers on the three hosts ping each other across every pair', async () => {
    for (const n of [1, 2, 3]) containers.set(n, await lab.attachContainer(n, leaseOf(n), `${n}`));
    for (const a of [1, 2, 3]) {
      for (const b of [1, 2, 3]) {
        if (a === b) continue;
        await waitFor(() => lab.ping(containers.get(a)!.ns, containers.get(b)!.ip), { timeoutMs: 10_000, what: `ping c${a} → c${b}` });
      }
    }
  });

  it('SIGKILL of a daemon leaves traffic flowing; its restart keeps subnet and MAC and changes nothing on the peers', async () => {
    const before2 = await lab.peerEntries(2);
    const before3 = await lab.peerEntries(3);
    await lab.stopDaemon(1, 'SIGKILL');
    for (let i = 0; i < 5; i++) assert.ok(await lab.ping(containers.get(1)!.ns, containers.get(2)!.ip), `ping ${i} with the daemon of h1 dead`);
    lab.startDaemon(1, { LEASE_TTL: TTL });
    await waitFor(async () => (await lab.host(1).exec('sh', ['-c', 'true'])).code === 0, { what: 'h1 reachable' });
    await assertPeersProgrammed(1, 'after restart');
    const again = await lab.leases();
    assert.equal(again.get('192.0.2.1')?.subnet, leaseOf(1).subnet);
    assert.equal(again.get('192.0.2.1')?.vtepMac, leaseOf(1).vtepMac);
    assert.deepEqual(await lab.peerEntries(2), before2);
    assert.deepEqual(await lab.peerEntries(3), before3);
    assert.ok(await lab.ping(containers.get(1)!.ns, containers.get(3)!.ip));
  });

  it('a stale entry left in the kernel while a daemon was down is removed at its next start', async () => {
    await lab.stopDaemon(2);
    const dev = `flannel.${lab.vni}`;
    const ghost = `10.${lab.thirdOctet}.254.0`;
    const h2 = lab.host(2);
    await h2.execOk('ip', ['neigh', 'replace', ghost, 'lladdr', '02:de:ad:00:00:01', 'dev', dev, 'nud', 'permanent']);
    await h2.execOk('bridge', ['fdb', 'replace', '02:de:ad:00:00:01', 'dev', dev, 'dst', '192.0.2.99', 'self', 'permanent']);
    await h2.execOk('ip', ['route', 'replace', `${ghost}/24`, 'via', ghost, 'dev', dev, 'onlink']);
    assert.ok((await lab.peerEntries(2)).routes.some((r) => r.startsWith(`${ghost}/24`)));
    lab.startDaemon(2, { LEASE_TTL: TTL });
    await assertPeersProgrammed(2, 'stale entries removed');
  });

  it('a host whose daemon stops and whose lease expires disappears from the peers; it comes back with its subnet and MAC', async () => {
    const gone = leaseOf(3);
    await lab.stopDaemon(3);
    await waitFor(async () => !(await lab.leases()).has('192.0.2.3'), { timeoutMs: 20_000, what: 'lease of h3 expires' });
    for (const n of [1, 2]) {
      const want = lab.expectedEntries([1, 2].filter((m) => m !== n).map(leaseOf));
      await waitFor(async () => JSON.stringify(await lab.peerEntries(n)) === JSON.stringify(want), {
        timeoutMs: 20_000,
        intervalMs: 200,
        what: `host ${n} drops the entries of ${gone.subnet}`,
      });
    }
    lab.startDaemon(3, { LEASE_TTL: TTL });
    const back = (await lab.waitForLeases(['192.0.2.3'])).get('192.0.2.3')!;
    leases.set('192.0.2.3', back);
    assert.equal(back.subnet, gone.subnet, 'its subnet was still free');
    assert.equal(back.vtepMac, gone.vtepMac, 'deterministic VtepMAC');
    for (const n of [1, 2, 3]) await assertPeersProgrammed(n, 'after h3 returned');
    await waitFor(() => lab.ping(containers.get(1)!.ns, containers.get(3)!.ip), { timeoutMs: 10_000, what: 'ping c1 → c3 after h3 returned' });
  });

  it('the daemon repairs drift: a deleted route comes back within seconds', async () => {
    const victim = leaseOf(2).subnet;
    await lab.host(1).execOk('ip', ['route', 'del', victim]);
    await assertPeersProgrammed(1, 'drift repaired');
  });
});
