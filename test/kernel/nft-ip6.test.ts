/**
 * The firewall's IPv6 half (issue 21) over nftables netlink against the real kernel, in the scratch
 * netns, read back with ip6tables (iptables-nft's `ip6` tables), so every rule stays readable by
 * ip6tables and by a dockerd that drives it (Docker ≥ 27 with ip6tables on):
 *  - the FORWARD head block (accept within, drop between the IPv6Networks) in `ip6 filter`, made
 *    when missing, and right after DOCKER-USER in a chain laid out the way Docker lays it out, with
 *    policy DROP; flannel's src/dst accepts appended;
 *  - flannel's ip6 masquerade rules (ff00::/8 the multicast exception) in `ip6 nat`, made when missing;
 *  - NOTRACK in `ip6 raw`, the vxlan rules on the public IPv6 address /128;
 *  - published ports of an endpoint with both addresses: v4 DNAT in `ip nat`, v6 in `ip6 nat`;
 *  - the IPv4 tables untouched by all of it.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { ensureForwardAccept } from '../../src/kernel/nft-forward';
import { ensureOverlayIsolation } from '../../src/kernel/nft-isolation';
import { ensureMasquerade, removeMasquerade } from '../../src/kernel/nft-masq';
import { ensureNotrack, removeNotrack } from '../../src/kernel/nft-notrack';
import { ensurePorts, removePorts } from '../../src/kernel/nft-ports';
import { notrackRules } from '../../src/domain/notrack-rules';
import { portRules } from '../../src/domain/port-rules';
import { inScratchNetns, nftTableExists, SKIP_REASON } from './netns';

const ip6t = (...args: string[]): string => execFileSync('ip6tables', args, { encoding: 'utf8' });
const chain = (table: string, name: string): string[] => ip6t('-t', table, '-S', name).trim().split('\n').filter((l) => l.startsWith('-A'));
const A = 'fd61::/48';
const B = 'fd62:1::/48';
const SUB = 'fd61:0:0:5::/64';
const c = (text: string): string => `-m comment --comment "${text}"`;
const OURS = [
  `-A FORWARD -s ${A} -d ${A} ${c(`overlay-flannel intra ${A}`)} -j ACCEPT`,
  `-A FORWARD -s ${B} -d ${B} ${c(`overlay-flannel intra ${B}`)} -j ACCEPT`,
  `-A FORWARD -s ${A} -d ${B} ${c(`overlay-flannel isolate ${A} ${B}`)} -j DROP`,
  `-A FORWARD -s ${B} -d ${A} ${c(`overlay-flannel isolate ${B} ${A}`)} -j DROP`,
];

if (!inScratchNetns()) {
  describe('nftables ip6 firewall', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  describe('nftables ip6 firewall (ip6 filter FORWARD, ip6 nat, ip6 raw) read back with ip6tables', () => {
    const drop = (): void => {
      for (const t of ['filter', 'nat', 'raw']) spawnSync('nft', ['delete', 'table', 'ip6', t], { stdio: 'ignore' });
    };
    drop();
    after(drop);

    it('no ip6 filter: the head block creates it (policy accept), v4 tables untouched; nothing wanted, nothing made', async () => {
      assert.deepEqual(await ensureOverlayIsolation(['10.61.0.0/16']), { state: 'no-chain' });
      assert.throws(() => execFileSync('nft', ['list', 'table', 'ip6', 'filter'], { stdio: 'ignore' }), 'no v6 Network: no ip6 filter');
      assert.deepEqual(await ensureOverlayIsolation([B, A]), { state: 'no-chain' }, 'the result speaks of ip filter, still missing');
      assert.equal(nftTableExists('filter'), false, 'ip filter not made');
      assert.match(ip6t('-S', 'FORWARD'), /^-P FORWARD ACCEPT$/m);
      assert.deepEqual(chain('filter', 'FORWARD'), OURS);
      drop();
    });

    it("Docker's ip6 layout (policy DROP, DOCKER-USER first): the block right after it; flannel's accepts appended once", async () => {
      ip6t('-P', 'FORWARD', 'DROP');
      for (const x of ['DOCKER-USER', 'DOCKER-ISOLATION-STAGE-1']) {
        ip6t('-N', x);
        ip6t('-A', x, '-j', 'RETURN');
      }
      ip6t('-A', 'FORWARD', '-j', 'DOCKER-USER');
      ip6t('-A', 'FORWARD', '-j', 'DOCKER-ISOLATION-STAGE-1');
      ip6t('-A', 'FORWARD', '-o', 'br-t1', '-j', 'ACCEPT');
      await ensureOverlayIsolation([A, B]);
      assert.equal(await ensureForwardAccept(A), 'added');
      assert.equal(await ensureForwardAccept(A), 'present');
      assert.deepEqual(chain('filter', 'FORWARD'), [
        '-A FORWARD -j DOCKER-USER',
        ...OURS,
        '-A FORWARD -j DOCKER-ISOLATION-STAGE-1',
        '-A FORWARD -o br-t1 -j ACCEPT',
        `-A FORWARD -s ${A} ${c(`overlay-flannel ${A} src`)} -j ACCEPT`,
        `-A FORWARD -d ${A} ${c(`overlay-flannel ${A} dst`)} -j ACCEPT`,
      ]);
      assert.match(ip6t('-S', 'FORWARD'), /^-P FORWARD DROP$/m, 'the policy is left alone');
      const r = await ensureOverlayIsolation([A]);
      assert.deepEqual(r, { state: 'no-chain' });
      assert.deepEqual(chain('filter', 'FORWARD').slice(0, 3), ['-A FORWARD -j DOCKER-USER', `-A FORWARD -s ${A} -d ${A} ${c(`overlay-flannel intra ${A}`)} -j ACCEPT`, '-A FORWARD -j DOCKER-ISOLATION-STAGE-1']);
    });

    it("flannel's ip6 masquerade rules: ip6 nat made when missing, at the head of POSTROUTING, rewritten for a new subnet, removed", async () => {
      assert.equal(await removeMasquerade(A), 'no-chain');
      assert.equal(await ensureMasquerade(A, SUB), 'updated');
      assert.equal(await ensureMasquerade(A, SUB), 'present');
      const masq = (sub: string): string[] => [
        `-A POSTROUTING -s ${sub} -d ${A} ${c(`overlay-flannel masq ${A}`)} -j RETURN`,
        `-A POSTROUTING -s ${A} -d ${sub} ${c(`overlay-flannel masq ${A}`)} -j RETURN`,
        `-A POSTROUTING ! -s ${A} -d ${sub} ${c(`overlay-flannel masq ${A}`)} -j RETURN`,
        `-A POSTROUTING -s ${A} ! -d ff00::/8 ${c(`overlay-flannel masq ${A}`)} -j MASQUERADE --random-fully`,
        `-A POSTROUTING ! -s ${A} -d ${A} ${c(`overlay-flannel masq ${A}`)} -j MASQUERADE --random-fully`,
      ];
      assert.deepEqual(chain('nat', 'POSTROUTING'), masq(SUB));
      assert.match(execFileSync('nft', ['list', 'chain', 'ip6', 'nat', 'POSTROUTING'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }), /type nat hook postrouting priority srcnat; policy accept;/);
      ip6t('-t', 'nat', '-A', 'POSTROUTING', '-s', 'fd00:172::/64', '!', '-o', 'docker0', '-j', 'MASQUERADE');
      assert.equal(await ensureMasquerade(A, 'fd61:0:0:9::/64'), 'updated');
      assert.deepEqual(chain('nat', 'POSTROUTING'), [...masq('fd61:0:0:9::/64'), '-A POSTROUTING -s fd00:172::/64 ! -o docker0 -j MASQUERADE']);
      assert.equal(await removeMasquerade(A), 5);
      assert.deepEqual(chain('nat', 'POSTROUTING'), ['-A POSTROUTING -s fd00:172::/64 ! -o docker0 -j MASQUERADE']);
      assert.equal(nftTableExists('nat'), false, 'ip nat not made');
    });

    it('NOTRACK in ip6 raw: the vxlan rules on the public address /128, this subnet accepted, the rest untracked', async () => {
      const rules = notrackRules(A, SUB, { publicIP: '2001:db8:61::a', port: 8472 });
      assert.equal(await ensureNotrack(A, rules), 'updated');
      assert.equal(await ensureNotrack(A, rules), 'present');
      const m = c(`overlay-flannel notrack ${A}`);
      assert.deepEqual(chain('raw', 'PREROUTING'), [
        `-A PREROUTING -d 2001:db8:61::a/128 -p udp -m udp --dport 8472 ${m} -j CT --notrack`,
        `-A PREROUTING -s ${SUB} -d ${SUB} ${m} -j ACCEPT`,
        `-A PREROUTING -s ${A} -d ${A} ${m} -j CT --notrack`,
      ]);
      assert.deepEqual(chain('raw', 'OUTPUT'), [`-A OUTPUT -s 2001:db8:61::a/128 -p udp -m udp --dport 8472 ${m} -j CT --notrack`]);
      assert.equal(await removeNotrack(A), 4);
      assert.equal(nftTableExists('raw'), false, 'ip raw not made');
    });

    it('published ports of a dual-stack endpoint: v4 DNAT in ip nat, v6 DNAT in ip6 nat (made when missing), read back, removed', async () => {
      const eid = 'e6'.repeat(32);
      const { rules } = portRules(eid, '10.61.5.2', [{ proto: 6, ip: '', port: 80, hostIP: '', hostPort: 8080, hostPortEnd: 8080 }, { proto: 17, ip: '', port: 53, hostIP: '2001:db8:61::a', hostPort: 5353, hostPortEnd: 5353 }], 'fd61:0:0:5::2');
      assert.equal(rules.length, 6);
      try {
        assert.equal(await ensurePorts(eid, rules), 'no-chain', 'no ip nat: nothing (as for v4 alone)');
        execFileSync('iptables', ['-t', 'nat', '-N', 'DOCKER']); // dockerd's table
        assert.equal(await ensurePorts(eid, rules), 'updated');
        assert.equal(await ensurePorts(eid, rules), 'present');
        const v6 = (ch: string) => chain('nat', ch);
        const cm = (x: string) => c(`overlay-flannel port e6e6e6e6e6e6 ${x}`);
        assert.deepEqual(v6('PREROUTING'), [
          // ip6tables prints the protocol before the matches (`-p tcp -m addrtype …`), ours as its own
          `-A PREROUTING -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 8080 ${cm('tcp *:8080 > [fd61:0:0:5::2]:80')} -j DNAT --to-destination [fd61:0:0:5::2]:80`,
          `-A PREROUTING -d 2001:db8:61::a/128 -p udp -m udp --dport 5353 ${cm('udp [2001:db8:61::a]:5353 > [fd61:0:0:5::2]:53')} -j DNAT --to-destination [fd61:0:0:5::2]:53`,
        ]);
        assert.ok(v6('OUTPUT').some((l) => l.startsWith('-A OUTPUT ! -d ::1/128 -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 8080 ')), v6('OUTPUT').join('\n'));
        const v4 = execFileSync('iptables', ['-t', 'nat', '-S', 'PREROUTING'], { encoding: 'utf8' });
        assert.match(v4, /-A PREROUTING -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 8080 .* -j DNAT --to-destination 10\.61\.5\.2:80/);
        assert.doesNotMatch(v4, /fd61/);
        assert.equal(await removePorts(eid), 6);
        assert.deepEqual([v6('PREROUTING'), v6('OUTPUT')], [[], []]);
      } finally {
        spawnSync('nft', ['delete', 'table', 'ip', 'nat'], { stdio: 'ignore' });
      }
    });
  });
}
