/**
 * The names resolver's lifecycle on the real kernel (src/reconcile/name-resolver.ts), in the scratch
 * netns: start puts the answer address on lo, writes the rules and binds the queue; stop takes all
 * of it back (nothing of ours left, twice is fine); a queue held by someone else or an answer
 * address already taken turns the resolver off with an error naming the setting to change, and
 * leaves nothing behind. Queries with real packets: test/kernel/names-queue.test.ts (kernel layer)
 * and test/lab/docker-names.test.ts (Docker end to end).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { createNetlinkKernel, type NameInterceptionSpec } from '../../src/kernel';
import { NameTable } from '../../src/domain/name-table';
import { startNameResolver } from '../../src/reconcile/name-resolver';
import { captureLogger } from '../helpers/store-fixtures';
import { inScratchNetns, nftTableExists, SKIP_REASON } from './netns';

const SPEC: NameInterceptionSpec = { queue: 4154, markBit: 0x00200000, zone: 4154, answerAddress: '169.254.53.54', answerPort: 53, interfacePrefixes: ['ofh', 'ofb-'] };
const loAddrs = (): string[] => execFileSync('ip', ['-4', '-o', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' }).split('\n').filter(Boolean).map((l) => l.split(/\s+/)[3]!);
const queueRule = (): boolean => nftTableExists('raw') && /overlay-flannel names queue/.test(execFileSync('nft', ['list', 'table', 'ip', 'raw'], { encoding: 'utf8' }));

if (!inScratchNetns()) {
  describe('names resolver lifecycle', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  describe('names resolver lifecycle on the real kernel', () => {
    const kernel = createNetlinkKernel({ timeoutMs: 5000 });
    // The queue rule lives in iptables' raw table, which stays (empty) after our rule goes; the
    // scratch netns is shared by the kernel suite's files, so leave it as this file found it.
    const rawBefore = nftTableExists('raw');
    after(async () => {
      await kernel.removeNameInterception().catch(() => undefined);
      await kernel.close();
      if (!rawBefore && nftTableExists('raw')) execFileSync('nft', ['delete', 'table', 'ip', 'raw']);
    });

    it('start makes address, rules and queue; stop removes all of them, twice is fine', async () => {
      const { logger, lines } = captureLogger('info');
      const r = await startNameResolver({ kernel, table: new NameTable('192.0.2.1'), spec: SPEC, log: logger });
      assert.ok(r, JSON.stringify(lines));
      assert.ok(loAddrs().includes(`${SPEC.answerAddress}/32`));
      assert.ok(nftTableExists('overlay-flannel-dns') && queueRule());
      assert.ok(lines.some((l) => /answering cross-host names/.test(String(l.msg))));
      await r.stop();
      await r.stop();
      assert.ok(!loAddrs().includes(`${SPEC.answerAddress}/32`), 'the answer address is gone');
      assert.ok(!nftTableExists('overlay-flannel-dns') && !queueRule(), 'the rules are gone');
    });

    it('a queue held by another program: off, with the setting to change, nothing left behind', async () => {
      const holder = await kernel.openPacketQueue(SPEC.queue, () => undefined);
      try {
        const { logger, lines } = captureLogger('info');
        assert.equal(await startNameResolver({ kernel, table: new NameTable('192.0.2.1'), spec: SPEC, log: logger }), null);
        const err = lines.find((l) => l.level === 50);
        assert.match(String(err?.msg), /names resolver off: binding NFQUEUE 4154: .*NAME_QUEUE/);
        assert.ok(!loAddrs().includes(`${SPEC.answerAddress}/32`) && !nftTableExists('overlay-flannel-dns') && !queueRule(), 'undone');
      } finally {
        await holder.close();
      }
    });

    it('the answer address taken by another socket: off, naming NAME_ANSWER_ADDR, nothing left behind', async () => {
      execFileSync('ip', ['addr', 'add', `${SPEC.answerAddress}/32`, 'dev', 'lo']);
      const squatter = createSocket('udp4');
      await new Promise<void>((res) => squatter.bind(SPEC.answerPort, SPEC.answerAddress, () => res()));
      try {
        const { logger, lines } = captureLogger('info');
        assert.equal(await startNameResolver({ kernel, table: new NameTable('192.0.2.1'), spec: SPEC, log: logger }), null);
        assert.match(String(lines.find((l) => l.level === 50)?.msg), /opening the answer socket on 169\.254\.53\.54:53: another process already answers there: set NAME_ANSWER_ADDR/);
        assert.ok(!nftTableExists('overlay-flannel-dns') && !queueRule());
      } finally {
        squatter.close();
        execFileSync('ip', ['addr', 'del', `${SPEC.answerAddress}/32`, 'dev', 'lo']);
      }
    });
  });
}
