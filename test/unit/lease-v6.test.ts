// Dual-stack and IPv6-only leases in flanneld's exact format (docs/flannel-compat.md §2–§4): keys as
// MakeSubnetKey/ParseSubnetKey, values as Go's json.Marshal of LeaseAttrs, and the v6 subnet choice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeLeaseAttrs, encodeLeaseAttrs, Lease, makeLease, subnetFromLeaseKey } from '../../src/domain/lease';
import { flatString, leaseId, leaseOwner, makeLeaseKey, parseLeaseKey } from '../../src/domain/lease-v6';
import { parseNetworkConfig } from '../../src/domain/network-config';
import { cidr, formatCidr, parseCidr, parseIPv4 } from '../../src/domain/ipv4';
import { cidr6, formatCidr6, parseCidr6, parseIPv6 } from '../../src/domain/ipv6';
import { chooseSubnet } from '../../src/domain/subnet-choice';
import { freeSubnets6 } from '../../src/domain/subnet-choice-v6';

// Byte strings as flanneld (pkg/lease LeaseAttrs, pkg/backend/*) writes them for each backend and family.
const MAC4 = '0e:5d:2a:91:7c:03';
const MAC6 = '0e:5d:2a:91:7c:04';
const values: [string, string][] = [
  ['vxlan dual-stack', `{"PublicIP":"192.0.2.1","PublicIPv6":"2001:db8::1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${MAC4}"},"BackendV6Data":{"VNI":1,"VtepMAC":"${MAC6}"}}`],
  ['vxlan IPv6-only (no v4 device: PublicIP zero, no BackendData)', `{"PublicIP":"0.0.0.0","PublicIPv6":"2001:db8::1","BackendType":"vxlan","BackendV6Data":{"VNI":7,"VtepMAC":"${MAC6}"}}`],
  ['host-gw dual-stack', '{"PublicIP":"192.0.2.7","PublicIPv6":"2001:db8::7","BackendType":"host-gw"}'],
  ['alloc dual-stack (flanneld\'s alloc sets PublicIP only)', '{"PublicIP":"192.0.2.8","PublicIPv6":null}'],
  ['another backend\'s BackendV6Data kept verbatim', '{"PublicIP":"192.0.2.9","PublicIPv6":"2001:db8::9","BackendType":"wireguard","BackendData":{"PublicKey":"gN65BkIKy1eCE9pP1wdc8ROUtkHLF2PfAqYdyYBz6EA="},"BackendV6Data":{"PublicKey":"gN65BkIKy1eCE9pP1wdc8ROUtkHLF2PfAqYdyYBz6EA="}}'],
];

for (const [name, text] of values) {
  test(`a flanneld lease round-trips byte for byte: ${name}`, () => assert.equal(encodeLeaseAttrs(decodeLeaseAttrs(text)), text));
}

test('dual-stack vxlan attrs decode to both halves; encoding them gives flanneld\'s bytes', () => {
  const attrs = decodeLeaseAttrs(values[0][1]);
  assert.deepEqual(attrs, { publicIP: '192.0.2.1', publicIPv6: '2001:db8::1', backendType: 'vxlan', vxlan: { vni: 1, vtepMac: MAC4 }, vxlan6: { vni: 1, vtepMac: MAC6 } });
  const v6only = decodeLeaseAttrs(values[1][1]);
  assert.equal(v6only.vxlan, undefined);
  assert.deepEqual(v6only.vxlan6, { vni: 7, vtepMac: MAC6 });
});

test('PublicIPv6 is read as Go reads it and written in Go\'s form; MACs normalised', () => {
  const a = decodeLeaseAttrs('{"publicip":"192.0.2.1","publicipv6":"2001:0DB8:0:0::0001","backendtype":"vxlan","backenddata":{"VNI":1,"VtepMAC":"0E:5D:2A:91:7C:03"},"backendv6data":{"vni":1,"vtepmac":"0E:5D:2A:91:7C:04"}}');
  assert.equal(a.publicIPv6, '2001:db8::1');
  assert.equal(a.vxlan6?.vtepMac, MAC6);
  assert.equal(encodeLeaseAttrs(a), values[0][1]);
});

const broken: [string, RegExp][] = [
  ['{"PublicIP":"192.0.2.1","PublicIPv6":"192.0.2.1"}', /PublicIPv6 "192\.0\.2\.1" is not an IPv6 address/],
  ['{"PublicIP":"192.0.2.1","PublicIPv6":""}', /PublicIPv6 "" is not an IPv6 address/],
  ['{"PublicIP":"192.0.2.1","PublicIPv6":7}', /"PublicIPv6" must be a string/],
  ['{"PublicIP":"0.0.0.0","PublicIPv6":"2001:db8::1","BackendType":"vxlan","BackendV6Data":{"VNI":1}}', /BackendV6Data has no "VtepMAC"/],
  ['{"PublicIP":"0.0.0.0","PublicIPv6":"2001:db8::1","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"nope"}}', /not a MAC address/],
  ['{"PublicIP":"0.0.0.0","PublicIPv6":"2001:db8::1","BackendType":"vxlan","BackendV6Data":"x"}', /"BackendV6Data" of a vxlan lease must be an object/],
  ['{"PublicIP":"0.0.0.0","PublicIPv6":"2001:db8::1","BackendType":"vxlan"}', /needs "BackendData"/],
];
for (const [text, re] of broken) test(`broken v6 lease value is refused: ${text}`, () => assert.throws(() => decodeLeaseAttrs(text), re));

// [subnet, subnet6 | null, key as flanneld's MakeSubnetKey writes it]
const keys: [string, string | null, string][] = [
  ['10.1.15.0/24', null, '10.1.15.0-24'],
  ['10.1.15.0/24', 'fc00:0:0:f::/64', '10.1.15.0-24&fc00:0:0:f::-64'],
  ['0.0.0.0/0', 'fd00:10:0:5::/64', '0.0.0.0-0&fd00:10:0:5::-64'],
  ['10.0.0.4/30', 'fd00::8000:0:0:0/65', '10.0.0.4-30&fd00::8000:0:0:0-65'],
  ['10.0.0.4/30', 'fd00::4/126', '10.0.0.4-30&fd00::4-126'],
];
for (const [v4, v6, key] of keys) {
  test(`lease key as MakeSubnetKey writes it and ParseSubnetKey reads it: ${key}`, () => {
    assert.equal(makeLeaseKey(parseCidr(v4), v6 ? parseCidr6(v6) : undefined), key);
    const back = parseLeaseKey(`/coreos.com/network/subnets/${key}`);
    assert.ok(back);
    assert.equal(formatCidr(back.subnet), v4);
    assert.equal(back.subnet6 ? formatCidr6(back.subnet6) : null, v6);
  });
}

test('a v6 part ::-0 is Go\'s empty IP6Net: no v6 subnet', () => {
  assert.deepEqual(parseLeaseKey('/p/subnets/10.1.15.0-24&::-0'), { subnet: parseCidr('10.1.15.0/24') });
});

test('keys flannel would not read as leases are not leases', () => {
  for (const key of [
    '/p/subnets/10.1.15.0-24&FC00::-64', // upper case: not [a-f\d:]
    '/p/subnets/10.1.15.0-24&fc00::-128', // Go ParseUint(…, 10, 7): at most 127
    '/p/subnets/10.1.15.0-24&fc00::1-64', // host bits (as we refuse them for v4)
    '/p/subnets/10.1.15.0-24&fc00:::1-64', // not an address
    '/p/subnets/10.1.15.0-24&-64',
  ]) {
    assert.equal(parseLeaseKey(key), null, key);
    assert.equal(subnetFromLeaseKey(key), null, key);
  }
});

test('leaseOwner: PublicIP, or PublicIPv6 when PublicIP is 0.0.0.0; nobody for neither', () => {
  assert.equal(leaseOwner({ publicIP: '192.0.2.1', publicIPv6: '2001:db8::1' }), '192.0.2.1');
  assert.equal(leaseOwner({ publicIP: '0.0.0.0', publicIPv6: '2001:db8::1' }), '2001:db8::1');
  assert.equal(leaseOwner({ publicIP: '0.0.0.0' }), '');
});

const dual = parseNetworkConfig('{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:10::/48","Backend":{"Type":"vxlan"}}');
const only6 = parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:10::/48","Backend":{"Type":"vxlan"}}');
const lease = (v4: string, v6: string | null, publicIP: string, publicIPv6?: string): Lease => ({
  subnet: parseCidr(v4),
  ...(v6 ? { subnet6: parseCidr6(v6) } : {}),
  attrs: { publicIP, ...(publicIPv6 ? { publicIPv6 } : {}), backendType: 'vxlan' },
  etcdLease: '7',
});

test('dual-stack choice: both families from their Min, skipping taken subnets of each', () => {
  const c = chooseSubnet(dual, [lease('10.1.1.0/24', 'fd00:10:0:2::/64', '192.0.2.2'), lease('10.1.3.0/24', 'fd00:10:0:1::/64', '192.0.2.3')], '192.0.2.1');
  assert.equal(c.kind, 'new');
  if (c.kind !== 'new') return;
  assert.deepEqual(c.candidates.slice(0, 2).map(formatCidr), ['10.1.2.0/24', '10.1.4.0/24']);
  assert.equal(c.candidates6?.length, 100);
  assert.deepEqual(c.candidates6!.slice(0, 2).map(formatCidr6), ['fd00:10:0:3::/64', 'fd00:10:0:4::/64']);
});

test('our dual-stack lease is reused; one without a v6 subnet (v4-only before) is stale, as flannel\'s isIPv6SubnetConfigCompat says', () => {
  const mine = lease('10.1.7.0/24', 'fd00:10:0:7::/64', '192.0.2.1');
  assert.equal(chooseSubnet(dual, [mine], '192.0.2.1').kind, 'reuse');
  const old = lease('10.1.7.0/24', null, '192.0.2.1');
  const c = chooseSubnet(dual, [old], '192.0.2.1', old.subnet, null);
  assert.deepEqual(c.stale, [old]);
  // the v4 subnet it had is kept (free once the stale lease goes), the v6 one is new
  assert.ok(c.kind === 'new' && formatCidr(c.candidates[0]) === '10.1.7.0/24' && c.candidates6!.length === 100);
  // and the other way: a v6 lease on a v4-only overlay is stale
  const v4only = parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan"}}');
  assert.deepEqual(chooseSubnet(v4only, [mine], '192.0.2.1').stale, [mine]);
});

test('the previous v6 subnet is taken again when free and in range', () => {
  const prev6 = parseCidr6('fd00:10:0:42::/64');
  const c = chooseSubnet(dual, [], '192.0.2.1', null, prev6);
  assert.ok(c.kind === 'new' && c.candidates6!.length === 1 && formatCidr6(c.candidates6![0]) === 'fd00:10:0:42::/64');
  const taken = chooseSubnet(dual, [lease('10.1.9.0/24', 'fd00:10:0:42::/64', '192.0.2.9')], '192.0.2.1', null, prev6);
  assert.ok(taken.kind === 'new' && taken.candidates6!.length === 100);
});

test('IPv6-only: the v4 part is always 0.0.0.0/0, identity is PublicIPv6 (two hosts never share a lease)', () => {
  const theirs = lease('0.0.0.0/0', 'fd00:10:0:1::/64', '0.0.0.0', '2001:db8::2');
  const c = chooseSubnet(only6, [theirs], '2001:db8::1');
  assert.equal(c.kind, 'new');
  assert.ok(c.kind === 'new' && c.candidates.length === 1 && formatCidr(c.candidates[0]) === '0.0.0.0/0');
  assert.ok(c.kind === 'new' && formatCidr6(c.candidates6![0]) === 'fd00:10:0:2::/64');
  assert.equal(chooseSubnet(only6, [theirs], '2001:db8::2').kind, 'reuse');
  assert.equal(chooseSubnet(only6, [theirs], '').kind, 'new', 'an owner-less host never reuses a lease');
  assert.deepEqual(cidr(0, 0), parseCidr('0.0.0.0/0'));
});

test('v6 exhaustion names the family; a wide taken block is skipped in one step', () => {
  const tiny = parseNetworkConfig('{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/124","Backend":{"Type":"vxlan"}}'); // 3 /126s
  const full = ['fd00::4/126', 'fd00::8/126', 'fd00::c/126'].map((s, i) => lease(`10.1.${i + 1}.0/24`, s, `192.0.2.${10 + i}`));
  const c = chooseSubnet(tiny, full, '192.0.2.1');
  assert.ok(c.kind === 'exhausted' && c.family === 'IPv6');
  // A /8 in /64s is 2^56 subnets: a lease holding fd00::/9 must not be walked /64 by /64.
  const wide = parseNetworkConfig('{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/8","Backend":{"Type":"vxlan"}}');
  const started = Date.now();
  const free = freeSubnets6(wide.ipv6!, [parseCidr6('fd00::/9'), parseCidr6('fd80:0:0:1::/64')]);
  assert.ok(Date.now() - started < 1000);
  assert.deepEqual(free.slice(0, 2).map(formatCidr6), ['fd80::/64', 'fd80:0:0:2::/64']);
  assert.equal(free.length, 100);
});

test('flatString keeps the text; leaseId answers one string per lease object', () => {
  for (const s of ['', '10.1.5.0/24', `${'10.39.87.0'}/${24}`, '7587885617311734017', 'fd00:10:0:5::/64', 'ünïcode/ʷide ∞ text']) assert.equal(flatString(s), s);
  const l = { subnet: cidr(parseIPv4('10.39.87.0'), 24) };
  assert.equal(leaseId(l), '10.39.87.0/24');
  assert.equal(leaseId({ subnet: cidr(0, 0), subnet6: cidr6(parseIPv6('fd00:10:0:5::'), 64) }), 'fd00:10:0:5::/64');
});

test('makeLease: the fields a spread would give, no undefined ones (subnet6, modRevision only when known)', () => {
  const attrs = decodeLeaseAttrs('{"PublicIP":"192.0.2.1","PublicIPv6":null,"BackendType":"host-gw"}');
  const cases: [string, bigint | undefined][] = [['/p/subnets/10.1.5.0-24', 7n], ['/p/subnets/10.1.5.0-24', undefined], ['/p/subnets/10.1.5.0-24&fd00:10:0:5::-64', 9n], ['/p/subnets/0.0.0.0-0&fd00:10:0:5::-64', undefined]];
  for (const [key, rev] of cases) {
    const s = parseLeaseKey(key)!;
    assert.deepEqual(makeLease(s, attrs, '42', rev), { ...s, attrs, etcdLease: '42', ...(rev !== undefined ? { modRevision: rev } : {}) }, key);
  }
});
