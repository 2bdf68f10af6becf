// The NOTRACK rule set (src/domain/notrack-rules.ts) as a table, and its iptables text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { notrackCommands, notrackRules, notrackRuleText } from '../../src/domain/notrack-rules';

test('notrackRules: vxlan port in and out, then this subnet with itself accepted (tracked), the rest of the Network untracked', () => {
  const rows: [string, string, { publicIP: string; port: number } | null, string[]][] = [
    [
      '10.5.0.0/22',
      '10.5.1.0/24',
      { publicIP: '192.0.2.3', port: 8472 },
      [
        '-A PREROUTING -d 192.0.2.3/32 -p udp -m udp --dport 8472 -j CT --notrack',
        '-A OUTPUT -s 192.0.2.3/32 -p udp -m udp --dport 8472 -j CT --notrack',
        '-A PREROUTING -s 10.5.1.0/24 -d 10.5.1.0/24 -j ACCEPT',
        '-A PREROUTING -s 10.5.0.0/22 -d 10.5.0.0/22 -j CT --notrack',
      ],
    ],
    ['10.6.0.0/16', '10.6.0.0/17', null, ['-A PREROUTING -s 10.6.0.0/17 -d 10.6.0.0/17 -j ACCEPT', '-A PREROUTING -s 10.6.0.0/16 -d 10.6.0.0/16 -j CT --notrack']],
    ['10.7.0.0/24', '10.7.0.0/24', null, ['-A PREROUTING -s 10.7.0.0/24 -d 10.7.0.0/24 -j ACCEPT', '-A PREROUTING -s 10.7.0.0/24 -d 10.7.0.0/24 -j CT --notrack']],
  ];
  for (const [net, sub, vx, want] of rows) assert.deepEqual(notrackRules(net, sub, vx).map(notrackRuleText), want, `${net} ${sub}`);
  // Same-subnet traffic is never bypassed (published-port replies on this host stay un-NATed): the
  // ACCEPT that leaves the raw chain comes before the Network-wide NOTRACK, whatever the sizes.
  for (const [net, sub] of [['10.5.0.0/16', '10.5.3.0/24'], ['10.8.0.0/8', '10.8.128.0/17']] as const) {
    const pre = notrackRules(net, sub, { publicIP: '192.0.2.1', port: 4789 }).filter((r) => r.chain === 'PREROUTING');
    const acceptAt = pre.findIndex((r) => r.verdict === 'accept' && r.src === sub && r.dst === sub);
    const notrackAt = pre.findIndex((r) => r.verdict === 'notrack' && r.src === net && r.dst === net);
    assert.ok(acceptAt >= 0 && notrackAt > acceptAt, `${net} ${sub}: accept ${acceptAt}, notrack ${notrackAt}`);
  }
});

test('notrackCommands carry the comment for iptables-legacy hosts', () => {
  assert.deepEqual(notrackCommands('10.6.0.0/16', notrackRules('10.6.0.0/16', '10.6.0.0/17', null)).at(0), 'iptables -t raw -A PREROUTING -s 10.6.0.0/17 -d 10.6.0.0/17 -j ACCEPT -m comment --comment "overlay-flannel notrack 10.6.0.0/16"');
});
