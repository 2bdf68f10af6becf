// The public interface's IPv6 half (issue 21): the first global v6 address of the interface is
// flannel-v6's local and, unless PUBLIC_IPV6 says otherwise, the lease's PublicIPv6; link-local
// addresses never count, and an interface without a global v6 address has neither.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeKernel } from '../fakes/fake-kernel';
import { describePublic, resolvePublicInterface } from '../../src/host/public-interface';

test('IFACE with a global IPv6 address: address6 and publicIPv6 from it; link-local skipped', async () => {
  const k = new FakeKernel();
  const eth = k.addDevice('eth0', { cidr: '192.0.2.5/24' });
  await k.ensureOnlyAddress(eth.index, 'fe80::5/64', 'fe80::/10');
  await k.ensureOnlyAddress(eth.index, '2001:db8:5::5/64', '2001:db8:5::/64');
  const pub = await resolvePublicInterface(k, { iface: 'eth0' });
  assert.deepEqual([pub.address, pub.address6, pub.publicIPv6], ['192.0.2.5', '2001:db8:5::5', '2001:db8:5::5']);
  assert.match(describePublic(pub), /IPv6 2001:db8:5::5$/);
});

test('PUBLIC_IPV6 is what the lease publishes; the device still sends from the interface address', async () => {
  const k = new FakeKernel();
  k.addDevice('eth0', { cidr: '192.0.2.5/24', cidr6: '2001:db8:5::5/64' });
  const pub = await resolvePublicInterface(k, { iface: 'eth0', publicIPv6: '2001:DB8:99:0::1' });
  assert.deepEqual([pub.address6, pub.publicIPv6], ['2001:db8:5::5', '2001:db8:99::1']);
});

test('no global IPv6 address: no address6, no publicIPv6 (v4 as before)', async () => {
  const k = new FakeKernel();
  k.addDevice('eth0', { cidr: '192.0.2.5/24' });
  const pub = await resolvePublicInterface(k, { iface: 'eth0' });
  assert.deepEqual(pub, { link: pub.link, address: '192.0.2.5', publicIP: '192.0.2.5', networks: pub.networks });
});
