/** The Kernel contract against FakeKernel (no root needed), plus the fake's own test hooks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KernelError } from '../../src/kernel/errno';
import { kernelContract } from '../kernel/kernel-contract';
import { wireguardContract } from '../kernel/wireguard-contract';
import { FakeKernel } from '../fakes/fake-kernel';

function fakeWithParent(): FakeKernel {
  const k = new FakeKernel();
  k.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.10/24' });
  return k;
}

kernelContract('fake', async () => {
  const kernel = fakeWithParent();
  const p = await kernel.getLink('eth0');
  if (!p) throw new Error('no parent');
  return {
    kernel,
    parent: { index: p.index, name: 'eth0', ip: '192.0.2.10', mtu: 1500, cidr: '192.0.2.10/24' },
    prefix: 'ft',
    newKernel: () => fakeWithParent(),
    forwardChain: async (present) => {
      kernel.forwardChain = present;
      if (!present) kernel.forwardHead = [];
    },
    teardown: async () => kernel.close(),
  };
});

wireguardContract('fake', async () => {
  const kernel = fakeWithParent();
  return {
    kernel,
    prefix: 'fw',
    kernelWithoutWireguard: () => Object.assign(fakeWithParent(), { wireguardGo: false }),
    teardown: () => kernel.close(),
  };
});

describe('FakeKernel hooks', () => {
  it('failNext injects one failure, writes logs write calls', async () => {
    const k = fakeWithParent();
    k.failNext('replaceRoute', new KernelError('replace route 10.1.2.0/24: EBUSY', 'EBUSY'));
    const r = { dst: '10.1.2.0/24', gateway: '192.0.2.1', oif: 0, onlink: false };
    await assert.rejects(k.replaceRoute(r), /EBUSY/);
    await k.replaceRoute(r);
    assert.deepEqual(k.writes, ['replaceRoute 10.1.2.0/24 192.0.2.1 0']);
    assert.equal((await k.listRoutes()).find((x) => x.dst === '10.1.2.0/24')?.oif, 2);
  });

  it('a veth whose peer moved to a container is kept', async () => {
    const k = fakeWithParent();
    await k.ensureBridge('br0', 1450);
    await k.ensureVethPair('vh', 'vp', 1450, 'br0');
    const h = await k.getLink('vh');
    k.movePeerAway('vp');
    await k.ensureVethPair('vh', 'vp', 1450, 'br0');
    assert.equal((await k.getLink('vh'))?.index, h?.index);
  });
});
