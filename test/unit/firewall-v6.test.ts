// The firewall's IPv6 half (issue 21) as tables: the FORWARD head block with v4 and v6 Networks
// (drops pair one family only), flannel's ip6 masquerade rules (ff00::/8), NOTRACK with the public
// IPv6 address /128, the ip6tables commands of the logs; and a dual-stack dataplane on the fake
// kernel writing both halves, following a v6 subnet change, removing both on detach, while a
// v4-only overlay writes nothing v6.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { forwardHeadRules, isolationPairs } from '../../src/domain/forward-head';
import { masqCommands, masqRules, masqRuleText } from '../../src/domain/masq-rules';
import { notrackCommands, notrackRules, notrackRuleText } from '../../src/domain/notrack-rules';
import { portConflict, portRules, portRuleText, type PortBinding } from '../../src/domain/port-rules';
import { FakeKernel } from '../fakes/fake-kernel';
import { OverlayDataplane } from '../../src/reconcile/overlay-dataplane';
import { SerialQueue } from '../../src/util/serial-queue';
import { parseNetworkConfig } from '../../src/domain/network-config';
import { parseCidr } from '../../src/domain/ipv4';
import { parseCidr6 } from '../../src/domain/ipv6';
import type { Lease } from '../../src/domain/lease';
import type { PublicInterface } from '../../src/host/public-interface';

const text = (networks: string[]): string[] => forwardHeadRules(networks).map((r) => `-s ${r.src} -d ${r.dst} -j ${r.verdict.toUpperCase()}`);

test('forwardHeadRules with v4 and v6 Networks: accepts, then drops between Networks of one family only; nested v6 accepts after the drops', () => {
  const rows: [string[], string[]][] = [
    [['fd00:1::/48'], ['-s fd00:1::/48 -d fd00:1::/48 -j ACCEPT']],
    [
      ['10.1.0.0/16', 'fd00:2::/48', 'fd00:1::/48'],
      ['-s 10.1.0.0/16 -d 10.1.0.0/16 -j ACCEPT', '-s fd00:1::/48 -d fd00:1::/48 -j ACCEPT', '-s fd00:2::/48 -d fd00:2::/48 -j ACCEPT', '-s fd00:1::/48 -d fd00:2::/48 -j DROP', '-s fd00:2::/48 -d fd00:1::/48 -j DROP'],
    ],
    [
      // fd00:1:2::/48 inside fd00::/16: isolated from the rest of it, as nested v4 Networks are.
      ['fd00::/16', 'fd00:1:2::/48'],
      ['-s fd00:1:2::/48 -d fd00::/16 -j DROP', '-s fd00::/16 -d fd00:1:2::/48 -j DROP', '-s fd00:1:2::/48 -d fd00:1:2::/48 -j ACCEPT', '-s fd00::/16 -d fd00::/16 -j ACCEPT'],
    ],
  ];
  for (const [nets, want] of rows) assert.deepEqual(text(nets), want, nets.join(' '));
  assert.deepEqual(isolationPairs(['10.1.0.0/16', 'fd00:1::/48']), [], 'no pair across families');
});

test("flannel's ip6 masquerade rules: the v4 set with ff00::/8 as the multicast exception; ip6tables commands", () => {
  assert.deepEqual(masqRules('fd00:7::/48', 'fd00:7:0:5::/64').map((r) => masqRuleText(r)), [
    '-s fd00:7:0:5::/64 -d fd00:7::/48 -j RETURN',
    '-s fd00:7::/48 -d fd00:7:0:5::/64 -j RETURN',
    '! -s fd00:7::/48 -d fd00:7:0:5::/64 -j RETURN',
    '-s fd00:7::/48 ! -d ff00::/8 -j MASQUERADE --random-fully',
    '! -s fd00:7::/48 -d fd00:7::/48 -j MASQUERADE --random-fully',
  ]);
  assert.equal(masqCommands('fd00:7::/48', 'fd00:7:0:5::/64')[0], 'ip6tables -t nat -A POSTROUTING -s fd00:7:0:5::/64 -d fd00:7::/48 -j RETURN -m comment --comment "overlay-flannel masq fd00:7::/48"');
});

test('NOTRACK for v6: the vxlan port on the public IPv6 address /128, the v6 subnet with itself tracked; ip6tables commands', () => {
  const rules = notrackRules('fd00:7::/48', 'fd00:7:0:5::/64', { publicIP: '2001:db8::1', port: 8472 });
  assert.deepEqual(rules.map(notrackRuleText), [
    '-A PREROUTING -d 2001:db8::1/128 -p udp -m udp --dport 8472 -j CT --notrack',
    '-A OUTPUT -s 2001:db8::1/128 -p udp -m udp --dport 8472 -j CT --notrack',
    '-A PREROUTING -s fd00:7:0:5::/64 -d fd00:7:0:5::/64 -j ACCEPT',
    '-A PREROUTING -s fd00:7::/48 -d fd00:7::/48 -j CT --notrack',
  ]);
  assert.match(notrackCommands('fd00:7::/48', rules)[0]!, /^ip6tables -t raw -A PREROUTING /);
});

test('published ports on v6: HostIP "" publishes both families, "::" and a v6 HostIP v6 only, 0.0.0.0 v4 only; no v6 address → v6 bindings skipped', () => {
  const EID = 'e1'.repeat(32);
  const bind = (p: Partial<PortBinding>): PortBinding => ({ proto: 6, ip: '', port: 80, hostIP: '', hostPort: 8080, hostPortEnd: 8080, ...p });
  const pre = (rules: ReturnType<typeof portRules>['rules']) => rules.filter((r) => r.chain === 'PREROUTING').map(portRuleText);
  const c = (x: string) => `-m comment --comment "overlay-flannel port e1e1e1e1e1e1 ${x}"`;
  const binds = [bind({}), bind({ hostIP: '0.0.0.0', hostPort: 8081 }), bind({ hostIP: '::', hostPort: 8082 }), bind({ proto: 17, port: 53, hostIP: '2001:DB8::1', hostPort: 5353, hostPortEnd: 5353 })];
  const dual = portRules(EID, '10.9.5.2', binds, 'fd00:9:0:5::2/64');
  assert.deepEqual(dual.skipped, []);
  assert.deepEqual(pre(dual.rules), [
    `-A PREROUTING -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 8080 ${c('tcp *:8080 > 10.9.5.2:80')} -j DNAT --to-destination 10.9.5.2:80`,
    `-A PREROUTING -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 8080 ${c('tcp *:8080 > [fd00:9:0:5::2]:80')} -j DNAT --to-destination [fd00:9:0:5::2]:80`,
    `-A PREROUTING -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 8081 ${c('tcp *:8081 > 10.9.5.2:80')} -j DNAT --to-destination 10.9.5.2:80`,
    `-A PREROUTING -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 8082 ${c('tcp *:8082 > [fd00:9:0:5::2]:80')} -j DNAT --to-destination [fd00:9:0:5::2]:80`,
    `-A PREROUTING -d 2001:db8::1/128 -p udp -m udp --dport 5353 ${c('udp [2001:db8::1]:5353 > [fd00:9:0:5::2]:53')} -j DNAT --to-destination [fd00:9:0:5::2]:53`,
  ]);
  assert.ok(dual.rules.some((r) => r.chain === 'OUTPUT' && portRuleText(r).startsWith('-A OUTPUT ! -d ::1/128 -m addrtype')), 'v6 OUTPUT leaves loopback alone');
  const v4 = portRules(EID, '10.9.5.2', binds);
  assert.equal(v4.skipped.length, 2);
  assert.ok(v4.rules.every((r) => !r.toAddress.includes(':')));
  // A v6 rule never clashes with a v4 one of the same port (separate tables); v6 with v6 does.
  const v6only = portRules('f2'.repeat(32), '10.9.5.3', [bind({ hostIP: '::' })], 'fd00:9:0:5::3').rules;
  assert.equal(portConflict('f2'.repeat(32), v6only, v4.rules.map((r) => r.comment)), null);
  assert.equal(portConflict('f2'.repeat(32), v6only, dual.rules.map((r) => r.comment)), 'e1e1e1e1e1e1 tcp *:8080');
});

const log = pino({ level: 'silent' });
const lease = (n: number, v6 = true): Lease => ({
  subnet: parseCidr(`10.7.${n}.0/24`),
  ...(v6 ? { subnet6: parseCidr6(`fd00:7:0:${n}::/64`) } : {}),
  attrs: {
    publicIP: '192.0.2.1',
    backendType: 'vxlan',
    vxlan: { vni: 9, vtepMac: '02:00:00:00:00:01' },
    ...(v6 ? { publicIPv6: '2001:db8::1', vxlan6: { vni: 9, vtepMac: '02:00:00:00:06:01' } } : {}),
  },
  etcdLease: '1',
});
function dataplane(config: string) {
  const kernel = new FakeKernel();
  kernel.forwardChain6 = true; // Docker ≥ 27 with ip6tables: ip6 filter FORWARD exists
  const eth = kernel.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.1/24', cidr6: '2001:db8::1/64' });
  const pub: PublicInterface = { link: eth, address: '192.0.2.1', publicIP: '192.0.2.1', networks: [parseCidr('192.0.2.0/24')], address6: '2001:db8::1', publicIPv6: '2001:db8::1' };
  return { kernel, dp: new OverlayDataplane(kernel, new SerialQueue(), log, parseNetworkConfig(config), pub, { ipMasq: true, notrack: true }) };
}

test('a dual-stack dataplane writes the v4 and the v6 rule sets, follows a v6 subnet change, and removes both on detach', async () => {
  const { kernel, dp } = dataplane('{"Network":"10.7.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:7::/48","Backend":{"Type":"vxlan","VNI":9}}');
  await dp.attach(lease(1));
  await dp.idle();
  assert.deepEqual([...kernel.forwardAccept].sort(), ['10.7.0.0/16', 'fd00:7::/48']);
  assert.deepEqual([...kernel.masquerade].sort(), [['10.7.0.0/16', '10.7.1.0/24'], ['fd00:7::/48', 'fd00:7:0:1::/64']]);
  assert.deepEqual(kernel.notrack.get('fd00:7::/48'), notrackRules('fd00:7::/48', 'fd00:7:0:1::/64', { publicIP: '2001:db8::1', port: 8472 }).map(notrackRuleText));
  assert.equal(kernel.notrack.get('10.7.0.0/16')?.length, 4);
  await dp.attach(lease(2));
  await dp.idle();
  assert.equal(kernel.masquerade.get('fd00:7::/48'), 'fd00:7:0:2::/64');
  kernel.masquerade.delete('fd00:7::/48'); // someone flushed ip6 nat
  await dp.requestSync('full');
  assert.equal(kernel.masquerade.get('fd00:7::/48'), 'fd00:7:0:2::/64', 'repaired on a full sync');
  await dp.detach();
  assert.deepEqual([kernel.masquerade.size, kernel.notrack.size], [0, 0]);
});

test('a v4-only overlay writes no v6 rule; a dual-stack lease without its v6 half gets the v6 FORWARD accepts only', async () => {
  const v4 = dataplane('{"Network":"10.7.0.0/16","Backend":{"Type":"vxlan","VNI":9}}');
  await v4.dp.attach(lease(1, false));
  await v4.dp.idle();
  assert.deepEqual([...v4.kernel.forwardAccept, ...v4.kernel.masquerade.keys(), ...v4.kernel.notrack.keys()], ['10.7.0.0/16', '10.7.0.0/16', '10.7.0.0/16']);
  await v4.dp.detach();
  const dual = dataplane('{"Network":"10.7.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:7::/48","Backend":{"Type":"vxlan","VNI":9}}');
  await dual.dp.attach(lease(1, false));
  await dual.dp.idle();
  assert.ok(dual.kernel.forwardAccept.has('fd00:7::/48'));
  assert.deepEqual([...dual.kernel.masquerade.keys(), ...dual.kernel.notrack.keys()], ['10.7.0.0/16', '10.7.0.0/16']);
  await dual.dp.detach();
});
