/**
 * Issue 4, host-gw backend: three real daemons, routes via each peer's PublicIP on eth0, no vxlan
 * device, MTU unchanged; containers ping across hosts; a vanished host's route is removed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OverlayLab, LeaseView } from './overlay-lab';
import { waitFor } from '../helpers/wait';

describe('three hosts, host-gw, real daemons', () => {
  let lab: OverlayLab;
  let leases: Map<string, LeaseView>;
  const ips = ['192.0.2.1', '192.0.2.2', '192.0.2.3'];

  const overlayRoutes = async (n: number) =>
    (await lab.host(n).execJson<{ dst: string; gateway?: string; dev: string }[]>(['route', 'show']))
      .filter((r) => r.dst.startsWith(`10.${lab.thirdOctet}.`) && r.dev === 'eth0')
      .map((r) => `${r.dst} via ${r.gateway}`)
      .sort();
  const expected = (n: number, hosts = [1, 2, 3]) =>
    hosts
      .filter((m) => m !== n)
      .map((m) => leases.get(`192.0.2.${m}`)!)
      .map((l) => `${l.subnet} via ${l.publicIP}`)
      .sort();

  before(async () => {
    lab = await OverlayLab.create(3);
    await lab.cli(['config', 'set', '--network', lab.network, '--backend', 'host-gw']);
    for (const n of [1, 2, 3]) lab.startDaemon(n, { LEASE_TTL: '6' });
    leases = await lab.waitForLeases(ips);
  });

  after(async () => {
    await lab?.destroy();
  });

  it('publishes host-gw leases in flanneld format and creates no vxlan device', async () => {
    for (const l of leases.values()) assert.equal(l.raw, `{"PublicIP":"${l.publicIP}","PublicIPv6":null,"BackendType":"host-gw"}`);
    const links = await lab.host(1).execJson<{ ifname: string }[]>(['link', 'show']);
    assert.ok(!links.some((l) => l.ifname.startsWith('flannel.')), JSON.stringify(links.map((l) => l.ifname)));
  });

  it('each host routes the other subnets via their public IPs, and containers ping across hosts', async () => {
    for (const n of [1, 2, 3]) {
      await waitFor(async () => JSON.stringify(await overlayRoutes(n)) === JSON.stringify(expected(n)), {
        timeoutMs: 20_000,
        intervalMs: 200,
        what: `host ${n} routes ${expected(n)}; log:\n${lab.logs(n)}`,
      });
    }
    const c1 = await lab.attachContainer(1, leases.get('192.0.2.1')!, 'g1', 10, 1500);
    const c3 = await lab.attachContainer(3, leases.get('192.0.2.3')!, 'g3', 10, 1500);
    await waitFor(() => lab.ping(c1.ns, c3.ip), { timeoutMs: 10_000, what: 'ping c1 → c3 over host-gw' });
    await waitFor(() => lab.ping(c3.ns, c1.ip), { timeoutMs: 10_000, what: 'ping c3 → c1 over host-gw' });
  });

  it('a host whose lease expires loses its route on the others', async () => {
    await lab.stopDaemon(2);
    await waitFor(async () => !(await lab.leases()).has('192.0.2.2'), { timeoutMs: 20_000, what: 'lease of h2 expires' });
    for (const n of [1, 3]) {
      await waitFor(async () => JSON.stringify(await overlayRoutes(n)) === JSON.stringify(expected(n, [1, 3])), {
        timeoutMs: 20_000,
        what: `host ${n} drops the route to h2's subnet`,
      });
    }
  });
});
