// Table tests for flannel's wireguard backend options (pkg/backend/wireguard wgBackendConfig) and
// the wireguard lease's BackendData, byte for byte as flanneld writes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWireguardKey, parseWireguardBackend, WireguardBackend, WireguardClaims, wireguardDeviceName } from '../../src/domain/wireguard-config';
import { decodeLeaseAttrs, encodeLeaseAttrs, sameAttrs } from '../../src/domain/lease';

const KEY = 'YAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk='; // 32 bytes, as `wg genkey` prints
const PSK = 'FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=';
const where = 'network config: Backend';
const dflt: WireguardBackend = { type: 'wireguard', listenPort: 51820, listenPortV6: 51821, mode: 'separate', persistentKeepaliveInterval: 0 };

const accepted: [string, object, WireguardBackend][] = [
  ['defaults', { Type: 'wireguard' }, dflt],
  ['ListenPort 0 means the default, as flanneld', { Type: 'wireguard', ListenPort: 0 }, dflt],
  ['every option', { Type: 'wireguard', ListenPort: 51000, ListenPortV6: 51001, Mode: 'auto', PersistentKeepaliveInterval: 25, PSK, MTU: 1420 },
    { type: 'wireguard', listenPort: 51000, listenPortV6: 51001, mode: 'auto', persistentKeepaliveInterval: 25, psk: PSK, mtu: 1420 }],
  ['key case as Go', { type: 'wireguard', listenport: 52000, mode: 'ipv4', psk: '' }, { ...dflt, listenPort: 52000, mode: 'ipv4' }],
  ['Mode ipv6', { Type: 'wireguard', Mode: 'ipv6' }, { ...dflt, mode: 'ipv6' }],
  ['MTU 0 means derive', { Type: 'wireguard', MTU: 0 }, dflt],
];
for (const [name, raw, want] of accepted) {
  test(`wireguard options accepted: ${name}`, () => assert.deepEqual(parseWireguardBackend(raw as Record<string, unknown>, where), want));
}

const rejected: [string, object, RegExp][] = [
  ['unknown Mode', { Mode: 'Separate' }, /No valid Mode configured: "Mode" "Separate" is not one of separate, auto, ipv4, ipv6/],
  ['PSK not base64 of 32 bytes', { PSK: 'c2hvcnQ=' }, /"PSK": not a WireGuard key/],
  ['PSK garbage', { PSK: 'x'.repeat(44) }, /"PSK": not a WireGuard key/],
  ['ListenPort out of range', { ListenPort: 70000 }, /"ListenPort" must be between 0 and 65535/],
  ['ListenPort a string', { ListenPort: '51820' }, /"ListenPort" must be a whole number/],
  ['keepalive a string (Go: a Duration is a number)', { PersistentKeepaliveInterval: '25s' }, /"PersistentKeepaliveInterval" must be a whole number/],
  ['MTU too small', { MTU: 100 }, /"MTU" 100 is too small/],
];
for (const [name, raw, re] of rejected) {
  test(`wireguard options rejected: ${name}`, () => {
    assert.throws(() => parseWireguardBackend({ Type: 'wireguard', ...raw }, where), (e: Error) => re.test(e.message));
  });
}

test('WireGuard keys: base64 of exactly 32 bytes', () => {
  assert.equal(isWireguardKey(KEY), true);
  assert.equal(isWireguardKey(PSK), true);
  for (const bad of ['', KEY.slice(0, 43), KEY + '=', KEY.replace('=', 'A'), Buffer.alloc(31).toString('base64'), Buffer.alloc(33).toString('base64'), KEY.replace('+', '-')]) {
    assert.equal(isWireguardKey(bad), false, bad);
  }
});

const FLANNELD_WG = `{"PublicIP":"192.0.2.11","PublicIPv6":null,"BackendType":"wireguard","BackendData":{"PublicKey":"${KEY}"}}`;

test('a flanneld wireguard lease round-trips byte for byte', () => {
  const attrs = decodeLeaseAttrs(FLANNELD_WG);
  assert.deepEqual(attrs, { publicIP: '192.0.2.11', backendType: 'wireguard', wireguard: { publicKey: KEY } });
  assert.equal(encodeLeaseAttrs(attrs), FLANNELD_WG);
  assert.equal(encodeLeaseAttrs({ publicIP: '192.0.2.11', backendType: 'wireguard', wireguard: { publicKey: KEY } }), FLANNELD_WG);
  assert.equal(sameAttrs(attrs, { ...attrs, wireguard: { publicKey: PSK } }), false);
});

test('wireguard lease read as Go reads it: any key case, unknown keys ignored', () => {
  const attrs = decodeLeaseAttrs(`{"publicip":"192.0.2.12","backendtype":"wireguard","backenddata":{"publickey":"${KEY}","Extra":1}}`);
  assert.deepEqual(attrs.wireguard, { publicKey: KEY });
});

const broken: [string, RegExp][] = [
  ['{"PublicIP":"192.0.2.1","BackendType":"wireguard"}', /a wireguard lease needs "BackendData" with PublicKey/],
  ['{"PublicIP":"192.0.2.1","BackendType":"wireguard","BackendData":{}}', /BackendData has no "PublicKey"/],
  ['{"PublicIP":"192.0.2.1","BackendType":"wireguard","BackendData":{"PublicKey":"abc"}}', /PublicKey: not a WireGuard key/],
  ['{"PublicIP":"192.0.2.1","BackendType":"wireguard","BackendData":{"PublicKey":7}}', /"PublicKey" must be a string/],
];
for (const [text, re] of broken) {
  test(`broken wireguard lease rejected: ${text}`, () => assert.throws(() => decodeLeaseAttrs(text), (e: Error) => re.test(e.message)));
}

const deviceNames: [string, string][] = [
  ['default', 'flannel-wg'], // flanneld's
  ['blue', 'fwg-blue'],
  ['a.b_c-d', 'fwg-a.b_c-d'],
  ['elevenchars', 'fwg-elevenchars'], // 4 + 11 = IFNAMSIZ − 1
];
for (const [overlay, want] of deviceNames) {
  test(`wireguardDeviceName(${overlay}) = ${want}`, () => assert.equal(wireguardDeviceName(overlay), want));
}
test('wireguardDeviceName: a name past 11 characters is its first 6, "-" and 4 hex digits of its hash; at most 15 characters; distinct for one start', () => {
  const a = wireguardDeviceName('production-eu');
  const b = wireguardDeviceName('production-us');
  assert.match(a, /^fwg-produc-[0-9a-f]{4}$/);
  assert.match(b, /^fwg-produc-[0-9a-f]{4}$/);
  assert.notEqual(a, b);
  assert.equal(wireguardDeviceName('production-eu'), a, 'deterministic (a restarted daemon finds its device)');
  assert.ok(wireguardDeviceName('x'.repeat(63)).length <= 15);
});

test('WireguardClaims: one port and one device per overlay on a host; the same overlay may claim again; released on stop', () => {
  const c = new WireguardClaims();
  assert.equal(c.claim('default', 'flannel-wg', 51820), null);
  assert.equal(c.claim('default', 'flannel-wg', 51820), null, 'its own claim again');
  assert.match(c.claim('blue', 'fwg-blue', 51820)!, /^ListenPort 51820 is already the port of the wireguard overlay "default" \(flannel-wg\) on this host; each wireguard overlay needs its own: set "ListenPort"/);
  assert.equal(c.claim('blue', 'fwg-blue', 51821), null);
  assert.match(c.claim('other', 'fwg-blue', 51822)!, /device name fwg-blue is already that of the wireguard overlay "blue"/);
  assert.deepEqual([...c.list()], [['default', { device: 'flannel-wg', port: 51820 }], ['blue', { device: 'fwg-blue', port: 51821 }]]);
  c.release('default');
  assert.equal(c.claim('green', 'fwg-green', 51820), null, 'a released port is free again');
});
