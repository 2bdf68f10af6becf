/**
 * The fast path's IPv6 half (to6-/from6- chains of src/kernel/nft-fastpath.ts) against the real
 * kernel, with real packets: this scratch namespace is host A (flannel.<vni> and flannel-v6.<vni>
 * over a 2001:db8:: underlay, a container namespace behind a routed veth with the link-local
 * gateway and a /128 host route, as network-v6.ts makes them), a second namespace is a
 * flanneld-style dual-stack peer B with its own container. With IPv6 forwarding switched OFF on
 * A, the only way a ping6 crosses A is the fast path, so a ping6 that passes proves both
 * directions and the rules' counters show which rule carried it; a reply hop limit of 62 and the
 * -t 1/2/3 rows prove `fwd ip6` decrements the hop limit as the two routers would; a packet longer
 * than flannel-v6's MTU (1430; the container's is 1500, as FLANNEL_MTU is above it) is left to
 * routing, which answers Packet Too Big, after which the fragments fit the fast path. Then: repair
 * of a deleted element and of a deleted table, and fallback to routing without the table.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { ensureFastpath, removeFastpath } from '../../src/kernel/nft-fastpath';
import { fastpathPlan, FASTPATH_TABLE, type FastpathPlan } from '../../src/domain/fastpath';
import { parseCidr } from '../../src/domain/ipv4';
import { parseCidr6 } from '../../src/domain/ipv6';
import { inScratchNetns, SKIP_REASON } from './netns';

const sh = (cmd: string, ...args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
function quietly(cmd: string, ...args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    /* absent */
  }
}
const id = Math.random().toString(16).slice(2, 8);
const B = `of6p${id}b`;
const C = `of6p${id}c`;
const D = `of6p${id}d`;
const VNI = 4000 + Math.floor(Math.random() * 900);
const VX = `flannel.${VNI}`;
const VX6 = `flannel-v6.${VNI}`;
const VETH = `ofh${id}`;
const LAN6 = `2001:db8:${(0x100 + Math.floor(Math.random() * 0xe00)).toString(16)}`;
const inB = (...args: string[]): string => sh('ip', 'netns', 'exec', B, ...args);
const ifindex = (dev: string): number => JSON.parse(sh('ip', '-j', 'link', 'show', dev))[0].ifindex as number;
const setForwarding6 = (on: boolean): void => writeFileSync('/proc/sys/net/ipv6/conf/all/forwarding', on ? '1' : '0');
/** One ping6 (≤ 2 s) from netns `ns` to `ip`: its reply hop limit, or null when unanswered. */
function ping6(ns: string, ip: string, extra: string[] = []): number | null {
  try {
    const out = sh('ip', 'netns', 'exec', ns, 'ping', '-6', '-n', '-c', '1', '-W', '2', ...extra, ip);
    return Number(/(?:ttl|hlim)=(\d+)/.exec(out)?.[1] ?? NaN);
  } catch {
    return null;
  }
}
/** Packets counted by the one rule of chain `name` (its `counter`). */
function counted(name: string): number {
  const m = /counter packets (\d+)/.exec(sh('nft', 'list', 'chain', 'netdev', FASTPATH_TABLE, name));
  assert.ok(m, `chain ${name} has a counter`);
  return Number(m[1]);
}
function plan(endpoints6: string[]): FastpathPlan {
  const overlay = {
    name: 'default',
    vni: VNI,
    network: parseCidr('10.77.0.0/16'),
    subnet: parseCidr('10.77.3.0/24'),
    vxlanDevice: VX,
    vxlanIndex: ifindex(VX),
    peerRoutes: [],
    v6: { network: parseCidr6('fd00:77::/48'), subnet: parseCidr6('fd00:77:0:3::/64'), device: VX6, index: ifindex(VX6), mtu: 1430, peerRoutes: [parseCidr6('fd00:77:0:4::/64')] },
  };
  const routes6 = endpoints6.map((a) => ({ dst: parseCidr6(`${a}/128`), oif: ifindex(VETH), oifName: VETH }));
  return fastpathPlan([overlay], [], 'ofh', routes6).plan;
}

/** flanneld's v6 half (docs/ipv6.md §2) and a routed container (network-v6.ts) on one host. */
function host(exec: (...a: string[]) => string, me: { ip: string; subnet: string; mac: string; veth: string; container: string; cip: string }, peer: { ip: string; subnet: string; mac: string }): void {
  exec('ip', 'link', 'add', VX6, 'address', me.mac, 'mtu', '1430', 'type', 'vxlan', 'id', String(VNI), 'local', me.ip, 'dstport', '8472', 'nolearning');
  exec('ip', 'addr', 'add', `${me.subnet}::/128`, 'dev', VX6, 'nodad');
  exec('ip', 'link', 'set', VX6, 'up');
  exec('ip', '-6', 'neigh', 'replace', `${peer.subnet}::`, 'lladdr', peer.mac, 'dev', VX6, 'nud', 'permanent');
  exec('bridge', 'fdb', 'append', peer.mac, 'dev', VX6, 'dst', peer.ip);
  exec('ip', '-6', 'route', 'add', `${peer.subnet}::/64`, 'via', `${peer.subnet}::`, 'dev', VX6, 'onlink');
  exec('ip', 'link', 'add', me.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', me.container);
  exec('ip', 'addr', 'add', 'fe80::a9fe:101/64', 'dev', me.veth, 'nodad');
  exec('ip', 'link', 'set', me.veth, 'up');
  exec('ip', '-6', 'route', 'add', `${me.cip}/128`, 'dev', me.veth);
  const inC = (...a: string[]): string => sh('ip', 'netns', 'exec', me.container, ...a);
  inC('ip', 'link', 'set', 'lo', 'up');
  inC('ip', 'addr', 'add', `${me.cip}/128`, 'dev', 'eth0', 'nodad');
  inC('ip', 'link', 'set', 'eth0', 'up');
  inC('ip', '-6', 'route', 'add', 'default', 'via', 'fe80::a9fe:101', 'dev', 'eth0');
}

if (!inScratchNetns()) {
  describe('fast path, IPv6 half (nftables netdev fwd ip6)', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  describe('fast path, IPv6 half (nftables netdev fwd ip6)', () => {
    before(() => {
      for (const ns of [B, C, D]) sh('ip', 'netns', 'add', ns);
      sh('ip', 'link', 'set', 'lo', 'up');
      sh('ip', 'link', 'add', `und${id}`, 'type', 'veth', 'peer', 'name', 'eth1', 'netns', B);
      sh('ip', 'addr', 'add', '198.51.100.1/24', 'dev', `und${id}`);
      sh('ip', 'addr', 'add', `${LAN6}::1/64`, 'dev', `und${id}`, 'nodad');
      sh('ip', 'link', 'set', `und${id}`, 'up');
      inB('ip', 'link', 'set', 'lo', 'up');
      inB('ip', 'addr', 'add', `${LAN6}::2/64`, 'dev', 'eth1', 'nodad');
      inB('ip', 'link', 'set', 'eth1', 'up');
      inB('sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1');
      // The overlay's v4 device (the plan needs one; v4 traffic is nft-fastpath.test.ts's).
      sh('ip', 'link', 'add', VX, 'type', 'vxlan', 'id', String(VNI), 'local', '198.51.100.1', 'dstport', '8472', 'nolearning');
      sh('ip', 'link', 'set', VX, 'up');
      const a = { ip: `${LAN6}::1`, subnet: 'fd00:77:0:3', mac: '0e:77:00:00:06:0a' };
      const b = { ip: `${LAN6}::2`, subnet: 'fd00:77:0:4', mac: '0e:77:00:00:06:0b' };
      host(sh, { ...a, veth: VETH, container: C, cip: 'fd00:77:0:3::2' }, b);
      host(inB, { ...b, veth: `ofhpeer${id}`, container: D, cip: 'fd00:77:0:4::2' }, a);
    });
    after(() => {
      setForwarding6(false);
      for (const ns of [B, C, D]) sh('ip', 'netns', 'del', ns);
      for (const dev of [VX, VX6, VETH, `und${id}`]) quietly('ip', 'link', 'del', dev);
      quietly('nft', 'delete', 'table', 'netdev', FASTPATH_TABLE);
    });

    it('the lab routes v6 without it, and nothing crosses this host with v6 forwarding off', () => {
      setForwarding6(true);
      assert.equal(ping6(C, 'fd00:77:0:4::2'), 62, 'routed: container → peer container, reply hop limit 64 − 2 routers');
      setForwarding6(false);
      assert.equal(ping6(C, 'fd00:77:0:4::2'), null, 'with v6 forwarding off, the routed path must be closed');
    });

    it('forwards both ways with forwarding off through to6-/from6-, decrementing the hop limit like routing', async () => {
      const p = plan(['fd00:77:0:3::2']);
      assert.equal(await ensureFastpath(p), 'rewritten');
      const listed = sh('nft', 'list', 'table', 'netdev', FASTPATH_TABLE);
      assert.match(listed, new RegExp(`chain to6-${VNI} \\{[^}]*ip6 hoplimit > 1 meta length <= 1430 ip6 daddr & ffff:ffff:ffff:ffff:: == @peers6-${VNI} counter packets 0 bytes 0 fwd ip6 to ip6 daddr & ffff:ffff:ffff:ffff:: device "${VX6.replace(/\./g, '\\.')}"`));
      assert.match(listed, new RegExp(`chain from6-${VNI} \\{[^}]*hook ingress device "${VX6.replace(/\./g, '\\.')}"[^}]*ip6 hoplimit > 1 counter packets 0 bytes 0 fwd ip6 to ip6 daddr device ip6 daddr map @endpoints6-${VNI}`));
      const vethChain = new RegExp(`chain ${VETH}\\.${ifindex(VETH)}\\.${VNI} \\{([^}]*)\\}`).exec(listed)?.[1] ?? '';
      assert.match(vethChain, new RegExp(`jump to-${VNI}\\n`), 'the veth jumps to the v4 chain');
      assert.match(vethChain, new RegExp(`jump to6-${VNI}\\n`), 'and to the v6 one');
      assert.match(listed, /elements = \{ fd00:77:0:4:: \}/);
      assert.match(listed, new RegExp(`fd00:77:0:3::2 : "${VETH}"`));
      assert.equal(ping6(C, 'fd00:77:0:4::2'), 62, 'container → peer container through to6-<vni>, back through from6-<vni>');
      assert.equal(ping6(D, 'fd00:77:0:3::2'), 62, 'peer container → container');
      assert.ok(counted(`to6-${VNI}`) >= 2, 'to6- carried the request of one ping and the reply of the other');
      assert.ok(counted(`from6-${VNI}`) >= 2, 'from6- carried the other two');
      assert.equal(await ensureFastpath(p), 'present', 'an unchanged plan is not rewritten');
    });

    it('leaves a hop limit that expires on this host to routing (no fwd with hop limit 1)', () => {
      const before = counted(`to6-${VNI}`);
      assert.equal(ping6(C, 'fd00:77:0:4::2', ['-t', '1']), null, 'hop limit 1 must not be forwarded by the fast path');
      assert.equal(counted(`to6-${VNI}`), before, 'and the rule did not count it');
      assert.equal(ping6(C, 'fd00:77:0:4::2', ['-t', '2']), null, 'hop limit 2: decremented here, expires at router B');
      assert.equal(ping6(C, 'fd00:77:0:4::2', ['-t', '3']), 62, 'hop limit 3: passes both routers');
    });

    it('a packet longer than flannel-v6\'s MTU is left to routing (Packet Too Big); then the fragments fit the fast path', () => {
      const to6 = (): number => counted(`to6-${VNI}`);
      let before = to6();
      assert.equal(ping6(C, 'fd00:77:0:4::2', ['-s', '1382', '-M', 'do']), 62, '1430 bytes: flannel-v6\'s MTU, forwarded (v6 forwarding off)');
      assert.ok(to6() > before);
      before = to6();
      assert.equal(ping6(C, 'fd00:77:0:4::2', ['-s', '1383', '-M', 'do']), null, '1431 bytes: not the fast path\'s, and routing is off');
      assert.equal(to6(), before, 'to6- did not count it');
      setForwarding6(true);
      try {
        ping6(C, 'fd00:77:0:4::2', ['-s', '1383', '-M', 'do']); // routed: answered with Packet Too Big
        assert.match(sh('ip', 'netns', 'exec', C, 'ip', '-6', 'route', 'get', 'fd00:77:0:4::2'), /mtu 1430/, 'the container learned the path MTU from the routed path');
      } finally {
        setForwarding6(false);
      }
      // D's first 1448-byte reply meets B's flannel-v6 (B routes it: Packet Too Big to D): not counted.
      ping6(C, 'fd00:77:0:4::2', ['-s', '1400']);
      before = to6();
      const out = sh('ip', 'netns', 'exec', C, 'ping', '-6', '-n', '-c', '3', '-i', '0.3', '-W', '2', '-s', '1400', 'fd00:77:0:4::2');
      assert.match(out, /3 packets transmitted, 3 received/, 'fragmented to 1430 at the source, every piece fits: forwarded with routing off');
      assert.ok(to6() - before >= 6, 'two fragments per request went through to6-');
    });

    it('the host itself and other destinations are left to routing', () => {
      const before = counted(`to6-${VNI}`);
      assert.ok(ping6(C, 'fd00:77:0:3::') !== null, 'the host\'s flannel-v6 address answers its container');
      assert.equal(ping6(C, 'fd00:77:0:9::1'), null, 'no peer fd00:77:0:9::/64: neither path forwards it');
      assert.equal(counted(`to6-${VNI}`), before, 'neither packet took to6-');
    });

    it('drift is repaired in place (a deleted map element) or by a rewrite (a deleted table)', async () => {
      const p = plan(['fd00:77:0:3::2']);
      sh('nft', 'delete', 'element', 'netdev', FASTPATH_TABLE, `endpoints6-${VNI}`, '{ fd00:77:0:3::2 }');
      assert.equal(ping6(D, 'fd00:77:0:3::2'), null, 'without its element the reply path is closed (forwarding off)');
      assert.equal(await ensureFastpath(p), 'updated');
      assert.equal(ping6(D, 'fd00:77:0:3::2'), 62);
      sh('nft', 'delete', 'table', 'netdev', FASTPATH_TABLE);
      assert.equal(await ensureFastpath(p), 'rewritten');
      assert.equal(ping6(C, 'fd00:77:0:4::2'), 62);
    });

    it('an endpoint that leaves the plan closes the fast path; without the table, routing carries v6 again', async () => {
      assert.equal(await ensureFastpath(plan([])), 'updated');
      assert.equal(ping6(D, 'fd00:77:0:3::2'), null, 'no v6 endpoint in the map: the reply path is closed');
      assert.equal(ping6(C, 'fd00:77:0:4::2'), null, 'no chain on the veth: the way out is closed too');
      assert.equal(await ensureFastpath(plan(['fd00:77:0:3::2'])), 'updated');
      assert.equal(await removeFastpath(), true);
      setForwarding6(true);
      try {
        assert.equal(ping6(C, 'fd00:77:0:4::2'), 62, 'fallback: routed');
        assert.equal(ping6(D, 'fd00:77:0:3::2'), 62, 'fallback: routed, the other way');
      } finally {
        setForwarding6(false);
      }
    });
  });
}
