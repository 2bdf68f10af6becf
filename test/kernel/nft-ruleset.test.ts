/**
 * The three nftables writers that only the Docker labs exercised — FORWARD accept (nft-forward),
 * the FORWARD head block of intra-overlay accepts and isolation drops (nft-isolation) and
 * published ports (nft-ports) — against the real kernel in the
 * scratch netns, through their shared "rules found by comment" helper (nft-ruleset.ts): where new
 * rules go (append / head, in which order), what counts as ours, what is deleted (stale rules,
 * extra copies or not), which chains are created and when 'no-chain' is the answer. The host's
 * tables are made the way dockerd makes them (iptables-nft) and every check reads back with
 * `iptables -S`, so our rules must stay readable by iptables (and dockerd).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { ensureForwardAccept } from '../../src/kernel/nft-forward';
import { ensureOverlayIsolation } from '../../src/kernel/nft-isolation';
import { ensurePorts, removePorts } from '../../src/kernel/nft-ports';
import { portRules } from '../../src/domain/port-rules';
import { forwardHeadRules } from '../../src/domain/forward-head';
import { inScratchNetns, nftTableExists, ownNftTables, SKIP_REASON } from './netns';

const ipt = (table: string, ...args: string[]): string => execFileSync('iptables', ['-t', table, ...args], { encoding: 'utf8' });
/** `nft add rule ip <table> <chain> …`: a copy of one of our rules, comment as rule user data like ours
 *  (`iptables -m comment` would write an xt comment match instead, which is not ours). */
const nft = (table: string, chain: string, ...rule: string[]): string => execFileSync('nft', ['add', 'rule', 'ip', table, chain, ...rule], { encoding: 'utf8' });
const lines = (table: string, chain: string): string[] => ipt(table, '-S', chain).trim().split('\n').filter((l) => l.startsWith('-A'));
const [A, B, C, D] = ['10.61.0.0/16', '10.62.0.0/16', '10.63.0.0/16', '10.64.0.0/16'];
const accept = (n: string, dir: 'src' | 'dst'): string => `-A FORWARD ${dir === 'src' ? '-s' : '-d'} ${n} -m comment --comment "overlay-flannel ${n} ${dir}" -j ACCEPT`;
const drop = (from: string, to: string): string => `-A FORWARD -s ${from} -d ${to} -m comment --comment "overlay-flannel isolate ${from} ${to}" -j DROP`;
const intra = (n: string): string => `-A FORWARD -s ${n} -d ${n} -m comment --comment "overlay-flannel intra ${n}" -j ACCEPT`;
const head = (nets: string[]): string[] => forwardHeadRules(nets).map((r) => (r.verdict === 'accept' ? intra(r.src) : drop(r.src, r.dst)));
const DOCKER_ACCEPT = '-A FORWARD -o docker0 -j ACCEPT';
const EP = 'aaaaaaaaaaaa0123456789';
const EP2 = 'bbbbbbbbbbbb0123456789';
const published = (ep: string, address: string, binds: [number, number, string?][]) =>
  portRules(ep, address, binds.map(([hostPort, port, hostIP]) => ({ proto: 6, ip: '', hostPort, hostPortEnd: hostPort, port, hostIP: hostIP ?? '' }))).rules;
const dnat = (ep: string, chain: 'PREROUTING' | 'OUTPUT', hostPort: number, to: string): string =>
  `-A ${chain} ${chain === 'OUTPUT' ? '! -d 127.0.0.0/8 ' : ''}-p tcp -m addrtype --dst-type LOCAL -m tcp --dport ${hostPort} -m comment --comment "overlay-flannel port ${ep.slice(0, 12)} tcp *:${hostPort} > ${to}" -j DNAT --to-destination ${to}`;
const DOCKER_JUMP = '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER';

if (!inScratchNetns()) {
  describe('nftables rules found by comment', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  describe('nftables rules found by comment: FORWARD accept, overlay isolation, published ports', () => {
    ownNftTables('filter', 'nat');

    it('without ip filter FORWARD / ip nat: nothing is created, the results say so', async () => {
      assert.equal(await ensureForwardAccept(A), 'no-chain');
      assert.deepEqual(await ensureOverlayIsolation([A, B]), { state: 'no-chain' });
      assert.equal(await ensurePorts(EP, published(EP, '10.61.1.2', [[8080, 80]])), 'no-chain');
      assert.equal(await ensurePorts(EP, []), 'present');
      assert.equal(await removePorts(EP), 'no-chain');
      assert.equal(nftTableExists('filter'), false);
      assert.equal(nftTableExists('nat'), false);
    });

    it('FORWARD accept rules: appended after the host rules, once; a deleted one comes back; a second copy stays', async () => {
      ipt('filter', '-P', 'FORWARD', 'DROP'); // what dockerd does on a fresh host
      ipt('filter', '-A', 'FORWARD', '-o', 'docker0', '-j', 'ACCEPT');
      assert.equal(await ensureForwardAccept(A), 'added');
      assert.deepEqual(lines('filter', 'FORWARD'), [DOCKER_ACCEPT, accept(A, 'src'), accept(A, 'dst')]);
      assert.equal(await ensureForwardAccept(A), 'present');
      ipt('filter', '-D', 'FORWARD', '-d', A, '-m', 'comment', '--comment', `overlay-flannel ${A} dst`, '-j', 'ACCEPT');
      assert.equal(await ensureForwardAccept(A), 'added');
      assert.deepEqual(lines('filter', 'FORWARD'), [DOCKER_ACCEPT, accept(A, 'src'), accept(A, 'dst')]);
      nft('filter', 'FORWARD', 'ip', 'saddr', A, 'counter', 'accept', 'comment', `"overlay-flannel ${A} src"`);
      assert.equal(await ensureForwardAccept(A), 'present');
      assert.equal(await ensureForwardAccept(B), 'added');
      assert.deepEqual(lines('filter', 'FORWARD'), [DOCKER_ACCEPT, accept(A, 'src'), accept(A, 'dst'), accept(A, 'src'), accept(B, 'src'), accept(B, 'dst')]);
    });

    it('FORWARD head block (no DOCKER-USER jump here): intra accepts, then drops, above every accept rule; rewritten whole when anything differs', async () => {
      const accepts = lines('filter', 'FORWARD');
      assert.deepEqual(await ensureOverlayIsolation([A, C, B]), { state: 'ok', added: 9, removed: 0 });
      assert.deepEqual(lines('filter', 'FORWARD'), [...head([A, B, C]), ...accepts]);
      assert.deepEqual(head([A, B, C]).slice(0, 4), [intra(A), intra(B), intra(C), drop(A, B)]);
      assert.deepEqual(await ensureOverlayIsolation([B, A, C]), { state: 'ok', added: 0, removed: 0 });
      assert.deepEqual(await ensureOverlayIsolation([A, B, D]), { state: 'ok', added: 9, removed: 9 });
      assert.deepEqual(lines('filter', 'FORWARD'), [...head([A, B, D]), ...accepts]);
      nft('filter', 'FORWARD', 'ip', 'saddr', A, 'ip', 'daddr', B, 'counter', 'drop', 'comment', `"overlay-flannel isolate ${A} ${B}"`);
      assert.deepEqual(await ensureOverlayIsolation([A, B, D]), { state: 'ok', added: 9, removed: 10 });
      assert.equal(lines('filter', 'FORWARD').filter((l) => l === drop(A, B)).length, 1);
      assert.deepEqual(await ensureOverlayIsolation([A]), { state: 'ok', added: 1, removed: 9 });
      assert.deepEqual(lines('filter', 'FORWARD'), [intra(A), ...accepts]);
      assert.deepEqual(await ensureOverlayIsolation([]), { state: 'ok', added: 0, removed: 1 });
      assert.deepEqual(lines('filter', 'FORWARD'), accepts);
    });

    it('published ports: base chains made in a nat table without them; rules at the head in order; stale ones deleted', async () => {
      ipt('nat', '-N', 'DOCKER'); // dockerd's nat table, before it has written PREROUTING/OUTPUT
      const web = published(EP, '10.61.1.2', [[8080, 80], [8081, 81]]);
      assert.equal(await ensurePorts(EP, web), 'updated');
      assert.match(execFileSync('nft', ['list', 'chain', 'ip', 'nat', 'PREROUTING'], { encoding: 'utf8' }), /type nat hook prerouting priority dstnat; policy accept;/);
      assert.match(execFileSync('nft', ['list', 'chain', 'ip', 'nat', 'OUTPUT'], { encoding: 'utf8' }), /type nat hook output priority (dstnat|-100); policy accept;/);
      assert.deepEqual(lines('nat', 'PREROUTING'), [dnat(EP, 'PREROUTING', 8080, '10.61.1.2:80'), dnat(EP, 'PREROUTING', 8081, '10.61.1.2:81')]);
      assert.deepEqual(lines('nat', 'OUTPUT'), [dnat(EP, 'OUTPUT', 8080, '10.61.1.2:80'), dnat(EP, 'OUTPUT', 8081, '10.61.1.2:81')]);
      assert.equal(await ensurePorts(EP, web), 'present');

      ipt('nat', '-A', 'PREROUTING', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'DOCKER');
      assert.equal(await ensurePorts(EP, published(EP, '10.61.1.2', [[8081, 81], [9000, 90], [9001, 91]])), 'updated');
      assert.deepEqual(lines('nat', 'PREROUTING'), [
        dnat(EP, 'PREROUTING', 9000, '10.61.1.2:90'),
        dnat(EP, 'PREROUTING', 9001, '10.61.1.2:91'),
        dnat(EP, 'PREROUTING', 8081, '10.61.1.2:81'),
        DOCKER_JUMP,
      ]);
      assert.deepEqual(lines('nat', 'OUTPUT'), [dnat(EP, 'OUTPUT', 9000, '10.61.1.2:90'), dnat(EP, 'OUTPUT', 9001, '10.61.1.2:91'), dnat(EP, 'OUTPUT', 8081, '10.61.1.2:81')]);
    });

    it('published ports: another endpoint cannot take a published host port; remove deletes only the endpoint’s rules', async () => {
      await assert.rejects(ensurePorts(EP2, published(EP2, '10.61.1.3', [[9000, 90]])), /host port is already published by endpoint aaaaaaaaaaaa \(tcp \*:9000\)/);
      assert.equal(await ensurePorts(EP2, published(EP2, '10.61.1.3', [[7000, 70]])), 'updated');
      assert.equal(lines('nat', 'PREROUTING')[0], dnat(EP2, 'PREROUTING', 7000, '10.61.1.3:70'));
      assert.equal(await removePorts(EP), 6);
      assert.equal(await removePorts(EP), 0);
      assert.deepEqual(lines('nat', 'PREROUTING'), [dnat(EP2, 'PREROUTING', 7000, '10.61.1.3:70'), DOCKER_JUMP]);
      assert.deepEqual(lines('nat', 'OUTPUT'), [dnat(EP2, 'OUTPUT', 7000, '10.61.1.3:70')]);
      assert.equal(await ensurePorts(EP2, []), 'updated');
      assert.deepEqual(lines('nat', 'PREROUTING'), [DOCKER_JUMP]);
      assert.equal(await ensurePorts(EP2, []), 'present');
    });
  });
}
