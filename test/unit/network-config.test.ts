// Table tests for flannel's config parsing (docs/flannel-compat.md §1: CheckNetworkConfig).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeNetworkConfig, formatNetworkConfig, parseNetworkConfig } from '../../src/domain/network-config';
import { Address4 } from 'ip-address';
import { formatCidr, formatIPv4, parseCidr } from '../../src/domain/ipv4';
import { parseCommand } from '../../src/cli/args';

const vx = '"Backend":{"Type":"vxlan"}';

const accepted: [string, string, { net: string; len: number; min: string; max: string }][] = [
  ['defaults for a /16', `{"Network":"10.1.0.0/16",${vx}}`, { net: '10.1.0.0/16', len: 24, min: '10.1.1.0', max: '10.1.255.0' }],
  ['host bits masked', `{"Network":"10.1.2.3/16",${vx}}`, { net: '10.1.0.0/16', len: 24, min: '10.1.1.0', max: '10.1.255.0' }],
  ['lower-case keys', `{"network":"10.5.0.0/16","backend":{"type":"VXLAN"}}`, { net: '10.5.0.0/16', len: 24, min: '10.5.1.0', max: '10.5.255.0' }],
  ['/22 still gives /24', `{"Network":"10.0.0.0/22",${vx}}`, { net: '10.0.0.0/22', len: 24, min: '10.0.1.0', max: '10.0.3.0' }],
  ['/23 gives prefix+2', `{"Network":"10.0.0.0/23",${vx}}`, { net: '10.0.0.0/23', len: 25, min: '10.0.0.128', max: '10.0.1.128' }],
  ['/28 gives /30', `{"Network":"10.0.0.0/28",${vx}}`, { net: '10.0.0.0/28', len: 30, min: '10.0.0.4', max: '10.0.0.12' }],
  ['explicit SubnetLen', `{"Network":"10.0.0.0/8","SubnetLen":20,${vx}}`, { net: '10.0.0.0/8', len: 20, min: '10.0.16.0', max: '10.255.240.0' }],
  ['explicit min/max', `{"Network":"10.1.0.0/16","SubnetMin":"10.1.10.0","SubnetMax":"10.1.20.0",${vx}}`, { net: '10.1.0.0/16', len: 24, min: '10.1.10.0', max: '10.1.20.0' }],
  ['unknown keys ignored', `{"Network":"10.1.0.0/16","Whatever":[1],${vx}}`, { net: '10.1.0.0/16', len: 24, min: '10.1.1.0', max: '10.1.255.0' }],
  ['host-gw', `{"Network":"10.1.0.0/16","Backend":{"Type":"host-gw"}}`, { net: '10.1.0.0/16', len: 24, min: '10.1.1.0', max: '10.1.255.0' }],
  ['alloc', `{"Network":"10.1.0.0/16","SubnetLen":26,"Backend":{"Type":"alloc"}}`, { net: '10.1.0.0/16', len: 26, min: '10.1.0.64', max: '10.1.255.192' }],
];

for (const [name, text, want] of accepted) {
  test(`config accepted: ${name}`, () => {
    const cfg = parseNetworkConfig(text);
    assert.equal(formatCidr(cfg.network), want.net);
    assert.equal(cfg.subnetLen, want.len);
    assert.equal(formatIPv4(cfg.subnetMin), want.min);
    assert.equal(formatIPv4(cfg.subnetMax), want.max);
  });
}

const rejected: [string, string, RegExp][] = [
  ['not JSON', '{"Network":', /not valid JSON/],
  ['not an object', '[1,2]', /must be a JSON object/],
  ['no Network', `{${vx}}`, /"Network" is required/],
  ['bad CIDR', `{"Network":"10.1.0.0",${vx}}`, /not an IPv4 CIDR/],
  ['IPv6 network', `{"Network":"fc00::/48",${vx}}`, /not an IPv4 CIDR/],
  ['too small', `{"Network":"10.0.0.0/29",${vx}}`, /too small.*\/28/],
  ['SubnetLen > 30', `{"Network":"10.0.0.0/8","SubnetLen":31,${vx}}`, /less than \/31/],
  ['SubnetLen too short', `{"Network":"10.0.0.0/16","SubnetLen":17,${vx}}`, /at least four subnets/],
  ['SubnetMin outside', `{"Network":"10.1.0.0/16","SubnetMin":"10.2.0.0",${vx}}`, /SubnetMin 10.2.0.0 is not in the range/],
  ['SubnetMax unaligned', `{"Network":"10.1.0.0/16","SubnetMax":"10.1.20.5",${vx}}`, /SubnetMax is not on a SubnetLen boundary/],
  ['wrong type', `{"Network":"10.1.0.0/16","SubnetLen":"24",${vx}}`, /"SubnetLen" must be a whole number/],
  ['no Backend (flanneld: udp)', `{"Network":"10.1.0.0/16"}`, /udp backend.*"Backend":\{"Type":"vxlan"\}/],
  ['udp backend, with its reason', `{"Network":"10.1.0.0/16","Backend":{"Type":"udp"}}`, /udp backend is not supported: it forwards every packet through a userspace process .*deprecated upstream.*"vxlan"/],
  ['wireguard Mode ipv6 (IPv6 endpoints)', `{"Network":"10.1.0.0/16","Backend":{"Type":"wireguard","Mode":"ipv6"}}`, /Mode "ipv6" .*not supported by overlay-flannel yet; use "separate"/],
  ['wireguard with a bad Mode: flanneld\'s error first', `{"Network":"10.1.0.0/16","Backend":{"Type":"wireguard","Mode":"both"}}`, /No valid Mode configured/],
  ['ipsec backend', `{"Network":"10.1.0.0/16","Backend":{"Type":"ipsec"}}`, /unsupported backend "ipsec"; overlay-flannel supports vxlan, host-gw, alloc, wireguard/],
  ['Backend without Type', `{"Network":"10.1.0.0/16","Backend":{}}`, /unknown backend type/],
  ['VNI out of range', `{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","VNI":16777216}}`, /"VNI" must be between/],
  ['IPv6 enabled without IPv6Network', `{"Network":"10.1.0.0/16","EnableIPv6":true,${vx}}`, /please define a correct IPv6Network/],
];

for (const [name, text, re] of rejected) {
  test(`config rejected: ${name}`, () => {
    assert.throws(() => parseNetworkConfig(text), (e: Error) => re.test(e.message));
  });
}

test('vxlan backend keys, case-insensitive, with flannel defaults', () => {
  const cfg = parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"type":"vxlan","vni":42,"port":4789,"directrouting":true,"MTU":1400}}');
  assert.deepEqual(cfg.backend, { type: 'vxlan', vni: 42, port: 4789, gbp: false, learning: false, directRouting: true, mtu: 1400 });
  const dflt = parseNetworkConfig(`{"Network":"10.1.0.0/16",${vx}}`);
  assert.deepEqual(dflt.backend, { type: 'vxlan', vni: 1, port: 0, gbp: false, learning: false, directRouting: false });
});

test('formatNetworkConfig writes what parses back, masked', () => {
  const text = formatNetworkConfig({ network: '10.9.3.0/16', vni: 7, port: 8472, subnetLen: 26 });
  assert.equal(text, '{"Network":"10.9.0.0/16","SubnetLen":26,"Backend":{"Type":"vxlan","VNI":7,"Port":8472}}');
  assert.match(describeNetworkConfig(parseNetworkConfig(text)), /10\.9\.0\.0\/16, \/26 per host .*1023 subnets.*VNI 7 port 8472/);
  assert.throws(() => formatNetworkConfig({ network: '10.9.0.0/16', backend: 'host-gw', vni: 3 }), /only to the vxlan backend/);
  assert.throws(() => formatNetworkConfig({ network: 'nonsense' }), /not an IPv4 CIDR/);
});

test('alloc: parsed to a backend without options, written as flanneld reads it, described as leases only', () => {
  assert.deepEqual(parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"Type":"ALLOC"}}').backend, { type: 'alloc' });
  const text = formatNetworkConfig({ network: '10.4.0.0/16', backend: 'alloc' });
  assert.equal(text, '{"Network":"10.4.0.0/16","Backend":{"Type":"alloc"}}');
  assert.match(describeNetworkConfig(parseNetworkConfig(text)), /255 subnets\), alloc \(leases only: you route the subnets\)$/);
  assert.throws(() => formatNetworkConfig({ network: '10.4.0.0/16', backend: 'alloc', mtu: 1400 }), /--mtu apply only to the vxlan backend, not to alloc/);
});

test('CLI: config set --backend alloc is accepted; udp and unknown backends are refused naming the supported ones', () => {
  const c = parseCommand(['config', 'set', '--network', '10.4.0.0/16', '--backend', 'alloc']);
  assert.deepEqual(c, { cmd: 'config-set', input: { network: '10.4.0.0/16', backend: 'alloc' } });
  for (const b of ['udp', 'ipsec']) assert.throws(() => parseCommand(['config', 'set', '--network', '10.4.0.0/16', '--backend', b]), /use vxlan, host-gw, alloc or wireguard/);
});

test('the wireguard backend is accepted with its options and described; config set --backend wireguard writes flanneld\'s Type', () => {
  const psk = Buffer.alloc(32, 7).toString('base64');
  const cfg = parseNetworkConfig(`{"Network":"10.5.0.0/16","Backend":{"Type":"wireguard","ListenPort":51000,"PSK":"${psk}","PersistentKeepaliveInterval":25}}`);
  assert.deepEqual(cfg.backend, { type: 'wireguard', listenPort: 51000, listenPortV6: 51821, mode: 'separate', persistentKeepaliveInterval: 25, psk });
  assert.match(describeNetworkConfig(cfg), /, wireguard port 51000 PSK keepalive 25s$/);
  const c = parseCommand(['config', 'set', '--network', '10.5.0.0/16', '--backend', 'wireguard']);
  assert.deepEqual(c, { cmd: 'config-set', input: { network: '10.5.0.0/16', backend: 'wireguard' } });
  assert.equal(formatNetworkConfig({ network: '10.5.0.0/16', backend: 'wireguard' }), '{"Network":"10.5.0.0/16","Backend":{"Type":"wireguard"}}');
  // --port is wireguard's ListenPort (a named wireguard overlay needs its own on a host)
  assert.deepEqual(parseCommand(['config', 'set', '--name', 'blue', '--network', '10.6.0.0/16', '--backend', 'wireguard', '--port', '51821']),
    { cmd: 'config-set', name: 'blue', input: { network: '10.6.0.0/16', backend: 'wireguard', port: 51821 } });
  assert.equal(formatNetworkConfig({ network: '10.6.0.0/16', backend: 'wireguard', port: 51821 }), '{"Network":"10.6.0.0/16","Backend":{"Type":"wireguard","ListenPort":51821}}');
  assert.throws(() => formatNetworkConfig({ network: '10.6.0.0/16', backend: 'host-gw', port: 51821 }), /--port applies only to the vxlan \(Port\) and wireguard \(ListenPort\) backends, not to host-gw/);
  assert.throws(() => formatNetworkConfig({ network: '10.6.0.0/16', backend: 'wireguard', vni: 2 }), /--vni, --direct-routing and --mtu apply only to the vxlan backend, not to wireguard/);
});

test('parseCidr: the dotted fast path gives what ip-address gives, and the rest still goes through ip-address', () => {
  const viaLibrary = (t: string) => {
    const a = new Address4(t);
    return `${formatIPv4(Number(a.startAddress().bigInt()))}/${a.subnetMask}`;
  };
  for (const t of ['10.1.2.3/16', '0.0.0.0/0', '255.255.255.255/32', '10.0.0.0/8', '192.168.1.7/31', '10.39.42.0/24', '1.2.3.4/9', '172.16.0.1/12']) {
    assert.equal(formatCidr(parseCidr(t)), viaLibrary(t), t);
  }
  assert.equal(formatCidr(parseCidr('10.0.0.0/08')), '10.0.0.0/8', 'not canonical: decided by ip-address, as before');
  for (const t of ['10.0.0.0/33', '10.0.0.256/8', '10.0.0/8', ' 10.0.0.0/8', '010.0.0.0/8', '10.0.0.0', '10.0.0.0/-1']) assert.throws(() => parseCidr(t), /is not an IPv4 CIDR/, t);
});
