/**
 * The Kernel's WireGuard methods as a contract (the pattern of kernel-contract.ts), run against
 * NetlinkKernel with the real wireguard-go in a scratch netns (test/kernel/wireguard-kernel.test.ts)
 * and against FakeKernel (test/unit/fake-kernel.test.ts), so the fake the reconciler's unit tests
 * use cannot drift from the real device. Each case deletes what it made.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Kernel, WireguardPeer } from '../../src/kernel';
import { generateWireguardKeyPair } from '../../src/host/wireguard-key';
import { rejectsWith } from './kernel-contract';

export interface WireguardContractEnv {
  kernel: Kernel;
  /** 1-4 characters prepended to every link name this contract creates. */
  prefix: string;
  /** A Kernel on a host with neither kernel WireGuard nor wireguard-go (closed by the contract). */
  kernelWithoutWireguard(): Kernel;
  teardown(): Promise<void>;
}

const byKey = (ps: WireguardPeer[]) => [...ps].sort((a, b) => a.publicKey.localeCompare(b.publicKey));

export function wireguardContract(label: string, setup: () => Promise<WireguardContractEnv>): void {
  describe(`Kernel wireguard contract (${label})`, () => {
    let env: WireguardContractEnv;
    let k: Kernel;
    let name: string;
    const me = generateWireguardKeyPair();
    const [a, b] = [generateWireguardKeyPair(), generateWireguardKeyPair()];
    const psk = generateWireguardKeyPair().privateKey; // any 32 random bytes

    before(async () => {
      env = await setup();
      k = env.kernel;
      name = `${env.prefix}wg0`;
    });
    after(async () => {
      await k.deleteLink(name);
      await k.deleteLink(`${env.prefix}wgx`);
      await env.teardown();
    });

    it('ensureWireguard makes the device up with its MTU; twice keeps the same one; says which implementation runs', async () => {
      const d1 = await k.ensureWireguard({ name, privateKey: me.privateKey, listenPort: 51820, mtu: 1420 });
      const d2 = await k.ensureWireguard({ name, privateKey: me.privateKey, listenPort: 51820, mtu: 1400 });
      assert.equal(d2.index, d1.index);
      assert.deepEqual([d2.up, d2.mtu, d2.listenPort], [true, 1400, 51820]);
      // userspace (wireguard-go) here; kernel WireGuard over generic netlink where the kernel has it
      assert.ok(d2.implementation === 'userspace' || d2.implementation === 'kernel', d2.implementation);
      assert.match(d2.reason, d2.implementation === 'kernel' ? /generic netlink/ : /using wireguard-go/);
      const l = await k.getLink(name);
      assert.deepEqual([l?.index, l?.mtu, l?.up], [d1.index, 1400, true]);
      assert.deepEqual(await k.listWireguardPeers(name), []);
    });

    it('peers: added with endpoint, allowed IPs, PSK and keepalive; changed; removed', async () => {
      await k.ensureWireguard({ name, privateKey: me.privateKey, listenPort: 51820, mtu: 1420 });
      const pa: WireguardPeer = { publicKey: a.publicKey, endpoint: '192.0.2.2:51820', allowedIPs: ['10.9.2.0/24'] };
      const pb: WireguardPeer = { publicKey: b.publicKey, endpoint: '192.0.2.3:51820', allowedIPs: ['10.9.3.0/24'], presharedKey: psk, persistentKeepalive: 25 };
      await k.updateWireguardPeers(name, [pa, pb], []);
      assert.deepEqual(byKey(await k.listWireguardPeers(name)), byKey([pa, pb]));
      const pa2 = { ...pa, endpoint: '192.0.2.4:51820', allowedIPs: ['10.9.4.0/24'] };
      await k.updateWireguardPeers(name, [pa2], [b.publicKey]);
      assert.deepEqual(await k.listWireguardPeers(name), [pa2]);
      await k.updateWireguardPeers(name, [], [a.publicKey, b.publicKey]); // removing an absent one is fine
      assert.deepEqual(await k.listWireguardPeers(name), []);
    });

    it('a route via the device (link scope) is listed and goes with the device; a deleted device is NOT_FOUND, then made anew', async () => {
      const d = await k.ensureWireguard({ name, privateKey: me.privateKey, listenPort: 51820, mtu: 1420 });
      await k.updateWireguardPeers(name, [{ publicKey: a.publicKey, endpoint: '192.0.2.2:51820', allowedIPs: ['10.9.2.0/24'] }], []);
      await k.ensureOnlyAddress(d.index, '10.9.1.0/32', '10.9.0.0/16');
      await k.replaceRoute({ dst: '10.9.0.0/16', oif: d.index, onlink: false });
      assert.deepEqual(await k.listRoutes(d.index), [{ dst: '10.9.0.0/16', oif: d.index, onlink: false }]);
      await k.deleteLink(name);
      await rejectsWith(k.listWireguardPeers(name), 'NOT_FOUND', /not a running WireGuard device/);
      assert.equal((await k.listRoutes()).filter((r) => r.dst === '10.9.0.0/16').length, 0);
      const again = await k.ensureWireguard({ name, privateKey: me.privateKey, listenPort: 51820, mtu: 1420 });
      assert.notEqual(again.index, d.index);
      assert.deepEqual(await k.listWireguardPeers(name), []);
    });

    it('a link of another kind with the name is replaced (as flanneld does)', async () => {
      const other = `${env.prefix}wgx`;
      const br = await k.ensureBridge(other, 1500);
      const d = await k.ensureWireguard({ name: other, privateKey: me.privateKey, listenPort: 51822, mtu: 1420 });
      assert.notEqual(d.index, br.index);
      assert.notEqual((await k.getLink(other))?.kind, 'bridge');
      await k.deleteLink(other);
    });

    it('bad input is INVALID and never quotes the private key', async () => {
      const bad = me.privateKey.slice(0, 40);
      const e = await rejectsWith(k.ensureWireguard({ name, privateKey: bad, listenPort: 51820, mtu: 1420 }), 'INVALID', /private key is not base64 of 32 bytes/);
      assert.ok(!e.message.includes(bad), e.message);
      await rejectsWith(k.ensureWireguard({ name, privateKey: me.privateKey, listenPort: 0, mtu: 1420 }), 'INVALID', /listen port/);
      await k.ensureWireguard({ name, privateKey: me.privateKey, listenPort: 51820, mtu: 1420 });
      await rejectsWith(k.updateWireguardPeers(name, [{ publicKey: a.publicKey, endpoint: 'nowhere', allowedIPs: [] }], []), 'INVALID', /endpoint/);
      await rejectsWith(k.updateWireguardPeers(name, [{ publicKey: a.publicKey, allowedIPs: ['10.9.2.1/24'] }], []), 'INVALID', /host bits/);
    });

    it('neither kernel WireGuard nor wireguard-go: UNSUPPORTED naming what to install', async () => {
      const bare = env.kernelWithoutWireguard();
      try {
        await rejectsWith(bare.ensureWireguard({ name: `${env.prefix}wgn`, privateKey: me.privateKey, listenPort: 51820, mtu: 1420 }), 'UNSUPPORTED', /apt-get install wireguard-go/);
      } finally {
        await bare.close();
      }
    });
  });
}
