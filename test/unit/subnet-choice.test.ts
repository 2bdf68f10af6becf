// flannel's subnet choice (tryAcquireLease) and endpoint address allocation, as tables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseSubnet, pickRandom } from '../../src/domain/subnet-choice';
import { parseNetworkConfig } from '../../src/domain/network-config';
import { Lease } from '../../src/domain/lease';
import { formatCidr, formatIPv4, parseCidr, parseIPv4 } from '../../src/domain/ipv4';
import { checkRequestedAddress, freeAddresses } from '../../src/domain/addresses';

const cfg = parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan"}}');
const lease = (subnet: string, publicIP: string, etcdLease = '7'): Lease => ({
  subnet: parseCidr(subnet),
  attrs: { publicIP, backendType: 'vxlan', vxlan: { vni: 1, vtepMac: '02:00:00:00:00:01' } },
  etcdLease,
});

test('our PublicIP reuses its lease', () => {
  const mine = lease('10.1.7.0/24', '192.0.2.1');
  const c = chooseSubnet(cfg, [lease('10.1.3.0/24', '192.0.2.2'), mine], '192.0.2.1');
  assert.equal(c.kind, 'reuse');
  assert.equal(c.kind === 'reuse' && c.lease, mine);
});

test('a lease of ours outside the range is stale and not reused', () => {
  const old = lease('10.1.0.0/24', '192.0.2.1'); // the first subnet is never handed out
  const c = chooseSubnet(cfg, [old], '192.0.2.1');
  assert.equal(c.kind, 'new');
  assert.deepEqual(c.stale, [old]);
  assert.ok(c.kind === 'new' && c.candidates.every((s) => s.base !== old.subnet.base || s.len !== 24));
});

test('candidates are the first 100 free subnets from SubnetMin, skipping taken ones and reservations', () => {
  const c = chooseSubnet(cfg, [lease('10.1.1.0/24', '192.0.2.2'), lease('10.1.3.0/24', '192.0.2.3', '0')], '192.0.2.1');
  assert.equal(c.kind, 'new');
  if (c.kind !== 'new') return;
  assert.equal(c.candidates.length, 100);
  assert.deepEqual(c.candidates.slice(0, 3).map(formatCidr), ['10.1.2.0/24', '10.1.4.0/24', '10.1.5.0/24']);
});

test('the previous subnet is taken again when it is still free and fits the config', () => {
  const prev = parseCidr('10.1.42.0/24');
  const c = chooseSubnet(cfg, [lease('10.1.3.0/24', '192.0.2.3')], '192.0.2.1', prev);
  assert.deepEqual(c.kind === 'new' && c.candidates.map(formatCidr), ['10.1.42.0/24']);
  const taken = chooseSubnet(cfg, [lease('10.1.42.0/24', '192.0.2.3')], '192.0.2.1', prev);
  assert.ok(taken.kind === 'new' && taken.candidates.length === 100 && !taken.candidates.some((s) => formatCidr(s) === '10.1.42.0/24'));
  const outside = chooseSubnet(cfg, [], '192.0.2.1', parseCidr('10.2.42.0/24'));
  assert.ok(outside.kind === 'new' && outside.candidates.length === 100);
  const wrongLen = chooseSubnet(cfg, [], '192.0.2.1', parseCidr('10.1.42.0/25'));
  assert.ok(wrongLen.kind === 'new' && wrongLen.candidates.length === 100);
});

test('a full network is exhausted', () => {
  const small = parseNetworkConfig('{"Network":"10.0.0.0/28","Backend":{"Type":"vxlan"}}'); // 3 leasable /30s
  const leases = ['10.0.0.4/30', '10.0.0.8/30', '10.0.0.12/30'].map((s, i) => lease(s, `192.0.2.${10 + i}`));
  assert.equal(chooseSubnet(small, leases, '192.0.2.1').kind, 'exhausted');
});

test('pickRandom stays in bounds', () => {
  assert.equal(pickRandom([1, 2, 3], () => 0), 1);
  assert.equal(pickRandom([1, 2, 3], () => 0.9999999), 3);
});

test('free addresses skip .0, .1 (gateway), broadcast and taken ones, round-robin after the last', () => {
  const subnet = parseCidr('10.1.7.0/29');
  const all = [...freeAddresses(subnet, new Set())].map(formatIPv4);
  assert.deepEqual(all, ['10.1.7.2', '10.1.7.3', '10.1.7.4', '10.1.7.5', '10.1.7.6']);
  const after = [...freeAddresses(subnet, new Set([parseIPv4('10.1.7.5')]), parseIPv4('10.1.7.4'))].map(formatIPv4);
  assert.deepEqual(after, ['10.1.7.6', '10.1.7.2', '10.1.7.3', '10.1.7.4']);
});

test('requested addresses are checked against the lease', () => {
  const subnet = parseCidr('10.1.7.0/24');
  assert.equal(formatIPv4(checkRequestedAddress(subnet, '10.1.7.50')), '10.1.7.50');
  assert.throws(() => checkRequestedAddress(subnet, '10.1.8.5'), /not in this host's subnet 10.1.7.0\/24/);
  assert.throws(() => checkRequestedAddress(subnet, '10.1.7.1'), /reserved/);
  assert.throws(() => checkRequestedAddress(subnet, '10.1.7.255'), /reserved/);
  assert.throws(() => checkRequestedAddress(subnet, 'x'), /not an IPv4 address/);
});

test('the IPv4 fast path agrees with ip-address on edge cases', () => {
  for (const t of ['0.0.0.0', '255.255.255.255', '10.1.2.3', '192.0.2.254']) assert.equal(formatIPv4(parseIPv4(t)), t);
  for (const bad of ['256.1.1.1', '1.2.3', '01.2.3.4x', '', ' 1.2.3.4', '1.2.3.4/8']) assert.throws(() => parseIPv4(bad), /not an IPv4 address/, bad);
});
