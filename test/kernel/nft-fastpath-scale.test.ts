/**
 * The fast path's sets at fleet size (issue 23) against the real kernel: 12,000 peer subnets and
 * thousands of endpoints written from an empty table, read back with `nft -j list set`, then changed
 * element by element. One NEWSETELEM message of 12,000 elements would not fit a netlink attribute
 * (16-bit length) nor the default socket send buffer; the writer splits it (nft-fastpath-batch.ts).
 * No packets here: nft-fastpath.test.ts proves forwarding; this file proves the sets' contents.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { ensureFastpath, removeFastpath } from '../../src/kernel/nft-fastpath';
import { FASTPATH_TABLE, type FastpathPlan, type FastpathOverlay } from '../../src/domain/fastpath';
import { formatIPv4, parseCidr, type Cidr } from '../../src/domain/ipv4';
import { inScratchNetns, SKIP_REASON } from './netns';

const sh = (cmd: string, ...args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
function quietly(cmd: string, ...args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    /* absent */
  }
}
const id = Math.random().toString(16).slice(2, 8);
const VNI = 5000 + Math.floor(Math.random() * 900);
const VX = `flannel.${VNI}`;
const VETH = `ofh${id}`;
const ifindex = (dev: string): number => JSON.parse(sh('ip', '-j', 'link', 'show', dev))[0].ifindex as number;
/**
 * Two realistic shapes in Network 10.0.0.0/8, our lease first: SubnetLen 24 with 12,000 peers and
 * 250 endpoints, and SubnetLen 20 (big leases) with 2,500 peers and 3,000 endpoints.
 */
interface Shape {
  len: number;
  peers: number;
  endpoints: number;
  /** Peers replaced by others in the in-place change. */
  change: number;
}
const WIDE: Shape = { len: 24, peers: 12_000, endpoints: 250, change: 2_500 };
const BIG_LEASES: Shape = { len: 20, peers: 2_500, endpoints: 3_000, change: 1_200 }; // 3,700 of the /8's 4,095 /20s
const NETWORK = parseCidr('10.0.0.0/8');
const subnetOf = (s: Shape): Cidr => ({ base: (10 << 24) >>> 0, len: s.len });
/** The i-th peer: the subnets after ours. */
const peerBase = (s: Shape, i: number): number => ((10 << 24) + (i + 1) * 2 ** (32 - s.len)) >>> 0;

function plan(s: Shape, peers: number[], vethIndex: number): FastpathPlan {
  const subnet = subnetOf(s);
  const overlay: FastpathOverlay = {
    name: 'scale',
    vni: VNI,
    network: NETWORK,
    subnet,
    vxlanDevice: VX,
    vxlanIndex: ifindex(VX),
    peers,
    endpoints: Array.from({ length: s.endpoints }, (_, i) => ({ address: (subnet.base + 1 + i) >>> 0, veth: VETH, vethIndex })),
  };
  return { overlays: [overlay], digest: `scale${id}${s.len}` };
}
const firstPeers = (s: Shape): number[] => Array.from({ length: s.peers }, (_, i) => peerBase(s, i));
/** The elements of a set or map as `nft -j` reports them: address → device name ('' in a set). */
function listed(kind: 'set' | 'map', name: string): Map<string, string> {
  const doc = JSON.parse(sh('nft', '-j', 'list', kind, 'netdev', FASTPATH_TABLE, name)) as { nftables: Record<string, any>[] };
  const body = doc.nftables.find((o) => o[kind])?.[kind];
  assert.ok(body, `nft -j list ${kind} ${name} has no ${kind}`);
  return new Map((body.elem ?? []).map((e: unknown) => (Array.isArray(e) ? [String(e[0]), String(e[1])] : [String(e), ''])));
}

if (!inScratchNetns()) {
  describe('fast path at 12,000 peers', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  describe('fast path at 12,000 peers', () => {
    before(() => {
      sh('ip', 'link', 'set', 'lo', 'up');
      sh('ip', 'link', 'add', VX, 'type', 'vxlan', 'id', String(VNI), 'local', '192.0.2.1', 'dstport', '8472', 'nolearning');
      sh('ip', 'link', 'add', VETH, 'type', 'veth', 'peer', 'name', `ofc${id}`);
      quietly('nft', 'delete', 'table', 'netdev', FASTPATH_TABLE);
    });
    after(() => {
      quietly('nft', 'delete', 'table', 'netdev', FASTPATH_TABLE);
      for (const dev of [VX, VETH]) quietly('ip', 'link', 'del', dev);
    });

    for (const s of [WIDE, BIG_LEASES]) {
      it(`SubnetLen ${s.len}: writes ${s.peers} peers and ${s.endpoints} endpoints from an empty table, all of them`, async () => {
        const p = plan(s, firstPeers(s), ifindex(VETH));
        assert.equal(await ensureFastpath(p), 'rewritten');
        const peers = listed('set', `peers-${VNI}`);
        assert.equal(peers.size, s.peers);
        for (const i of [0, 1, 999, 1000, 1001, 2345, s.peers - 1]) assert.ok(peers.has(formatIPv4(peerBase(s, i))), `peer ${i} (${formatIPv4(peerBase(s, i))}) is in the set`);
        const eps = listed('map', `endpoints-${VNI}`);
        assert.equal(eps.size, s.endpoints);
        assert.equal(eps.get(formatIPv4(subnetOf(s).base + s.endpoints)), VETH, 'the last endpoint maps to its veth');
        assert.equal(await ensureFastpath(p), 'present', 'read back whole, nothing to write');
      });

      it(`SubnetLen ${s.len}: changes thousands of elements in place`, async () => {
        // `change` peers leave and as many others arrive: a delete and an add over several messages each.
        const peers = [...firstPeers(s).slice(s.change), ...Array.from({ length: s.change }, (_, i) => peerBase(s, s.peers + i))];
        const p = plan(s, peers, ifindex(VETH));
        assert.equal(await ensureFastpath(p), 'updated');
        const got = listed('set', `peers-${VNI}`);
        assert.equal(got.size, s.peers);
        assert.ok(!got.has(formatIPv4(peerBase(s, 0))) && !got.has(formatIPv4(peerBase(s, s.change - 1))), 'the first ones are gone');
        assert.ok(got.has(formatIPv4(peerBase(s, s.change))) && got.has(formatIPv4(peerBase(s, s.peers + s.change - 1))), 'the rest and the newcomers are there');
        assert.equal(await ensureFastpath(p), 'present');
      });
    }

    it('divided into 32 KiB batches (as when the send buffer is small), the same table', async () => {
      const p = plan(WIDE, firstPeers(WIDE), ifindex(VETH));
      p.digest = `split${id}`; // a new marker: written anew
      assert.equal(await ensureFastpath(p, 5000, 32 << 10), 'rewritten');
      assert.equal(listed('set', `peers-${VNI}`).size, WIDE.peers);
      assert.equal(listed('map', `endpoints-${VNI}`).size, WIDE.endpoints);
      assert.match(sh('nft', 'list', 'chain', 'netdev', FASTPATH_TABLE, `to-${VNI}`), new RegExp(`@peers-${VNI}`), 'the rule refers to the set');
      assert.equal(await ensureFastpath(p), 'present');
    });

    it('an empty plan removes the table', async () => {
      assert.equal(await removeFastpath(), true);
      assert.throws(() => sh('nft', 'list', 'table', 'netdev', FASTPATH_TABLE));
    });
  });
}
