// The NOTRACK rule set (src/domain/notrack-rules.ts) as a table, and its iptables text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { notrackCommands, notrackRules, notrackRuleText } from '../../src/domain/notrack-rules';

test('notrackRules: vxlan port in and out, then this subnet paired with every other block of the Network', () => {
  const rows: [string, string, { publicIP: string; port: number } | null, string[]][] = [
    [
      '10.5.0.0/22',
      '10.5.1.0/24',
      { publicIP: '192.0.2.3', port: 8472 },
      [
        '-A PREROUTING -d 192.0.2.3/32 -p udp -m udp --dport 8472 -j CT --notrack',
        '-A OUTPUT -s 192.0.2.3/32 -p udp -m udp --dport 8472 -j CT --notrack',
        '-A PREROUTING -s 10.5.1.0/24 -d 10.5.0.0/24 -j CT --notrack',
        '-A PREROUTING -s 10.5.0.0/24 -d 10.5.1.0/24 -j CT --notrack',
        '-A PREROUTING -s 10.5.1.0/24 -d 10.5.2.0/23 -j CT --notrack',
        '-A PREROUTING -s 10.5.2.0/23 -d 10.5.1.0/24 -j CT --notrack',
      ],
    ],
    ['10.6.0.0/16', '10.6.0.0/17', null, ['-A PREROUTING -s 10.6.0.0/17 -d 10.6.128.0/17 -j CT --notrack', '-A PREROUTING -s 10.6.128.0/17 -d 10.6.0.0/17 -j CT --notrack']],
    ['10.7.0.0/24', '10.7.0.0/24', null, []], // a one-host overlay: nothing crosses hosts
  ];
  for (const [net, sub, vx, want] of rows) assert.deepEqual(notrackRules(net, sub, vx).map(notrackRuleText), want, `${net} ${sub}`);
  // Same-subnet traffic is never bypassed (published-port replies on this host stay un-NATed).
  for (const r of notrackRules('10.5.0.0/16', '10.5.3.0/24', null)) assert.ok(!(r.src === '10.5.3.0/24' && r.dst === '10.5.3.0/24'));
});

test('notrackCommands carry the comment for iptables-legacy hosts', () => {
  assert.deepEqual(notrackCommands('10.6.0.0/16', notrackRules('10.6.0.0/16', '10.6.0.0/17', null)).at(0), 'iptables -t raw -A PREROUTING -s 10.6.0.0/17 -d 10.6.128.0/17 -j CT --notrack -m comment --comment "overlay-flannel notrack 10.6.0.0/16"');
});
