/**
 * The fast path's netdev table (src/kernel/nft-fastpath.ts) against the real kernel, with real
 * packets: this scratch namespace is host A (flannel.<vni>, a container namespace behind a routed
 * veth), a second namespace is a flanneld-style peer B with its own container. With forwarding
 * switched OFF on A, the only way a ping crosses A is the fast path, so a ping that passes proves
 * both directions (to-<vni> out, from-<vni> back); a TTL of 62 proves `fwd ip` decrements it as
 * the two routers would. Then: rewrite only on change, atomic failure, removal.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { ensureFastpath, removeFastpath } from '../../src/kernel/nft-fastpath';
import { fastpathPlan, FASTPATH_TABLE, type FastpathPlan } from '../../src/domain/fastpath';
import { parseCidr } from '../../src/domain/ipv4';
import { inScratchNetns, SKIP_REASON } from './netns';

const sh = (cmd: string, ...args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
/** Cleanup: run, ignore failure (already gone). */
function quietly(cmd: string, ...args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    /* absent */
  }
}
const id = Math.random().toString(16).slice(2, 8);
const B = `offp${id}b`; // the peer host
const C = `offp${id}c`; // the container on this host (A)
const D = `offp${id}d`; // the container on B
const VNI = 4000 + Math.floor(Math.random() * 900);
const VX = `flannel.${VNI}`;
const VETH = `ofh${id}`;
const inB = (...args: string[]): string => sh('ip', 'netns', 'exec', B, ...args);
const ifindex = (dev: string): number => JSON.parse(sh('ip', '-j', 'link', 'show', dev))[0].ifindex as number;
const setForwarding = (on: boolean): void => writeFileSync('/proc/sys/net/ipv4/ip_forward', on ? '1' : '0');
/** One ping (≤ 2 s) from netns `ns` to `ip`: its reply TTL, or null when unanswered. */
function ping(ns: string, ip: string, extra: string[] = []): number | null {
  try {
    const out = sh('ip', 'netns', 'exec', ns, 'ping', '-n', '-c', '1', '-W', '2', ...extra, ip);
    return Number(/ttl=(\d+)/.exec(out)?.[1] ?? NaN);
  } catch {
    return null;
  }
}
function plan(endpoints: { address: string; veth: string }[]): FastpathPlan {
  const overlay = { name: 'default', vni: VNI, network: parseCidr('10.77.0.0/16'), subnet: parseCidr('10.77.3.0/24'), vxlanDevice: VX, vxlanIndex: ifindex(VX), peerRoutes: [parseCidr('10.77.4.0/24')] };
  const routes = endpoints.map((e) => ({ dst: parseCidr(`${e.address}/32`), oif: e.veth.length <= 15 ? ifindex(e.veth) : 999_999, oifName: e.veth }));
  return fastpathPlan([overlay], routes, 'ofh').plan;
}

/** A flannel-style host end: vxlan, its .0, the peer's .0 neighbour/FDB/route, a routed container. */
function host(exec: (...a: string[]) => string, me: { ip: string; subnet: string; mac: string; veth: string; container: string; cip: string }, peer: { ip: string; subnet: string; mac: string }): void {
  exec('ip', 'link', 'add', VX, 'address', me.mac, 'type', 'vxlan', 'id', String(VNI), 'local', me.ip, 'dstport', '8472', 'nolearning');
  exec('ip', 'addr', 'add', `${me.subnet}.0/32`, 'dev', VX);
  exec('ip', 'link', 'set', VX, 'up');
  exec('ip', 'neigh', 'replace', `${peer.subnet}.0`, 'lladdr', peer.mac, 'dev', VX, 'nud', 'permanent');
  exec('bridge', 'fdb', 'append', peer.mac, 'dev', VX, 'dst', peer.ip);
  exec('ip', 'route', 'add', `${peer.subnet}.0/24`, 'via', `${peer.subnet}.0`, 'dev', VX, 'onlink');
  exec('ip', 'link', 'add', me.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', me.container);
  exec('ip', 'link', 'set', me.veth, 'up');
  exec('ip', 'route', 'add', `${me.cip}/32`, 'dev', me.veth);
  exec('ip', 'addr', 'replace', '169.254.1.1/32', 'dev', 'lo');
  const inC = (...a: string[]): string => sh('ip', 'netns', 'exec', me.container, ...a);
  inC('ip', 'link', 'set', 'lo', 'up');
  inC('ip', 'addr', 'add', `${me.cip}/32`, 'dev', 'eth0');
  inC('ip', 'link', 'set', 'eth0', 'up');
  inC('ip', 'route', 'add', '169.254.1.1/32', 'dev', 'eth0', 'scope', 'link');
  inC('ip', 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
}

if (!inScratchNetns()) {
  describe('fast path (nftables netdev fwd)', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  describe('fast path (nftables netdev fwd)', () => {
    before(() => {
      for (const ns of [B, C, D]) sh('ip', 'netns', 'add', ns);
      sh('ip', 'link', 'set', 'lo', 'up');
      sh('ip', 'link', 'add', `und${id}`, 'type', 'veth', 'peer', 'name', 'eth1', 'netns', B);
      sh('ip', 'addr', 'add', '198.51.100.1/24', 'dev', `und${id}`);
      sh('ip', 'link', 'set', `und${id}`, 'up');
      inB('ip', 'link', 'set', 'lo', 'up');
      inB('ip', 'addr', 'add', '198.51.100.2/24', 'dev', 'eth1');
      inB('ip', 'link', 'set', 'eth1', 'up');
      inB('sysctl', '-q', '-w', 'net.ipv4.ip_forward=1');
      const a = { ip: '198.51.100.1', subnet: '10.77.3', mac: '0e:77:00:00:00:0a' };
      const b = { ip: '198.51.100.2', subnet: '10.77.4', mac: '0e:77:00:00:00:0b' };
      host(sh, { ...a, veth: VETH, container: C, cip: '10.77.3.2' }, b);
      host(inB, { ...b, veth: `ofhpeer${id}`, container: D, cip: '10.77.4.2' }, a);
    });
    after(() => {
      setForwarding(false);
      for (const ns of [B, C, D]) sh('ip', 'netns', 'del', ns);
      for (const dev of [VX, VETH, `und${id}`]) quietly('ip', 'link', 'del', dev);
      quietly('nft', 'delete', 'table', 'netdev', FASTPATH_TABLE);
    });

    it('the lab routes without it, and nothing crosses this host with forwarding off', () => {
      setForwarding(true);
      assert.equal(ping(C, '10.77.4.2'), 62, 'routed: container → peer container, reply TTL 64 − 2 routers');
      setForwarding(false);
      assert.equal(ping(C, '10.77.4.2'), null, 'with forwarding off, the routed path must be closed');
    });

    it('forwards both ways with forwarding off, decrementing the TTL like routing', async () => {
      const p = plan([{ address: '10.77.3.2', veth: VETH }]);
      assert.equal(await ensureFastpath(p), 'rewritten');
      assert.equal(ping(C, '10.77.4.2'), 62, 'container → peer container through to-<vni> and back through from-<vni>');
      assert.equal(ping(D, '10.77.3.2'), 62, 'peer container → container');
      const listed = sh('nft', 'list', 'table', 'netdev', FASTPATH_TABLE);
      assert.match(listed, new RegExp(`chain ${VETH}\\.${ifindex(VETH)}\\.${VNI} \\{[^}]*hook ingress device "${VETH}"[^}]*jump to-${VNI}`));
      assert.match(listed, /10\.77\.3\.2 : /);
      assert.equal(await ensureFastpath(p), 'present', 'an unchanged plan is not rewritten');
    });

    it('leaves a TTL that expires on this host to routing (no fwd with TTL 1)', () => {
      // Forwarding off: routing drops it (ICMP time exceeded would come from the routed path).
      assert.equal(ping(C, '10.77.4.2', ['-t', '1']), null, 'TTL 1 must not be forwarded by the fast path');
      assert.equal(ping(C, '10.77.4.2', ['-t', '2']), null, 'TTL 2: decremented here, expires at router B');
      assert.equal(ping(C, '10.77.4.2', ['-t', '3']), 62, 'TTL 3: passes both routers (the reply TTL 62 is that of D through both)');
    });

    it('leaves the host itself, and destinations that are not a routed peer, to routing', () => {
      assert.ok(ping(C, '10.77.3.0') !== null, 'the host itself answers its container');
      // 10.77.9.0/24 is in the Network but routed through the underlay (as a host-gw or
      // DirectRouting peer would be): the fast path must not send it into flannel.<vni>.
      inB('ip', 'addr', 'add', '10.77.9.1/32', 'dev', 'lo');
      sh('ip', 'route', 'add', '10.77.9.0/24', 'via', '198.51.100.2');
      try {
        setForwarding(true);
        assert.equal(ping(C, '10.77.9.1'), 63, 'routed via the underlay to B (one router: this host)');
        assert.equal(ping(C, '10.77.4.2'), 62, 'the peer container still answers');
      } finally {
        setForwarding(false);
        sh('ip', 'route', 'del', '10.77.9.0/24');
      }
    });

    it('another endpoint is added and removed in place: the first one\'s chain is not rewritten', async () => {
      const second = `ofh${id}x`;
      sh('ip', 'link', 'add', second, 'type', 'veth', 'peer', 'name', `ofc${id}x`);
      sh('ip', 'link', 'set', second, 'up');
      const handleOfFirst = (): string => /chain \S+ \{ # handle (\d+)/.exec(sh('nft', '-a', 'list', 'chain', 'netdev', FASTPATH_TABLE, `${VETH}.${ifindex(VETH)}.${VNI}`))?.[1] ?? 'none';
      const before = handleOfFirst();
      try {
        assert.equal(await ensureFastpath(plan([{ address: '10.77.3.2', veth: VETH }, { address: '10.77.3.9', veth: second }])), 'updated');
        assert.match(sh('nft', 'list', 'map', 'netdev', FASTPATH_TABLE, `endpoints-${VNI}`), new RegExp(`10\\.77\\.3\\.9 : "${second}"`));
        assert.match(sh('nft', 'list', 'table', 'netdev', FASTPATH_TABLE), new RegExp(`hook ingress device "${second}"`));
        assert.equal(handleOfFirst(), before, 'the first endpoint\'s chain kept its handle');
        assert.equal(ping(C, '10.77.4.2'), 62);
      } finally {
        quietly('ip', 'link', 'del', second);
      }
      assert.equal(await ensureFastpath(plan([{ address: '10.77.3.2', veth: VETH }])), 'updated');
      assert.doesNotMatch(sh('nft', 'list', 'table', 'netdev', FASTPATH_TABLE), /10\.77\.3\.9|x\./);
      assert.equal(handleOfFirst(), before);
      assert.equal(await ensureFastpath(plan([{ address: '10.77.3.2', veth: VETH }])), 'present');
    });

    it('a write that the kernel refuses changes nothing (one transaction)', async () => {
      // A device name longer than IFNAMSIZ is refused by every kernel (a missing device is not:
      // since 6.16 a netdev hook may name a device that does not exist yet).
      const bad = plan([{ address: '10.77.3.2', veth: VETH }, { address: '10.77.3.9', veth: `ofh${id}toolongforifnamsiz` }]);
      await assert.rejects(ensureFastpath(bad), /nftables: create chain ofh\w+toolongforifnamsiz\S* on the ingress of ofh\w+toolongforifnamsiz/);
      assert.equal(ping(C, '10.77.4.2'), 62, 'the table written before still forwards');
    });

    it('an endpoint that leaves the plan is rewritten away; an empty plan removes the table', async () => {
      assert.equal(await ensureFastpath(plan([])), 'updated');
      assert.equal(ping(D, '10.77.3.2'), null, 'no endpoint in the map: the reply path is closed again');
      assert.equal(ping(C, '10.77.4.2'), null, 'no chain on the veth: the way out is closed too');
      assert.equal(await removeFastpath(), true);
      assert.throws(() => sh('nft', 'list', 'table', 'netdev', FASTPATH_TABLE));
      assert.equal(await removeFastpath(), false);
    });
  });
}
