/**
 * The conntrack bypass (NOTRACK) rules over nftables netlink against the real kernel, in the
 * scratch netns: `ip raw` does not exist at first (no one makes it on a Docker host), so the writer
 * creates table and chains as iptables-nft would; every assertion reads back with
 * `iptables -t raw -S`, so the rules must stay readable by iptables. A last check sends a real
 * packet and reads the rule's counter.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { ensureNotrack, removeNotrack } from '../../src/kernel/nft-notrack';
import { notrackRules, notrackRuleText } from '../../src/domain/notrack-rules';
import { inScratchNetns, ownNftTables, SKIP_REASON } from './netns';

const ipt = (...args: string[]): string => execFileSync('iptables', ['-t', 'raw', ...args], { encoding: 'utf8' });
const lines = (): string[] => ipt('-S').trim().split('\n').filter((l) => l.startsWith('-A'));
const NET = '10.77.0.0/16';
const expected = (subnet: string, vxlan: { publicIP: string; port: number } | null): string[] => {
  const c = `-m comment --comment "overlay-flannel notrack ${NET}"`;
  const rules = notrackRules(NET, subnet, vxlan);
  const order = (chain: string) => rules.filter((r) => r.chain === chain).map((r) => notrackRuleText(r).replace(/ -j (CT --notrack|ACCEPT)$/, ` ${c} -j $1`));
  return [...order('PREROUTING'), ...order('OUTPUT')];
};

if (!inScratchNetns()) {
  describe('nftables NOTRACK rules', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  describe('nftables NOTRACK rules (ip raw PREROUTING/OUTPUT)', () => {
    ownNftTables('raw');

    it('creates ip raw and its base chains as iptables-nft would; the rules read back with iptables -S', async () => {
      const rules = notrackRules(NET, '10.77.3.0/24', { publicIP: '192.0.2.9', port: 8472 });
      assert.equal(rules.length, 4);
      assert.equal(await ensureNotrack(NET, rules), 'updated');
      const listing = execFileSync('nft', ['list', 'table', 'ip', 'raw'], { encoding: 'utf8' });
      assert.match(listing, /chain PREROUTING \{\s*type filter hook prerouting priority raw; policy accept;/);
      assert.match(listing, /chain OUTPUT \{\s*type filter hook output priority raw; policy accept;/);
      const got = lines();
      assert.deepEqual(got, expected('10.77.3.0/24', { publicIP: '192.0.2.9', port: 8472 }));
      assert.ok(got.includes(`-A PREROUTING -d 192.0.2.9/32 -p udp -m udp --dport 8472 -m comment --comment "overlay-flannel notrack ${NET}" -j CT --notrack`), got.join('\n'));
      assert.equal(await ensureNotrack(NET, rules), 'present');
    });

    it('keeps the host\'s own raw rules; a changed subnet or a rule deleted by hand is rewritten; remove takes only ours', async () => {
      ipt('-A', 'PREROUTING', '-s', '198.51.100.0/24', '-j', 'CT', '--notrack'); // someone else's
      const rules = notrackRules(NET, '10.77.9.0/24', null);
      assert.equal(await ensureNotrack(NET, rules), 'updated');
      let got = lines();
      assert.ok(got.includes('-A PREROUTING -s 198.51.100.0/24 -j CT --notrack'), got.join('\n'));
      assert.deepEqual(got.filter((l) => l.includes('overlay-flannel')), expected('10.77.9.0/24', null));
      const victim = got.find((l) => l.includes('overlay-flannel'))!;
      ipt(...victim.replace('-A ', '-D ').match(/"[^"]*"|\S+/g)!.map((x) => x.replace(/^"|"$/g, '')));
      assert.equal(await ensureNotrack(NET, rules), 'updated');
      assert.deepEqual(lines().filter((l) => l.includes('overlay-flannel')), expected('10.77.9.0/24', null));
      assert.equal(await removeNotrack(NET), 2);
      got = lines();
      assert.deepEqual(got, ['-A PREROUTING -s 198.51.100.0/24 -j CT --notrack']);
      assert.equal(await removeNotrack(NET), 0);
    });

    it('real traffic: this subnet to itself leaves the chain at the ACCEPT (stays tracked), the rest of the Network hits NOTRACK', async () => {
      const port = 40000 + Math.floor(Math.random() * 20000);
      const addrs = ['10.77.3.1', '10.77.3.2', '10.77.5.1'];
      for (const a of addrs) execFileSync('ip', ['addr', 'add', `${a}/32`, 'dev', 'lo']);
      try {
        assert.equal(await ensureNotrack(NET, notrackRules(NET, '10.77.3.0/24', null)), 'updated');
        const send = async (from: string, n: number): Promise<void> => {
          const sock = createSocket('udp4');
          await new Promise<void>((res) => sock.bind(0, from, () => res()));
          for (let i = 0; i < n; i++) await new Promise<void>((res, rej) => sock.send('x', port, '10.77.3.2', (e) => (e ? rej(e) : res())));
          sock.close();
        };
        // A listener, so no ICMP port-unreachable comes back through the chain.
        const sink = createSocket('udp4');
        await new Promise<void>((res) => sink.bind(port, '10.77.3.2', () => res()));
        await send('10.77.3.1', 3); // same subnet
        await send('10.77.5.1', 5); // another host's subnet of the Network
        sink.close();
        const counters = execFileSync('iptables', ['-t', 'raw', '-L', 'PREROUTING', '-v', '-n', '-x'], { encoding: 'utf8' }).split('\n');
        const count = (target: string, src: string): number => Number(counters.find((l) => l.includes(target) && l.includes(` ${src} `))?.trim().split(/\s+/)[0] ?? -1);
        assert.equal(count('ACCEPT', '10.77.3.0/24'), 3, counters.join('\n'));
        assert.equal(count('CT notrack', '10.77.0.0/16'), 5, counters.join('\n'));
      } finally {
        for (const a of addrs) execFileSync('ip', ['addr', 'del', `${a}/32`, 'dev', 'lo']);
        await removeNotrack(NET);
      }
    });

    it('real traffic hits the OUTPUT rule (a datagram on lo from the "public IP" to the vxlan port)', async () => {
      // 127.0.0.1 as "public IP": our OUTPUT rule for udp/<port> from it; one datagram to a closed port.
      const port = 40000 + Math.floor(Math.random() * 20000);
      assert.equal(await ensureNotrack(NET, notrackRules(NET, '10.77.3.0/24', { publicIP: '127.0.0.1', port })), 'updated');
      execFileSync('bash', ['-c', `echo -n x > /dev/udp/127.0.0.1/${port} || true`]);
      const counters = execFileSync('iptables', ['-t', 'raw', '-L', 'OUTPUT', '-v', '-n', '-x'], { encoding: 'utf8' });
      const line = counters.split('\n').find((l) => l.includes(`dpt:${port}`));
      assert.ok(line && Number(line.trim().split(/\s+/)[0]) >= 1, `the OUTPUT rule counted the datagram:\n${counters}`);
      await removeNotrack(NET);
    });
  });
}
