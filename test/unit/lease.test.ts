// Lease keys and values in flanneld's exact format (docs/flannel-compat.md §2–§3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeLeaseAttrs, encodeLeaseAttrs, leaseBackendType, leaseKeyOf, subnetFromLeaseKey } from '../../src/domain/lease';
import { parseNetworkConfig } from '../../src/domain/network-config';
import { formatCidr, parseCidr } from '../../src/domain/ipv4';
import { stableMac, vtepMacFor } from '../../src/domain/mac';

const FLANNELD_VXLAN = '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}';
const FLANNELD_HOSTGW = '{"PublicIP":"192.0.2.7","PublicIPv6":null,"BackendType":"host-gw"}';
// flanneld's alloc backend acquires with LeaseAttrs{PublicIP} only: BackendType and BackendData are omitempty.
const FLANNELD_ALLOC = '{"PublicIP":"192.0.2.8","PublicIPv6":null}';

test('a flanneld vxlan lease round-trips byte for byte', () => {
  const attrs = decodeLeaseAttrs(FLANNELD_VXLAN);
  assert.deepEqual(attrs, { publicIP: '192.168.64.3', backendType: 'vxlan', vxlan: { vni: 1, vtepMac: 'c6:d2:32:6f:8f:44' } });
  assert.equal(encodeLeaseAttrs(attrs), FLANNELD_VXLAN);
});

test('a flanneld host-gw lease round-trips byte for byte', () => {
  assert.equal(encodeLeaseAttrs(decodeLeaseAttrs(FLANNELD_HOSTGW)), FLANNELD_HOSTGW);
});

test('a flanneld alloc lease round-trips byte for byte, and alloc writes no BackendType', () => {
  const attrs = decodeLeaseAttrs(FLANNELD_ALLOC);
  assert.deepEqual(attrs, { publicIP: '192.0.2.8', backendType: '' });
  assert.equal(encodeLeaseAttrs(attrs), FLANNELD_ALLOC);
  const backend = (type: string) => parseNetworkConfig(`{"Network":"10.1.0.0/16","Backend":{"Type":"${type}"}}`).backend;
  assert.deepEqual(['alloc', 'host-gw', 'vxlan'].map((t) => leaseBackendType(backend(t))), ['', 'host-gw', 'vxlan']);
  assert.equal(encodeLeaseAttrs({ publicIP: '192.0.2.8', backendType: leaseBackendType(backend('alloc')) }), FLANNELD_ALLOC);
});

test('lease values are read as Go reads them: any key case, unknown keys ignored, MAC normalised', () => {
  const attrs = decodeLeaseAttrs('{"publicip":"192.0.2.9","backendtype":"vxlan","backenddata":{"vni":5,"vtepmac":"0E:2A:00:00:00:01"},"Extra":1}');
  assert.deepEqual(attrs.vxlan, { vni: 5, vtepMac: '0e:2a:00:00:00:01' });
});

const broken: [string, RegExp][] = [
  ['not json', /not valid JSON/],
  ['"x"', /must be a JSON object/],
  ['{}', /"PublicIP" is missing/],
  ['{"PublicIP":"300.1.1.1"}', /not an IPv4 address/],
  ['{"PublicIP":"192.0.2.1","BackendType":"vxlan"}', /needs "BackendData"/],
  ['{"PublicIP":"192.0.2.1","BackendType":"vxlan","BackendData":{"VNI":1}}', /no "VtepMAC"/],
  ['{"PublicIP":"192.0.2.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"zz"}}', /not a MAC address/],
];
for (const [text, re] of broken) {
  test(`broken lease value is refused: ${text}`, () => assert.throws(() => decodeLeaseAttrs(text), re));
}

test('lease keys: flannel format and suffix matching', () => {
  assert.equal(leaseKeyOf(parseCidr('10.1.15.0/24')), '10.1.15.0-24');
  const cases: [string, string | null][] = [
    ['/coreos.com/network/subnets/10.1.15.0-24', '10.1.15.0/24'],
    ['10.1.15.128-25', '10.1.15.128/25'],
    ['/p/subnets/10.1.15.0-24&fc00:0:0:f::-64', '10.1.15.0/24'],
    ['/p/subnets/10.1.15.3-24', null], // host bits set
    ['/p/subnets/garbage', null],
    ['/p/subnets/10.1.15.0-33', null],
  ];
  for (const [key, want] of cases) {
    const got = subnetFromLeaseKey(key);
    assert.equal(got ? formatCidr(got) : null, want, key);
  }
});

test('VtepMAC is stable per (VNI, public IP), unicast and locally administered', () => {
  const a = vtepMacFor(1, '192.0.2.1');
  assert.equal(a, vtepMacFor(1, '192.0.2.1'));
  assert.notEqual(a, vtepMacFor(2, '192.0.2.1'));
  assert.notEqual(a, vtepMacFor(1, '192.0.2.2'));
  for (const mac of [a, stableMac('x'), stableMac('y', 3)]) {
    const first = parseInt(mac.slice(0, 2), 16);
    assert.equal(first & 1, 0, `${mac} is unicast`);
    assert.equal(first & 2, 2, `${mac} is locally administered`);
  }
});
