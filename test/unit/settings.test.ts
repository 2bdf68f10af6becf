import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadSettings, redactedSettings, SettingsError } from '../../src/config/settings';

test('defaults', () => {
  const s = loadSettings({});
  assert.deepEqual(s.etcdEndpoints, ['http://127.0.0.1:2379']);
  assert.equal(s.etcdPrefix, '/coreos.com/network');
  assert.equal(s.leaseTtlSec, 86400);
  assert.equal(s.leaseRenewMarginSec, 3600);
  assert.equal(s.pluginSocket, '/run/docker/plugins/overlay-flannel.sock');
  assert.ok(Object.isFrozen(s));
});

test('a short TTL scales the default renew margin down', () => {
  assert.equal(loadSettings({ LEASE_TTL: '6' }).leaseRenewMarginSec, 2);
  assert.equal(loadSettings({ LEASE_TTL: '60', LEASE_RENEW_MARGIN: '10s' }).leaseRenewMarginSec, 10);
  assert.equal(loadSettings({ LEASE_RENEW_MARGIN: '30m' }).leaseRenewMarginSec, 1800);
});

test('every bad field is reported at once', () => {
  try {
    loadSettings({ ETCD_ENDPOINTS: 'http://a:1,nonsense', ETCD_PREFIX: 'x', PUBLIC_IP: '1.2.3', LEASE_TTL: '-1', LOG_LEVEL: 'loud', ETCD_CERTFILE: '/c', ETCD_USERNAME: 'u' });
    assert.fail('expected SettingsError');
  } catch (e) {
    assert.ok(e instanceof SettingsError);
    const text = e.problems.join('\n');
    for (const k of ['ETCD_ENDPOINTS: "nonsense"', 'ETCD_PREFIX', 'PUBLIC_IP', 'LEASE_TTL', 'LOG_LEVEL', 'ETCD_KEYFILE', 'ETCD_PASSWORD']) {
      assert.ok(text.includes(k), `${k} reported in:\n${text}`);
    }
    assert.equal(e.problems.length, 7);
  }
});

test('margin must be shorter than the TTL when set', () => {
  assert.throws(() => loadSettings({ LEASE_TTL: '10', LEASE_RENEW_MARGIN: '10' }), /shorter than LEASE_TTL/);
});

test('the password never appears in redacted settings', () => {
  const s = loadSettings({ ETCD_USERNAME: 'root', ETCD_PASSWORD: 's3cret' });
  assert.equal(s.etcdPassword, 's3cret');
  assert.ok(!JSON.stringify(redactedSettings(s)).includes('s3cret'));
});

test('STATUS_ADDR: off by default, host:port when set, refused otherwise', () => {
  assert.equal(loadSettings({}).statusAddr, '');
  assert.equal(loadSettings({ STATUS_ADDR: '127.0.0.1:9890' }).statusAddr, '127.0.0.1:9890');
  assert.equal(loadSettings({}).probePort, 8479);
  assert.equal(loadSettings({ PROBE_PORT: '0' }).probePort, 0);
  assert.throws(() => loadSettings({ PROBE_PORT: '70000' }), /PROBE_PORT: "70000" must be a UDP port/);
  for (const bad of ['9890', 'localhost', '127.0.0.1:0', '127.0.0.1:70000']) {
    assert.throws(() => loadSettings({ STATUS_ADDR: bad }), /STATUS_ADDR/, bad);
  }
});

test('IP_MASQ, NOTRACK and FASTPATH: on by default, booleans only', () => {
  const table = [
    [{}, true, true, true],
    [{ NOTRACK: 'false' }, true, false, true],
    [{ NOTRACK: '0', IP_MASQ: 'false' }, false, false, true],
    [{ NOTRACK: 'TRUE', FASTPATH: 'false' }, true, true, false],
    [{ FASTPATH: '1' }, true, true, true],
  ] as const;
  for (const [env, masq, notrack, fastpath] of table) {
    const s = loadSettings(env);
    assert.deepEqual([s.ipMasq, s.notrack, s.fastpath], [masq, notrack, fastpath], JSON.stringify(env));
  }
  assert.throws(() => loadSettings({ NOTRACK: 'maybe' }), /NOTRACK: "maybe" must be true, false, 1 or 0/);
  assert.throws(() => loadSettings({ FASTPATH: 'fast' }), /FASTPATH: "fast" must be true, false, 1 or 0/);
});

test('ADDRESS_AUDIT_INTERVAL: 300 s by default, durations and 0 accepted, nonsense refused naming the setting', () => {
  assert.equal(loadSettings({}).addressAuditIntervalSec, 300);
  assert.equal(loadSettings({ ADDRESS_AUDIT_INTERVAL: '10m' }).addressAuditIntervalSec, 600);
  assert.equal(loadSettings({ ADDRESS_AUDIT_INTERVAL: '0' }).addressAuditIntervalSec, 0);
  for (const bad of ['5', 'soon', '-1', '2d', '25h']) {
    assert.throws(() => loadSettings({ ADDRESS_AUDIT_INTERVAL: bad }), /ADDRESS_AUDIT_INTERVAL: .* must be 0 .* or a duration from 10s to 24h/, bad);
  }
});

test('NAMES: on by default, booleans accepted, nonsense refused naming the setting', () => {
  assert.equal(loadSettings({}).names, true);
  assert.equal(loadSettings({ NAMES: 'false' }).names, false);
  assert.equal(loadSettings({ NAMES: '0' }).names, false);
  assert.equal(loadSettings({ NAMES: 'TRUE' }).names, true);
  assert.throws(() => loadSettings({ NAMES: 'off' }), /NAMES: "off" must be true, false, 1 or 0/);
});

test('NAME_TTL: 30 s by default, whole seconds 2–3600 (durations too), anything else refused with the range', () => {
  assert.equal(loadSettings({}).nameTtlSec, 30);
  assert.equal(loadSettings({ NAME_TTL: '10' }).nameTtlSec, 10);
  assert.equal(loadSettings({ NAME_TTL: '1m' }).nameTtlSec, 60);
  assert.equal(loadSettings({ NAME_TTL: '2s' }).nameTtlSec, 2);
  for (const bad of ['1', '0', '1.5', '2h', 'soon', '-5']) {
    assert.throws(() => loadSettings({ NAME_TTL: bad }), /NAME_TTL: .* must be a whole number of seconds from 2 to 3600/, bad);
  }
});

test('STATE_DIR (the WireGuard key) and WIREGUARD_PRIVATE_SOCKET: defaults, values, nonsense refused naming the setting', () => {
  const d = loadSettings({});
  assert.deepEqual([d.stateDir, d.wireguardPrivateSocket], ['/var/lib/overlay-flannel', false]);
  const s = loadSettings({ STATE_DIR: '/srv/of', WIREGUARD_PRIVATE_SOCKET: '1' });
  assert.deepEqual([s.stateDir, s.wireguardPrivateSocket], ['/srv/of', true]);
  assert.throws(() => loadSettings({ STATE_DIR: 'relative/dir' }), /STATE_DIR: "relative\/dir" must be an absolute path/);
  assert.throws(() => loadSettings({ WIREGUARD_PRIVATE_SOCKET: 'yes' }), /WIREGUARD_PRIVATE_SOCKET: "yes" must be true, false, 1 or 0/);
});

test('PUBLIC_IPV6: absent by default, an IPv6 address when set, anything else refused naming the setting', () => {
  assert.equal(loadSettings({}).publicIPv6, undefined);
  assert.equal(loadSettings({ PUBLIC_IPV6: '2001:db8::7' }).publicIPv6, '2001:db8::7');
  assert.throws(() => loadSettings({ PUBLIC_IPV6: '192.0.2.7' }), /PUBLIC_IPV6: "192\.0\.2\.7" is not an IPv6 address/);
});
