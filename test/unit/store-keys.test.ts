// Key layout of src/store/keys.ts and the error mapping of src/store/etcd-client.ts (no etcd needed).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BrokenCircuitError } from 'cockatiel';
import { EtcdAuthenticationFailedError, EtcdLeaseInvalidError, GRPCDeadlineExceededError, GRPCUnavailableError } from 'etcd3';
import { formatCidr, parseCidr, parseIPv4 } from '../../src/domain/ipv4';
import { OverlayError } from '../../src/errors';
import { createEtcdClient, toStoreError } from '../../src/store/etcd-client';
import { leaseSubnetOfKey, overlayKeys, parseAddressKey } from '../../src/store/keys';

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

test('a bad prefix is refused', () => {
  assert.throws(() => overlayKeys('coreos.com'), /must start with "\/"/);
  assert.throws(() => overlayKeys('/'), /must start with "\/"/);
});

test('toStoreError maps etcd3, cockatiel and raw gRPC errors', () => {
  const raw14 = Object.assign(new Error('14 UNAVAILABLE: Connection dropped'), { code: 14 });
  for (const e of [new GRPCUnavailableError('x'), new GRPCDeadlineExceededError('x'), new BrokenCircuitError(), raw14]) {
    assert.equal(toStoreError(e, 'read').code, 'UNAVAILABLE', String(e));
  }
  assert.match(toStoreError(new EtcdAuthenticationFailedError('x'), 'read').message, /^read: etcd rejected the credentials: check ETCD_USERNAME\/ETCD_PASSWORD$/);
  assert.equal(toStoreError(new EtcdLeaseInvalidError('1'), 'renew').code, 'CONFLICT');
  const own = new OverlayError('CONFLICT', 'mine');
  assert.equal(toStoreError(own, 'x'), own);
});

test('TLS failures name the file to fix and quote only the alert, not OpenSSL\'s text', () => {
  const badCert = new GRPCUnavailableError(
    '14 UNAVAILABLE: No connection established. Last error: 808C8752967F0000:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 42\n (2026-11-23T15:00:00.000Z)',
  );
  const m = toStoreError(badCert, 'list config').message;
  assert.match(m, /^list config: etcd unavailable: TLS problem: etcd refused this client's certificate \(ETCD_CERTFILE, ETCD_KEYFILE\).*\[TLS alert: bad certificate\]$/);
  assert.doesNotMatch(m, /rec_layer|808C/);
  const untrusted = new GRPCUnavailableError('14 UNAVAILABLE: No connection established. Last error: Error: self-signed certificate in certificate chain');
  assert.match(toStoreError(untrusted, 'x').message, /TLS problem: etcd's server certificate is not trusted: ETCD_CAFILE/);
  const plain = new GRPCUnavailableError('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:2379');
  assert.equal(toStoreError(plain, 'x').message, 'x: etcd unavailable: 14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:2379');
});

test('the password never appears in a mapped message', () => {
  createEtcdClient({ etcdEndpoints: ['http://127.0.0.1:1'], etcdUsername: 'u', etcdPassword: 'pa55-w0rd' }).close();
  assert.equal(toStoreError(new Error('boom pa55-w0rd boom'), 'x').message, 'x: boom <redacted> boom');
});
