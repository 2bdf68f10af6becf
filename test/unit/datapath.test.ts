// The data-path choice and its pure route arithmetic (src/domain/datapath.ts), as tables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { datapathOption, isRoutedGateway, joinRoutes, pickRoutedGateway, subnetHalves, type JoinRoute } from '../../src/domain/datapath';
import { formatCidr, formatIPv4, parseCidr, parseIPv4 } from '../../src/domain/ipv4';

test('datapathOption: default routed, either key, case-insensitive, unknown refused with the fix', () => {
  const rows: [Record<string, string>, string][] = [
    [{}, 'routed'],
    [{ datapath: '' }, 'routed'],
    [{ datapath: 'bridge' }, 'bridge'],
    [{ datapath: ' ROUTED ' }, 'routed'],
    [{ 'overlay-flannel.datapath': 'bridge' }, 'bridge'],
    [{ 'com.docker.network.driver.mtu': '1400' }, 'routed'],
  ];
  for (const [generic, want] of rows) assert.equal(datapathOption(generic), want, JSON.stringify(generic));
  assert.throws(() => datapathOption({ datapath: 'l2' }), /-o datapath=l2: unknown data path; use -o datapath=routed .* or -o datapath=bridge/);
});

test('subnetHalves splits a subnet in two; nothing for /31 and /32', () => {
  const rows: [string, string[]][] = [
    ['10.9.5.0/24', ['10.9.5.0/25', '10.9.5.128/25']],
    ['10.9.0.0/16', ['10.9.0.0/17', '10.9.128.0/17']],
    ['10.9.5.16/28', ['10.9.5.16/29', '10.9.5.24/29']],
    ['10.9.5.0/30', ['10.9.5.0/31', '10.9.5.2/31']],
    ['10.9.5.0/31', []],
    ['10.9.5.7/32', []],
  ];
  for (const [s, want] of rows) assert.deepEqual(subnetHalves(parseCidr(s)).map(formatCidr), want, s);
});

test('joinRoutes per data path', () => {
  const sub = parseCidr('10.9.5.0/24');
  const ov = parseCidr('10.9.0.0/16');
  const gw = parseIPv4('10.9.5.1');
  const text = (rs: JoinRoute[]) => rs.map((r) => `${formatCidr(r.destination)} ${r.nextHop === null ? 'on-link' : `via ${formatIPv4(r.nextHop)}`}`);
  assert.deepEqual(text(joinRoutes('bridge', sub, ov, gw)), ['10.9.0.0/16 via 10.9.5.1']);
  assert.deepEqual(joinRoutes('bridge', sub, null, gw), []);
  assert.deepEqual(text(joinRoutes('routed', sub, null, gw)), ['169.254.1.1/32 on-link', '10.9.5.0/25 via 169.254.1.1', '10.9.5.128/25 via 169.254.1.1']);
  assert.deepEqual(text(joinRoutes('routed', sub, ov, gw)).at(-1), '10.9.0.0/16 via 169.254.1.1');
});

test('routed gateways: 169.254.1.1–.254, the lowest free one, none when all are taken', () => {
  const ip = (t: string) => parseIPv4(t);
  for (const [text, want] of [['169.254.1.1', true], ['169.254.1.254', true], ['169.254.1.0', false], ['169.254.1.255', false], ['169.254.2.1', false], ['169.254.53.53', false], ['10.9.5.1', false]] as const) {
    assert.equal(isRoutedGateway(ip(text)), want, text);
  }
  assert.equal(pickRoutedGateway([]), ip('169.254.1.1'));
  assert.equal(pickRoutedGateway([ip('169.254.1.1'), ip('169.254.1.3')]), ip('169.254.1.2'));
  assert.equal(pickRoutedGateway([ip('169.254.1.2')]), ip('169.254.1.1'));
  const all = Array.from({ length: 254 }, (_, i) => (ip('169.254.1.0') + i + 1) >>> 0);
  assert.equal(pickRoutedGateway(all), null);
  assert.equal(pickRoutedGateway(all.slice(0, 253)), ip('169.254.1.254'));
  assert.deepEqual(joinRoutes('routed', parseCidr('10.9.5.0/24'), null, ip('10.9.5.1'), ip('169.254.1.7')).map((r) => r.nextHop === null ? 'on-link' : formatIPv4(r.nextHop)), ['on-link', '169.254.1.7', '169.254.1.7']);
});
