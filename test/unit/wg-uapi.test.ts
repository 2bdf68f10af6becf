// The wireguard UAPI text protocol: set requests and get replies (keys hex on the wire, base64 for us).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatUapiSet, parseUapiGet, uapiErrno } from '../../src/domain/wg-uapi';

const hexOf = (n: number) => n.toString(16).padStart(2, '0').repeat(32);
const b64Of = (n: number) => Buffer.from(hexOf(n), 'hex').toString('base64');

test('set request: device, a peer with PSK and keepalive, a removed peer; blank-line terminated', () => {
  const text = formatUapiSet({ privateKey: b64Of(1), listenPort: 51820, replacePeers: true },
    [{ publicKey: b64Of(2), endpoint: '192.0.2.2:51820', allowedIPs: ['10.1.2.0/24'], presharedKey: b64Of(3), persistentKeepalive: 25 }], [b64Of(4)]);
  assert.equal(text, ['set=1', `private_key=${hexOf(1)}`, 'listen_port=51820', 'replace_peers=true', `public_key=${hexOf(2)}`, `preshared_key=${hexOf(3)}`,
    'endpoint=192.0.2.2:51820', 'persistent_keepalive_interval=25', 'replace_allowed_ips=true', 'allowed_ip=10.1.2.0/24', `public_key=${hexOf(4)}`, 'remove=true', '', ''].join('\n'));
  assert.throws(() => formatUapiSet({}, [{ publicKey: 'nope', allowedIPs: [] }]), /not a WireGuard key/);
});

test('get reply parsed: device key and port, peers with endpoint and allowed IPs, zero PSK ignored', () => {
  const reply = [`private_key=${hexOf(1)}`, 'listen_port=51820', `public_key=${hexOf(2)}`, `preshared_key=${hexOf(0)}`, 'protocol_version=1', 'endpoint=192.0.2.2:51820',
    'last_handshake_time_sec=0', 'tx_bytes=0', 'persistent_keepalive_interval=0', 'allowed_ip=10.1.2.0/24', `public_key=${hexOf(5)}`, 'allowed_ip=10.1.3.0/24', 'allowed_ip=10.1.4.0/24', 'errno=0', '', ''].join('\n');
  assert.deepEqual(parseUapiGet(reply), { privateKey: b64Of(1), listenPort: 51820, peers: [
    { publicKey: b64Of(2), endpoint: '192.0.2.2:51820', allowedIPs: ['10.1.2.0/24'] },
    { publicKey: b64Of(5), allowedIPs: ['10.1.3.0/24', '10.1.4.0/24'] },
  ] });
});

test('errno: read from the reply, failure and missing errno are errors', () => {
  assert.equal(uapiErrno('errno=0\n\n'), 0);
  assert.equal(uapiErrno('errno=-22\n\n'), -22);
  assert.throws(() => uapiErrno('\n'), /reply without errno/);
  assert.throws(() => parseUapiGet('errno=1\n\n'), /get failed with errno 1/);
  assert.throws(() => parseUapiGet('public_key=xyz\nerrno=0\n\n'), /not 64 hex digits/);
});
