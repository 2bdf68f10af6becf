/**
 * Batched neighbour/FDB/route writes against the real kernel (issue 23): 2,000 peers' entries
 * (6,000 writes, 256 in flight as the dataplane issues them) leave in a bounded number of
 * datagrams (a count, not a time: one sendmsg per write would be 6,000), every write is acked on
 * its own (a refused write in the middle of a batch fails alone), and the hand-decoded dumps read
 * every entry back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NetlinkKernel } from '../../src/kernel/netlink-kernel';
import { isErrno } from '../../src/kernel/errno';
import { deleteLinkIfPresent, inScratchNetns, makeParent, SKIP_REASON } from './netns';

const PEERS = 2000;
const IN_FLIGHT = 256;
/** 6,000 writes at 256 in flight: 24 full batches; the bound leaves room for partial ones. */
const MAX_DATAGRAMS = 60;
const PARENT = 'kbat0';
const VXLAN = 'kbat.1';
const hex = (n: number): string => n.toString(16).padStart(2, '0');
const gw = (i: number): string => `10.${(i >> 8) & 63}.${i & 255}.0`;
const mac = (i: number): string => `0e:42:00:00:${hex(i >> 8)}:${hex(i & 255)}`;

async function inBatches(jobs: (() => Promise<void>)[]): Promise<PromiseSettledResult<void>[]> {
  const out: PromiseSettledResult<void>[] = [];
  for (let i = 0; i < jobs.length; i += IN_FLIGHT) out.push(...(await Promise.allSettled(jobs.slice(i, i + IN_FLIGHT).map((f) => f()))));
  return out;
}

if (!inScratchNetns()) {
  describe('netlink batched writes', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  describe('netlink batched writes', () => {
    const kernel = new NetlinkKernel({ timeoutMs: 20_000 });
    let vx = 0;
    before(async () => {
      makeParent(PARENT, '192.0.2.30/24');
      const p = await kernel.getLink(PARENT);
      assert.ok(p, `${PARENT} missing`);
      const dev = await kernel.ensureVxlan({ name: VXLAN, vni: 42, parentIndex: p.index, local: '192.0.2.30', port: 8472, learning: false, gbp: false, mtu: 1450, mac: '0e:42:00:00:00:01' });
      vx = dev.index;
      await kernel.setLinkUp(VXLAN);
    });
    after(async () => {
      deleteLinkIfPresent(VXLAN);
      deleteLinkIfPresent(PARENT);
      await kernel.close();
    });

    it(`programs ${PEERS} peers in at most ${MAX_DATAGRAMS} datagrams and reads them back`, async () => {
      const d0 = kernel.writeDatagrams;
      const ids = Array.from({ length: PEERS }, (_, i) => i + 1);
      const results = [
        ...(await inBatches(ids.map((i) => () => kernel.replaceNeighbour({ ifindex: vx, ip: gw(i), mac: mac(i), permanent: true })))),
        ...(await inBatches(ids.map((i) => () => kernel.replaceFdb({ ifindex: vx, mac: mac(i), dst: `198.51.100.${(i % 250) + 1}`, permanent: true })))),
        ...(await inBatches(ids.map((i) => () => kernel.replaceRoute({ dst: `10.${64 + ((i >> 8) & 63)}.${i & 255}.0/24`, gateway: gw(i), oif: vx, onlink: true })))),
      ];
      assert.deepEqual(results.filter((r) => r.status === 'rejected'), [], 'every write acked');
      const datagrams = kernel.writeDatagrams - d0;
      assert.ok(datagrams <= MAX_DATAGRAMS, `${3 * PEERS} writes left in ${datagrams} datagrams (bound ${MAX_DATAGRAMS})`);
      assert.ok(datagrams >= Math.ceil((3 * PEERS) / IN_FLIGHT), `${datagrams} datagrams: fewer than the writes in flight allow`);

      const neigh = await kernel.listNeighbours(vx);
      const fdb = (await kernel.listFdb(vx)).filter((f) => f.permanent);
      const routes = await kernel.listRoutes(vx);
      assert.equal(neigh.filter((n) => n.permanent).length, PEERS);
      assert.equal(fdb.length, PEERS);
      assert.equal(routes.length, PEERS);
      assert.deepEqual(neigh.find((n) => n.ip === gw(7)), { ifindex: vx, ip: gw(7), mac: mac(7), permanent: true });
      assert.deepEqual(fdb.find((f) => f.mac === mac(7)), { ifindex: vx, mac: mac(7), dst: '198.51.100.8', permanent: true });
      assert.deepEqual(routes.find((r) => r.dst === '10.64.7.0/24'), { dst: '10.64.7.0/24', gateway: gw(7), oif: vx, onlink: true });
    });

    it('a refused write in the middle of a batch fails alone, with its errno', async () => {
      const jobs = Array.from({ length: 40 }, (_, i) =>
        i === 20
          ? () => kernel.replaceRoute({ dst: '10.99.0.0/24', gateway: '10.98.0.1', oif: 999_999, onlink: true }) // no such device
          : () => kernel.replaceNeighbour({ ifindex: vx, ip: `10.97.0.${i + 1}`, mac: mac(i + 1), permanent: true }),
      );
      const results = await inBatches(jobs);
      const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
      assert.deepEqual(failed, [20]);
      const err = (results[20] as PromiseRejectedResult).reason;
      assert.ok(isErrno(err, 'ENODEV'), `expected ENODEV, got ${String(err)}`);
      assert.match(String(err), /replace route 10\.99\.0\.0\/24/);
      // deletes of absent entries are absorbed (ENOENT/ESRCH), in a batch as alone
      const dels = await inBatches([() => kernel.deleteNeighbour(vx, '10.96.0.1'), () => kernel.deleteRoute('10.96.0.0/24'), () => kernel.deleteFdb(vx, '0e:42:ff:ff:ff:ff')]);
      assert.deepEqual(dels.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled']);
    });
  });
}
