// Table tests for the IPv6 half of flannel's config (docs/flannel-compat.md §1: CheckNetworkConfig's
// EnableIPv6 branch), Go's IPv6 text form, `config set --ipv6-network …` and what the daemon refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Address6 } from 'ip-address';
import { describeNetworkConfig, formatNetworkConfig, parseNetworkConfig } from '../../src/domain/network-config';
import { ipv6Refusal, leasableSubnets6 } from '../../src/domain/network-config-v6';
import { subnetEnvContent } from '../../src/host/subnet-env';
import { prefixRangeEnd } from '../../src/store/lease-create';
import { formatCidr, parseCidr } from '../../src/domain/ipv4';
import { cidr6sOverlap, formatCidr6, formatIPv6, parseCidr6, parseIPv6 } from '../../src/domain/ipv6';
import { parseCommand } from '../../src/cli/args';

const vx = '"Backend":{"Type":"vxlan"}';
const v6 = (rest: string) => `{"Network":"10.1.0.0/16","EnableIPv6":true,${rest}${rest ? ',' : ''}${vx}}`;

// [name, config, IPv6Network, IPv6SubnetLen, IPv6SubnetMin, IPv6SubnetMax] as flanneld computes them.
const accepted: [string, string, string, number, string, string][] = [
  // flannel's own pkg/subnet/config_test.go TestIPv6ConfigDefaults and TestIPv6ConfigOverrides:
  ['flannel TestIPv6ConfigDefaults', '{ "enableIPv6": true, "ipv6Network": "fc00::/48", "enableIPv4": false, "Backend":{"Type":"vxlan"} }', 'fc00::/48', 64, 'fc00:0:0:1::', 'fc00:0:0:ffff::'],
  [
    'flannel TestIPv6ConfigOverrides',
    '{ "EnableIPv6": true, "IPv6Network": "fc00::/48", "IPv6SubnetMin": "fc00:0:0:1::", "IPv6SubnetMax": "fc00:0:0:f::", "IPv6SubnetLen": 124, "enableIPv4": false, "Backend":{"Type":"vxlan"} }',
    'fc00::/48',
    124,
    'fc00:0:0:1::',
    'fc00:0:0:f::',
  ],
  ['dual-stack /56', v6('"IPv6Network":"fd00:10::/56"'), 'fd00:10::/56', 64, 'fd00:10:0:1::', 'fd00:10:0:ff::'],
  ['/62 still gives /64', v6('"IPv6Network":"fd00::/62"'), 'fd00::/62', 64, 'fd00:0:0:1::', 'fd00:0:0:3::'],
  ['/63 gives prefix+2 (Go compresses the first of two equal zero runs)', v6('"IPv6Network":"fd00::/63"'), 'fd00::/63', 65, 'fd00::8000:0:0:0', 'fd00:0:0:1:8000::'],
  ['/124 gives /126', v6('"IPv6Network":"fd00::/124"'), 'fd00::/124', 126, 'fd00::4', 'fd00::c'],
  ['host bits masked, upper case read', v6('"IPv6Network":"FD00:10::1/48"'), 'fd00:10::/48', 64, 'fd00:10:0:1::', 'fd00:10:0:ffff::'],
  ['explicit IPv6SubnetLen', v6('"IPv6Network":"fd00:10::/48","IPv6SubnetLen":80'), 'fd00:10::/48', 80, 'fd00:10:0:0:1::', 'fd00:10:0:ffff:ffff::'],
  ['"::" and "" bounds mean unset (Go\'s zero IP)', v6('"IPv6Network":"fd00:10::/48","IPv6SubnetMin":"::","IPv6SubnetMax":""'), 'fd00:10::/48', 64, 'fd00:10:0:1::', 'fd00:10:0:ffff::'],
  ['no Min ≤ Max check, as flanneld', v6('"IPv6Network":"fd00:10::/48","IPv6SubnetMin":"fd00:10:0:9::","IPv6SubnetMax":"fd00:10:0:2::"'), 'fd00:10::/48', 64, 'fd00:10:0:9::', 'fd00:10:0:2::'],
  ['EnableIPv6 false: the v6 keys are ignored', '{"Network":"10.1.0.0/16","EnableIPv6":false,"IPv6Network":"nonsense",' + vx + '}', '', 0, '', ''],
];

for (const [name, text, net, len, min, max] of accepted) {
  test(`v6 config accepted: ${name}`, () => {
    const cfg = parseNetworkConfig(text);
    if (net === '') {
      assert.equal(cfg.ipv6, undefined);
      return;
    }
    assert.ok(cfg.ipv6);
    assert.equal(formatCidr6(cfg.ipv6.network), net);
    assert.equal(cfg.ipv6.subnetLen, len);
    assert.equal(formatIPv6(cfg.ipv6.subnetMin), min);
    assert.equal(formatIPv6(cfg.ipv6.subnetMax), max);
  });
}

test('IPv6-only: the v4 fields are Go\'s zero values, a given Network is still decoded', () => {
  const cfg = parseNetworkConfig(`{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:10::/48",${vx}}`);
  assert.equal(cfg.enableIPv4, false);
  assert.deepEqual([formatCidr(cfg.network), cfg.subnetLen, cfg.subnetMin, cfg.subnetMax], ['0.0.0.0/0', 0, 0, 0]);
  assert.equal(parseNetworkConfig(`{"Network":"10.1.0.0/16",${vx}}`).enableIPv4, true);
  assert.throws(() => parseNetworkConfig(`{"EnableIPv4":false,"Network":"x","EnableIPv6":true,"IPv6Network":"fd00::/48",${vx}}`), /"Network": "x" is not an IPv4 CIDR/);
});

const rejected: [string, string, RegExp][] = [
  ['EnableIPv6 without IPv6Network', v6(''), /please define a correct IPv6Network parameter \(EnableIPv6 is true\), e\.g\. "IPv6Network":"fd00:10::\/48"/],
  ['::/0 is flannel\'s empty network', v6('"IPv6Network":"::/0"'), /please define a correct IPv6Network parameter: ::\/0/],
  ['an IPv4 CIDR as IPv6Network', v6('"IPv6Network":"10.0.0.0/8"'), /"IPv6Network": "10\.0\.0\.0\/8" is not an IPv6 CIDR like fd00:10::\/48/],
  ['no prefix length', v6('"IPv6Network":"fd00::"'), /is not an IPv6 CIDR/],
  ['prefix over 128', v6('"IPv6Network":"fd00::/129"'), /is not an IPv6 CIDR/],
  ['a zone', v6('"IPv6Network":"fe80::%eth0/64"'), /is not an IPv6 CIDR/],
  ['not a string', v6('"IPv6Network":48'), /"IPv6Network" must be a string/],
  ['too small', v6('"IPv6Network":"fd00::/125"'), /fd00::\/125 is too small; the minimum useful network prefix is \/124/],
  ['IPv6SubnetLen 127', v6('"IPv6Network":"fd00::/48","IPv6SubnetLen":127'), /IPv6SubnetLen must be less than \/127, got 127/],
  ['IPv6SubnetLen out of range', v6('"IPv6Network":"fd00::/48","IPv6SubnetLen":129'), /"IPv6SubnetLen" must be between 0 and 128, got 129/],
  ['IPv6SubnetLen too short', v6('"IPv6Network":"fd00::/48","IPv6SubnetLen":49'), /fd00::\/48 must be able to accommodate at least four subnets of \/49/],
  ['IPv6SubnetMin outside', v6('"IPv6Network":"fd00:10::/48","IPv6SubnetMin":"fd00:11::"'), /IPv6SubnetMin fd00:11:: is not in the range of the IPv6Network fd00:10::\/48/],
  ['IPv6SubnetMax unaligned', v6('"IPv6Network":"fd00:10::/48","IPv6SubnetMax":"fd00:10:0:5::1"'), /IPv6SubnetMax is not on an IPv6SubnetLen \(\/64\) boundary: fd00:10:0:5::1/],
  ['IPv6SubnetMin not an address', v6('"IPv6Network":"fd00:10::/48","IPv6SubnetMin":"fd00:10:0:5::/64"'), /"IPv6SubnetMin": "fd00:10:0:5::\/64" is not an IPv6 address/],
  ['EnableIPv6 as a string', v6('"EnableIPv6":"true","IPv6Network":"fd00::/48"'), /"EnableIPv6" must be true or false/],
  ['both families off', `{"EnableIPv4":false,${vx}}`, /EnableIPv4 and EnableIPv6 are both false: enable at least one/],
  ['into ::/96 (Go would print dotted IPv4 in lease keys)', v6('"IPv6Network":"::/64"'), /reaches into ::\/96, whose addresses flannel writes as dotted IPv4/],
  ['into ::ffff:0:0/96', v6('"IPv6Network":"::ffff:0:0/100"'), /reaches into 192\.0\.0\.0\/96|reaches into 0\.0\.0\.0\/96|dotted IPv4/],
];

for (const [name, text, re] of rejected) {
  test(`v6 config rejected: ${name}`, () => {
    assert.throws(() => parseNetworkConfig(text), (e: Error) => re.test(e.message));
  });
}

// Go's net.IP.String() for the values flannel formats (what `fmt.Sprint(ip6)` prints).
const goText: [string, bigint, string][] = [
  ['zero', 0n, '::'],
  ['loopback', 1n, '::1'],
  ['trailing run', 0xfc00_0000_0000_000f_0000_0000_0000_0000n, 'fc00:0:0:f::'],
  ['documentation', 0x2001_0db8_0000_0000_0000_0000_0000_0001n, '2001:db8::1'],
  ['one zero group is not compressed', 0x2001_0db8_0000_0001_0001_0001_0001_0001n, '2001:db8:0:1:1:1:1:1'],
  ['the longer run wins', 0x2001_0000_0000_0001_0000_0000_0000_0001n, '2001:0:0:1::1'],
  ['equal runs: the first', 0x2001_0db8_0000_0000_0001_0000_0000_0001n, '2001:db8::1:0:0:1'],
  ['leading run', 0x0000_0000_0000_0000_0000_0000_0000_00ffn, '::ff'],
  ['no zeros', (1n << 128n) - 1n, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  ['only the first group', 1n << 112n, '1::'],
  ['v4-mapped prints dotted', 0xffff_c000_0201n, '192.0.2.1'],
  ['four significant bytes print dotted (flannel IP6.ToIP trims the big.Int)', 0x0a00_0001n, '10.0.0.1'],
  ['three bytes do not', 0x00ff_ffffn, '::ff:ffff'],
];

for (const [name, n, want] of goText) test(`formatIPv6 as Go prints it: ${name}`, () => assert.equal(formatIPv6(n), want));

test('formatIPv6 agrees with ip-address\'s RFC 5952 form for 3000 zero-heavy values outside the dotted ranges', () => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 3000; i++) {
    let n = 0n;
    for (let g = 0; g < 8; g++) n = (n << 16n) | (rnd() < 0.5 ? 0n : BigInt(Math.floor(rnd() * 0x10000)));
    if (n >> 32n === 0n || n >> 32n === 0xffffn) continue;
    assert.equal(formatIPv6(n), Address6.fromBigInt(n).correctForm(), n.toString(16));
    assert.equal(parseIPv6(formatIPv6(n)), n);
  }
});

test('parseCidr6 masks like net.ParseCIDR; overlap uses the shorter mask (Go IP6Net.Overlaps)', () => {
  assert.equal(formatCidr6(parseCidr6('fd00:10:0:5::7/64')), 'fd00:10:0:5::/64');
  assert.equal(formatCidr6(parseCidr6('fd00:0010::/48')), 'fd00:10::/48');
  assert.ok(cidr6sOverlap(parseCidr6('fd00:10::/48'), parseCidr6('fd00:10:0:5::/64')));
  assert.ok(!cidr6sOverlap(parseCidr6('fd00:10:0:4::/64'), parseCidr6('fd00:10:0:5::/64')));
  for (const t of ['fd00::/-1', 'fd00::/ 64', ' fd00::/64', 'fd00:::/64', '1.2.3.4/24', 'fd00::']) assert.throws(() => parseCidr6(t), /is not an IPv6 CIDR/, t);
});

test('leasableSubnets6 walks Min..Max in subnet steps', () => {
  const cfg = parseNetworkConfig(v6('"IPv6Network":"fd00::/124"'));
  assert.deepEqual([...leasableSubnets6(cfg.ipv6!)].map(formatCidr6), ['fd00::4/126', 'fd00::8/126', 'fd00::c/126']);
});

test('formatNetworkConfig: dual-stack and IPv6-only written as flanneld reads them, masked, described', () => {
  const dual = formatNetworkConfig({ network: '10.9.0.0/16', ipv6Network: 'fd00:10::5/48', ipv6SubnetLen: 80 });
  assert.equal(dual, '{"Network":"10.9.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:10::/48","IPv6SubnetLen":80,"Backend":{"Type":"vxlan","VNI":1}}');
  assert.equal(
    describeNetworkConfig(parseNetworkConfig(dual)),
    '10.9.0.0/16, /24 per host (10.9.1.0–10.9.255.0, 255 subnets); IPv6 fd00:10::/48, /80 per host (fd00:10:0:0:1::–fd00:10:0:ffff:ffff::, 4294967295 subnets), vxlan VNI 1 port 8472',
  );
  const only = formatNetworkConfig({ ipv4: false, ipv6Network: 'fd00:10::/48', ipv6SubnetMin: 'fd00:10:0:10::', backend: 'alloc' });
  assert.equal(only, '{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:10::/48","IPv6SubnetMin":"fd00:10:0:10::","Backend":{"Type":"alloc"}}');
  assert.match(describeNetworkConfig(parseNetworkConfig(only)), /^IPv6 only: fd00:10::\/48, \/64 per host \(fd00:10:0:10::–fd00:10:0:ffff::, 65520 subnets\), alloc/);
  assert.throws(() => formatNetworkConfig({ ipv4: false, network: '10.1.0.0/16', ipv6Network: 'fd00::/48' }), /IPv6-only overlay \(--ipv6-only\) has no IPv4 Network: drop --network/);
  assert.throws(() => formatNetworkConfig({ ipv4: false }), /needs --ipv6-network/);
  assert.throws(() => formatNetworkConfig({ network: '10.1.0.0/16', ipv6SubnetLen: 64 }), /need --ipv6-network/);
  assert.throws(() => formatNetworkConfig({ network: '10.1.0.0/16', ipv6Network: 'fd00::/125' }), /too small; the minimum useful network prefix is \/124/);
});

test('CLI: config set --ipv6-network …, --ipv6-only', () => {
  assert.deepEqual(parseCommand(['config', 'set', '--network', '10.4.0.0/16', '--ipv6-network', 'fd00:4::/48', '--ipv6-subnet-len', '72']), {
    cmd: 'config-set',
    input: { network: '10.4.0.0/16', backend: 'vxlan', ipv6Network: 'fd00:4::/48', ipv6SubnetLen: 72 },
  });
  assert.deepEqual(parseCommand(['config', 'set', '--ipv6-only', '--ipv6-network', 'fd00:4::/48', '--ipv6-subnet-min', 'fd00:4:0:8::', '--ipv6-subnet-max', 'fd00:4:0:9::']), {
    cmd: 'config-set',
    input: { backend: 'vxlan', ipv4: false, ipv6Network: 'fd00:4::/48', ipv6SubnetMin: 'fd00:4:0:8::', ipv6SubnetMax: 'fd00:4:0:9::' },
  });
  assert.throws(() => parseCommand(['config', 'set', '--ipv6-only']), /--ipv6-only needs --ipv6-network/);
  assert.throws(() => parseCommand(['config', 'set', '--ipv6-only', '--network', '10.1.0.0/16', '--ipv6-network', 'fd00::/48']), /drop --network/);
  assert.throws(() => parseCommand(['config', 'set', '--ipv6-network', 'fd00::/48']), /--network is required.*or --ipv6-only/);
  assert.throws(() => parseCommand(['config', 'set', '--network', '10.1.0.0/16', '--ipv6-network', 'fd00::/48', '--ipv6-subnet-len', 'x']), /--ipv6-subnet-len: "x" is not a whole number/);
});

test('the daemon runs v4-only, dual-stack alloc, vxlan and wireguard separate; it refuses the rest naming what is not built (issue 21)', () => {
  const cfg = (t: string) => parseNetworkConfig(t);
  assert.equal(ipv6Refusal(cfg(`{"Network":"10.1.0.0/16",${vx}}`)), null);
  assert.equal(ipv6Refusal(cfg('{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","Backend":{"Type":"alloc"}}')), null);
  assert.equal(ipv6Refusal(cfg(v6('"IPv6Network":"fd00::/48"'))), null, 'vxlan dual-stack runs (flannel-v6.<VNI>)');
  assert.match(ipv6Refusal(cfg('{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","Backend":{"Type":"host-gw"}}'))!, /^EnableIPv6 with the host-gw backend: IPv6 leases are supported, but host-gw's v6 routes and Docker --ipv6 networks are not built yet in overlay-flannel \(issue 21\); set "EnableIPv6": false, use "Backend":\{"Type":"vxlan"\}/);
  assert.equal(ipv6Refusal(cfg('{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","Backend":{"Type":"wireguard"}}')), null, 'wireguard dual-stack runs in Mode separate (flannel-wg-v6)');
  assert.equal(ipv6Refusal(cfg('{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","Backend":{"Type":"wireguard","Mode":"separate"}}')), null);
  for (const mode of ['auto', 'ipv4']) {
    assert.match(ipv6Refusal(cfg(`{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","Backend":{"Type":"wireguard","Mode":"${mode}"}}`))!, new RegExp(`^EnableIPv6 with wireguard Mode "${mode}": one device for both families is not built .*use Mode "separate" .*flannel-wg-v6 on ListenPortV6\\), which works`));
  }
});

// IPv6-only (EnableIPv4 false): vxlan runs (flannel-v6.<VNI> alone); every other backend is refused naming vxlan and dual-stack.
const V6ONLY: readonly [string, string, RegExp | null][] = [
  ['vxlan', '{"Type":"vxlan"}', null],
  ['vxlan with VNI, Port, MTU', '{"Type":"vxlan","VNI":4097,"Port":4789,"MTU":1400}', null],
  ['alloc', '{"Type":"alloc"}', /^EnableIPv4 false with the alloc backend: IPv6-only overlays run only with the vxlan backend .*"Backend":\{"Type":"vxlan"\}, or add "EnableIPv4": true and a "Network" \(dual-stack\)$/],
  ['host-gw', '{"Type":"host-gw"}', /^EnableIPv4 false with the host-gw backend: IPv6-only overlays run only with the vxlan backend/],
  ['wireguard (Mode separate)', '{"Type":"wireguard","Mode":"separate"}', /^EnableIPv4 false with the wireguard backend: IPv6-only overlays run only with the vxlan backend/],
];
for (const [what, backend, want] of V6ONLY) {
  test(`IPv6-only with ${what}: ${want ? 'refused' : 'runs'}`, () => {
    const c = parseNetworkConfig(`{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:7::/48","Backend":${backend}}`);
    assert.equal(c.enableIPv4, false);
    const r = ipv6Refusal(c);
    if (want) assert.match(r ?? '(null)', want);
    else assert.equal(r, null);
  });
}

test("subnet.env of an IPv6-only overlay: flanneld's FLANNEL_IPV6_* lines and no FLANNEL_NETWORK/FLANNEL_SUBNET", () => {
  const text = subnetEnvContent(null, parseCidr('0.0.0.0/0'), 1430, false, { network: parseCidr6('fd00:10::/48'), subnet: parseCidr6('fd00:10:0:48::/64') });
  assert.equal(text, 'FLANNEL_IPV6_NETWORK=fd00:10::/48\nFLANNEL_IPV6_SUBNET=fd00:10:0:48::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=false\n');
});

test('subnet.env gets flanneld\'s FLANNEL_IPV6_* lines, after the v4 ones, with the first v6 host address', () => {
  const text = subnetEnvContent(parseCidr('10.5.0.0/16'), parseCidr('10.5.72.0/24'), 1450, true, { network: parseCidr6('fd00:10::/48'), subnet: parseCidr6('fd00:10:0:48::/64') });
  assert.equal(text, 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_IPV6_NETWORK=fd00:10::/48\nFLANNEL_IPV6_SUBNET=fd00:10:0:48::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
});

test('prefixRangeEnd is etcd\'s prefix + 1 (the range compare of a v6 create covers exactly <prefix>/subnets…)', () => {
  assert.equal(prefixRangeEnd('/coreos.com/network/subnets').toString(), '/coreos.com/network/subnett');
  assert.equal(prefixRangeEnd('/p/x').toString(), '/p/y');
});
