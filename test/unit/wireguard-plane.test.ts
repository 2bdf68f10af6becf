// The wireguard backend's data plane: the peer planner as tables, and OverlayDataplane with a
// wireguard config against the fake kernel (device, address, route, peers added / changed /
// removed, drift repaired, a vanished device made anew).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { FakeKernel } from '../fakes/fake-kernel';
import { OverlayDataplane } from '../../src/reconcile/overlay-dataplane';
import { SerialQueue } from '../../src/util/serial-queue';
import { parseNetworkConfig } from '../../src/domain/network-config';
import { parseCidr } from '../../src/domain/ipv4';
import type { Lease } from '../../src/domain/lease';
import { desiredWireguardPeers, peersBySubnet, planWireguardPeers } from '../../src/domain/wg-peers';
import { kernelView, type StatusAgent } from '../../src/status/views';
import { wireguardDeviceName, type WireguardBackend } from '../../src/domain/wireguard-config';
import { generateWireguardKeyPair } from '../../src/host/wireguard-key';
import type { PublicInterface } from '../../src/host/public-interface';

const log = pino({ level: 'silent' });
const PSK = Buffer.alloc(32, 9).toString('base64');
const keys = Array.from({ length: 6 }, () => generateWireguardKeyPair());
const L = (third: number, host: number, key = keys[host].publicKey, backendType = 'wireguard'): Lease => ({
  subnet: parseCidr(`10.7.${third}.0/24`),
  attrs: backendType === 'wireguard' ? { publicIP: `192.0.2.${host}`, backendType, wireguard: { publicKey: key } } : { publicIP: `192.0.2.${host}`, backendType },
  etcdLease: '1',
});
const backend = (over: Partial<WireguardBackend> = {}): WireguardBackend => ({ type: 'wireguard', listenPort: 51820, listenPortV6: 51821, mode: 'separate', persistentKeepaliveInterval: 0, ...over });

test('desiredWireguardPeers: one peer per remote wireguard lease; own, foreign, own-key and duplicate-key leases skipped with a reason', () => {
  const own = L(1, 1);
  const r = desiredWireguardPeers({ backend: backend({ listenPort: 51000, psk: PSK, persistentKeepaliveInterval: 25 }), ownSubnet: own.subnet, ownPublicKey: keys[1].publicKey, leases: [L(3, 3), own, L(2, 2), L(4, 4, undefined, 'vxlan'), L(5, 5, keys[1].publicKey), L(6, 6, keys[2].publicKey)] });
  assert.deepEqual(r.peers, [
    { publicKey: keys[2].publicKey, endpoint: '192.0.2.2:51000', allowedIPs: ['10.7.2.0/24'], presharedKey: PSK, persistentKeepalive: 25 },
    { publicKey: keys[3].publicKey, endpoint: '192.0.2.3:51000', allowedIPs: ['10.7.3.0/24'], presharedKey: PSK, persistentKeepalive: 25 },
  ]);
  assert.deepEqual(r.skipped.map((s) => s.subnet), ['10.7.4.0/24', '10.7.5.0/24', '10.7.6.0/24']);
  assert.match(r.skipped[0].reason, /its backend is "vxlan", this overlay uses wireguard/);
  assert.match(r.skipped[1].reason, /this host's own public key/);
  assert.match(r.skipped[2].reason, /already the peer of 10\.7\.2\.0\/24/);
});

const peer = (host: number, over = {}) => ({ publicKey: keys[host].publicKey, endpoint: `192.0.2.${host}:51820`, allowedIPs: [`10.7.${host}.0/24`], ...over });
const planCases: [string, ReturnType<typeof peer>[], ReturnType<typeof peer>[], { set: number[]; remove: number[] }][] = [
  ['same: nothing', [peer(2), peer(3)], [peer(3), peer(2)], { set: [], remove: [] }],
  ['new peer set, gone peer removed', [peer(2), peer(4)], [peer(2), peer(3)], { set: [4], remove: [3] }],
  ['endpoint changed', [peer(2)], [peer(2, { endpoint: '192.0.2.9:51820' })], { set: [2], remove: [] }],
  ['allowed IPs changed', [peer(2)], [peer(2, { allowedIPs: ['10.7.9.0/24'] })], { set: [2], remove: [] }],
  ['PSK added', [peer(2, { presharedKey: PSK })], [peer(2)], { set: [2], remove: [] }],
  ['keepalive dropped', [peer(2)], [peer(2, { persistentKeepalive: 25 })], { set: [2], remove: [] }],
];
for (const [name, desired, observed, want] of planCases) {
  test(`planWireguardPeers: ${name}`, () => {
    const p = planWireguardPeers(desired, observed);
    assert.deepEqual({ set: p.set.map((x) => x.publicKey), remove: p.remove }, { set: want.set.map((h) => keys[h].publicKey), remove: want.remove.map((h) => keys[h].publicKey) });
  });
}

async function setup(cfgText = '{"Network":"10.7.0.0/16","Backend":{"Type":"wireguard"}}') {
  const kernel = new FakeKernel();
  const eth = kernel.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.1/24' });
  const pub: PublicInterface = { link: eth, address: '192.0.2.1', publicIP: '192.0.2.1', networks: [parseCidr('192.0.2.0/24')] };
  const dp = new OverlayDataplane(kernel, new SerialQueue(), log, parseNetworkConfig(cfgText), pub, { ipMasq: false, notrack: false }, keys[1]);
  const own = L(1, 1);
  dp.setLeases([own, L(2, 2), L(3, 3)]);
  await dp.attach(own);
  await dp.idle();
  const peers = async () => (await kernel.listWireguardPeers('flannel-wg')).map((p) => `${p.allowedIPs.join(',')} ${p.endpoint} ${p.publicKey === keys[Number(p.endpoint?.split(':')[0].split('.')[3])].publicKey}`).sort();
  return { kernel, dp, own, peers };
}

const routesVia = async (kernel: FakeKernel) => {
  const dev = (await kernel.getLink('flannel-wg'))!;
  return (await kernel.listRoutes(dev.index)).map((r) => `${r.dst}${r.gateway ? ' via ' + r.gateway : ''}`).sort();
};

test('attach makes flannel-wg as flanneld: key, port, MTU − 80, the subnet address /32, one peer and one route per remote lease', async () => {
  const { kernel, dp, peers } = await setup();
  const dev = (await kernel.getLink('flannel-wg'))!;
  assert.deepEqual([dev.mtu, dev.up, dp.mtu, dp.deviceName], [1420, true, 1420, 'flannel-wg']);
  assert.deepEqual((await kernel.listAddresses(dev.index)).map((a) => `${a.address}/${a.prefixLen}`), ['10.7.1.0/32']);
  assert.deepEqual(await routesVia(kernel), ['10.7.2.0/24', '10.7.3.0/24']);
  assert.deepEqual(await peers(), ['10.7.2.0/24 192.0.2.2:51820 true', '10.7.3.0/24 192.0.2.3:51820 true']);
  assert.ok(kernel.forwarding.has(dev.index));
  assert.deepEqual(dp.wireguard?.implementation?.implementation, 'userspace');
});

test('lease events: a peer added, its key and endpoint changed, removed when its lease goes', async () => {
  const { dp, peers, kernel } = await setup();
  dp.leaseAdded(L(4, 4));
  await dp.idle();
  assert.ok((await peers()).includes('10.7.4.0/24 192.0.2.4:51820 true'));
  dp.leaseAdded(L(4, 5)); // the host behind 10.7.4.0/24 is now 192.0.2.5 with key 5
  await dp.idle();
  const four = (await kernel.listWireguardPeers('flannel-wg')).filter((p) => p.allowedIPs.includes('10.7.4.0/24'));
  assert.deepEqual(four.map((p) => [p.publicKey, p.endpoint]), [[keys[5].publicKey, '192.0.2.5:51820']]);
  dp.leaseRemoved(L(2, 2));
  await dp.idle();
  assert.deepEqual(await peers(), ['10.7.3.0/24 192.0.2.3:51820 true', '10.7.4.0/24 192.0.2.5:51820 true']);
  assert.deepEqual(await routesVia(kernel), ['10.7.3.0/24', '10.7.4.0/24']);
});

test('a full sync repairs drift (a peer removed, a route deleted, a stray route added) and a vanished device; PSK and keepalive reach every peer', async () => {
  const { dp, kernel, peers } = await setup(`{"Network":"10.7.0.0/16","Backend":{"Type":"wireguard","PSK":"${PSK}","PersistentKeepaliveInterval":15}}`);
  assert.ok((await kernel.listWireguardPeers('flannel-wg')).every((p) => p.presharedKey === PSK && p.persistentKeepalive === 15));
  await kernel.updateWireguardPeers('flannel-wg', [], [keys[2].publicKey]);
  await kernel.deleteRoute('10.7.3.0/24');
  await kernel.replaceRoute({ dst: '10.7.0.0/16', oif: (await kernel.getLink('flannel-wg'))!.index, onlink: false }); // would overlap Docker's pool
  await dp.requestSync('full');
  assert.equal(dp.stats.lastDrift, 3);
  assert.equal((await peers()).length, 2);
  assert.deepEqual(await routesVia(kernel), ['10.7.2.0/24', '10.7.3.0/24']);
  const before = (await kernel.getLink('flannel-wg'))!.index;
  await kernel.deleteLink('flannel-wg');
  await dp.requestSync('full');
  const after = (await kernel.getLink('flannel-wg'))!;
  assert.notEqual(after.index, before);
  assert.deepEqual(await routesVia(kernel), ['10.7.2.0/24', '10.7.3.0/24']);
  assert.equal((await peers()).length, 2);
});

const bySubnetCases: [string, Parameters<typeof peersBySubnet>[0], [string, string, string | null][]][] = [
  ['none', [], []],
  ['one subnet each; no PSK kept', [peer(2, { presharedKey: PSK }), peer(3)], [['10.7.2.0/24', keys[2].publicKey, '192.0.2.2:51820'], ['10.7.3.0/24', keys[3].publicKey, '192.0.2.3:51820']]],
  ['two allowed IPs, no endpoint', [{ publicKey: keys[4].publicKey, allowedIPs: ['10.7.4.0/24', '10.7.5.0/24'] }], [['10.7.4.0/24', keys[4].publicKey, null], ['10.7.5.0/24', keys[4].publicKey, null]]],
  ['a subnet two peers claim: the last set', [peer(2), peer(3, { allowedIPs: ['10.7.2.0/24'] })], [['10.7.2.0/24', keys[3].publicKey, '192.0.2.3:51820']]],
];
for (const [name, peers, want] of bySubnetCases) {
  test(`peersBySubnet: ${name}`, () => {
    const m = peersBySubnet(peers);
    assert.deepEqual([...m].map(([s, p]) => [s, p.publicKey, p.endpoint]), want);
    assert.ok([...m.values()].every((p) => !('presharedKey' in p)));
  });
}

test("the status view's kernel peers on wireguard: the device's peers by subnet (so the page shows them programmed), never the PSK; a removed lease's goes", async () => {
  const { dp } = await setup(`{"Network":"10.7.0.0/16","Backend":{"Type":"wireguard","PSK":"${PSK}"}}`);
  const view = () => kernelView({ defaultOverlay: 'default', socketServing: () => null, overlays: () => [{ name: 'default', prefix: '/x', agent: { dataplane: dp } as unknown as StatusAgent }] })[0]!;
  const peersOf = () => view().peers.map((p) => `${p.subnet} ${p.wireguard ? `${p.wireguard.publicKey === keys[Number(p.wireguard.endpoint?.split(':')[0]!.split('.')[3])]!.publicKey} ${p.wireguard.endpoint}` : 'none'}`);
  assert.deepEqual(peersOf(), ['10.7.2.0/24 true 192.0.2.2:51820', '10.7.3.0/24 true 192.0.2.3:51820']);
  assert.doesNotMatch(JSON.stringify(view()), new RegExp(PSK.replace(/[+/=]/g, '.')), 'no PSK in the view');
  dp.leaseRemoved(L(2, 2));
  await dp.idle();
  assert.deepEqual(peersOf(), ['10.7.3.0/24 true 192.0.2.3:51820']);
  assert.equal(view().device, 'flannel-wg');
});

test('a named overlay on wireguard beside the default one: its own device fwg-<name>, port, address and peers; neither touches the other', async () => {
  const { kernel, dp: def, peers } = await setup();
  const eth = (await kernel.getLink('eth0'))!;
  const pub: PublicInterface = { link: eth, address: '192.0.2.1', publicIP: '192.0.2.1', networks: [parseCidr('192.0.2.0/24')] };
  const cfg = parseNetworkConfig('{"Network":"10.8.0.0/16","Backend":{"Type":"wireguard","ListenPort":51821}}');
  const blue = new OverlayDataplane(kernel, new SerialQueue(), log, cfg, pub, { ipMasq: false, notrack: false }, keys[4], wireguardDeviceName('blue'));
  const B = (third: number, host: number): Lease => ({ subnet: parseCidr(`10.8.${third}.0/24`), attrs: { publicIP: `192.0.2.${host}`, backendType: 'wireguard', wireguard: { publicKey: keys[host === 1 ? 4 : 5].publicKey } }, etcdLease: '1' });
  blue.setLeases([B(1, 1), B(5, 2)]);
  await blue.attach(B(1, 1));
  await blue.idle();
  assert.equal(blue.deviceName, 'fwg-blue');
  const dev = (await kernel.getLink('fwg-blue'))!;
  assert.deepEqual((await kernel.listAddresses(dev.index)).map((a) => `${a.address}/${a.prefixLen}`), ['10.8.1.0/32']);
  assert.deepEqual((await kernel.listRoutes(dev.index)).map((r) => r.dst), ['10.8.5.0/24']);
  assert.deepEqual((await kernel.listWireguardPeers('fwg-blue')).map((p) => [p.publicKey === keys[5].publicKey, p.endpoint, p.allowedIPs]), [[true, '192.0.2.2:51821', ['10.8.5.0/24']]]);
  assert.deepEqual(await peers(), ['10.7.2.0/24 192.0.2.2:51820 true', '10.7.3.0/24 192.0.2.3:51820 true'], "the default overlay's flannel-wg keeps its own peers");
  assert.deepEqual(await routesVia(kernel), ['10.7.2.0/24', '10.7.3.0/24']);
  def.leaseRemoved(L(2, 2));
  await def.idle();
  assert.equal((await kernel.listWireguardPeers('fwg-blue')).length, 1, "a default overlay's lease going leaves blue's peers alone");
});
