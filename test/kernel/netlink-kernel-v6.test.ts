/**
 * The IPv6 Kernel contract against the real kernel (NetlinkKernel) in a scratch netns, and what it
 * writes for one flanneld-style v6 peer read back with iproute2 (`ip -6 route/neigh`, `bridge fdb`,
 * `ip -d link`): the commands of docs/spikes/ipv6/flannel-v6.sh see the same objects.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { createNetlinkKernel, type Kernel } from '../../src/kernel';
import { kernelV6Contract } from './kernel-v6-contract';
import { deleteLinkIfPresent, inScratchNetns, json, makeParent, run, SKIP_REASON } from './netns';

const PARENT = 'k6up0';
const IP6 = '2001:db8:61::10';

function parentWithV6(name: string, cidr: string, ip6: string): void {
  makeParent(name, cidr);
  run('ip', '-6', 'addr', 'add', `${ip6}/64`, 'dev', name, 'nodad');
}

// Never skip: outside a scratch namespace this fails loudly instead of touching the host.
if (!inScratchNetns()) {
  describe('Kernel contract, IPv6 (netlink)', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  kernelV6Contract('netlink', async () => {
    parentWithV6(PARENT, '192.0.2.61/24', IP6);
    const kernel = createNetlinkKernel({ timeoutMs: 5000 });
    const p = await kernel.getLink(PARENT);
    if (!p) throw new Error(`parent ${PARENT} missing`);
    return {
      kernel,
      parent: { index: p.index, name: PARENT, ip: '192.0.2.61', ip6: IP6, mtu: p.mtu },
      prefix: 'k6',
      resetFirewall: async () => {
        for (const t of ['filter', 'nat', 'raw']) spawnSync('nft', ['delete', 'table', 'ip6', t], { stdio: 'ignore' });
        spawnSync('nft', ['delete', 'table', 'ip', 'filter'], { stdio: 'ignore' });
        execFileSync('iptables', ['-P', 'FORWARD', 'ACCEPT']); // ip filter with an empty FORWARD
      },
      acceptRa: async (name) => {
        try {
          return Number(readFileSync(`/proc/sys/net/ipv6/conf/${name}/accept_ra`, 'utf8').trim());
        } catch {
          return null;
        }
      },
      teardown: async () => {
        await kernel.close();
        deleteLinkIfPresent(PARENT);
      },
    };
  });

  describe('NetlinkKernel IPv6 against iproute2', () => {
    const [parent, dev] = ['i6up0', 'i6v6.62'];
    let k: Kernel;
    before(() => {
      parentWithV6(parent, '192.0.2.62/24', '2001:db8:62::a');
      k = createNetlinkKernel({ timeoutMs: 5000 });
    });
    after(async () => {
      await k.close();
      deleteLinkIfPresent(dev);
      deleteLinkIfPresent(parent);
    });

    it('flannel-v6 device, /128, neighbour, FDB and route as `ip -6` and `bridge fdb` print them', async () => {
      const p = await k.getLink(parent);
      assert.ok(p);
      const v = await k.ensureVxlan({ name: dev, vni: 62, parentIndex: p.index, local: '2001:db8:62::a', port: 0, learning: false, gbp: false, mtu: p.mtu - 70, mac: '0e:2a:06:00:62:0a' });
      await k.ensureOnlyAddress(v.index, 'fd00:62:0:1::/128', 'fd00:62::/48');
      await k.replaceNeighbour({ ifindex: v.index, ip: 'fd00:62:0:2::', mac: '0e:2a:06:00:62:0b', permanent: true });
      await k.replaceFdb({ ifindex: v.index, mac: '0e:2a:06:00:62:0b', dst: '2001:db8:62::b', permanent: true });
      await k.replaceRoute({ dst: 'fd00:62:0:2::/64', gateway: 'fd00:62:0:2::', oif: v.index, onlink: true });

      const [l] = json('ip', '-d', 'link', 'show', 'dev', dev);
      const d = l.linkinfo.info_data;
      assert.deepEqual([l.mtu, l.address, d.id, d.local6, d.port, d.learning, d.link], [p.mtu - 70, '0e:2a:06:00:62:0a', 62, '2001:db8:62::a', 8472, false, parent]);
      const addrs = json<{ addr_info: { family: string; local: string; prefixlen: number; scope: string }[] }[]>('ip', '-6', 'addr', 'show', 'dev', dev)[0].addr_info;
      assert.deepEqual(addrs.filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`), ['fd00:62:0:1::/128']);
      const neigh = json<{ dst: string; lladdr: string; state: string[] }[]>('ip', '-6', 'neigh', 'show', 'dev', dev);
      assert.deepEqual(neigh.map((n) => [n.dst, n.lladdr, n.state]), [['fd00:62:0:2::', '0e:2a:06:00:62:0b', ['PERMANENT']]]);
      const fdb = json<{ mac: string; dst?: string; flags: string[]; state: string }[]>('bridge', 'fdb', 'show', 'dev', dev).filter((f) => f.dst);
      assert.deepEqual(fdb.map((f) => [f.mac, f.dst, f.flags.includes('self'), f.state]), [['0e:2a:06:00:62:0b', '2001:db8:62::b', true, 'permanent']]);
      const routes = json<{ dst: string; gateway?: string; flags: string[] }[]>('ip', '-6', 'route', 'show', 'dev', dev).filter((r) => r.gateway);
      assert.deepEqual(routes.map((r) => [r.dst, r.gateway, r.flags.includes('onlink')]), [['fd00:62:0:2::/64', 'fd00:62:0:2::', true]]);
      // and what iproute2 writes, the adapter reads
      run('ip', '-6', 'neigh', 'replace', 'fd00:62:0:3::', 'lladdr', '0e:2a:06:00:62:0c', 'dev', dev, 'nud', 'permanent');
      run('bridge', 'fdb', 'replace', '0e:2a:06:00:62:0c', 'dev', dev, 'dst', '2001:db8:62::c', 'self', 'permanent');
      run('ip', '-6', 'route', 'replace', 'fd00:62:0:3::/64', 'via', 'fd00:62:0:3::', 'dev', dev, 'onlink');
      assert.ok((await k.listNeighbours(v.index, 6)).some((n) => n.ip === 'fd00:62:0:3::' && n.mac === '0e:2a:06:00:62:0c' && n.permanent));
      assert.ok((await k.listFdb(v.index)).some((f) => f.dst === '2001:db8:62::c' && f.mac === '0e:2a:06:00:62:0c' && f.permanent));
      assert.ok((await k.listRoutes(v.index, 6)).some((r) => r.dst === 'fd00:62:0:3::/64' && r.gateway === 'fd00:62:0:3::' && r.onlink));
    });
  });
}
