// Kernel WireGuard's generic netlink requests (src/kernel/wg-genetlink.ts) as byte tables written by
// hand from include/uapi/linux/wireguard.h, linux/genetlink.h and linux/netlink.h: each row says
// which header field or attribute its bytes are. u16/u32 are little-endian (host order on x86); the
// port and addresses inside a sockaddr are network order. Then the same requests against the bytes
// wireguard-tools' own `wg` sends (test/unit/fixtures/wg-tools/README.md), and bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeAllowedIp, encodeEndpoint, encodeGetDevice, encodeGetFamily, encodeSetDevice, decodeEndpoint } from '../../src/kernel/wg-genetlink';

/** Rows of [hex, where the bytes come from]; spaces in the hex are ignored. */
const bytes = (...rows: [string, string][]): string => rows.map(([h]) => h.replace(/ /g, '')).join('');
const key = (n: number) => Buffer.alloc(32, n).toString('base64'); // 32 bytes of n
const kh = (n: number) => n.toString(16).padStart(2, '0').repeat(32);
const FAM = 0x15; // a family id as nlctrl would hand it out (dynamic, ≥ GENL_MIN_ID 0x10)
const hex = (b: Buffer) => b.toString('hex');

test('CTRL_CMD_GETFAMILY "wireguard": header, genlmsghdr, CTRL_ATTR_FAMILY_NAME', () => {
  assert.equal(hex(encodeGetFamily('wireguard')), bytes(
    ['24000000', 'nlmsg_len 36 = 16 header + 4 genlmsghdr + 16 attribute'],
    ['1000', 'nlmsg_type GENL_ID_CTRL = NLMSG_MIN_TYPE 0x10'],
    ['0500', 'nlmsg_flags NLM_F_REQUEST 0x1 | NLM_F_ACK 0x4'],
    ['00000000 00000000', 'nlmsg_seq (the sender sets it), nlmsg_pid 0 (the kernel)'],
    ['03 01 0000', 'genlmsghdr: cmd CTRL_CMD_GETFAMILY 3 (UNSPEC, NEWFAMILY, DELFAMILY, GETFAMILY), version 1, reserved'],
    ['0e00 0200', 'nla_len 14 = 4 + 10, nla_type CTRL_ATTR_FAMILY_NAME 2'],
    ['776972656775617264 00 0000', '"wireguard" NUL (NLA_NUL_STRING), 2 bytes pad to NLA_ALIGNTO 4'],
  ));
});

test('WG_CMD_GET_DEVICE: a dump naming the device by WGDEVICE_A_IFNAME or WGDEVICE_A_IFINDEX', () => {
  const head = (len: string) => [len, '1500', '0503', '00000000 00000000', '00 01 0000'].join('').replace(/ /g, '');
  // nlmsg_type = family id 0x15; flags NLM_F_REQUEST 1 | NLM_F_ACK 4 | NLM_F_DUMP 0x300 = 0x305;
  // genlmsghdr cmd WG_CMD_GET_DEVICE 0 (first of enum wg_cmd), version WG_GENL_VERSION 1
  assert.equal(hex(encodeGetDevice({ name: 'flannel-wg' }, FAM)), head('24000000') + bytes(
    ['0f00 0200', 'nla_len 15 = 4 + 11, WGDEVICE_A_IFNAME 2'],
    ['666c616e6e656c2d7767 00 00', '"flannel-wg" NUL, 1 byte pad'],
  ));
  assert.equal(hex(encodeGetDevice({ index: 7 }, FAM)), head('1c000000') + bytes(['0800 0100 07000000', 'nla_len 8, WGDEVICE_A_IFINDEX 1, u32 7']));
});

const IFNAME = bytes(['0f00 0200 666c616e6e656c2d7767 00 00', 'WGDEVICE_A_IFNAME "flannel-wg" NUL + 1 pad']);

test('WG_CMD_SET_DEVICE, device only: PRIVATE_KEY, LISTEN_PORT, FWMARK, FLAGS REPLACE_PEERS', () => {
  const [m, ...rest] = encodeSetDevice({ iface: { name: 'flannel-wg' }, privateKey: key(1), listenPort: 51820, fwmark: 0x10, replacePeers: true }, FAM);
  assert.equal(rest.length, 0);
  assert.equal(hex(m!), bytes(
    ['60000000 1500 0500 00000000 00000000', 'nlmsg_len 96, family 0x15, NLM_F_REQUEST | NLM_F_ACK'],
    ['01 01 0000', 'cmd WG_CMD_SET_DEVICE 1, version 1'],
  ) + IFNAME + bytes(
    ['2400 0300', 'nla_len 36 = 4 + WG_KEY_LEN 32, WGDEVICE_A_PRIVATE_KEY 3'],
    [kh(1), 'the key'],
    ['0600 0600 6cca 0000', 'nla_len 6, WGDEVICE_A_LISTEN_PORT 6, u16 51820 = 0xca6c, 2 pad'],
    ['0800 0700 10000000', 'WGDEVICE_A_FWMARK 7, u32 0x10'],
    ['0800 0500 01000000', 'WGDEVICE_A_FLAGS 5, WGDEVICE_F_REPLACE_PEERS 1 << 0'],
  ));
});

test('WG_CMD_SET_DEVICE with peers: nests flagged NLA_F_NESTED, sockaddr_in endpoint, allowed IP, removal', () => {
  const [m] = encodeSetDevice({ iface: { name: 'flannel-wg' }, peers: [
    { publicKey: key(2), presharedKey: key(3), endpoint: '192.0.2.2:51820', persistentKeepalive: 25, replaceAllowedIPs: true, allowedIPs: ['10.9.2.0/24'] },
    { publicKey: key(4), remove: true },
  ] }, FAM);
  assert.equal(hex(m!), bytes(
    ['e8000000 1500 0500 00000000 00000000', 'nlmsg_len 232 = 20 + 16 IFNAME + 196 PEERS'],
    ['01 01 0000', 'WG_CMD_SET_DEVICE, version 1'],
  ) + IFNAME + bytes(
    ['c400 0880', 'nla_len 196 = 4 + 144 + 48, WGDEVICE_A_PEERS 8 | NLA_F_NESTED 0x8000'],
    ['9000 0080', 'peer entry: nla_len 144, type 0 | NLA_F_NESTED'],
    ['2400 0100', 'WGPEER_A_PUBLIC_KEY 1'], [kh(2), 'key'],
    ['2400 0200', 'WGPEER_A_PRESHARED_KEY 2'], [kh(3), 'PSK'],
    ['1400 0400', 'nla_len 20 = 4 + sizeof(struct sockaddr_in) 16, WGPEER_A_ENDPOINT 4'],
    ['0200 ca6c c0000202 0000000000000000', 'sin_family AF_INET 2 (host order), sin_port 51820 (network order), sin_addr 192.0.2.2, sin_zero'],
    ['0600 0500 1900 0000', 'WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL 5, u16 25, pad'],
    ['0800 0300 02000000', 'WGPEER_A_FLAGS 3, WGPEER_F_REPLACE_ALLOWEDIPS 1 << 1'],
    ['2000 0980', 'nla_len 32, WGPEER_A_ALLOWEDIPS 9 | NLA_F_NESTED'],
    ['1c00 0080', 'allowed IP entry: nla_len 28, type 0 | NLA_F_NESTED'],
    ['0600 0100 0200 0000', 'WGALLOWEDIP_A_FAMILY 1, u16 AF_INET 2, pad'],
    ['0800 0200 0a090200', 'WGALLOWEDIP_A_IPADDR 2, struct in_addr 10.9.2.0'],
    ['0500 0300 18 000000', 'WGALLOWEDIP_A_CIDR_MASK 3, u8 24, pad'],
    ['3000 0080', 'second peer: nla_len 48'],
    ['2400 0100', 'WGPEER_A_PUBLIC_KEY'], [kh(4), 'key'],
    ['0800 0300 01000000', 'WGPEER_A_FLAGS, WGPEER_F_REMOVE_ME 1 << 0'],
  ));
});

test('IPv6: sockaddr_in6 endpoint (28 bytes) and an in6_addr allowed IP; UPDATE_ONLY', () => {
  assert.equal(hex(encodeEndpoint('[2001:db8::2]:51820')), bytes(
    ['0a00 ca6c', 'sin6_family AF_INET6 10 (host order), sin6_port 51820 (network order)'],
    ['00000000', 'sin6_flowinfo'],
    ['20010db8000000000000000000000002', 'sin6_addr 2001:db8::2'],
    ['00000000', 'sin6_scope_id'],
  ));
  assert.equal(hex(encodeAllowedIp('fd00:1::/64')), bytes(
    ['2800 0080', 'entry: nla_len 40 = 4 + 8 + 20 + 8 (the padded sizes of the three), type 0 | NLA_F_NESTED'],
    ['0600 0100 0a00 0000', 'WGALLOWEDIP_A_FAMILY AF_INET6 10'],
    ['1400 0200 fd000001000000000000000000000000', 'WGALLOWEDIP_A_IPADDR, struct in6_addr fd00:1::'],
    ['0500 0300 40 000000', 'WGALLOWEDIP_A_CIDR_MASK 64'],
  ));
  const [m] = encodeSetDevice({ iface: { index: 9 }, peers: [{ publicKey: key(2), updateOnly: true }] }, FAM);
  assert.equal(hex(m!.subarray(20)), bytes(
    ['0800 0100 09000000', 'WGDEVICE_A_IFINDEX 9'],
    ['3400 0880 3000 0080 2400 0100' + kh(2), 'PEERS, peer, PUBLIC_KEY'],
    ['0800 0300 04000000', 'WGPEER_A_FLAGS, WGPEER_F_UPDATE_ONLY 1 << 2'],
  ));
  for (const e of ['192.0.2.2:51820', '[2001:db8::2]:51820', '[fd00::1:2]:1']) assert.equal(decodeEndpoint(encodeEndpoint(e), 'x'), e);
});

// `wg` (wireguard-tools v1.0.20210914) run against this kernel with its family lookup answered by a
// shim (test/unit/fixtures/wg-tools/README.md); its requests never reached the kernel. seq/pid are zeroed.
const captured = (f: string): string[] => readFileSync(join(__dirname, 'fixtures/wg-tools', f), 'utf8').trim().split('\n').map((h) => {
  const b = Buffer.from(h, 'hex');
  b.fill(0, 8, 16);
  return hex(b);
});
const WGT = 0x3fe; // the family id the shim answered

test('byte for byte what wireguard-tools sends: wg show, wg set (a peer, a removal)', () => {
  assert.deepEqual([hex(encodeGetDevice({ name: 'flannel-wg' }, WGT))], captured('show.hex'));
  const ours = encodeSetDevice({ iface: { name: 'flannel-wg' }, privateKey: key(1), listenPort: 51820, peers: [
    { publicKey: key(2), presharedKey: key(3), endpoint: '192.0.2.2:51820', persistentKeepalive: 25, replaceAllowedIPs: true, allowedIPs: ['10.9.2.0/24'] },
    { publicKey: key(4), remove: true },
  ] }, WGT);
  assert.deepEqual(ours.map(hex), captured('set-one-peer.hex'));
});

test('split like wg setconf at 4096 bytes: 40 peers over two messages; 201 allowed IPs of one peer continued', () => {
  const dev = { iface: { name: 'flannel-wg' }, privateKey: key(1), listenPort: 51820, fwmark: 0, replacePeers: true };
  const forty = encodeSetDevice({ ...dev, peers: Array.from({ length: 40 }, (_, i) => (
    { publicKey: key(10 + i), presharedKey: key(3), endpoint: `192.0.2.${i + 2}:51820`, persistentKeepalive: 25, replaceAllowedIPs: true, allowedIPs: [`10.9.${i}.0/24`] })) }, WGT, 4096);
  assert.equal(forty.length, 2);
  assert.deepEqual(forty.map(hex), captured('setconf-40-peers.hex'));
  const ips = [...Array.from({ length: 200 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`), 'fd00:1::/64'];
  const one = encodeSetDevice({ ...dev, peers: [{ publicKey: key(2), presharedKey: key(3), endpoint: '[2001:db8::2]:51820', persistentKeepalive: 25, replaceAllowedIPs: true, allowedIPs: ips }] }, WGT, 4096);
  assert.equal(one.length, 2);
  assert.ok(one.every((m) => m.length <= 4096 && m.readUInt32LE(0) === m.length));
  assert.deepEqual(one.map(hex), captured('setconf-200-allowed-ips.hex'));
  // the continuation: IFNAME, then PEERS > peer > PUBLIC_KEY and ALLOWEDIPS only (no PSK, endpoint, keepalive, flags)
  const cont = one[1]!.subarray(20);
  assert.equal(hex(cont.subarray(0, 16)), IFNAME);
  assert.deepEqual([cont.readUInt16LE(18), cont.readUInt16LE(22), cont.readUInt16LE(26), cont.readUInt16LE(62)], [0x8008, 0x8000, 1, 0x8009]);
});

test('bad input: INVALID naming the problem, never quoting a key', () => {
  const secret = key(9).slice(0, 40);
  const e = (() => { try { encodeSetDevice({ iface: { name: 'flannel-wg' }, privateKey: secret }, FAM); } catch (x) { return x as Error; } return null; })();
  assert.match(String(e?.message), /private key is not base64 of 32 bytes \(WG_KEY_LEN\)/);
  assert.ok(!e!.message.includes(secret));
  assert.throws(() => encodeSetDevice({ iface: { name: 'flannel-wg' }, peers: [{ publicKey: Buffer.alloc(31).toString('base64') }] }, FAM), /peer public key is not base64 of 32 bytes/);
  assert.throws(() => encodeSetDevice({ iface: { name: 'flannel-wg' }, peers: [{ publicKey: key(2), presharedKey: 'short' }] }, FAM), /peer preshared key is not base64/);
  assert.throws(() => encodeSetDevice({ iface: { name: 'a-name-too-long-x' } }, FAM), /not 1-15 bytes/);
  assert.throws(() => encodeSetDevice({ iface: { name: 'flannel-wg' }, listenPort: 70000 }, FAM), /listen port 70000 is not in 0\.\.65535/);
  assert.throws(() => encodeEndpoint('192.0.2.2'), /not IPv4:port or \[IPv6\]:port/);
  assert.throws(() => encodeEndpoint('[2001:db8::zz]:1'), /not IPv4:port/);
  assert.throws(() => encodeAllowedIp('10.9.2.0/33'), /not a CIDR/);
  assert.throws(() => encodeAllowedIp('fd00::/129'), /not a CIDR/);
  assert.throws(() => encodeSetDevice({ iface: { name: 'flannel-wg' } }, FAM, 100), /message size 100/);
});
