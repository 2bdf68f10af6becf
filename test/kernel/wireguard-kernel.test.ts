/** The Kernel's WireGuard contract against the real kernel and the real wireguard-go, in a scratch netns. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createNetlinkKernel } from '../../src/kernel';
import { wireguardContract } from './wireguard-contract';
import { inScratchNetns, SKIP_REASON } from './netns';

// Never skip: outside a scratch namespace this fails loudly instead of touching the host.
if (!inScratchNetns()) {
  describe('Kernel wireguard contract (netlink)', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  wireguardContract('netlink + wireguard-go', async () => {
    // privateSocketDir: other test files may run a wireguard-go of the same name on this machine.
    const kernel = createNetlinkKernel({ timeoutMs: 5000, wireguard: { privateSocketDir: true } });
    return {
      kernel,
      prefix: 'kw',
      // neither: no wireguard-go, and kernel WireGuard (where there is one) not used
      kernelWithoutWireguard: () => createNetlinkKernel({ wireguard: { privateSocketDir: true, command: '/nonexistent/wireguard-go', kernelWireguard: false } }),
      teardown: () => kernel.close(),
    };
  });
}
