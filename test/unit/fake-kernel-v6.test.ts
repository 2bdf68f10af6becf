/** The IPv6 Kernel contract (test/kernel/kernel-v6-contract.ts) against FakeKernel: no root needed. */
import { kernelV6Contract } from '../kernel/kernel-v6-contract';
import { FakeKernel } from '../fakes/fake-kernel';

kernelV6Contract('fake', async () => {
  const kernel = new FakeKernel();
  const p = kernel.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.61/24', cidr6: '2001:db8:61::10/64' });
  return {
    kernel,
    parent: { index: p.index, name: 'eth0', ip: '192.0.2.61', ip6: '2001:db8:61::10', mtu: 1500 },
    prefix: 'f6',
    resetFirewall: async () => {
      Object.assign(kernel, { forwardChain: true, forwardChain6: false, nat6: false, forwardHead: [], forwardHead6: [] });
      kernel.forwardAccept.clear();
      kernel.masquerade.clear();
      kernel.notrack.clear();
    },
    acceptRa: async (name) => kernel.acceptRa(name),
    teardown: () => kernel.close(),
  };
});
