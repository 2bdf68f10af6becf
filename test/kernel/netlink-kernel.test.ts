/** The Kernel contract against the real kernel (NetlinkKernel), in a scratch netns. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createNetlinkKernel } from '../../src/kernel';
import { kernelContract } from './kernel-contract';
import { execFileSync } from 'node:child_process';
import { deleteLinkIfPresent, inScratchNetns, makeParent, nftTableExists, SKIP_REASON } from './netns';

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
      forwardChain: async (present) => {
        if (nftTableExists('filter')) execFileSync('nft', ['delete', 'table', 'ip', 'filter']);
        if (present) execFileSync('nft', ['add table ip filter; add chain ip filter FORWARD { type filter hook forward priority 0; policy accept; }']);
      },
      teardown: async () => {
        await kernel.close();
        // filter: made by forwardChain; raw: made by the names interception case (left like iptables-nft)
        for (const t of ['filter', 'raw', 'overlay-flannel-dns']) if (nftTableExists(t)) execFileSync('nft', ['delete', 'table', 'ip', t]);
        deleteLinkIfPresent(PARENT);
      },
    };
  });
}
