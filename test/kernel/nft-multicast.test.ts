/**
 * The multicast table (src/kernel/nft-multicast.ts) against the real kernel, at sizes: a routed
 * network with 200 local endpoints is written in one transaction (one ACK: an ACK per message
 * overflowed the socket's receive buffer at ~85 endpoints, which aborts the process), read back
 * as `nft` shows it, kept when unchanged; a plan past one netlink message is refused UNSUPPORTED
 * before anything is sent; a refused transaction (a jump to a missing chain) is reported with its
 * message and leaves the table as it was (the batch is atomic, also with sparse ACKs). The packets themselves
 * are proven by test/lab/docker-multicast.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { ensureMulticast, removeMulticast } from '../../src/kernel/nft-multicast';
import { MULTICAST_TABLE, multicastPlan, type Device, type MulticastPlan } from '../../src/domain/multicast';
import { isOverlayError } from '../../src/errors';
import { inScratchNetns, json, run, SKIP_REASON } from './netns';

const id = Math.random().toString(16).slice(2, 6);
const VX = `ofmx${id}`;
const BR = `ofmb${id}`;
const veth = (i: number) => `ofm${id}${i}`;
const dev = (name: string): Device => ({ name, index: (json<{ ifindex: number }[]>('ip', 'link', 'show', name)[0]!).ifindex });
const nft = (): string => execFileSync('nft', ['list', 'table', 'netdev', MULTICAST_TABLE], { encoding: 'utf8' });
function plan(n: number, extra: Device[] = []): MulticastPlan {
  const veths = [...Array.from({ length: n }, (_, i) => dev(veth(i))), ...extra];
  return multicastPlan([{ overlay: 'default', vni: 77, vxlan: dev(VX), network: { mode: 'routed', enabled: true, bridge: dev(BR), veths } }]);
}
const N = 200;

if (!inScratchNetns()) {
  describe('multicast table (nftables netdev dup)', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  describe('multicast table (nftables netdev dup)', () => {
    before(() => {
      run('ip', 'link', 'add', VX, 'type', 'vxlan', 'id', '77', 'dstport', '8472', 'local', '127.0.0.1');
      run('ip', 'link', 'add', BR, 'type', 'bridge');
      const batch = Array.from({ length: N + 1 }, (_, i) => `link add ${veth(i)} type veth peer name ofn${id}${i}`).join('\n');
      execFileSync('ip', ['-batch', '-'], { input: batch });
    });
    after(async () => {
      await removeMulticast();
      execFileSync('ip', ['-batch', '-'], { input: [VX, BR, ...Array.from({ length: N + 1 }, (_, i) => veth(i))].map((l) => `link del ${l}`).join('\n') });
    });

    it(`${N} endpoints in one transaction: written, shown by nft, kept when unchanged`, async () => {
      const t0 = performance.now();
      assert.equal(await ensureMulticast(plan(N)), 'rewritten');
      console.log(`# ${N} endpoints: table written in ${Math.round(performance.now() - t0)} ms`);
      const text = nft();
      assert.equal((text.match(/jump out-77/g) ?? []).length, N, 'one hooked chain per veth');
      assert.equal((text.match(/iif != "ofm[0-9a-f]+\d+" dup to/g) ?? []).length, N, 'one copy rule per veth in local-77');
      assert.match(text, /ip daddr 224\.0\.0\.0\/4 dup to "ofmx[0-9a-f]+" jump local-77/);
      assert.match(text, /chain in-77 \{\s+type filter hook ingress device "ofmx[0-9a-f]+" priority filter - 10;/);
      assert.equal(await ensureMulticast(plan(N)), 'present');
    });

    it('a plan past one netlink message is refused before anything is sent', async () => {
      const big = plan(N);
      const many = { ...big, chains: [...big.chains, ...big.chains.map((c, i) => ({ ...c, name: `${c.name}x${i}` }))], digest: 'ffffffffffffffff' };
      const fat = { ...many, chains: [...many.chains, ...many.chains.map((c, i) => ({ ...c, name: `${c.name}y${i}` }))] };
      await assert.rejects(ensureMulticast(fat), (e: unknown) => isOverlayError(e) && e.code === 'UNSUPPORTED' && /too many endpoints/.test(e.message));
      assert.equal(await ensureMulticast(plan(N)), 'present', 'the table is as it was');
    });

    it('a refused transaction (a jump to a chain that is not there) names the message and changes nothing', async () => {
      const p = plan(N);
      const broken = { chains: [...p.chains, { name: 'broken-77', device: dev(VX), rules: [{ match: 'any' as const, dups: [] as [], then: { jump: 'nosuch-77' } }] }], digest: 'eeeeeeeeeeeeeeee' };
      await assert.rejects(ensureMulticast(broken), (e: unknown) => isOverlayError(e) && /any rule of broken-77: ENOENT/.test(e.message));
      assert.equal(await ensureMulticast(plan(N)), 'present', 'the old table stayed whole');
      assert.equal(await removeMulticast(), true);
      assert.equal(await removeMulticast(), false);
    });
  });
}
