/**
 * The head block of FORWARD (src/kernel/nft-isolation.ts) against the real kernel, in the scratch
 * netns, next to a chain laid out the way dockerd 20.10 lays it out (made with iptables, read back
 * with `iptables -S`): our block goes right after the DOCKER-USER jump, in order, and is moved back
 * there in one transaction when Docker inserts rules above it.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { ensureOverlayIsolation } from '../../src/kernel/nft-isolation';
import { inScratchNetns, nftTableExists, ownNftTables, SKIP_REASON } from './netns';

const ipt = (...args: string[]): string => execFileSync('iptables', args, { encoding: 'utf8' });
const forward = (): string[] => ipt('-S', 'FORWARD').trim().split('\n').filter((l) => l.startsWith('-A'));
const A = '10.61.0.0/16';
const B = '10.62.0.0/16';
const OURS = [
  `-A FORWARD -s ${A} -d ${A} -m comment --comment "overlay-flannel intra ${A}" -j ACCEPT`,
  `-A FORWARD -s ${B} -d ${B} -m comment --comment "overlay-flannel intra ${B}" -j ACCEPT`,
  `-A FORWARD -s ${A} -d ${B} -m comment --comment "overlay-flannel isolate ${A} ${B}" -j DROP`,
  `-A FORWARD -s ${B} -d ${A} -m comment --comment "overlay-flannel isolate ${B} ${A}" -j DROP`,
];
const BRIDGE = ['-A FORWARD -o br-t1 -j ACCEPT', '-A FORWARD -i br-t1 ! -o br-t1 -j ACCEPT'];

if (!inScratchNetns()) {
  describe('FORWARD head block', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  describe('FORWARD head block (accept within, drop between overlays) after DOCKER-USER', () => {
    ownNftTables('filter');
    before(() => {
      // dockerd 20.10's layout: policy DROP, DOCKER-USER jump first, then isolation, then bridge rules.
      ipt('-P', 'FORWARD', 'DROP');
      for (const c of ['DOCKER-USER', 'DOCKER-ISOLATION-STAGE-1']) {
        ipt('-N', c);
        ipt('-A', c, '-j', 'RETURN');
      }
      ipt('-A', 'FORWARD', '-j', 'DOCKER-USER');
      ipt('-A', 'FORWARD', '-j', 'DOCKER-ISOLATION-STAGE-1');
      ipt('-A', 'FORWARD', '-o', 'br-t1', '-j', 'ACCEPT');
      ipt('-A', 'FORWARD', '-i', 'br-t1', '!', '-o', 'br-t1', '-j', 'ACCEPT');
    });

    it('writes the block right after the DOCKER-USER jump, in order; a second call changes nothing', async () => {
      assert.deepEqual(await ensureOverlayIsolation([B, A]), { state: 'ok', added: 4, removed: 0 });
      assert.deepEqual(forward(), ['-A FORWARD -j DOCKER-USER', ...OURS, '-A FORWARD -j DOCKER-ISOLATION-STAGE-1', ...BRIDGE]);
      assert.deepEqual(await ensureOverlayIsolation([A, B]), { state: 'ok', added: 0, removed: 0 });
    });

    it('Docker creating a bridge network (rules inserted at the top, its jumps moved up) → the block moves back after DOCKER-USER', async () => {
      ipt('-I', 'FORWARD', '-o', 'br-t2', '-j', 'ACCEPT');
      for (const c of ['DOCKER-ISOLATION-STAGE-1', 'DOCKER-USER']) {
        ipt('-D', 'FORWARD', '-j', c);
        ipt('-I', 'FORWARD', '-j', c);
      }
      assert.deepEqual(forward().slice(0, 3), ['-A FORWARD -j DOCKER-USER', '-A FORWARD -j DOCKER-ISOLATION-STAGE-1', '-A FORWARD -o br-t2 -j ACCEPT']);
      assert.deepEqual(await ensureOverlayIsolation([A, B]), { state: 'ok', added: 4, removed: 4 });
      assert.deepEqual(forward(), ['-A FORWARD -j DOCKER-USER', ...OURS, '-A FORWARD -j DOCKER-ISOLATION-STAGE-1', '-A FORWARD -o br-t2 -j ACCEPT', ...BRIDGE]);
    });

    it('a Network gone: its rules go, the rest stays in place; no DOCKER-USER jump → at the head; no overlays → nothing of ours', async () => {
      assert.deepEqual(await ensureOverlayIsolation([A]), { state: 'ok', added: 1, removed: 4 });
      assert.deepEqual(forward().slice(0, 2), ['-A FORWARD -j DOCKER-USER', OURS[0]]);
      ipt('-D', 'FORWARD', '-j', 'DOCKER-USER');
      assert.deepEqual(await ensureOverlayIsolation([A]), { state: 'ok', added: 0, removed: 0 }, 'already at the head');
      ipt('-I', 'FORWARD', '-o', 'br-t3', '-j', 'ACCEPT');
      assert.deepEqual(await ensureOverlayIsolation([A]), { state: 'ok', added: 1, removed: 1 });
      assert.deepEqual(forward().slice(0, 2), [OURS[0], '-A FORWARD -o br-t3 -j ACCEPT']);
      assert.deepEqual(await ensureOverlayIsolation([]), { state: 'ok', added: 0, removed: 1 });
      assert.ok(!forward().some((l) => l.includes('overlay-flannel')), forward().join('\n'));
    });

    it('no ip filter FORWARD chain → no-chain (never created by us)', async () => {
      execFileSync('nft', ['delete', 'table', 'ip', 'filter']);
      assert.deepEqual(await ensureOverlayIsolation([A, B]), { state: 'no-chain' });
      assert.equal(nftTableExists('filter'), false);
    });
  });
}
