/**
 * The offload settings (GRO/GSO/TSO, checksums, scatter-gather …) of every device kind the product
 * creates over netlink — the container veth pair and the vxlan device — must be exactly what the
 * kernel gives the same device made by iproute2, i.e. the kernel's default fast path (docs/performance.md §4:
 * the hand-built reference path is made with iproute2). Read with `ethtool -k` in the scratch netns.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createNetlinkKernel } from '../../src/kernel';
import { inScratchNetns, SKIP_REASON } from './netns';

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8' });
/** `ethtool -k` as feature → value, the header line dropped. */
function features(dev: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of sh('ethtool', ['-k', dev]).split('\n').slice(1)) {
    const m = /^\s*([\w-]+):\s*(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!.trim());
  }
  return out;
}

if (!inScratchNetns()) {
  describe('offloads of the devices we create', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  describe('offloads of the devices we create', () => {
    it('veth and vxlan made over netlink have the same offload features as the same devices made by iproute2', async (t) => {
      const k = await createNetlinkKernel();
      const id = Math.random().toString(16).slice(2, 8);
      try {
        sh('ip', ['link', 'set', 'lo', 'up']);
        const lo = (await k.getLink('lo'))!;
        await k.ensureVethPair(`ofh${id}`, `ofc${id}`, 1450);
        await k.ensureVxlan({ name: 'flannel.4001', vni: 4001, parentIndex: lo.index, local: '127.0.0.1', port: 0, learning: false, gbp: false, mtu: 1450, mac: '0e:00:00:00:40:01' });
        sh('ip', ['link', 'add', `rh${id}`, 'mtu', '1450', 'type', 'veth', 'peer', 'name', `rc${id}`]);
        sh('ip', ['link', 'add', 'flannel.4002', 'mtu', '1450', 'type', 'vxlan', 'id', '4002', 'local', '127.0.0.1', 'dev', 'lo', 'dstport', '8472', 'nolearning']);
        for (const [ours, ref] of [[`ofh${id}`, `rh${id}`], [`ofc${id}`, `rc${id}`], ['flannel.4001', 'flannel.4002']]) {
          const a = features(ours!);
          const b = features(ref!);
          assert.ok(a.size > 20, `ethtool -k ${ours} listed ${a.size} features`);
          assert.deepEqual(Object.fromEntries(a), Object.fromEntries(b), `${ours} vs ${ref}`);
        }
        const vx = features('flannel.4001');
        t.diagnostic(`vxlan: gro ${vx.get('generic-receive-offload')}, gso ${vx.get('generic-segmentation-offload')}, tso ${vx.get('tcp-segmentation-offload')}, tx-csum ${vx.get('tx-checksumming')}`);
        assert.equal(vx.get('generic-receive-offload'), 'on');
        assert.equal(features(`ofh${id}`).get('tcp-segmentation-offload'), 'on');
      } finally {
        for (const d of [`ofh${id}`, 'flannel.4001', `rh${id}`, 'flannel.4002']) await k.deleteLink(d).catch(() => undefined);
        await k.close();
      }
    });
  });
}
