// The wireguard backend's v6 half (flanneld's Mode "separate" on a dual-stack overlay): the peers of
// flannel-wg-v6 from the leases' v6 parts (domain/wg-peers.ts, family 6), the device as flanneld's
// on the fake kernel, the dual-stack wireguard lease as flanneld writes it, and the ip6 firewall of
// IPv6Network (FORWARD accepts, masquerade, NOTRACK without a tunnel rule) a v6 container needs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { FakeKernel } from '../fakes/fake-kernel';
import { OverlayDataplane } from '../../src/reconcile/overlay-dataplane';
import { SerialQueue } from '../../src/util/serial-queue';
import { parseNetworkConfig } from '../../src/domain/network-config';
import { parseCidr } from '../../src/domain/ipv4';
import { parseCidr6 } from '../../src/domain/ipv6';
import { decodeLeaseAttrs, encodeLeaseAttrs, type Lease } from '../../src/domain/lease';
import { desiredWireguardPeers } from '../../src/domain/wg-peers';
import { wireguardV6DeviceName, type WireguardBackend } from '../../src/domain/wireguard-config';
import { generateWireguardKeyPair } from '../../src/host/wireguard-key';
import type { PublicInterface } from '../../src/host/public-interface';
import { checkWireguardPeerAddresses } from '../../src/kernel/kernel-wireguard';
import { kernelView, type StatusAgent } from '../../src/status/views';
import { notrackRules, notrackRuleText } from '../../src/domain/notrack-rules';

const log = pino({ level: process.env.WG6_LOG ?? 'silent' });
const PSK = Buffer.alloc(32, 7).toString('base64');
const keys = Array.from({ length: 7 }, () => generateWireguardKeyPair());
/** Host n's dual-stack lease: 10.7.n.0/24 & fd00:7:0:n::/64, PublicIPv6 2001:db8::n, flannel-wg-v6's key (the same as v4's). */
const L = (n: number, over: { v6ip?: string | null; subnet6?: boolean; key6?: string | null; key?: string } = {}): Lease => {
  const key = over.key ?? keys[n].publicKey;
  const key6 = over.key6 === undefined ? key : over.key6;
  const v6ip = over.v6ip === undefined ? `2001:db8::${n}` : over.v6ip;
  return {
    subnet: parseCidr(`10.7.${n}.0/24`),
    ...(over.subnet6 === false ? {} : { subnet6: parseCidr6(`fd00:7:0:${n}::/64`) }),
    attrs: { publicIP: `192.0.2.${n}`, backendType: 'wireguard', wireguard: { publicKey: key }, ...(v6ip ? { publicIPv6: v6ip } : {}), ...(key6 ? { wireguard6: { publicKey: key6 } } : {}) },
    etcdLease: '1',
  };
};
const backend = (over: Partial<WireguardBackend> = {}): WireguardBackend => ({ type: 'wireguard', listenPort: 51820, listenPortV6: 51821, mode: 'separate', persistentKeepaliveInterval: 0, ...over });

test('desiredWireguardPeers family 6: [PublicIPv6]:ListenPortV6, the v6 subnet, PSK and keepalive; leases without a v6 half skipped with the reason', () => {
  const own = L(1);
  const leases = [L(3), own, L(2), L(4, { v6ip: null }), L(5, { subnet6: false }), L(6, { key6: null })];
  const r = desiredWireguardPeers({ backend: backend({ listenPortV6: 52000, psk: PSK, persistentKeepaliveInterval: 25 }), family: 6, ownSubnet: own.subnet, ownSubnet6: own.subnet6, ownPublicKey: keys[1].publicKey, leases });
  assert.deepEqual(r.peers, [
    { publicKey: keys[2].publicKey, endpoint: '[2001:db8::2]:52000', allowedIPs: ['fd00:7:0:2::/64'], presharedKey: PSK, persistentKeepalive: 25 },
    { publicKey: keys[3].publicKey, endpoint: '[2001:db8::3]:52000', allowedIPs: ['fd00:7:0:3::/64'], presharedKey: PSK, persistentKeepalive: 25 },
  ]);
  assert.deepEqual(r.skipped.map((s) => s.subnet), ['10.7.5.0/24', 'fd00:7:0:4::/64', 'fd00:7:0:6::/64']);
  assert.match(r.skipped[0].reason, /no IPv6 subnet/);
  assert.match(r.skipped[1].reason, /no PublicIPv6/);
  assert.match(r.skipped[2].reason, /no BackendV6Data PublicKey/);
  // The same leases, family 4: unchanged (PublicIP:ListenPort, v4 subnets, all five remote hosts).
  const r4 = desiredWireguardPeers({ backend: backend(), ownSubnet: own.subnet, ownPublicKey: keys[1].publicKey, leases });
  assert.deepEqual(r4.peers.map((p) => `${p.allowedIPs} ${p.endpoint}`), ['10.7.2.0/24 192.0.2.2:51820', '10.7.3.0/24 192.0.2.3:51820', '10.7.4.0/24 192.0.2.4:51820', '10.7.5.0/24 192.0.2.5:51820', '10.7.6.0/24 192.0.2.6:51820']);
});

test('a dual-stack wireguard lease as flanneld writes it: BackendV6Data {"PublicKey"}; flanneld ≥ 0.26.6 also writes "Port" (read)', () => {
  const k = keys[0].publicKey;
  const text = `{"PublicIP":"192.0.2.1","PublicIPv6":"2001:db8::1","BackendType":"wireguard","BackendData":{"PublicKey":"${k}"},"BackendV6Data":{"PublicKey":"${k}"}}`;
  const a = decodeLeaseAttrs(text);
  assert.deepEqual(a.wireguard6, { publicKey: k });
  assert.equal(encodeLeaseAttrs(a), text);
  const withPort = decodeLeaseAttrs(`{"PublicIP":"192.0.2.1","PublicIPv6":"2001:db8::1","BackendType":"wireguard","BackendData":{"PublicKey":"${k}","Port":51820},"BackendV6Data":{"PublicKey":"${k}","Port":51821}}`);
  assert.deepEqual(withPort.wireguard6, { publicKey: k, port: 51821 });
  assert.throws(() => decodeLeaseAttrs(`{"PublicIP":"192.0.2.1","PublicIPv6":"2001:db8::1","BackendType":"wireguard","BackendData":{"PublicKey":"${k}"},"BackendV6Data":{"Port":1}}`), /BackendV6Data has no "PublicKey"/);
  assert.throws(() => decodeLeaseAttrs(`{"PublicIP":"192.0.2.1","PublicIPv6":"2001:db8::1","BackendType":"wireguard","BackendData":{"PublicKey":"${k}"},"BackendV6Data":{"PublicKey":"nope"}}`), /not a WireGuard key/);
});

test('v6 device names: flannel-wg-v6 beside flannel-wg, fw6-<…> beside a named overlay\'s fwg-<…>', () => {
  assert.equal(wireguardV6DeviceName('flannel-wg'), 'flannel-wg-v6');
  assert.equal(wireguardV6DeviceName('fwg-green'), 'fw6-green');
  assert.equal(wireguardV6DeviceName('fwg-produc-3f2a'), 'fw6-produc-3f2a');
});

const DUAL = '{"Network":"10.7.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:7::/48","Backend":{"Type":"wireguard"}}';

async function setup(cfgText = DUAL) {
  const kernel = new FakeKernel();
  const eth = kernel.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.1/24' });
  const pub: PublicInterface = { link: eth, address: '192.0.2.1', publicIP: '192.0.2.1', publicIPv6: '2001:db8::1', networks: [parseCidr('192.0.2.0/24')] };
  const dp = new OverlayDataplane(kernel, new SerialQueue(), log, parseNetworkConfig(cfgText), pub, { ipMasq: false, notrack: false }, keys[1]);
  const own = L(1);
  dp.setLeases([own, L(2), L(3), L(4, { v6ip: null })]);
  await dp.attach(own);
  await dp.idle();
  const peers6 = async () => (await kernel.listWireguardPeers('flannel-wg-v6')).map((p) => `${p.allowedIPs.join(',')} ${p.endpoint}`).sort();
  return { kernel, dp, own, peers6 };
}

test('dual-stack wireguard: flannel-wg-v6 on ListenPortV6 with the v6 subnet address /128, one v6 peer and route per remote v6 lease; flannel-wg unchanged', async () => {
  const { kernel, dp, peers6 } = await setup();
  const dev = (await kernel.getLink('flannel-wg-v6'))!;
  assert.ok(dev, 'flannel-wg-v6 exists');
  assert.deepEqual([dev.mtu, dev.up, dp.wireguard6?.device], [1420, true, 'flannel-wg-v6']);
  assert.deepEqual((await kernel.listAddresses(dev.index, 6)).map((a) => `${a.address}/${a.prefixLen}`), ['fd00:7:0:1::/128']);
  assert.deepEqual((await kernel.listRoutes(dev.index, 6)).filter((r) => !r.gateway && r.dst.startsWith('fd00:7:0:') && !r.dst.endsWith('/128')).map((r) => r.dst).sort(), ['fd00:7:0:2::/64', 'fd00:7:0:3::/64']);
  assert.deepEqual(await peers6(), ['fd00:7:0:2::/64 [2001:db8::2]:51821', 'fd00:7:0:3::/64 [2001:db8::3]:51821']);
  assert.equal((await kernel.listWireguardPeers('flannel-wg')).length, 3, 'flannel-wg has all three remote v4 peers');
  dp.leaseRemoved(L(2));
  await dp.idle();
  assert.deepEqual(await peers6(), ['fd00:7:0:3::/64 [2001:db8::3]:51821']);
});

test('a v4-only wireguard overlay has no flannel-wg-v6', async () => {
  const { kernel, dp } = await setup('{"Network":"10.7.0.0/16","Backend":{"Type":"wireguard"}}');
  assert.equal(await kernel.getLink('flannel-wg-v6'), null);
  assert.equal(dp.wireguard6, null);
});

test("the status kernel view shows the v6 device as the v4 one: name, implementation, port, MTU, its peers by v6 subnet; no key, no PSK", async () => {
  const { dp } = await setup(`{"Network":"10.7.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:7::/48","Backend":{"Type":"wireguard","ListenPortV6":52001,"PSK":"${PSK}"}}`);
  const view = () => kernelView({ defaultOverlay: 'default', socketServing: () => null, overlays: () => [{ name: 'default', prefix: '/x', agent: { dataplane: dp } as unknown as StatusAgent }] })[0]!;
  const v = view();
  assert.deepEqual(v.wireguard6, {
    device: 'flannel-wg-v6', implementation: 'userspace', reason: 'this kernel has no wireguard link kind: using wireguard-go (fake)', listenPort: 52001, mtu: 1420,
    peers: [{ subnet: 'fd00:7:0:2::/64', endpoint: '[2001:db8::2]:52001' }, { subnet: 'fd00:7:0:3::/64', endpoint: '[2001:db8::3]:52001' }],
  });
  assert.equal(v.wireguard?.listenPort, 51820, "the v4 device's port beside it");
  const text = JSON.stringify(v.wireguard6);
  for (const secret of [PSK, keys[1].privateKey, keys[1].publicKey, keys[2].publicKey]) assert.ok(!text.includes(secret), 'no keys in the v6 entry');
  assert.ok(!JSON.stringify(v).includes(PSK) && !JSON.stringify(v).includes(keys[1].privateKey), 'no PSK or private key anywhere in the view');
  dp.leaseRemoved(L(3));
  await dp.idle();
  assert.deepEqual(view().wireguard6?.peers.map((p) => p.subnet), ['fd00:7:0:2::/64'], 'follows a removed lease');
  const v4only = await setup('{"Network":"10.7.0.0/16","Backend":{"Type":"wireguard"}}');
  assert.equal(kernelView({ defaultOverlay: 'default', socketServing: () => null, overlays: () => [{ name: 'default', prefix: '/x', agent: { dataplane: v4only.dp } as unknown as StatusAgent }] })[0]!.wireguard6, null);
});

test('the kernel door takes v6 allowed IPs and [v6]:port endpoints, and refuses malformed ones', () => {
  const p = (endpoint: string, allowedIPs = ['fd00:7:0:2::/64']) => ({ publicKey: keys[2].publicKey, endpoint, allowedIPs });
  assert.doesNotThrow(() => checkWireguardPeerAddresses(p('[2001:db8::2]:51821')));
  assert.doesNotThrow(() => checkWireguardPeerAddresses(p('192.0.2.2:51820', ['10.7.2.0/24'])));
  assert.throws(() => checkWireguardPeerAddresses(p('2001:db8::2:51821')), /not IPv4:port or \[IPv6\]:port/);
  assert.throws(() => checkWireguardPeerAddresses(p('[2001:db8::2]:0')), /not IPv4:port or \[IPv6\]:port/);
  assert.throws(() => checkWireguardPeerAddresses(p('[2001:db8:::2]:51821')), /wireguard peer endpoint/);
  assert.throws(() => checkWireguardPeerAddresses(p('[2001:db8::2]:51821', ['fd00:7:0:2::1/64'])), /wireguard peer allowed IP/);
});

test('dual-stack wireguard keeps the ip6 firewall of IPv6Network as vxlan does: FORWARD accepts, masquerade of the v6 subnet, NOTRACK (no tunnel rule); repaired on a full sync, removed on detach', async () => {
  const kernel = new FakeKernel();
  kernel.forwardChain6 = true; // Docker ≥ 27: ip6 filter FORWARD exists (policy DROP)
  const eth = kernel.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.1/24', cidr6: '2001:db8::1/64' });
  const pub: PublicInterface = { link: eth, address: '192.0.2.1', publicIP: '192.0.2.1', publicIPv6: '2001:db8::1', address6: '2001:db8::1', networks: [parseCidr('192.0.2.0/24')] };
  const dp = new OverlayDataplane(kernel, new SerialQueue(), log, parseNetworkConfig(DUAL), pub, { ipMasq: true, notrack: true }, keys[1]);
  dp.setLeases([L(1), L(2)]);
  await dp.attach(L(1));
  await dp.idle();
  assert.deepEqual([...kernel.forwardAccept].sort(), ['10.7.0.0/16', 'fd00:7::/48']);
  assert.deepEqual([...kernel.masquerade].sort(), [['10.7.0.0/16', '10.7.1.0/24'], ['fd00:7::/48', 'fd00:7:0:1::/64']]);
  assert.deepEqual(kernel.notrack.get('fd00:7::/48'), notrackRules('fd00:7::/48', 'fd00:7:0:1::/64', null).map(notrackRuleText));
  assert.ok(!kernel.notrack.get('fd00:7::/48')!.some((r) => r.includes('udp')), 'no rule for the tunnel port: wireguard-go\'s UDP stays tracked, as in v4');
  kernel.masquerade.delete('fd00:7::/48'); // someone flushed ip6 nat
  await dp.requestSync('full');
  assert.equal(kernel.masquerade.get('fd00:7::/48'), 'fd00:7:0:1::/64', 'repaired on a full sync');
  await dp.detach();
  assert.deepEqual([kernel.masquerade.size, kernel.notrack.size], [0, 0]);
  const v4 = new FakeKernel();
  v4.forwardChain6 = true;
  const eth4 = v4.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.1/24' });
  const dp4 = new OverlayDataplane(v4, new SerialQueue(), log, parseNetworkConfig('{"Network":"10.7.0.0/16","Backend":{"Type":"wireguard"}}'), { ...pub, link: eth4 }, { ipMasq: true, notrack: true }, keys[1]);
  await dp4.attach(L(1, { subnet6: false }));
  await dp4.idle();
  assert.deepEqual([...v4.forwardAccept, ...v4.masquerade.keys(), ...v4.notrack.keys()], ['10.7.0.0/16', '10.7.0.0/16', '10.7.0.0/16'], 'a v4-only wireguard overlay writes no v6 rule');
  await dp4.detach();
});
