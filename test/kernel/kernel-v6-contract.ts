/**
 * The Kernel contract's IPv6 half (issue 21): what flanneld's v6 vxlan backend programs, in the
 * shapes the reconciler reads back. Run against NetlinkKernel in a scratch netns
 * (test/kernel/netlink-kernel-v6.test.ts) and against FakeKernel (test/unit/fake-kernel-v6.test.ts).
 *
 * flannel-v6.<VNI>: vxlan with IFLA_VXLAN_LOCAL6 over the parent's v6 address, MTU parent − 70,
 * the v6 subnet address as /128; per peer a permanent NDP neighbour (subnet address → VtepMAC), an
 * FDB entry (VtepMAC → PublicIPv6) and a route (subnet via subnet address onlink). The kernel's own
 * link-local address and fe80::/64 route are left out of the comparisons (the real kernel makes
 * them, the fake does not).
 * The firewall's v6 half (nftables `ip6` tables: FORWARD head block and flannel's accepts, ip6
 * masquerade, NOTRACK) goes by the network's text as the rest; its content is read back with
 * ip6tables in test/kernel/nft-ip6.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Kernel, VxlanSpec } from '../../src/kernel';
import { rejectsWith } from './kernel-contract';
import { notrackRules } from '../../src/domain/notrack-rules';

export interface V6ContractEnv {
  kernel: Kernel;
  /** Up, with an IPv4 address and the IPv6 address `ip6` (a /64 inside 2001:db8::/32). */
  parent: { index: number; name: string; ip: string; ip6: string; mtu: number };
  /** 1-4 characters prepended to every link name this contract creates. */
  prefix: string;
  /** No `ip6` filter, nat or raw table; `ip filter FORWARD` present (empty). */
  resetFirewall(): Promise<void>;
  /** net.ipv6.conf.<name>.accept_ra as the kernel holds it (the real one: read from /proc/sys). */
  acceptRa(name: string): Promise<number | null>;
  teardown(): Promise<void>;
}

const linkLocal = (ip: string) => /^fe[89ab]/.test(ip);

export function kernelV6Contract(label: string, setup: () => Promise<V6ContractEnv>): void {
  describe(`Kernel contract, IPv6 (${label})`, () => {
    let env: V6ContractEnv;
    let k: Kernel;
    let vx: string;
    const spec = (over: Partial<VxlanSpec> = {}): VxlanSpec => ({
      name: vx,
      vni: 61,
      parentIndex: env.parent.index,
      local: env.parent.ip6,
      port: 0,
      learning: false,
      gbp: false,
      mtu: env.parent.mtu - 70,
      mac: '0e:2a:06:00:00:0a',
      ...over,
    });
    const addrs6 = async (i: number) => (await k.listAddresses(i, 6)).filter((a) => !linkLocal(a.address)).map((a) => `${a.address}/${a.prefixLen}`).sort();
    const routes6 = async (i: number) => (await k.listRoutes(i, 6)).filter((r) => !linkLocal(r.dst));

    before(async () => {
      env = await setup();
      k = env.kernel;
      vx = `${env.prefix}v6.61`;
    });
    after(async () => {
      await k.deleteLink(vx);
      await env.teardown();
    });

    it('a vxlan over the parent\'s IPv6 address: local6 read back, MTU parent − 70, kept when asked again', async () => {
      const a = await k.ensureVxlan(spec());
      assert.deepEqual(
        { kind: a.kind, vni: a.vni, port: a.port, local: a.local, learning: a.learning, parentIndex: a.parentIndex, mtu: a.mtu, mac: a.mac, up: a.up },
        { kind: 'vxlan', vni: 61, port: 8472, local: env.parent.ip6, learning: false, parentIndex: env.parent.index, mtu: env.parent.mtu - 70, mac: '0e:2a:06:00:00:0a', up: true },
      );
      assert.deepEqual(await k.getVxlan(vx), a);
      const upper = env.parent.ip6.toUpperCase().replace('::', ':0::');
      assert.equal((await k.ensureVxlan(spec({ local: upper }))).index, a.index, 'the same address written otherwise is the same local');
      await rejectsWith(k.ensureVxlan(spec({ mtu: env.parent.mtu - 50 })), 'KERNEL', /EINVAL/);
      assert.equal((await k.getVxlan(vx))?.mtu, env.parent.mtu - 70, 'the refused MTU changed nothing');
      const v4 = await k.ensureVxlan(spec({ local: env.parent.ip, mtu: env.parent.mtu - 50 }));
      assert.notEqual(v4.index, a.index, 'another family of local is another device');
      assert.equal(v4.local, env.parent.ip);
      const back = await k.ensureVxlan(spec());
      assert.equal(back.local, env.parent.ip6);
      await rejectsWith(k.ensureVxlan(spec({ local: 'fd00::1::2' })), 'INVALID');
    });

    it('accept_ra: 1 on a new device, 0 once disabled (set, then already), UNAVAILABLE for a missing device', async () => {
      await k.deleteLink(vx);
      await k.ensureVxlan(spec());
      assert.equal(await env.acceptRa(vx), 1, 'a new device takes router advertisements');
      assert.equal((await k.disableAcceptRa(vx)).state, 'set');
      assert.equal(await env.acceptRa(vx), 0);
      assert.deepEqual(await k.disableAcceptRa(vx), { state: 'already', path: `/proc/sys/net/ipv6/conf/${vx}/accept_ra` });
      await rejectsWith(k.disableAcceptRa(`${env.prefix}none0`), 'UNAVAILABLE', /accept_ra=0.*ENOENT/);
      await rejectsWith(k.disableAcceptRa('a/b'), 'INVALID');
    });

    it('the /128 of the subnet address: the only v6 address inside the network, its /128 route, v4 lists untouched', async () => {
      const v = await k.ensureVxlan(spec());
      await k.ensureOnlyAddress(v.index, 'fd00:61:0:1::/128', 'fd00:61::/48');
      assert.deepEqual(await addrs6(v.index), ['fd00:61:0:1::/128']);
      assert.deepEqual(await k.listAddresses(v.index), [], 'no IPv4 address listed');
      await k.ensureOnlyAddress(v.index, 'fd00:99::1/128', 'fd00:99::/48');
      await k.ensureOnlyAddress(v.index, 'FD00:61:0:2:0::/128', 'fd00:61::/48');
      assert.deepEqual(await addrs6(v.index), ['fd00:61:0:2::/128', 'fd00:99::1/128']);
      assert.deepEqual(await routes6(v.index).then((rs) => rs.map((r) => r.dst).sort()), ['fd00:61:0:2::/128', 'fd00:99::1/128']);
      assert.deepEqual((await routes6(v.index)).find((r) => r.dst === 'fd00:61:0:2::/128'), { dst: 'fd00:61:0:2::/128', oif: v.index, onlink: false });
      assert.ok(!(await k.listRoutes(v.index)).some((r) => r.dst.includes(':')), 'IPv4 route list has no v6 route');
      assert.equal(await k.removeAddress(v.index, 'fd00:99::1/64'), false, 'another prefix length is another address');
      assert.equal(await k.removeAddress(v.index, 'fd00:99::1/128'), true);
      assert.deepEqual(await addrs6(v.index), ['fd00:61:0:2::/128']);
      await rejectsWith(k.ensureOnlyAddress(v.index, 'fd00:61:0:3::/128', '10.61.0.0/16'), 'INVALID', /one family/);
      await rejectsWith(k.ensureOnlyAddress(v.index, 'fd00:61:0:3::/129'), 'INVALID');
    });

    it('NDP neighbour: replace twice = one, v6 list only, update, delete, delete absent', async () => {
      const v = await k.ensureVxlan(spec());
      const n = { ifindex: v.index, ip: 'fd00:61:0:2::', mac: '0e:2a:06:00:00:0b', permanent: true };
      await k.replaceNeighbour(n);
      await k.replaceNeighbour({ ...n, ip: 'fd00:61:0:2:0:0:0:0' });
      assert.deepEqual(await k.listNeighbours(v.index, 6), [n]);
      assert.deepEqual(await k.listNeighbours(v.index), [], 'the ARP list has no v6 entry');
      await k.replaceNeighbour({ ...n, mac: '0e:2a:06:00:00:0c' });
      assert.deepEqual(await k.listNeighbours(v.index, 6), [{ ...n, mac: '0e:2a:06:00:00:0c' }]);
      await k.deleteNeighbour(v.index, n.ip);
      assert.deepEqual(await k.listNeighbours(v.index, 6), []);
      await k.deleteNeighbour(v.index, n.ip);
      await rejectsWith(k.replaceNeighbour({ ...n, ip: 'fd00:::1' }), 'INVALID');
    });

    it('FDB towards an IPv6 VTEP: replace twice = one, dst update, flood entries per dst, delete', async () => {
      const v = await k.ensureVxlan(spec());
      const f = { ifindex: v.index, mac: '0e:2a:06:00:00:0b', dst: '2001:db8:61::b', permanent: true };
      await k.replaceFdb(f);
      await k.replaceFdb({ ...f, dst: '2001:DB8:61:0::B' });
      assert.deepEqual(await k.listFdb(v.index), [f]);
      await k.replaceFdb({ ...f, dst: '2001:db8:61::c' });
      assert.deepEqual(await k.listFdb(v.index), [{ ...f, dst: '2001:db8:61::c' }]);
      const z = { ...f, mac: '00:00:00:00:00:00' };
      for (const dst of ['2001:db8:61::d', '2001:db8:61::e', '2001:db8:61::d']) await k.replaceFdb({ ...z, dst });
      assert.deepEqual((await k.listFdb(v.index)).filter((e) => e.mac === z.mac).map((e) => e.dst).sort(), ['2001:db8:61::d', '2001:db8:61::e']);
      await k.deleteFdb(v.index, z.mac, '2001:db8:61::d');
      await k.deleteFdb(v.index, z.mac);
      await k.deleteFdb(v.index, f.mac, '2001:db8:61::c');
      assert.deepEqual(await k.listFdb(v.index), []);
      await k.deleteFdb(v.index, f.mac);
    });

    it('v6 routes: subnet via its address onlink round-trip, replace twice = one, update, delete, delete absent', async () => {
      const v = await k.ensureVxlan(spec());
      const r = { dst: 'fd00:61:0:5::/64', gateway: 'fd00:61:0:5::', oif: v.index, onlink: true };
      await k.replaceRoute(r);
      await k.replaceRoute({ ...r, gateway: 'FD00:61:0:5:0::' });
      assert.deepEqual((await routes6(v.index)).filter((x) => x.gateway), [r]);
      assert.ok(!(await k.listRoutes()).some((x) => x.dst.includes(':')), 'listRoutes() lists IPv4 only');
      assert.ok((await k.listRoutes(undefined, 6)).some((x) => x.dst === r.dst && x.oif === v.index), 'listRoutes(undefined, 6) lists every device');
      await k.replaceRoute({ ...r, gateway: 'fd00:61:0:5::1' });
      assert.deepEqual((await routes6(v.index)).filter((x) => x.gateway), [{ ...r, gateway: 'fd00:61:0:5::1' }]);
      await k.deleteRoute(r.dst);
      assert.deepEqual((await routes6(v.index)).filter((x) => x.gateway), []);
      await k.deleteRoute(r.dst);
      await rejectsWith(k.replaceRoute({ ...r, dst: 'fd00:61:0:5::1/64' }), 'INVALID', /host bits/);
      await rejectsWith(k.replaceRoute({ ...r, gateway: '10.61.2.0' }), 'INVALID', /IPv6 gateway/);
    });

    it('deleting the device takes its v6 address, neighbours, FDB entries and routes along', async () => {
      const v = await k.ensureVxlan(spec());
      await k.ensureOnlyAddress(v.index, 'fd00:61:0:1::/128', 'fd00:61::/48');
      await k.replaceNeighbour({ ifindex: v.index, ip: 'fd00:61:0:3::', mac: '0e:2a:06:00:00:0d', permanent: true });
      await k.replaceFdb({ ifindex: v.index, mac: '0e:2a:06:00:00:0d', dst: '2001:db8:61::d', permanent: true });
      await k.replaceRoute({ dst: 'fd00:61:0:3::/64', gateway: 'fd00:61:0:3::', oif: v.index, onlink: true });
      await k.deleteLink(vx);
      assert.ok(!(await k.listRoutes(undefined, 6)).some((x) => x.dst.startsWith('fd00:61:')));
      assert.equal(await k.getVxlan(vx), null);
      await k.deleteNeighbour(v.index, 'fd00:61:0:3::');
      await k.deleteFdb(v.index, '0e:2a:06:00:00:0d', '2001:db8:61::d');
    });

    it('ip6 firewall: the head block creates ip6 filter FORWARD; flannel\'s accepts once it exists; ip6 masquerade (ip6 nat created), NOTRACK', async () => {
      const [a, b, sub] = ['fd61::/48', 'fd62::/48', 'fd61:0:0:5::/64'];
      await env.resetFirewall();
      try {
        assert.equal(await k.ensureForwardAccept(a), 'no-chain', 'no ip6 filter FORWARD yet');
        assert.deepEqual(await k.ensureForwardHead(['10.61.0.0/16']), { state: 'ok', added: 1, removed: 0 }, 'no v6 Network: no ip6 table made');
        assert.equal(await k.ensureForwardAccept(a), 'no-chain');
        assert.deepEqual(await k.ensureForwardHead([b, a, '10.61.0.0/16']), { state: 'ok', added: 4, removed: 0 });
        assert.deepEqual(await k.ensureForwardHead([a, '10.61.0.0/16', b]), { state: 'ok', added: 0, removed: 0 });
        assert.equal(await k.ensureForwardAccept(a), 'added');
        assert.equal(await k.ensureForwardAccept(a), 'present');
        assert.deepEqual(await k.ensureForwardHead([a, '10.61.0.0/16']), { state: 'ok', added: 1, removed: 4 });
        assert.deepEqual(await k.ensureForwardHead([]), { state: 'ok', added: 0, removed: 2 });
        await rejectsWith(k.ensureForwardHead(['fd61::/129']), 'INVALID');
        await rejectsWith(k.ensureForwardHead(['fd61::1/48']), 'INVALID', /host bits/);
        assert.equal(await k.removeMasquerade(a), 'no-chain');
        assert.equal(await k.ensureMasquerade(a, sub), 'updated');
        assert.equal(await k.ensureMasquerade(a, sub), 'present');
        assert.equal(await k.ensureMasquerade(a, 'fd61:0:0:6::/64'), 'updated');
        assert.equal(await k.removeMasquerade(a), 5);
        assert.equal(await k.removeMasquerade(a), 0);
        const rules = notrackRules(a, sub, { publicIP: env.parent.ip6, port: 8472 });
        assert.equal(await k.ensureNotrack(a, rules), 'updated');
        assert.equal(await k.ensureNotrack(a, rules), 'present');
        assert.equal(await k.removeNotrack(a), 4);
        assert.equal(await k.removeNotrack(a), 0);
      } finally {
        await env.resetFirewall();
      }
    });
  });
}
