import { readFileSync } from 'node:fs';
/**
 * Real-kernel checks that only make sense against NetlinkKernel: what it writes is what iproute2
 * reads back (and vice versa), errno mapping, concurrency on one socket, close(), and the cost of
 * programming thousands of entries. Runs in a scratch netns; names start with "ip".
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { isOverlayError } from '../../src/errors';
import { createNetlinkKernel, errnoOf, type Kernel, type VxlanSpec } from '../../src/kernel';
import { createLink } from '../../src/kernel/links';
import { NlSocket } from '../../src/kernel/netlink-socket';
import { deleteLinkIfPresent, inScratchNetns, json, linkExists, makeParent, run, SKIP_REASON } from './netns';

const PARENT = 'ipup0';
const VX = 'ipvx.7';
const BR = 'ipbr0';
const [VH, VP] = ['ipvh0', 'ipvp0'];
const FOREIGN = 'ipfor0';

function codeOf(e: unknown): string {
  return isOverlayError(e) ? e.code : `not an OverlayError: ${String(e)}`;
}

// Never skip: outside a scratch namespace the suite fails loudly instead of touching the host.
if (!inScratchNetns()) throw new Error(SKIP_REASON);

describe('NetlinkKernel against iproute2', () => {
  let k: Kernel;
  let parentIndex = 0;
  const spec = (): VxlanSpec => ({ name: VX, vni: 7, parentIndex, local: '198.51.100.10', port: 0, learning: false, gbp: false, mtu: 1450, mac: '0e:2a:07:00:00:01' });

  before(async () => {
    makeParent(PARENT, '198.51.100.10/24');
    k = createNetlinkKernel({ timeoutMs: 5000 });
    parentIndex = (await k.getLink(PARENT))?.index ?? 0;
  });
  after(async () => {
    await k.close();
    for (const n of [VX, BR, VH, VP, FOREIGN, PARENT]) deleteLinkIfPresent(n);
  });

  it('vxlan attributes match `ip -d -j link show`', async () => {
    const v = await k.ensureVxlan(spec());
    const [j] = json('ip', '-d', 'link', 'show', 'dev', VX);
    assert.equal(j.ifindex, v.index);
    assert.equal(j.mtu, 1450);
    assert.equal(j.address, '0e:2a:07:00:00:01');
    assert.ok(j.flags.includes('UP'));
    assert.equal(j.linkinfo.info_kind, 'vxlan');
    const d = j.linkinfo.info_data;
    assert.deepEqual([d.id, d.port, d.local, d.learning, d.link], [7, 8472, '198.51.100.10', false, PARENT]);
    assert.deepEqual((await k.listLinks()).find((l) => l.name === VX), {
      index: v.index, name: VX, kind: 'vxlan', mtu: 1450, mac: '0e:2a:07:00:00:01', up: true, master: 0,
    });
  });

  it('bridge and veth match `ip -d -j link show`', async () => {
    await k.ensureBridge(BR, 1400);
    await k.ensureVethPair(VH, VP, 1400, BR);
    const [h] = json('ip', '-d', 'link', 'show', 'dev', VH);
    const [p] = json('ip', '-d', 'link', 'show', 'dev', VP);
    const [b] = json('ip', '-d', 'link', 'show', 'dev', BR);
    assert.deepEqual([b.linkinfo.info_kind, b.mtu, b.flags.includes('UP')], ['bridge', 1400, true]);
    assert.deepEqual([h.linkinfo.info_kind, h.master, h.mtu, h.link, h.flags.includes('UP')], ['veth', BR, 1400, VP, true]);
    assert.deepEqual([p.mtu, p.link, p.flags.includes('UP')], [1400, VH, false]);
    const ours = (await k.listLinks()).map((l) => `${l.index}:${l.name}`).sort();
    const theirs = json<{ ifindex: number; ifname: string }[]>('ip', 'link', 'show').map((l) => `${l.ifindex}:${l.ifname}`).sort();
    assert.deepEqual(ours, theirs);
  });

  it('per-device forwarding is set over netlink, as /proc/sys shows it', async () => {
    const br = await k.ensureBridge(BR, 1400);
    const read = () => readFileSync(`/proc/sys/net/ipv4/conf/${BR}/forwarding`, 'utf8').trim();
    await k.setForwarding(br.index, true);
    assert.equal(read(), '1');
    await k.setForwarding(br.index, false);
    assert.equal(read(), '0');
  });

  it('a veth whose peer Docker moved into a container netns is kept, not recreated', async () => {
    const holder = spawn('unshare', ['--net', 'sleep', '30'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const before1 = await k.getLink(VH);
      run('ip', 'link', 'set', VP, 'netns', String(holder.pid));
      await k.ensureVethPair(VH, VP, 1400, BR);
      assert.equal((await k.getLink(VH))?.index, before1?.index);
      assert.equal(await k.getLink(VP), null);
    } finally {
      holder.kill('SIGKILL');
    }
    for (let i = 0; i < 50 && linkExists(VH); i++) await new Promise((r) => setTimeout(r, 20)); // netns teardown is async
    await k.ensureVethPair(VH, VP, 1400, BR); // peer died with the netns: recreated
    assert.equal((await k.getLink(VP))?.kind, 'veth');
  });

  it('neighbours, FDB, routes and addresses match `ip -j` / `bridge -j`, in both directions', async () => {
    const v = await k.ensureVxlan(spec());
    await k.ensureOnlyAddress(v.index, '10.7.3.0/32', '10.7.0.0/16');
    await k.replaceNeighbour({ ifindex: v.index, ip: '10.7.5.0', mac: '0e:2a:07:00:00:05', permanent: true });
    await k.replaceFdb({ ifindex: v.index, mac: '0e:2a:07:00:00:05', dst: '198.51.100.20', permanent: true });
    await k.replaceRoute({ dst: '10.7.5.0/24', gateway: '10.7.5.0', oif: v.index, onlink: true });
    assert.deepEqual(json('ip', 'neigh', 'show', 'dev', VX), [{ dst: '10.7.5.0', lladdr: '0e:2a:07:00:00:05', state: ['PERMANENT'] }]);
    assert.deepEqual(json('bridge', 'fdb', 'show', 'dev', VX), [{ mac: '0e:2a:07:00:00:05', dst: '198.51.100.20', flags: ['self'], state: 'permanent' }]);
    assert.deepEqual(json('ip', 'route', 'show', 'dev', VX), [{ dst: '10.7.5.0/24', gateway: '10.7.5.0', flags: ['onlink'] }]);
    const [a] = json('ip', '-4', 'addr', 'show', 'dev', VX);
    assert.deepEqual(a.addr_info.map((x: { local: string; prefixlen: number }) => `${x.local}/${x.prefixlen}`), ['10.7.3.0/32']);

    // written by iproute2, read by us; other tables and devices are not listed
    run('ip', 'neigh', 'replace', '10.7.6.0', 'lladdr', '0e:2a:07:00:00:06', 'dev', VX, 'nud', 'permanent');
    run('bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', VX, 'dst', '198.51.100.30', 'self', 'permanent');
    run('ip', 'route', 'replace', '10.7.6.0/24', 'via', '10.7.6.0', 'dev', VX, 'onlink', 'table', '100');
    run('ip', 'neigh', 'replace', '198.51.100.99', 'lladdr', '0e:2a:07:00:00:99', 'dev', PARENT, 'nud', 'permanent');
    assert.deepEqual((await k.listNeighbours(v.index)).map((n) => n.ip).sort(), ['10.7.5.0', '10.7.6.0']);
    assert.deepEqual((await k.listFdb(v.index)).map((f) => `${f.mac}>${f.dst}`).sort(), ['00:00:00:00:00:00>198.51.100.30', '0e:2a:07:00:00:05>198.51.100.20']);
    assert.deepEqual(await k.listRoutes(v.index), [{ dst: '10.7.5.0/24', gateway: '10.7.5.0', oif: v.index, onlink: true }]);
    run('ip', 'route', 'del', '10.7.6.0/24', 'table', '100');
    await k.deleteLink(VX);
  });

  it('kernel refusals carry object and errno; a missing link type is UNSUPPORTED with the fix', async () => {
    const v = await k.ensureVxlan(spec());
    await assert.rejects(k.ensureVxlan({ ...spec(), mtu: 1460 }), (e) => codeOf(e) === 'KERNEL' && errnoOf(e) === 'EINVAL' && /ipvx\.7.*mtu 1460/.test((e as Error).message));
    await assert.rejects(k.replaceNeighbour({ ifindex: 99999, ip: '10.7.9.0', mac: '0e:2a:07:00:00:09', permanent: true }), (e) => errnoOf(e) === 'ENODEV' && /10\.7\.9\.0/.test((e as Error).message));
    await assert.rejects(k.replaceRoute({ dst: '10.7.9.0/24', gateway: '10.7.9.0', oif: v.index, onlink: false }), (e) => errnoOf(e) === 'ENETUNREACH');
    const ns = new NlSocket();
    try {
      await assert.rejects(createLink(ns, 'nosuchkind', 'ipzz0', {}), (e) => codeOf(e) === 'UNSUPPORTED' && /modprobe nosuchkind/.test((e as Error).message));
    } finally {
      await ns.close();
    }
  });

  it('a foreign non-bridge link named like our bridge is a CONFLICT and survives', async () => {
    run('ip', 'link', 'add', FOREIGN, 'type', 'veth', 'peer', 'name', `${FOREIGN}p`);
    await assert.rejects(k.ensureBridge(FOREIGN, 1400), (e) => codeOf(e) === 'CONFLICT' && /veth/.test((e as Error).message));
    assert.ok(linkExists(FOREIGN));
    deleteLinkIfPresent(FOREIGN);
  });

  it('200 concurrent neighbour writes mixed with dumps all succeed', async () => {
    const v = await k.ensureVxlan(spec());
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      jobs.push(k.replaceNeighbour({ ifindex: v.index, ip: `10.8.${i}.0`, mac: '0e:2a:08:00:00:01', permanent: true }));
      if (i % 20 === 0) jobs.push(k.listNeighbours(v.index), k.listLinks(), k.listRoutes());
    }
    await Promise.all(jobs);
    assert.equal((await k.listNeighbours(v.index)).length, 200);
    assert.equal(json('ip', 'neigh', 'show', 'dev', VX).length, 200);
    await k.deleteLink(VX);
  });

  it('close() settles in-flight and queued calls (UNAVAILABLE), never leaves them hanging', async () => {
    const k2 = createNetlinkKernel();
    const calls = Array.from({ length: 100 }, (_, i) => (i % 10 === 0 ? k2.listLinks() : k2.getLink(PARENT)));
    await k2.close();
    const results = await Promise.allSettled(calls);
    for (const r of results) {
      if (r.status === 'rejected') assert.equal(codeOf(r.reason), 'UNAVAILABLE');
    }
  });

  it('a timed-out dump is UNAVAILABLE and the socket is renewed for the next call', async () => {
    const v = await k.ensureVxlan(spec());
    for (let i = 0; i < 300; i++) await k.replaceRoute({ dst: `10.9.${i >> 8}.${i & 255}/32`, oif: v.index, onlink: false });
    const ns = new NlSocket({ timeoutMs: 1 });
    const { rt } = await import('netlink');
    try {
      const lost = ns.dump('list routes', rt.MessageType.GETROUTE, rt.formatRoute({ family: 2 }));
      const until = Date.now() + 10;
      while (Date.now() < until); // block the loop: the 1 ms timer fires before the reply is read
      await assert.rejects(lost, (e) => codeOf(e) === 'UNAVAILABLE' && /no answer from the kernel within 1 ms/.test((e as Error).message));
      (ns as unknown as { timeoutMs: number }).timeoutMs = 5000;
      const msgs = await ns.dump('list routes', rt.MessageType.GETROUTE, rt.formatRoute({ family: 2 }));
      assert.ok(msgs.length >= 300);
    } finally {
      await ns.close();
      await k.deleteLink(VX);
    }
  });

  it('2000 neighbour + FDB + route entries, sequentially, without per-call dumps', async () => {
    const v = await k.ensureVxlan(spec());
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 2000; i++) {
      const ip = `10.${10 + (i >> 8)}.${i & 255}.0`;
      const mac = `0e:2a:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}:00:01`;
      await k.replaceNeighbour({ ifindex: v.index, ip, mac, permanent: true });
      await k.replaceFdb({ ifindex: v.index, mac, dst: `198.51.100.${1 + (i % 200)}`, permanent: true });
      await k.replaceRoute({ dst: `${ip}/24`, gateway: ip, oif: v.index, onlink: true });
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const t1 = process.hrtime.bigint();
    const [n, f, r] = await Promise.all([k.listNeighbours(v.index), k.listFdb(v.index), k.listRoutes(v.index)]);
    const listMs = Number(process.hrtime.bigint() - t1) / 1e6;
    assert.deepEqual([n.length, f.length, r.length], [2000, 2000, 2000]);
    console.log(`# 6000 writes in ${ms.toFixed(0)} ms, 3 list dumps in ${listMs.toFixed(0)} ms`);
    assert.ok(ms < 15000, `6000 sequential writes took ${ms} ms`);
    await k.deleteLink(VX);
  });
});
