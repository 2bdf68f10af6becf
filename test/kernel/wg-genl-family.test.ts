/**
 * Generic netlink family resolution (wireguard-genl.ts, messages of wg-genetlink.ts) against the
 * real kernel, in a scratch netns: nlctrl resolves itself (id GENL_ID_CTRL), an unknown name is
 * null (the kernel's ENOENT), a name past GENL_NAMSIZ is the kernel's refusal; and "wireguard"
 * decides the implementation the way kernel-wireguard.ts says. On these machines the kernel has no
 * WireGuard: no link kind, no family, so the reason is NO_KIND and wireguard-go runs. Where the
 * kernel has it, the family must be version 1 and the choice is the kernel: both branches assert,
 * and the test says which one ran (never a skip).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { resolveGenlFamily } from '../../src/kernel/wireguard-genl';
import { GENL_ID_CTRL, WG_GENL_NAME } from '../../src/kernel/wg-genetlink';
import { KERNEL_GENL, NO_KIND, WireguardDevices } from '../../src/kernel/kernel-wireguard';
import { NlSocket } from '../../src/kernel/netlink-socket';
import { createNetlinkKernel } from '../../src/kernel';
import { generateWireguardKeyPair } from '../../src/host/wireguard-key';
import { inScratchNetns, SKIP_REASON } from './netns';

if (!inScratchNetns()) {
  describe('generic netlink family resolution', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  describe('generic netlink family resolution (real kernel)', () => {
    const ns = new NlSocket({ timeoutMs: 5000 });
    after(() => ns.close());

    it('nlctrl resolves itself: id GENL_ID_CTRL 0x10, its name, hdrsize 0, a version', async () => {
      const f = await resolveGenlFamily('nlctrl');
      assert.ok(f, 'nlctrl must exist on every kernel with generic netlink');
      assert.deepEqual([f.id, f.name, f.hdrsize], [GENL_ID_CTRL, 'nlctrl', 0]);
      assert.ok(f.version >= 1, JSON.stringify(f)); // 2 on 6.x kernels
    });

    it('an unknown family is null (ENOENT); a name longer than GENL_NAMSIZ - 1 is the kernel\'s EINVAL', async () => {
      assert.equal(await resolveGenlFamily(`ovf-nope-${process.pid % 1000}`), null);
      await assert.rejects(resolveGenlFamily('x'.repeat(20)), (e: Error & { code?: string; errno?: string }) => {
        assert.equal(e.code, 'KERNEL');
        assert.equal(e.errno, 'EINVAL');
        assert.match(e.message, /resolve generic netlink family "x+": EINVAL/);
        return true;
      });
    });

    it('"wireguard": the family and the link kind decide the implementation, and ensureWireguard says it', async (t) => {
      const family = await resolveGenlFamily(WG_GENL_NAME);
      const devices = new WireguardDevices(ns, { timeoutMs: 5000 });
      const choice = await devices.probe(`gf${process.pid % 10000}`);
      const kernel = createNetlinkKernel({ timeoutMs: 5000, wireguard: { privateSocketDir: true } });
      const name = `gfw${process.pid % 10000}`;
      try {
        const info = await kernel.ensureWireguard({ name, privateKey: generateWireguardKeyPair().privateKey, listenPort: 51830, mtu: 1420 });
        if (family === null) {
          t.diagnostic('this kernel has no "wireguard" generic netlink family: the userspace fallback was checked');
          assert.equal(choice.family, null);
          assert.deepEqual([choice.implementation, choice.reason], ['userspace', NO_KIND]);
          assert.deepEqual([info.implementation, info.reason], ['userspace', NO_KIND]);
        } else {
          t.diagnostic(`this kernel has the "wireguard" family (id ${family.id}): the kernel path was checked`);
          assert.deepEqual([family.name, family.version], [WG_GENL_NAME, 1]);
          assert.deepEqual([choice.implementation, choice.reason, choice.family?.id], ['kernel', KERNEL_GENL, family.id]);
          assert.deepEqual([info.implementation, info.reason], ['kernel', KERNEL_GENL]);
        }
      } finally {
        await kernel.deleteLink(name);
        await kernel.close();
      }
    });
  });
}
