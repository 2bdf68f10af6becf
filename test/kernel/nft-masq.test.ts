/**
 * flannel's ip-masq rules over nftables netlink against the real kernel, in the scratch netns:
 * the table/chain is made the way dockerd makes it (iptables-nft), and every assertion reads the
 * chain back with `iptables -t nat -S`, so the rules must stay readable by iptables (and dockerd).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createNetlinkKernel } from '../../src/kernel';
import { ensureMasquerade, removeMasquerade } from '../../src/kernel/nft-masq';
import { inScratchNetns, nftTableExists, ownNftTables, SKIP_REASON } from './netns';

const ipt = (...args: string[]): string => execFileSync('iptables', ['-t', 'nat', ...args], { encoding: 'utf8' });
const DOCKER_RULE = '-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE';
const masqLines = (network: string, subnet: string): string[] => {
  const c = `-m comment --comment "overlay-flannel masq ${network}"`;
  return [
    `-A POSTROUTING -s ${subnet} -d ${network} ${c} -j RETURN`,
    `-A POSTROUTING -s ${network} -d ${subnet} ${c} -j RETURN`,
    `-A POSTROUTING ! -s ${network} -d ${subnet} ${c} -j RETURN`,
    `-A POSTROUTING -s ${network} ! -d 224.0.0.0/4 ${c} -j MASQUERADE --random-fully`,
    `-A POSTROUTING ! -s ${network} -d ${network} ${c} -j MASQUERADE --random-fully`,
  ];
};
const rules = (): string[] => ipt('-S', 'POSTROUTING').trim().split('\n').filter((l) => l.startsWith('-A'));

if (!inScratchNetns()) {
  describe('nftables masquerade rules', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  describe('nftables masquerade rules (ip nat POSTROUTING)', () => {
    ownNftTables('nat');

    it('without the chain: nothing is created, the result says so', async () => {
      assert.equal(await ensureMasquerade('10.5.0.0/16', '10.5.72.0/24'), 'no-chain');
      assert.equal(await removeMasquerade('10.5.0.0/16'), 'no-chain');
      assert.equal(nftTableExists('nat'), false);
    });

    it('in a nat table without POSTROUTING (dockerd --bridge=none) the base chain is created as iptables-nft would', async () => {
      ipt('-N', 'DOCKER'); // dockerd's table: DOCKER, PREROUTING, OUTPUT, no POSTROUTING
      ipt('-A', 'PREROUTING', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'DOCKER');
      assert.throws(() => execFileSync('nft', ['list', 'chain', 'ip', 'nat', 'POSTROUTING'], { stdio: 'ignore' }));
      assert.equal(await ensureMasquerade('10.5.0.0/16', '10.5.72.0/24'), 'updated');
      assert.match(execFileSync('nft', ['list', 'chain', 'ip', 'nat', 'POSTROUTING'], { encoding: 'utf8' }), /type nat hook postrouting priority srcnat; policy accept;/);
      assert.deepEqual(rules(), masqLines('10.5.0.0/16', '10.5.72.0/24'));
      assert.equal(await removeMasquerade('10.5.0.0/16'), 5);
    });

    it("writes flannel's rules at the head of the chain once, readable by iptables, before Docker's", async () => {
      ipt(...DOCKER_RULE.split(' ')); // dockerd's rule, as iptables-nft writes it
      assert.equal(await ensureMasquerade('10.5.0.0/16', '10.5.72.0/24'), 'updated');
      assert.equal(await ensureMasquerade('10.5.0.0/16', '10.5.72.0/24'), 'present');
      assert.deepEqual(rules(), [...masqLines('10.5.0.0/16', '10.5.72.0/24'), DOCKER_RULE]);
    });

    it('a new subnet replaces the old rules; a rule deleted by hand is repaired', async () => {
      assert.equal(await ensureMasquerade('10.5.0.0/16', '10.5.9.0/24'), 'updated');
      assert.deepEqual(rules(), [...masqLines('10.5.0.0/16', '10.5.9.0/24'), DOCKER_RULE]);
      ipt('-D', 'POSTROUTING', '4');
      assert.equal(rules().length, 5);
      assert.equal(await ensureMasquerade('10.5.0.0/16', '10.5.9.0/24'), 'updated');
      assert.deepEqual(rules(), [...masqLines('10.5.0.0/16', '10.5.9.0/24'), DOCKER_RULE]);
    });

    it('two overlays keep their own rules; removing one leaves the other and Docker’s', async () => {
      const kernel = createNetlinkKernel();
      try {
        assert.equal(await kernel.ensureMasquerade('10.6.0.0/16', '10.6.1.0/24'), 'updated');
        assert.equal(await kernel.ensureMasquerade('10.5.0.0/16', '10.5.9.0/24'), 'present');
        assert.deepEqual(rules(), [...masqLines('10.6.0.0/16', '10.6.1.0/24'), ...masqLines('10.5.0.0/16', '10.5.9.0/24'), DOCKER_RULE]);
        assert.equal(await kernel.removeMasquerade('10.6.0.0/16'), 5);
        assert.equal(await kernel.removeMasquerade('10.6.0.0/16'), 0);
        assert.equal(await kernel.removeMasquerade('10.5.0.0/16'), 5);
        assert.deepEqual(rules(), [DOCKER_RULE]);
      } finally {
        await kernel.close();
      }
    });
  });
}
