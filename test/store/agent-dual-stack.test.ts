/**
 * agent-dual-stack.test.ts — the daemon's overlay agent (real etcd, fake kernel) on IPv6 configs:
 * an alloc dual-stack overlay runs (flanneld's alloc lease bytes under a dual-stack key, subnet.env
 * with FLANNEL_IPV6_*), a vxlan dual-stack overlay writes flanneld's dual-stack vxlan lease and sets
 * up flannel-v6.<VNI>, and is refused, with no lease written, on a host without an IPv6 address. Issue 21.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { formatCidr, parseCidr } from '../../src/domain/ipv4';
import { formatCidr6, formatIPv6 } from '../../src/domain/ipv6';
import { vtepMacFor } from '../../src/domain/mac';
import type { PublicInterface } from '../../src/host/public-interface';
import type { LinkInfo } from '../../src/kernel';
import { OverlayAgent } from '../../src/reconcile/overlay-agent';
import { overlayPort } from '../../src/daemon/store-port';
import type { Store } from '../../src/store';
import { SerialQueue } from '../../src/util/serial-queue';
import { FakeKernel } from '../fakes/fake-kernel';
import type { EtcdServer } from '../helpers/etcd-server';
import { randomPrefix, withEtcdStore } from '../helpers/store-fixtures';
import { waitFor } from '../helpers/wait';

let etcd: EtcdServer;
let store: Store;
withEtcdStore((e, s) => {
  etcd = e;
  store = s;
});

const nics = new WeakMap<FakeKernel, LinkInfo>(); // eth0 of a kernel used by more than one agent (a restart)

function agentOn(prefix: string, subnetFile?: string, v6?: string, kernel = new FakeKernel()): OverlayAgent {
  const eth = nics.get(kernel) ?? kernel.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.21/24', ...(v6 ? { cidr6: `${v6}/64` } : {}) });
  nics.set(kernel, eth);
  const pub: PublicInterface = { link: eth, address: '192.0.2.21', publicIP: '192.0.2.21', networks: [parseCidr('192.0.2.0/24')], ...(v6 ? { address6: v6, publicIPv6: v6 } : {}) };
  const tuning = { ttlSec: 60, renewMarginSec: 20, resyncIntervalMs: 60_000, ipMasq: false, notrack: false, stateDir: '/nonexistent' };
  return new OverlayAgent(overlayPort(store.overlay(prefix)), kernel, new SerialQueue(), pub, pino({ level: 'silent' }), { name: 'default', tuning, ...(subnetFile ? { subnetFile } : {}) });
}

describe('overlay agent on IPv6 configs', () => {
  it('alloc dual-stack: a dual-stack lease with flanneld\'s alloc bytes, and subnet.env with FLANNEL_IPV6_*', async () => {
    const prefix = randomPrefix('dual');
    const dir = await mkdtemp(join(tmpdir(), 'of-v6-'));
    const subnetFile = join(dir, 'subnet.env');
    await etcd.etcdctl(['put', `${prefix}/config`, '{"Network":"10.44.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:44::/48","Backend":{"Type":"alloc"}}']);
    const agent = agentOn(prefix, subnetFile);
    try {
      await agent.start();
      await waitFor(async () => agent.state === 'ready', { what: 'agent ready', timeoutMs: 20_000 });
      const lease = agent.lease()!;
      assert.ok(lease.subnet6, 'the lease has a v6 subnet');
      const keys = (await store.client.getAll().prefix(`${prefix}/subnets`).keys()).map((k) => k.slice(prefix.length + '/subnets/'.length));
      assert.equal(keys.length, 1);
      assert.match(keys[0], /^10\.44\.\d+\.0-24&fd00:44:0:[0-9a-f]+::-64$/);
      assert.equal(await store.client.get(`${prefix}/subnets/${keys[0]}`).string(), '{"PublicIP":"192.0.2.21","PublicIPv6":null}');
      const env = await readFile(subnetFile, 'utf8');
      const third = (lease.subnet.base >>> 8) & 255;
      assert.equal(
        env,
        `FLANNEL_NETWORK=10.44.0.0/16\nFLANNEL_SUBNET=10.44.${third}.1/24\nFLANNEL_IPV6_NETWORK=fd00:44::/48\nFLANNEL_IPV6_SUBNET=${formatIPv6(lease.subnet6.base + 1n)}/64\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n`,
      );
      assert.match(formatCidr6(lease.subnet6), /^fd00:44:0:[0-9a-f]+::\/64$/);
    } finally {
      await agent.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('vxlan dual-stack: flanneld\'s dual-stack vxlan lease (PublicIPv6, BackendV6Data) and flannel-v6.1 with the /128', async () => {
    const prefix = randomPrefix('dualvx');
    await etcd.etcdctl(['put', `${prefix}/config`, '{"Network":"10.45.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:45::/48","Backend":{"Type":"vxlan"}}']);
    const kernel = new FakeKernel();
    const agent = agentOn(prefix, undefined, '2001:db8:45::21', kernel);
    try {
      await agent.start();
      await waitFor(async () => agent.state === 'ready', { what: 'agent ready', timeoutMs: 20_000 });
      const lease = agent.lease()!;
      const keys = (await store.client.getAll().prefix(`${prefix}/subnets`).keys()).map((k) => k.slice(prefix.length + '/subnets/'.length));
      assert.deepEqual(keys, [`10.45.${(lease.subnet.base >>> 8) & 255}.0-24&${formatIPv6(lease.subnet6!.base)}-64`]);
      const mac = vtepMacFor(1, '192.0.2.21');
      const mac6 = vtepMacFor(1, '2001:db8:45::21');
      assert.equal(
        await store.client.get(`${prefix}/subnets/${keys[0]}`).string(),
        `{"PublicIP":"192.0.2.21","PublicIPv6":"2001:db8:45::21","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"},"BackendV6Data":{"VNI":1,"VtepMAC":"${mac6}"}}`,
      );
      const dev = await kernel.getVxlan('flannel-v6.1');
      assert.deepEqual([dev?.local, dev?.mac, dev?.mtu], ['2001:db8:45::21', mac6, 1430]);
      assert.deepEqual((await kernel.listAddresses(dev!.index, 6)).map((a) => `${a.address}/${a.prefixLen}`), [`${formatIPv6(lease.subnet6!.base)}/128`]);
      // a restart after the lease is gone asks for the v6 subnet flannel-v6 still carries
      await agent.stop();
      await store.client.delete().key(`${prefix}/subnets/${keys[0]}`);
      const again = agentOn(prefix, undefined, '2001:db8:45::21', kernel);
      try {
        await again.start();
        await waitFor(async () => again.state === 'ready', { what: 'restarted agent ready', timeoutMs: 20_000 });
        assert.equal(formatCidr6(again.lease()!.subnet6!), formatCidr6(lease.subnet6!), 'the same v6 subnet');
        assert.equal(formatCidr(again.lease()!.subnet), formatCidr(lease.subnet), 'and the same v4 subnet');
      } finally {
        await again.stop();
      }
    } finally {
      await agent.stop();
    }
  });

  it('vxlan dual-stack on a host without an IPv6 address: refused naming the interface; no lease is written', async () => {
    const prefix = randomPrefix('dualvx');
    await etcd.etcdctl(['put', `${prefix}/config`, '{"Network":"10.45.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:45::/48","Backend":{"Type":"vxlan"}}']);
    const agent = agentOn(prefix);
    try {
      await agent.start();
      await waitFor(async () => agent.state === 'config-invalid', { what: 'config refused', timeoutMs: 20_000 });
      assert.match(agent.notReadyReason(), /EnableIPv6 with the vxlan backend needs a global IPv6 address on the public interface eth0/);
      assert.equal((await store.client.getAll().prefix(`${prefix}/subnets`).keys()).length, 0);
    } finally {
      await agent.stop();
    }
  });
});
