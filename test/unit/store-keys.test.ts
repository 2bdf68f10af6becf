// Key layout of src/store/keys.ts and the error mapping of src/store/etcd-errors.ts (no etcd needed).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BrokenCircuitError } from 'cockatiel';
import { EtcdAuthenticationFailedError, EtcdLeaseInvalidError, GRPCDeadlineExceededError, GRPCUnavailableError } from 'etcd3';
import { formatCidr, parseCidr, parseIPv4 } from '../../src/domain/ipv4';
import { OverlayError } from '../../src/errors';
import { createEtcdClient, rawEtcdText, toStoreError, type EtcdTarget } from '../../src/store/etcd-client';
import { tagError } from '../../src/store/etcd-errors';
import { formatIPv6, parseCidr6, parseIPv6 } from '../../src/domain/ipv6';
import { leaseSubnetOfKey, overlayKeys, parseAddress6Key, parseAddressKey } from '../../src/store/keys';

const keys = overlayKeys('/coreos.com/network/');
const subnet = parseCidr('10.1.15.0/24');

test('flannel keys and ours', () => {
  assert.equal(keys.prefix, '/coreos.com/network');
  assert.equal(keys.config, '/coreos.com/network/config');
  assert.equal(keys.subnetsPrefix, '/coreos.com/network/subnets');
  assert.equal(keys.leaseKey(subnet), '/coreos.com/network/subnets/10.1.15.0-24');
  assert.equal(keys.addressKey(subnet, parseIPv4('10.1.15.7')), '/coreos.com/network/overlay-flannel/addresses/10.1.15.0-24/10.1.15.7');
  assert.equal(keys.networksRoot, '/coreos.com/network/overlay-flannel/networks/');
});

test('nothing of ours starts with <prefix>/subnets (flannel prefix-lists it)', () => {
  for (const k of [keys.addressesRoot, keys.networksRoot, keys.addressKey(subnet, parseIPv4('10.1.15.2')), keys.config]) {
    assert.equal(k.startsWith(keys.subnetsPrefix), false, k);
  }
});

test('lease keys are read by suffix, as flannel does', () => {
  assert.equal(formatCidr(leaseSubnetOfKey(keys, '/coreos.com/network/subnets/10.1.15.0-24')!), '10.1.15.0/24');
  assert.equal(formatCidr(leaseSubnetOfKey(keys, '/coreos.com/network/subnetsX/10.1.16.0-24')!), '10.1.16.0/24');
  assert.equal(leaseSubnetOfKey(keys, '/coreos.com/network/subnets/junk'), null);
  assert.equal(leaseSubnetOfKey(keys, '/coreos.com/network/subnets/10.1.15.1-24'), null); // host bits
  assert.equal(leaseSubnetOfKey(keys, '/other/subnets/10.1.15.0-24'), null);
});

test('address keys parse back; anything else is null', () => {
  const k = keys.addressKey(subnet, parseIPv4('10.1.15.9'));
  assert.deepEqual(parseAddressKey(keys, k), { subnet, ip: parseIPv4('10.1.15.9') });
  assert.equal(parseAddressKey(keys, `${keys.addressesRoot}10.1.15.0-24/10.1.16.9`), null); // outside its subnet
  assert.equal(parseAddressKey(keys, `${keys.addressesRoot}10.1.15.0-24/x`), null);
  assert.equal(parseAddressKey(keys, `${keys.addressesRoot}10.1.15.0-24/10.1.15.9/more`), null);
});

const subnet6 = parseCidr6('fd00:10:0:f::/64');
const root6 = '/coreos.com/network/overlay-flannel/addresses6/';

test('v6 address keys: own root, flannel\'s spelling of the v6 lease, canonical address', () => {
  assert.equal(keys.addresses6Root, root6);
  assert.equal(keys.addresses6Prefix(subnet6), `${root6}fd00:10:0:f::-64/`);
  const rows: Array<[string, string]> = [
    ['fd00:10:0:f::7', `${root6}fd00:10:0:f::-64/fd00:10:0:f::7`],
    ['fd00:10:0:f:0:0:0:7', `${root6}fd00:10:0:f::-64/fd00:10:0:f::7`], // one address, one key
    ['fd00:10:0:f:a:b:c:d', `${root6}fd00:10:0:f::-64/fd00:10:0:f:a:b:c:d`],
    ['FD00:10:0:F:0:FFFF:0:1', `${root6}fd00:10:0:f::-64/fd00:10:0:f:0:ffff:0:1`],
  ];
  for (const [ip, want] of rows) {
    const k = keys.address6Key(subnet6, parseIPv6(ip));
    assert.equal(k, want, ip);
    assert.deepEqual(parseAddress6Key(keys, k), { subnet6, ip: parseIPv6(ip) }, `${k} parses back`);
  }
  // A /48 lease (IPv6SubnetLen 48) and a /80 one spell the length as flannel does.
  assert.equal(keys.address6Key(parseCidr6('fd00:10::/48'), parseIPv6('fd00:10::1:2')), `${root6}fd00:10::-48/fd00:10::1:2`);
  assert.equal(keys.address6Key(parseCidr6('fd00:10:0:f:1::/80'), parseIPv6('fd00:10:0:f:1::9')), `${root6}fd00:10:0:f:1::-80/fd00:10:0:f:1::9`);
});

test('v6 and v4 records of one dual-stack lease never share a key, and neither parser reads the other\'s', () => {
  const k4 = keys.addressKey(subnet, parseIPv4('10.1.15.7'));
  const k6 = keys.address6Key(subnet6, parseIPv6('fd00:10:0:f::7'));
  assert.equal(k6.startsWith(keys.addressesRoot), false, 'a v4 listing of addressesRoot never sees v6 records');
  assert.equal(k4.startsWith(keys.addresses6Root), false);
  assert.equal(k6.startsWith(keys.subnetsPrefix), false, 'never under <prefix>/subnets');
  assert.equal(parseAddressKey(keys, k6), null);
  assert.equal(parseAddress6Key(keys, k4), null);
  assert.equal(k6.slice(root6.length).split('/').length, 2, 'a v6 address has no "/": two segments');
});

test('v6 address keys that are not ours, or not canonical, parse to null', () => {
  for (const tail of [
    'fd00:10:0:f::-64/fd00:10:0:f:0::7', // non-canonical address (fd00:10:0:f::7 is the key)
    'fd00:10:0:f:0::-64/fd00:10:0:f::7', // non-canonical subnet
    'FD00:10:0:F::-64/fd00:10:0:f::7', // upper case
    'fd00:10:0:f::-64/fd00:10:0:e::7', // outside its subnet
    'fd00:10:0:f::1-64/fd00:10:0:f::7', // host bits in the subnet
    'fd00:10:0:f::-129/fd00:10:0:f::7',
    'fd00:10:0:f::-64/10.1.15.7',
    'fd00:10:0:f::-64/x',
    'fd00:10:0:f::-64/fd00:10:0:f::7/more',
    'fd00:10:0:f::-64',
    '10.1.15.0-24/fd00:10:0:f::7',
  ]) assert.equal(parseAddress6Key(keys, `${root6}${tail}`), null, tail);
  assert.equal(parseAddress6Key(keys, `/coreos.com/network/overlay-flannel/addresses/fd00:10:0:f::-64/fd00:10:0:f::7`), null, 'the v4 root');
  assert.equal(formatIPv6(parseAddress6Key(keys, `${root6}fd00:10:0:f::-64/fd00:10:0:f::7`)!.ip), 'fd00:10:0:f::7');
});

test('a bad prefix is refused', () => {
  assert.throws(() => overlayKeys('coreos.com'), /must start with "\/"/);
  assert.throws(() => overlayKeys('/'), /must start with "\/"/);
});

test('toStoreError maps etcd3, cockatiel and raw gRPC errors', () => {
  const raw14 = Object.assign(new Error('14 UNAVAILABLE: Connection dropped'), { code: 14 });
  for (const e of [new GRPCUnavailableError('x'), new GRPCDeadlineExceededError('x'), new BrokenCircuitError(), raw14]) {
    assert.equal(toStoreError(e, 'read').code, 'UNAVAILABLE', String(e));
  }
  assert.match(toStoreError(new EtcdAuthenticationFailedError('x'), 'read').message, /^read: etcd rejected the credentials of the user \(authentication failed\): check ETCD_USERNAME\/ETCD_PASSWORD$/);
  assert.equal(toStoreError(new EtcdLeaseInvalidError('1'), 'renew').code, 'CONFLICT');
  const own = new OverlayError('CONFLICT', 'mine');
  assert.equal(toStoreError(own, 'x'), own);
});

const target: EtcdTarget = { endpoints: ['https://192.0.2.9:2379'], caFile: '/etc/of/ca.crt', certFile: '/etc/of/c.crt', keyFile: '/etc/of/c.key', username: 'flannel', deadlineMs: 3000 };
const grpc14 = (last: string) => new GRPCUnavailableError(`14 UNAVAILABLE: No connection established. Last error: ${last}. Resolution note: `);

// Raw texts as etcd3 1.1 / grpc-js give them (the real ones are checked in test/faults/etcd-error-texts.test.ts).
const translations: Array<[string, unknown, RegExp]> = [
  ['refused', grpc14('Error: connect ECONNREFUSED 192.0.2.9:2379'), /^etcd at https:\/\/192\.0\.2\.9:2379 refused the connection \(nothing listens there\): check ETCD_ENDPOINTS/],
  ['no route', grpc14('Error: connect ENETUNREACH 192.0.2.9:2379 - Local (0.0.0.0:0)'), /^etcd at https:\/\/192\.0\.2\.9:2379 is unreachable \(no route/],
  ['no name', grpc14('Error: getaddrinfo ENOTFOUND etcd.example'), /^the host name in ETCD_ENDPOINTS \(https:\/\/192\.0\.2\.9:2379\) does not resolve/],
  ['timed out', new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded after 3.000s,Waiting for LB pick'), /^etcd at https:\/\/192\.0\.2\.9:2379 did not answer within 3 s \(timed out\)/],
  ['dropped', grpc14('Connection dropped'), /^etcd at https:\/\/192\.0\.2\.9:2379 dropped the connection/],
  ['closed while connecting', grpc14('Connection closed before starting HTTP/2 handshake'), /^etcd at https:\/\/192\.0\.2\.9:2379 dropped the connection/],
  ['other TLS failure', grpc14('C0:error:0A00010B:SSL routines:ssl3_get_record:wrong cipher:../deps/x.c:1'), /^the TLS connection to etcd at https:\/\/192\.0\.2\.9:2379 failed: check ETCD_CAFILE, .* \[wrong cipher\]$/],
  ['no detail', grpc14('null'), /^etcd at https:\/\/192\.0\.2\.9:2379 is unavailable: check ETCD_ENDPOINTS and that etcd is running$/],
  [
    'client cert refused',
    grpc14('808C8752967F0000:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 42\n (2026-11-23T15:00:00.000Z)'),
    /^etcd at https:\/\/192\.0\.2\.9:2379 refused this host's client certificate \(ETCD_CERTFILE=\/etc\/of\/c\.crt, ETCD_KEYFILE=\/etc\/of\/c\.key\): .*\[TLS alert: bad certificate\]$/,
  ],
  ['server cert untrusted', grpc14('Error: unable to verify the first certificate'), /^etcd at https:\/\/192\.0\.2\.9:2379 presented a server certificate this host does not trust \(ETCD_CAFILE=\/etc\/of\/ca\.crt\): .*\[unable to verify the first certificate\]$/],
  ['self-signed', grpc14('Error: self-signed certificate in certificate chain'), /does not trust \(ETCD_CAFILE=.*\[self-signed certificate in certificate chain\]$/],
  ['no TLS on the server', grpc14('Error: Client network socket disconnected before secure TLS connection was established'), /^etcd at https:\/\/192\.0\.2\.9:2379 refused the TLS handshake: is it serving https\?/],
  ['no TLS on the server, seen as a reset (1 connect in 12, measured)', grpc14('Error: read ECONNRESET'), /^etcd at https:\/\/192\.0\.2\.9:2379 refused the TLS handshake: is it serving https\?/],
  ['TLS on the server only', grpc14('Failed to connect (2026-12-02T18:59:21.460Z)'), /closed the connection at once: if etcd serves TLS, use https:\/\//],
  [
    'wrong password',
    new EtcdAuthenticationFailedError('3 INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password'),
    /^etcd at https:\/\/192\.0\.2\.9:2379 rejected the credentials of user "flannel" \(authentication failed\): check ETCD_USERNAME\/ETCD_PASSWORD$/,
  ],
];

for (const [name, raw, want] of translations) {
  test(`etcd failure in our words, naming the endpoint: ${name}`, () => {
    const e = toStoreError(tagError(raw, target), 'read /k');
    assert.match(e.reason, want);
    assert.equal(e.message, `read /k: ${e.reason}`);
    assert.equal(e.cause, raw, 'the raw error stays the cause (for debug logs)');
    assert.doesNotMatch(e.message, /UNAVAILABLE|DEADLINE_EXCEEDED|INVALID_ARGUMENT|Resolution note|rec_layer|808C|Last error/);
    assert.match(rawEtcdText(e), /<- (GRPC|Etcd)\w+Error: \d+ [A-Z_]+/, 'rawEtcdText shows the etcd3 error');
  });
}

test('a reset before any connection to a plain http:// etcd is a dropped connection, not a TLS hint', () => {
  const plain: EtcdTarget = { endpoints: ['http://192.0.2.9:2379'], deadlineMs: 3000 };
  assert.match(toStoreError(tagError(grpc14('Error: read ECONNRESET'), plain), 'x').reason, /^etcd at http:\/\/192\.0\.2\.9:2379 dropped the connection/);
});

test('a client certificate asked for but not set says which settings to set', () => {
  const noCert: EtcdTarget = { endpoints: ['https://192.0.2.9:2379'], deadlineMs: 3000 };
  const e = toStoreError(tagError(grpc14('SSL routines:ssl3_read_bytes:sslv3 alert certificate required:x'), noCert), 'x');
  assert.match(e.reason, /asks for a client certificate and none is set: set ETCD_CERTFILE and ETCD_KEYFILE/);
});

test('an untagged error still translates, without an endpoint', () => {
  assert.match(toStoreError(grpc14('Error: connect ECONNREFUSED 127.0.0.1:2379'), 'x').message, /^x: etcd refused the connection/);
});

test('the password never appears in a mapped message', () => {
  createEtcdClient({ etcdEndpoints: ['http://127.0.0.1:1'], etcdUsername: 'u', etcdPassword: 'pa55-w0rd' }).close();
  assert.equal(toStoreError(new Error('boom pa55-w0rd boom'), 'x').message, 'x: boom <redacted> boom');
});
