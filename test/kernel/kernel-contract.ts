/**
 * The Kernel contract, run against NetlinkKernel in a scratch netns (test/kernel/netlink-kernel.test.ts)
 * and against FakeKernel (test/unit/fake-kernel.test.ts). Every behaviour the reconciler relies on
 * goes here, so the fake cannot drift from the real adapter unnoticed.
 *
 * The environment provides a "parent" NIC (up, with an address whose connected route exists) and a
 * name prefix so that several test files can share one namespace. Each case deletes what it made.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isOverlayError } from '../../src/errors';
import { errnoOf } from '../../src/kernel/errno';
import type { Kernel, VxlanSpec } from '../../src/kernel';
import { bridgeMacFor } from '../../src/domain/mac';
import { fastpathPlan, type HostRouteInput } from '../../src/domain/fastpath';
import { parseCidr } from '../../src/domain/ipv4';
import { MULTICAST_OFF_ALIAS, multicastPlan } from '../../src/domain/multicast';

export interface ContractEnv {
  kernel: Kernel;
  parent: { index: number; name: string; ip: string; mtu: number; cidr: string };
  /** 1-4 characters prepended to every link name this contract creates. */
  prefix: string;
  /** Another, independent Kernel instance (closed by the contract itself). */
  newKernel(): Kernel;
  /** Make nftables' `ip filter FORWARD` chain exist (empty) or not (its table deleted). */
  forwardChain(present: boolean): Promise<void>;
  teardown(): Promise<void>;
}

/** Assert `p` rejects with an OverlayError of `code` (and a message matching `re`); returns it. */
export async function rejectsWith(p: Promise<unknown>, code: string, re?: RegExp): Promise<Error> {
  try {
    await p;
  } catch (e) {
    assert.ok(isOverlayError(e), `expected OverlayError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return e;
  }
  assert.fail(`expected rejection with ${code}`);
}

export function kernelContract(label: string, setup: () => Promise<ContractEnv>): void {
  describe(`Kernel contract (${label})`, () => {
    let env: ContractEnv;
    let k: Kernel;
    let vx: string; // vxlan name
    let br: string; // bridge name
    const vxSpec = (over: Partial<VxlanSpec> = {}): VxlanSpec => ({
      name: vx,
      vni: 1,
      parentIndex: env.parent.index,
      local: env.parent.ip,
      port: 0,
      learning: false,
      gbp: false,
      mtu: env.parent.mtu - 50,
      mac: '0e:2a:00:00:00:01',
      ...over,
    });

    before(async () => {
      env = await setup();
      k = env.kernel;
      vx = `${env.prefix}vx.1`;
      br = `${env.prefix}br0`;
    });
    after(async () => {
      for (const n of [vx, br, `${env.prefix}vh0`, `${env.prefix}vp0`, `${env.prefix}vp1`]) await k.deleteLink(n);
      await env.teardown();
    });

    it('ensureVxlan twice yields one device with the same index and attributes', async () => {
      const a = await k.ensureVxlan(vxSpec());
      const b = await k.ensureVxlan(vxSpec());
      assert.equal(a.index, b.index);
      assert.deepEqual(a, b);
      assert.deepEqual(
        { kind: a.kind, vni: a.vni, port: a.port, local: a.local, learning: a.learning, parentIndex: a.parentIndex, mtu: a.mtu, mac: a.mac, up: a.up },
        { kind: 'vxlan', vni: 1, port: 8472, local: env.parent.ip, learning: false, parentIndex: env.parent.index, mtu: env.parent.mtu - 50, mac: '0e:2a:00:00:00:01', up: true },
      );
      assert.deepEqual(await k.getVxlan(vx), a);
      assert.equal((await k.listLinks()).filter((l) => l.name === vx).length, 1);
      // port 8472 given explicitly equals the default 0: kept
      assert.equal((await k.ensureVxlan(vxSpec({ port: 8472 }))).index, a.index);
      // MTU and MAC are repaired in place, not by recreation
      const c = await k.ensureVxlan(vxSpec({ mtu: 1400, mac: '0e:2a:00:00:00:02' }));
      assert.deepEqual([c.index, c.mtu, c.mac], [a.index, 1400, '0e:2a:00:00:00:02']);
    });

    it('an incompatible vxlan (vni, port, learning) is recreated', async () => {
      const a = await k.ensureVxlan(vxSpec());
      const b = await k.ensureVxlan(vxSpec({ vni: 2 }));
      assert.notEqual(b.index, a.index);
      assert.equal(b.vni, 2);
      const c = await k.ensureVxlan(vxSpec({ vni: 2, port: 4789 }));
      assert.notEqual(c.index, b.index);
      assert.equal(c.port, 4789);
      const d = await k.ensureVxlan(vxSpec({ vni: 2, port: 4789, learning: true }));
      assert.notEqual(d.index, c.index);
      assert.equal(d.learning, true);
      const e = await k.ensureVxlan(vxSpec());
      assert.deepEqual([e.vni, e.port, e.learning, e.up], [1, 8472, false, true]);
      assert.equal((await k.listLinks()).filter((l) => l.name === vx).length, 1);
    });

    it('a non-vxlan link with the vxlan name is replaced; a non-bridge with the bridge name is a CONFLICT', async () => {
      await k.deleteLink(vx);
      await k.ensureBridge(vx, 1400);
      const v = await k.ensureVxlan(vxSpec());
      assert.equal(v.kind, 'vxlan');
      await rejectsWith(k.ensureBridge(vx, 1400), 'CONFLICT', /vxlan/);
      assert.equal((await k.getLink(vx))?.kind, 'vxlan', 'the foreign link must survive');
    });

    it('ensureBridge + ensureVethPair + deleteLink', async () => {
      const [vh, vp, vp1] = [`${env.prefix}vh0`, `${env.prefix}vp0`, `${env.prefix}vp1`];
      const b1 = await k.ensureBridge(br, 1400);
      const b2 = await k.ensureBridge(br, 1400);
      assert.deepEqual([b2.index, b2.kind, b2.mtu, b2.up], [b1.index, 'bridge', 1400, true]);
      await k.ensureVethPair(vh, vp, 1400, br);
      const h1 = await k.getLink(vh);
      const p1 = await k.getLink(vp);
      assert.ok(h1 && p1);
      assert.deepEqual([h1.kind, h1.master, h1.up, h1.mtu], ['veth', b1.index, true, 1400]);
      // The bridge keeps its pinned MAC when a port joins (unpinned, it would take the port's).
      assert.equal(b1.mac, bridgeMacFor(br));
      assert.equal((await k.getLink(br))?.mac, bridgeMacFor(br), 'a joining port must not change the bridge MAC');
      assert.deepEqual([p1.kind, p1.master, p1.up, p1.mtu], ['veth', 0, false, 1400]);
      await k.ensureVethPair(vh, vp, 1400, br);
      assert.equal((await k.getLink(vh))?.index, h1.index, 'an intact pair is kept');
      assert.equal((await k.getLink(vp))?.index, p1.index);
      // existing host end with the wrong peer: recreated with the requested peer
      await k.ensureVethPair(vh, vp1, 1400, br);
      assert.equal(await k.getLink(vp), null);
      assert.equal((await k.getLink(vp1))?.kind, 'veth');
      assert.equal((await k.getLink(vh))?.master, b1.index);
      await rejectsWith(k.ensureVethPair(`${env.prefix}-sixteen-chars!`, vp, 1400), 'INVALID');
      await rejectsWith(k.ensureVethPair(vh, vp, 1400, `${env.prefix}nobr`), 'NOT_FOUND');
      await k.deleteLink(vh);
      assert.equal(await k.getLink(vh), null);
      assert.equal(await k.getLink(vp1), null, 'deleting one veth end removes both');
      await k.deleteLink(vh); // absent is fine
      await rejectsWith(k.setLinkUp(vh), 'NOT_FOUND');
    });

    it('ensureOnlyAddress keeps one address inside `within` and leaves the rest', async () => {
      const v = await k.ensureVxlan(vxSpec());
      const list = async () => (await k.listAddresses(v.index)).map((a) => `${a.address}/${a.prefixLen}`).sort();
      await k.ensureOnlyAddress(v.index, '10.1.7.0/32', '10.1.0.0/16');
      assert.deepEqual(await list(), ['10.1.7.0/32']);
      await k.ensureOnlyAddress(v.index, '192.168.77.1/32', '192.168.77.0/24');
      assert.deepEqual(await list(), ['10.1.7.0/32', '192.168.77.1/32']);
      await k.ensureOnlyAddress(v.index, '10.1.8.0/32', '10.1.0.0/16');
      await k.ensureOnlyAddress(v.index, '10.1.8.0/32', '10.1.0.0/16');
      assert.deepEqual(await list(), ['10.1.8.0/32', '192.168.77.1/32']);
      await k.ensureOnlyAddress(v.index, '10.1.8.0/32');
      assert.deepEqual(await list(), ['10.1.8.0/32']);
      // same IP, other prefix length: replaced; a same-subnet primary is removed without losing ours
      const b = await k.ensureBridge(br, 1400);
      await k.ensureOnlyAddress(b.index, '10.1.8.5/24', '10.1.0.0/16');
      await k.ensureOnlyAddress(b.index, '10.1.8.1/24', '10.1.0.0/16');
      assert.deepEqual((await k.listAddresses(b.index)).map((a) => `${a.address}/${a.prefixLen}`), ['10.1.8.1/24']);
      await k.ensureOnlyAddress(b.index, '10.1.8.1/25', '10.1.0.0/16');
      assert.deepEqual((await k.listAddresses(b.index)).map((a) => `${a.address}/${a.prefixLen}`), ['10.1.8.1/25']);
      // an address on an up link brings its connected route (the reconciler must not delete it)
      assert.deepEqual(await k.listRoutes(b.index), [{ dst: '10.1.8.0/25', oif: b.index, onlink: false }]);
      await rejectsWith(k.ensureOnlyAddress(b.index, '10.1.8.300/24'), 'INVALID');
    });

    it('removeAddress deletes exactly that address and prefix length; absent is false', async () => {
      const b = await k.ensureBridge(br, 1400);
      const list = async () => (await k.listAddresses(b.index)).map((a) => `${a.address}/${a.prefixLen}`).sort();
      await k.ensureOnlyAddress(b.index, '10.77.9.1/24');
      await k.ensureOnlyAddress(b.index, '169.254.53.99/32', '169.254.53.99/32');
      assert.deepEqual(await list(), ['10.77.9.1/24', '169.254.53.99/32']);
      assert.equal(await k.removeAddress(b.index, '169.254.53.99/24'), false, 'another prefix length is another address');
      assert.equal(await k.removeAddress(b.index, '169.254.53.99/32'), true);
      assert.deepEqual(await list(), ['10.77.9.1/24']);
      assert.equal(await k.removeAddress(b.index, '169.254.53.99/32'), false);
      await rejectsWith(k.removeAddress(b.index, '169.254.53.300/32'), 'INVALID');
      assert.equal(await k.removeAddress(b.index, '10.77.9.1/24'), true);
      assert.deepEqual(await list(), []);
    });

    it('neighbour replace twice = one entry; update, list, delete, delete absent', async () => {
      const v = await k.ensureVxlan(vxSpec());
      const n = { ifindex: v.index, ip: '10.1.9.0', mac: '0e:2a:00:00:00:09', permanent: true };
      await k.replaceNeighbour(n);
      await k.replaceNeighbour(n);
      assert.deepEqual(await k.listNeighbours(v.index), [n]);
      await k.replaceNeighbour({ ...n, mac: '0e:2a:00:00:00:0a' });
      assert.deepEqual(await k.listNeighbours(v.index), [{ ...n, mac: '0e:2a:00:00:00:0a' }]);
      await k.deleteNeighbour(v.index, n.ip);
      assert.deepEqual(await k.listNeighbours(v.index), []);
      await k.deleteNeighbour(v.index, n.ip);
    });

    it('FDB replace twice = one entry; dst update, list, delete, delete absent', async () => {
      const v = await k.ensureVxlan(vxSpec());
      const f = { ifindex: v.index, mac: '0e:2a:00:00:00:09', dst: '192.0.2.20', permanent: true };
      await k.replaceFdb(f);
      await k.replaceFdb(f);
      assert.deepEqual(await k.listFdb(v.index), [f]);
      await k.replaceFdb({ ...f, dst: '192.0.2.21' });
      assert.deepEqual(await k.listFdb(v.index), [{ ...f, dst: '192.0.2.21' }]);
      // all-zeros (flood) entries: one per dst, written twice without error
      const z = { ...f, mac: '00:00:00:00:00:00' };
      for (const dst of ['192.0.2.30', '192.0.2.31', '192.0.2.30']) await k.replaceFdb({ ...z, dst });
      assert.equal((await k.listFdb(v.index)).filter((e) => e.mac === z.mac).length, 2);
      await k.deleteFdb(v.index, z.mac, '192.0.2.30');
      assert.deepEqual((await k.listFdb(v.index)).filter((e) => e.mac === z.mac).map((e) => e.dst), ['192.0.2.31']);
      await k.deleteFdb(v.index, z.mac);
      await k.deleteFdb(v.index, f.mac);
      assert.deepEqual(await k.listFdb(v.index), []);
      await k.deleteFdb(v.index, f.mac);
    });

    it('routes: onlink round-trip, replace twice = one, update, link-scope, delete, delete absent', async () => {
      const v = await k.ensureVxlan(vxSpec());
      const r = { dst: '10.1.9.0/24', gateway: '10.1.9.0', oif: v.index, onlink: true };
      await k.replaceRoute(r);
      await k.replaceRoute(r);
      assert.deepEqual(await k.listRoutes(v.index), [r]);
      await k.replaceRoute({ ...r, gateway: '10.1.9.1' });
      assert.deepEqual(await k.listRoutes(v.index), [{ ...r, gateway: '10.1.9.1' }]);
      const direct = { dst: '10.77.0.0/16', oif: v.index, onlink: false };
      await k.replaceRoute(direct);
      assert.deepEqual((await k.listRoutes(v.index)).map((x) => x.dst).sort(), ['10.1.9.0/24', '10.77.0.0/16']);
      assert.ok((await k.listRoutes()).some((x) => x.dst === '10.77.0.0/16'), 'listRoutes() without oif lists all');
      await k.deleteRoute('10.77.0.0/16'); // link scope, no gateway
      await k.deleteRoute(r.dst);
      assert.deepEqual(await k.listRoutes(v.index), []);
      await k.deleteRoute(r.dst);
      await rejectsWith(k.replaceRoute({ ...r, dst: '10.1.9.1/24' }), 'INVALID', /host bits/);
    });

    it('a gateway off every connected route without onlink is a KERNEL error naming route and ENETUNREACH', async () => {
      const v = await k.ensureVxlan(vxSpec());
      const e = await rejectsWith(k.replaceRoute({ dst: '10.1.10.0/24', gateway: '10.1.10.0', oif: v.index, onlink: false }), 'KERNEL', /10\.1\.10\.0\/24.*ENETUNREACH/);
      assert.equal(errnoOf(e), 'ENETUNREACH');
    });

    it('defaultRouteInterface follows the main-table default route', async () => {
      const gw = env.parent.cidr.replace(/\.\d+\/\d+$/, '.1');
      await k.replaceRoute({ dst: '0.0.0.0/0', gateway: gw, oif: env.parent.index, onlink: false });
      try {
        const l = await k.defaultRouteInterface();
        assert.equal(l?.name, env.parent.name);
        assert.ok((await k.listRoutes(env.parent.index)).some((x) => x.dst === '0.0.0.0/0' && x.gateway === gw));
      } finally {
        await k.deleteRoute('0.0.0.0/0');
      }
      assert.equal(await k.defaultRouteInterface(), null);
    });

    it('deleting a link takes its routes, neighbours and FDB entries along', async () => {
      const v = await k.ensureVxlan(vxSpec());
      await k.replaceNeighbour({ ifindex: v.index, ip: '10.1.11.0', mac: '0e:2a:00:00:00:0b', permanent: true });
      await k.replaceFdb({ ifindex: v.index, mac: '0e:2a:00:00:00:0b', dst: '192.0.2.22', permanent: true });
      await k.replaceRoute({ dst: '10.1.11.0/24', gateway: '10.1.11.0', oif: v.index, onlink: true });
      await k.deleteLink(vx);
      assert.ok(!(await k.listRoutes()).some((x) => x.dst === '10.1.11.0/24'));
      assert.equal(await k.getVxlan(vx), null);
      await k.deleteNeighbour(v.index, '10.1.11.0'); // device gone: still fine
      await k.deleteFdb(v.index, '0e:2a:00:00:00:0b');
    });

    it('ensureForwardHead: no-chain without FORWARD; the block written, kept, rewritten whole on a change, emptied', async () => {
      const [a, b] = ['10.61.0.0/16', '10.62.0.0/16'];
      await env.forwardChain(false);
      assert.deepEqual(await k.ensureForwardHead([a, b]), { state: 'no-chain' });
      await env.forwardChain(true);
      try {
        assert.deepEqual(await k.ensureForwardHead([b, a]), { state: 'ok', added: 4, removed: 0 });
        assert.deepEqual(await k.ensureForwardHead([a, b]), { state: 'ok', added: 0, removed: 0 }, 'the same block in another order changes nothing');
        assert.deepEqual(await k.ensureForwardHead([a]), { state: 'ok', added: 1, removed: 4 });
        assert.deepEqual(await k.ensureForwardHead([]), { state: 'ok', added: 0, removed: 1 });
        await rejectsWith(k.ensureForwardHead(['10.61.0.0/33']), 'INVALID');
      } finally {
        await env.forwardChain(false);
      }
    });

    it('fast path table: written anew, kept, changed in place for an endpoint, removed', async () => {
      const dev = await k.ensureVxlan(vxSpec());
      const veth = await k.ensureVethPair(`${env.prefix}vh0`, `${env.prefix}vp0`, 1400);
      const overlay = { name: 'default', vni: 1, network: parseCidr('10.77.0.0/16'), subnet: parseCidr('10.77.3.0/24'), vxlanDevice: vx, vxlanIndex: dev.index, peerRoutes: [parseCidr('10.77.4.0/24')] };
      const plan = (routes: HostRouteInput[]) => fastpathPlan([overlay], routes, `${env.prefix}vh`).plan;
      const endpoint: HostRouteInput = { dst: parseCidr('10.77.3.5/32'), oif: veth.index, oifName: veth.name };
      try {
        assert.equal(await k.removeFastpath(), false, 'no table at the start');
        assert.equal(await k.ensureFastpath(plan([])), 'rewritten');
        assert.equal(await k.ensureFastpath(plan([])), 'present');
        assert.equal(await k.ensureFastpath(plan([endpoint])), 'updated');
        assert.equal(await k.ensureFastpath(plan([endpoint])), 'present');
        assert.equal(await k.ensureFastpath(plan([])), 'updated', 'the endpoint removed in place');
      } finally {
        assert.equal(await k.removeFastpath(), true);
        await k.deleteLink(veth.name);
      }
      assert.equal(await k.ensureFastpath({ overlays: [], digest: '' }), 'absent');
    });

    it('multicast table: written, kept, rewritten for a new member, removed; a link alias is set, read back, cleared', async () => {
      const dev = await k.ensureVxlan(vxSpec());
      const v0 = await k.ensureVethPair(`${env.prefix}vm0`, `${env.prefix}vq0`, 1400);
      const v1 = await k.ensureVethPair(`${env.prefix}vm1`, `${env.prefix}vq1`, 1400);
      const bridge = await k.ensureBridge(br, 1400);
      const plan = (veths: { name: string; index: number }[]) =>
        multicastPlan([{ overlay: 'default', vni: 1, vxlan: { name: vx, index: dev.index }, network: { mode: 'routed', enabled: true, bridge: { name: br, index: bridge.index }, veths } }]);
      try {
        assert.equal(await k.removeMulticast(), false, 'no table at the start');
        assert.equal(await k.ensureMulticast(plan([v0])), 'rewritten');
        assert.equal(await k.ensureMulticast(plan([v0])), 'present');
        assert.equal(await k.ensureMulticast(plan([v0, v1])), 'rewritten');
        assert.equal(await k.ensureMulticast(plan([v0, v1])), 'present');
        await k.setLinkAlias(br, MULTICAST_OFF_ALIAS);
        assert.equal((await k.getLink(br))?.alias, MULTICAST_OFF_ALIAS);
        assert.equal((await k.listLinks()).find((l) => l.name === br)?.alias, MULTICAST_OFF_ALIAS, 'listed too');
        await k.setLinkAlias(br, '');
        assert.equal((await k.getLink(br))?.alias, undefined, 'cleared');
        await rejectsWith(k.setLinkAlias(`${env.prefix}nolink`, 'x'), 'NOT_FOUND');
      } finally {
        assert.equal(await k.removeMulticast(), true);
        await k.deleteLink(v0.name);
        await k.deleteLink(v1.name);
        await k.deleteLink(br);
      }
      assert.equal(await k.ensureMulticast({ chains: [], digest: '' }), 'absent');
    });

    it('names interception: written, kept when written twice, rewritten on a change, removed; a bad spec is INVALID', async () => {
      const spec = { queue: 4053, markBit: 0x00100000, zone: 4053, answerAddress: '169.254.53.53', answerPort: 53, interfacePrefixes: ['ofh', 'ofb-'] };
      try {
        assert.equal(await k.ensureNameInterception(spec), 'updated');
        assert.equal(await k.ensureNameInterception(spec), 'present');
        assert.equal(await k.ensureNameInterception({ ...spec, markBit: 0x00200000 }), 'updated');
        assert.equal(await k.ensureNameInterception({ ...spec, markBit: 0x00200000 }), 'present');
        await rejectsWith(k.ensureNameInterception({ ...spec, markBit: 3 }), 'INVALID', /mark bit/);
        await rejectsWith(k.ensureNameInterception({ ...spec, interfacePrefixes: ['bad name'] }), 'INVALID', /interface prefix/);
        assert.equal(await k.ensureNameInterception({ ...spec, markBit: 0x00200000 }), 'present', 'a refused spec changed nothing');
      } finally {
        await k.removeNameInterception();
      }
      assert.equal(await k.removeNameInterception(), false, 'nothing left to remove');
    });

    it('packet queue: one binding per queue number; close() frees it; a bad number is INVALID', async () => {
      const q = await k.openPacketQueue(4054, () => undefined);
      try {
        assert.equal(q.queue, 4054);
        await rejectsWith(k.openPacketQueue(4054, () => undefined), 'KERNEL', /EPERM/); // a second socket may not take it
      } finally {
        await q.close();
      }
      await q.close(); // idempotent
      const again = await k.openPacketQueue(4054, () => undefined);
      await again.close();
      await rejectsWith(k.openPacketQueue(70000, () => undefined), 'INVALID', /queue number/);
    });

    it('bad names are INVALID before reaching the kernel', async () => {
      await rejectsWith(k.getLink('a-name-longer-than-15'), 'INVALID');
      await rejectsWith(k.ensureBridge('has space', 1500), 'INVALID');
      await rejectsWith(k.ensureVxlan(vxSpec({ vni: 0 })), 'INVALID');
    });

    it('after close() calls fail with UNAVAILABLE', async () => {
      const k2 = env.newKernel();
      assert.equal((await k2.getLink(env.parent.name))?.index, env.parent.index);
      await k2.close();
      await rejectsWith(k2.getLink(env.parent.name), 'UNAVAILABLE');
      await k2.close(); // idempotent
    });
  });
}
