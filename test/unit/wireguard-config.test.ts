// Table tests for flannel's wireguard backend options (pkg/backend/wireguard wgBackendConfig) and
// the wireguard lease's BackendData, byte for byte as flanneld writes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWireguardKey, parseWireguardBackend, WireguardBackend, WireguardClaims, WireguardDeviceClaim, wireguardDeviceClaims, wireguardDeviceName } from '../../src/domain/wireguard-config';
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

const v4 = (device: string, port: number): WireguardDeviceClaim => ({ device, port, field: 'ListenPort' });
const v6 = (device: string, port: number): WireguardDeviceClaim => ({ device, port, field: 'ListenPortV6' });

test('wireguardDeviceClaims: the v4 device on ListenPort, and with a v6 network the v6 device on ListenPortV6', () => {
  const rows: [string, WireguardBackend, boolean, WireguardDeviceClaim[]][] = [
    ['default, v4 only', dflt, false, [v4('flannel-wg', 51820)]],
    ['default, dual-stack', dflt, true, [v4('flannel-wg', 51820), v6('flannel-wg-v6', 51821)]],
    ['blue, dual-stack, own ports', { ...dflt, listenPort: 51830, listenPortV6: 51831 }, true, [v4('fwg-blue', 51830), v6('fw6-blue', 51831)]],
  ];
  for (const [name, backend, dual, want] of rows) {
    assert.deepEqual(wireguardDeviceClaims(name.split(',')[0]!, backend, dual), want, name);
  }
});

test('WireguardClaims: one port and one device per overlay on a host; the same overlay may claim again; released on stop', () => {
  const c = new WireguardClaims();
  assert.equal(c.claim('default', [v4('flannel-wg', 51820)]), null);
  assert.equal(c.claim('default', [v4('flannel-wg', 51820)]), null, 'its own claim again');
  assert.match(c.claim('blue', [v4('fwg-blue', 51820)])!, /^ListenPort 51820 is already the port of the wireguard overlay "default" \(flannel-wg\) on this host; each wireguard overlay needs its own: set "ListenPort"/);
  assert.equal(c.claim('blue', [v4('fwg-blue', 51821)]), null);
  assert.match(c.claim('other', [v4('fwg-blue', 51822)])!, /device name fwg-blue is already that of the wireguard overlay "blue"/);
  assert.deepEqual([...c.list()], [['default', [v4('flannel-wg', 51820)]], ['blue', [v4('fwg-blue', 51821)]]]);
  c.release('default');
  assert.equal(c.claim('green', [v4('fwg-green', 51820)]), null, 'a released port is free again');
});

// Every WireGuard device binds its port for IPv4 and IPv6 (0.0.0.0:P and [::]:P), so a port is a
// port whatever the field it comes from: each row is [holder's claims, newcomer's claims, answer].
const dual = (o: string, p4: number, p6: number) => wireguardDeviceClaims(o, { ...dflt, listenPort: p4, listenPortV6: p6 }, true);
const clashes: [string, WireguardDeviceClaim[], WireguardDeviceClaim[], RegExp | null][] = [
  ['two dual-stack overlays on the default ports: refused on ListenPort first', dual('default', 51820, 51821), dual('blue', 51820, 51821),
    /^ListenPort 51820 is already the port of the wireguard overlay "default" \(flannel-wg\) on this host; each wireguard overlay needs its own/],
  ['two dual-stack overlays, own ListenPorts, both ListenPortV6 51821', dual('red', 51830, 51821), dual('blue', 51840, 51821),
    /^ListenPortV6 51821 is already the port of the wireguard overlay "red" \(fw6-red, its "ListenPortV6"\) on this host; each WireGuard device needs its own \(a device listens on its port for IPv4 and IPv6 alike\): set "ListenPortV6" in this overlay's Backend \(write the overlay's config with etcdctl put, "ListenPortV6":N; the CLI's --port sets ListenPort only\)$/],
  ['a v4 ListenPort on the v6 port of a dual-stack holder', dual('default', 51820, 51821), [v4('fwg-green', 51821)],
    /^ListenPort 51821 is already the port of the wireguard overlay "default" \(flannel-wg-v6, its "ListenPortV6"\) on this host; each WireGuard device needs its own \(a device listens on its port for IPv4 and IPv6 alike\): set "ListenPort" in this overlay's Backend \(overlay-flannel config set … --backend wireguard --port N\)$/],
  ['a ListenPortV6 on the v4 port of a v4-only holder', [v4('flannel-wg', 51820)], dual('blue', 51830, 51820),
    /^ListenPortV6 51820 is already the port of the wireguard overlay "default" \(flannel-wg, its "ListenPort"\) on this host; each WireGuard device needs its own .*: set "ListenPortV6"/],
  ['one dual-stack overlay whose two ports are one', [], dual('blue', 51830, 51830),
    /^"ListenPortV6" 51830 is the same port as its "ListenPort": fwg-blue and fw6-blue each listen on their port for IPv4 and IPv6 alike, so they need two ports: set "ListenPortV6"/],
  ['two dual-stack overlays on four distinct ports', dual('default', 51820, 51821), dual('blue', 51830, 51831), null],
  ['a v4-only overlay on 51821 beside a v4-only default', [v4('flannel-wg', 51820)], [v4('fwg-blue', 51821)], null],
];
for (const [name, holder, newcomer, want] of clashes) {
  test(`WireguardClaims across families: ${name}`, () => {
    const c = new WireguardClaims();
    const holderName = holder[0]?.device === 'flannel-wg' ? 'default' : 'red';
    if (holder.length) assert.equal(c.claim(holderName, holder), null, 'the holder claims first');
    const answer = c.claim('blue', newcomer);
    if (want === null) {
      assert.equal(answer, null);
      assert.deepEqual(c.list().get('blue'), newcomer, 'held once claimed');
    } else {
      assert.match(answer ?? 'null (claimed)', want);
      assert.equal(c.list().has('blue'), false, 'a refused claim holds nothing');
      assert.deepEqual(holder.length ? c.list().get(holderName) : undefined, holder.length ? holder : undefined, 'the holder keeps its claims');
    }
  });
}
