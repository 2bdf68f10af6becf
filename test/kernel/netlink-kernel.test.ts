/** The Kernel contract against the real kernel (NetlinkKernel), in a scratch netns. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createNetlinkKernel } from '../../src/kernel';
import { kernelContract } from './kernel-contract';
import { deleteLinkIfPresent, inScratchNetns, makeParent, SKIP_REASON } from './netns';

const PARENT = 'ktup0';
const CIDR = '192.0.2.10/24';

// Never skip: outside a scratch namespace this fails loudly instead of touching the host.
if (!inScratchNetns()) {
  describe('Kernel contract (netlink)', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  kernelContract('netlink', async () => {
    makeParent(PARENT, CIDR);
    const kernel = createNetlinkKernel({ timeoutMs: 5000 });
    const p = await kernel.getLink(PARENT);
    if (!p) throw new Error(`parent ${PARENT} missing`);
    return {
      kernel,
      parent: { index: p.index, name: PARENT, ip: '192.0.2.10', mtu: p.mtu, cidr: CIDR },
      prefix: 'kt',
      newKernel: () => createNetlinkKernel(),
      teardown: async () => {
        await kernel.close();
        deleteLinkIfPresent(PARENT);
      },
    };
  });
}
