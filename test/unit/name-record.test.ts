// The name-record codec of src/domain/name-record.ts and the name keys of src/store/keys.ts:
// tables of good and broken values (parse never throws; each broken value names its reason).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeNameRecord, normalizeDockerName, parseNameRecord, type NameRecord } from '../../src/domain/name-record';
import { overlayKeys, parseNameKey } from '../../src/store/keys';

const good: NameRecord = {
  networkId: 'a1b2c3d4e5f6a1b2c3d4e5f6',
  networkName: 'appnet',
  containerName: 'web-1',
  containerId: 'f00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeed',
  endpointId: 'e1e2e3e4e5e6e7e8',
  aliases: ['web', 'f00dfeedf00d'],
  ipv4: ['10.1.16.5'],
  ipv6: ['2001:db8::5'],
  host: '192.0.2.11',
  updatedAt: '2026-12-02T20:00:00.000Z',
};
const raw = (over: Record<string, unknown>) =>
  JSON.stringify({ ...JSON.parse(encodeNameRecord(good)), ...over });

test('a record round-trips through its stored form', () => {
  const text = encodeNameRecord(good);
  const back = parseNameRecord(text);
  assert.deepEqual(back, { ok: true, record: good });
  assert.equal(JSON.parse(text).v, 1);
  assert.ok(text.length < 400, `value is ${text.length} bytes`);
});

test('optional fields: no container id, no IPv6', () => {
  const { containerId: _, ...rest } = good;
  const rec = { ...rest, ipv6: [] };
  assert.deepEqual(parseNameRecord(encodeNameRecord(rec)), { ok: true, record: rec });
  const noV6 = JSON.parse(encodeNameRecord(rec));
  delete noV6.ipv6;
  const back = parseNameRecord(JSON.stringify(noV6));
  assert.ok(back.ok && back.record.ipv6.length === 0);
});

test('names are normalised: Docker\'s leading "/" dropped, duplicate aliases once', () => {
  const back = parseNameRecord(encodeNameRecord({ ...good, containerName: '/web-1', aliases: ['web', 'web', 'a.b_c-d'] }));
  assert.ok(back.ok);
  assert.equal(back.record.containerName, 'web-1');
  assert.deepEqual(back.record.aliases, ['web', 'a.b_c-d']);
  assert.equal(normalizeDockerName('/x'), 'x');
  assert.equal(normalizeDockerName('-x'), null);
  assert.equal(normalizeDockerName('a'.repeat(256)), null);
});

const broken: Array<[string, string, RegExp]> = [
  ['not JSON', '{"v":1,', /not valid JSON/],
  ['a JSON array', '[1,2]', /the value must be an object/],
  ['JSON null', 'null', /the value must be an object/],
  ['a newer version', raw({ v: 2 }), /version 2 \(this reader knows 1\)/],
  ['no version', raw({ v: undefined }), /version missing/],
  ['network missing', raw({ network: undefined }), /network must be an object/],
  ['network id with a slash', raw({ network: { id: 'a/b', name: 'appnet' } }), /network\.id "a\/b".*no "\/"/],
  ['network name not Docker\'s', raw({ network: { id: 'n1', name: 'bad name' } }), /network\.name "bad name" is not a Docker name/],
  ['container name missing', raw({ container: {} }), /container\.name must be a string, got nothing/],
  ['container name a number', raw({ container: { name: 7 } }), /container\.name must be a string, got 7/],
  ['endpoint id empty', raw({ endpointId: '' }), /endpointId ""/],
  ['no IPv4 address', raw({ ipv4: [] }), /ipv4 must list at least one address/],
  ['IPv4 not a list', raw({ ipv4: '10.1.16.5' }), /ipv4 must be a list/],
  ['a bad IPv4 address', raw({ ipv4: ['10.1.16.300'] }), /ipv4\[0\] "10\.1\.16\.300" is not an IPv4 address/],
  ['a CIDR for an address', raw({ ipv4: ['10.1.16.5/24'] }), /is not an IPv4 address/],
  ['a bad IPv6 address', raw({ ipv6: ['2001:db8::zz'] }), /ipv6\[0\] "2001:db8::zz" is not an IPv6 address/],
  ['an alias with a space', raw({ aliases: ['ok', 'not ok'] }), /aliases\[1\] "not ok" is not a Docker name/],
  ['too many aliases', raw({ aliases: Array.from({ length: 65 }, (_, i) => `a${i}`) }), /aliases has 65 entries \(at most 64\)/],
  ['host not an IPv4 address', raw({ host: 'h2.example' }), /host "h2\.example": must be the host's public IPv4 address/],
  ['no updatedAt', raw({ updatedAt: undefined }), /updatedAt must be a string/],
  ['updatedAt not a date', raw({ updatedAt: 'yesterday' }), /updatedAt "yesterday" is not a date/],
];

for (const [what, text, reason] of broken) {
  test(`broken value is refused with its reason, never thrown: ${what}`, () => {
    let r: ReturnType<typeof parseNameRecord> | undefined;
    assert.doesNotThrow(() => (r = parseNameRecord(text)));
    assert.equal(r?.ok, false);
    assert.match((r as { reason: string }).reason, reason);
  });
}

test('encode refuses what parse would refuse, naming the endpoint and the field', () => {
  assert.throws(() => encodeNameRecord({ ...good, ipv4: [] }), (e: Error & { code?: string }) => e.code === 'INVALID' && /endpoint "e1e2e3e4e5e6e7e8": ipv4 must list/.test(e.message));
  assert.throws(() => encodeNameRecord({ ...good, host: '' }), /host "": must be the host's public IPv4 address/);
});

test('name keys: under our own subtree, never under <prefix>/subnets; parsed back', () => {
  const keys = overlayKeys('/coreos.com/network');
  const k = keys.nameKey('n1', 'e1');
  assert.equal(k, '/coreos.com/network/overlay-flannel/names/n1/e1');
  assert.equal(keys.namesRoot, '/coreos.com/network/overlay-flannel/names/');
  assert.equal(k.startsWith(keys.subnetsPrefix), false);
  assert.deepEqual(parseNameKey(keys, k), { networkId: 'n1', endpointId: 'e1' });
  for (const bad of [`${keys.namesRoot}n1`, `${keys.namesRoot}n1/e1/x`, `${keys.namesRoot}n1/`, '/coreos.com/network/subnets/n1/e1', `${keys.namesRoot}n 1/e1`]) {
    assert.equal(parseNameKey(keys, bad), null, bad);
  }
});
