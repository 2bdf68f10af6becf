// Kernel WireGuard's replies (src/kernel/wg-genetlink-dump.ts, decodeFamily): a WG_CMD_GET_DEVICE
// dump of three messages laid out as drivers/net/wireguard/netlink.c writes them (device attributes
// in the first only, a peer's allowed IPs continued in the next message, the kernel's attribute
// order, a type-0 pad before a u64), round trips through the encoder, malformed replies, and the
// choice between kernel and userspace (kernel-wireguard.ts) as a table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeGetDevice } from '../../src/kernel/wg-genetlink-dump';
import { decodeFamily, encodeSetDevice, type WgPeerSet } from '../../src/kernel/wg-genetlink';
import { peersSet, uapiView } from '../../src/kernel/wireguard-genl';
import { chooseWireguard, KERNEL_GENL, KIND_NO_FAMILY, NO_KIND } from '../../src/kernel/kernel-wireguard';

// A test-side attribute builder, independent of src/kernel/codec.ts: struct nlattr, padded to 4.
function a(type: number, v: Buffer | string): Buffer {
  const value = typeof v === 'string' ? Buffer.from(v.replace(/ /g, ''), 'hex') : v;
  const b = Buffer.alloc((4 + value.length + 3) & ~3);
  b.writeUInt16LE(4 + value.length, 0);
  b.writeUInt16LE(type, 2);
  value.copy(b, 4);
  return b;
}
const n = (type: number, ...kids: Buffer[]) => a(type | 0x8000, Buffer.concat(kids)); // NLA_F_NESTED
const GENL = Buffer.from([0 /* WG_CMD_GET_DEVICE */, 1 /* version */, 0, 0]);
const msg = (...attrs: Buffer[]) => Buffer.concat([GENL, ...attrs]);
const K = (x: number) => Buffer.alloc(32, x);
const b64 = (x: number) => K(x).toString('base64');
const u16 = (x: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(x); return b; };
const u32 = (x: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(x); return b; };
const u64 = (x: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(x)); return b; };
// WGALLOWEDIP_A_*: the kernel's order (get_allowedips): CIDR_MASK 3, FAMILY 1, IPADDR 2
const ip4 = (addr: string, cidr: number) => n(0, a(3, Buffer.from([cidr])), a(1, u16(2)), a(2, Buffer.from(addr.split('.').map(Number))));
const sockaddrIn = (addr: string, port: number) => Buffer.concat([u16(2), Buffer.from([port >> 8, port & 255]), Buffer.from(addr.split('.').map(Number)), Buffer.alloc(8)]);
const timespec = (sec: number) => Buffer.concat([u64(sec), u64(5)]);

// Message 1: the device, peer A whole, peer B's first part (first allowed IP only).
const m1 = msg(
  a(6, u16(51820)), a(7, u32(0)), a(1, u32(7)), a(2, Buffer.from('flannel-wg\0')), a(3, K(1)), a(4, K(0x21)), a(42, 'deadbeef'), // LISTEN_PORT, FWMARK, IFINDEX, IFNAME, PRIVATE_KEY, PUBLIC_KEY, unknown 42
  n(8,
    n(0, a(1, K(2)), a(2, Buffer.alloc(32)), a(6, timespec(1700000000)), a(5, u16(0)), a(0, Buffer.alloc(0)), a(8, u64(1234)), a(7, u64(99)), a(10, u32(1)), a(4, sockaddrIn('192.0.2.2', 51820)), n(9, ip4('10.9.2.0', 24))),
    n(0, a(1, K(3)), a(2, K(9)), a(6, timespec(0)), a(5, u16(25)), a(8, u64(0)), a(7, u64(0)), a(10, u32(1)), a(11, 'cafe'), a(4, sockaddrIn('192.0.2.3', 51820)), n(9, ip4('10.9.3.0', 24))),
  ),
);
// Message 2, by hand: WGDEVICE_A_PEERS only, peer B again with only its key and one more allowed IP.
const m2 = Buffer.from([
  '00 01 0000', //                genlmsghdr: WG_CMD_GET_DEVICE 0, version 1
  '4c00 0880', //                 nla_len 76, WGDEVICE_A_PEERS 8 | NLA_F_NESTED
  '4800 0080', //                 peer entry: nla_len 72, type 0 | NLA_F_NESTED
  '2400 0100' + '03'.repeat(32), // WGPEER_A_PUBLIC_KEY 1: peer B's key (32 bytes of 3)
  '2000 0980', //                 nla_len 32, WGPEER_A_ALLOWEDIPS 9 | NLA_F_NESTED
  '1c00 0080', //                 allowed IP entry: nla_len 28
  '0500 0300 18 000000', //       WGALLOWEDIP_A_CIDR_MASK 3: u8 24, pad
  '0600 0100 0200 0000', //       WGALLOWEDIP_A_FAMILY 1: AF_INET 2, pad
  '0800 0200 0a091e00', //        WGALLOWEDIP_A_IPADDR 2: 10.9.30.0
].join('').replace(/ /g, ''), 'hex');
// Message 3: peer C, IPv6 endpoint (sockaddr_in6), no allowed IPs.
const in6 = Buffer.concat([u16(10), Buffer.from([0xca, 0x6c]), u32(0), Buffer.from('20010db8000000000000000000000004', 'hex'), u32(0)]);
const m3 = msg(n(8, n(0, a(1, K(4)), a(2, Buffer.alloc(32)), a(5, u16(0)), a(4, in6))));

test('a dump of three messages: device from the first, peers coalesced across messages', () => {
  assert.equal(m2.length, 80);
  const d = decodeGetDevice([m1, m2, m3]);
  assert.deepEqual(d, {
    ifindex: 7, ifname: 'flannel-wg', privateKey: b64(1), publicKey: b64(0x21), listenPort: 51820, fwmark: 0,
    peers: [
      { publicKey: b64(2), endpoint: '192.0.2.2:51820', persistentKeepalive: 0, lastHandshakeSec: 1700000000, rxBytes: 99n, txBytes: 1234n, protocolVersion: 1, allowedIPs: ['10.9.2.0/24'] },
      { publicKey: b64(3), presharedKey: b64(9), endpoint: '192.0.2.3:51820', persistentKeepalive: 25, lastHandshakeSec: 0, rxBytes: 0n, txBytes: 0n, protocolVersion: 1, allowedIPs: ['10.9.3.0/24', '10.9.30.0/24'] },
      { publicKey: b64(4), endpoint: '[2001:db8::4]:51820', persistentKeepalive: 0, lastHandshakeSec: 0, rxBytes: 0n, txBytes: 0n, allowedIPs: [] },
    ],
  });
  assert.deepEqual(uapiView(d), { privateKey: b64(1), listenPort: 51820, peers: [
    { publicKey: b64(2), endpoint: '192.0.2.2:51820', allowedIPs: ['10.9.2.0/24'] },
    { publicKey: b64(3), endpoint: '192.0.2.3:51820', allowedIPs: ['10.9.3.0/24', '10.9.30.0/24'], presharedKey: b64(9), persistentKeepalive: 25 },
    { publicKey: b64(4), endpoint: '[2001:db8::4]:51820', allowedIPs: [] },
  ] }, 'the UAPI path\'s view: no zero PSK, no keepalive 0');
  // a device with no peers and no key: one message, no PEERS (the kernel cancels an empty nest)
  assert.deepEqual(decodeGetDevice([msg(a(6, u16(0)), a(7, u32(0)), a(1, u32(3)), a(2, Buffer.from('wg1\0')))]), { ifindex: 3, ifname: 'wg1', listenPort: 0, fwmark: 0, peers: [] });
});

test('round trip: SET messages (split at 512 bytes) read back by the dump decoder give the peers set', () => {
  const peers: WgPeerSet[] = [
    { publicKey: b64(2), presharedKey: b64(3), endpoint: '192.0.2.2:51820', persistentKeepalive: 25, allowedIPs: Array.from({ length: 30 }, (_, i) => `10.${i}.0.0/16`) },
    { publicKey: b64(4), endpoint: '[2001:db8::2]:51821', allowedIPs: ['fd00:1::/64', '0.0.0.0/0', '::/0'] },
    ...Array.from({ length: 12 }, (_, i): WgPeerSet => ({ publicKey: b64(10 + i), endpoint: `198.51.100.${i + 1}:51820`, allowedIPs: [`10.99.${i}.0/24`] })),
  ];
  const msgs = encodeSetDevice({ iface: { name: 'flannel-wg' }, privateKey: b64(1), listenPort: 51820, replacePeers: true, peers }, 0x15, 512);
  assert.ok(msgs.length >= 4, `${msgs.length} messages`);
  assert.ok(msgs.every((m) => m.length <= 512));
  // same peer layout in SET and GET: turn each into a dump message (cmd 0) and decode
  const d = decodeGetDevice(msgs.map((m) => Buffer.concat([Buffer.from([0, 1, 0, 0]), m.subarray(20)])));
  assert.equal(d.privateKey, b64(1));
  assert.equal(d.listenPort, 51820);
  assert.deepEqual(d.peers.map((p) => ({ publicKey: p.publicKey, endpoint: p.endpoint, allowedIPs: p.allowedIPs, psk: p.presharedKey, ka: p.persistentKeepalive })),
    peers.map((p) => ({ publicKey: p.publicKey, endpoint: p.endpoint, allowedIPs: p.allowedIPs, psk: p.presharedKey, ka: p.persistentKeepalive ?? 0 })));
  // only the first message carries the device's key and REPLACE_PEERS
  assert.deepEqual(msgs.map((m) => m.includes(K(1))), msgs.map((_, i) => i === 0));
});

test('peersSet: the UAPI path\'s meaning (allowed IPs replaced, keepalive 0 unless given, removals)', () => {
  assert.deepEqual(peersSet({ name: 'flannel-wg' }, [{ publicKey: b64(2), endpoint: '192.0.2.2:51820', allowedIPs: ['10.9.2.0/24'] }], [b64(3)]), {
    iface: { name: 'flannel-wg' },
    peers: [
      { publicKey: b64(2), replaceAllowedIPs: true, presharedKey: undefined, endpoint: '192.0.2.2:51820', persistentKeepalive: 0, allowedIPs: ['10.9.2.0/24'] },
      { publicKey: b64(3), remove: true },
    ],
  });
});

const where = /wireguard dump message 1/;
const bad = (payloads: Buffer[], re: RegExp) => assert.throws(() => decodeGetDevice(payloads), (e: Error & { code?: string }) => {
  assert.equal(e.code, 'KERNEL');
  assert.match(e.message, re);
  return true;
});

test('malformed dumps: errors naming where and what, never a key value; unknown attributes skipped', () => {
  bad([Buffer.concat([GENL, Buffer.from('2800 0600 6cca0000 00000000'.replace(/ /g, ''), 'hex')])], /message 1: attribute type 6 at offset 4 claims 40 bytes, only 12 left/);
  bad([Buffer.concat([GENL, Buffer.from([6, 0])])], /message 1: 2 stray byte\(s\) at offset 4/);
  bad([Buffer.concat([GENL, Buffer.from('02000600', 'hex')])], /attribute at offset 4 has length 2, less than its own header/);
  bad([msg(n(8, n(0, a(1, Buffer.alloc(31, 7)))))], /message 1 › peer 1: WGPEER_A_PUBLIC_KEY is 31 bytes, expected 32/);
  const short = Buffer.alloc(16, 0x5a);
  assert.throws(() => decodeGetDevice([msg(a(3, short))]), (e: Error) => /WGDEVICE_A_PRIVATE_KEY is 16 bytes, expected 32/.test(e.message) && !e.message.includes(short.toString('base64')) && !e.message.includes(short.toString('hex')));
  bad([msg(n(8, n(0, a(1, K(2)), a(2, K(3).subarray(0, 20)))))], /WGPEER_A_PRESHARED_KEY is 20 bytes/);
  bad([msg(n(8, n(0, a(1, K(2)), n(9, n(0, a(3, Buffer.from([24])), a(1, u16(7)), a(2, '0a090200'))))))], /allowed IP 1: WGALLOWEDIP_A_FAMILY 7, expected 2 \(AF_INET\) or 10/);
  bad([msg(n(8, n(0, a(1, K(2)), n(9, n(0, a(3, Buffer.from([24])), a(1, u16(2)), a(2, Buffer.alloc(16)))))))], /WGALLOWEDIP_A_IPADDR is 16 bytes, expected 4/);
  bad([msg(n(8, n(0, a(1, K(2)), n(9, ip4('10.9.2.0', 33)))))], /WGALLOWEDIP_A_CIDR_MASK 33 for family 2/);
  bad([msg(n(8, n(0, a(1, K(2)), a(4, sockaddrIn('192.0.2.2', 1).subarray(0, 12)))))], /WGPEER_A_ENDPOINT of family 2 is 12 bytes, a sockaddr_in is 16/);
  bad([msg(n(8, n(0, a(5, u16(25)))))], /peer 1: no WGPEER_A_PUBLIC_KEY/);
  bad([msg(a(6, u32(51820)))], /WGDEVICE_A_LISTEN_PORT is 4 bytes, expected 2/);
  bad([Buffer.from([1, 1, 0, 0])], /genl command 1, expected WG_CMD_GET_DEVICE \(0\)/);
  assert.throws(() => decodeGetDevice([]), /no message before NLMSG_DONE/);
  // another family's sockaddr (AF_UNIX 1) is ignored as wg ignores it; unknown attribute types skipped
  const d = decodeGetDevice([msg(a(99, 'ff'), n(8, n(0, a(1, K(2)), a(4, Buffer.concat([u16(1), Buffer.alloc(14)])), a(77, ''), n(9, ip4('10.9.2.0', 24)))))]);
  assert.deepEqual([d.peers[0]?.endpoint, d.peers[0]?.allowedIPs], [undefined, ['10.9.2.0/24']]);
});

test('nlctrl reply: family id, name, version, hdrsize, maxattr; nested CTRL_ATTR_OPS skipped', () => {
  const reply = Buffer.concat([Buffer.from([1 /* CTRL_CMD_NEWFAMILY */, 2, 0, 0]), a(2, Buffer.from('wireguard\0')), a(1, u16(0x15)), a(3, u32(1)), a(4, u32(0)), a(5, u32(8)), n(6, n(1, a(1, u32(0)))), n(7, a(1, 'ff'))]);
  assert.deepEqual(decodeFamily(reply), { id: 0x15, name: 'wireguard', version: 1, hdrsize: 0, maxattr: 8 });
  assert.throws(() => decodeFamily(Buffer.from([1, 2])), /shorter than a genlmsghdr/);
  assert.throws(() => decodeFamily(Buffer.concat([Buffer.from([1, 2, 0, 0]), a(2, Buffer.from('x\0'))])), /no CTRL_ATTR_FAMILY_ID/);
  assert.throws(() => decodeFamily(Buffer.concat([Buffer.from([1, 2, 0, 0]), a(1, u32(0x15))])), /CTRL_ATTR_FAMILY_ID is 4 bytes, expected 2/);
});

test('which implementation runs: kernel only with the link kind AND the family; reasons say which', () => {
  const fam = { id: 0x15, name: 'wireguard', version: 1, hdrsize: 0, maxattr: 8 };
  const table: [boolean, typeof fam | null, string, string][] = [
    [true, fam, 'kernel', KERNEL_GENL],
    [true, null, 'userspace', KIND_NO_FAMILY],
    [false, null, 'userspace', NO_KIND], // these machines
    [false, fam, 'userspace', NO_KIND],
  ];
  for (const [kind, family, implementation, reason] of table) assert.deepEqual(chooseWireguard(kind, family), { implementation, reason }, `kind ${kind}, family ${!!family}`);
  assert.match(KERNEL_GENL, /generic netlink/);
  assert.doesNotMatch(KERNEL_GENL, /wireguard-go/);
  for (const r of [NO_KIND, KIND_NO_FAMILY]) assert.match(r, /using wireguard-go/);
});
