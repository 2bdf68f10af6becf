// IP_MASQ and SUBNET_FILE: flannel's rule set as a table, subnet.env byte-exact, settings, the
// FakeKernel's masquerade contract and the dataplane driving it (ensure, subnet change, off, detach).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { masqComment, masqCommands, masqRules, masqRuleText } from '../../src/domain/masq-rules';
import { subnetEnvContent, writeSubnetFile } from '../../src/host/subnet-env';
import { parseCidr } from '../../src/domain/ipv4';
import { loadSettings, SettingsError } from '../../src/config/settings';
import { FakeKernel } from '../fakes/fake-kernel';
import { OverlayDataplane } from '../../src/reconcile/overlay-dataplane';
import { SerialQueue } from '../../src/util/serial-queue';
import { parseNetworkConfig } from '../../src/domain/network-config';
import { Lease } from '../../src/domain/lease';
import { vtepMacFor } from '../../src/domain/mac';
import type { PublicInterface } from '../../src/host/public-interface';

test("the masquerade rules are flannel's v0.20+ set, in flannel's order", () => {
  const cases: [string, string, string[]][] = [
    [
      '10.5.0.0/16',
      '10.5.72.0/24',
      [
        '-s 10.5.72.0/24 -d 10.5.0.0/16 -j RETURN',
        '-s 10.5.0.0/16 -d 10.5.72.0/24 -j RETURN',
        '! -s 10.5.0.0/16 -d 10.5.72.0/24 -j RETURN',
        '-s 10.5.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully',
        '! -s 10.5.0.0/16 -d 10.5.0.0/16 -j MASQUERADE --random-fully',
      ],
    ],
    [
      '172.30.0.0/12',
      '172.30.9.0/28',
      [
        '-s 172.30.9.0/28 -d 172.30.0.0/12 -j RETURN',
        '-s 172.30.0.0/12 -d 172.30.9.0/28 -j RETURN',
        '! -s 172.30.0.0/12 -d 172.30.9.0/28 -j RETURN',
        '-s 172.30.0.0/12 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully',
        '! -s 172.30.0.0/12 -d 172.30.0.0/12 -j MASQUERADE --random-fully',
      ],
    ],
  ];
  for (const [network, subnet, want] of cases) assert.deepEqual(masqRules(network, subnet).map((r) => masqRuleText(r)), want);
  assert.equal(masqRuleText(masqRules('10.5.0.0/16', '10.5.72.0/24')[3]!, false), '-s 10.5.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE');
  assert.equal(masqComment('10.5.0.0/16'), 'overlay-flannel masq 10.5.0.0/16');
  assert.equal(
    masqCommands('10.5.0.0/16', '10.5.72.0/24')[0],
    'iptables -t nat -A POSTROUTING -s 10.5.72.0/24 -d 10.5.0.0/16 -j RETURN -m comment --comment "overlay-flannel masq 10.5.0.0/16"',
  );
});

// flanneld's format (pkg/subnet WriteSubnetFile, docs/flannel-compat.md §7): vxlan over a 1500-byte NIC, --ip-masq.
const FLANNELD_SAMPLE = 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';

test("subnet.env is byte for byte flanneld's", () => {
  assert.equal(subnetEnvContent(parseCidr('10.5.0.0/16'), parseCidr('10.5.72.0/24'), 1450, true), FLANNELD_SAMPLE);
  assert.equal(
    subnetEnvContent(parseCidr('10.1.0.0/16'), parseCidr('10.1.255.0/24'), 1400, false),
    'FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.255.1/24\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=false\n',
  );
});

test('subnet.env is written atomically, its directory created, and a bad path is an error for the caller', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'subnet-env-'));
  try {
    const path = join(dir, 'run', 'flannel', 'subnet.env');
    await writeSubnetFile(path, FLANNELD_SAMPLE);
    assert.equal(readFileSync(path, 'utf8'), FLANNELD_SAMPLE);
    assert.equal(statSync(path).mode & 0o777, 0o644);
    await writeSubnetFile(path, 'FLANNEL_NETWORK=x\n');
    assert.equal(readFileSync(path, 'utf8'), 'FLANNEL_NETWORK=x\n');
    assert.deepEqual(readdirSync(join(dir, 'run', 'flannel')), ['subnet.env']); // no temporary file left
    writeFileSync(join(dir, 'file'), '');
    await assert.rejects(writeSubnetFile(join(dir, 'file', 'subnet.env'), FLANNELD_SAMPLE));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('IP_MASQ and SUBNET_FILE settings', () => {
  assert.equal(loadSettings({}).ipMasq, true);
  assert.equal(loadSettings({}).subnetFile, '/run/flannel/subnet.env');
  for (const [v, want] of [['true', true], ['1', true], ['FALSE', false], ['0', false], [' false ', false]] as const) {
    assert.equal(loadSettings({ IP_MASQ: v }).ipMasq, want, v);
  }
  assert.equal(loadSettings({ SUBNET_FILE: '' }).subnetFile, '');
  assert.equal(loadSettings({ SUBNET_FILE: '/tmp/x.env' }).subnetFile, '/tmp/x.env');
  assert.throws(
    () => loadSettings({ IP_MASQ: 'yes', SUBNET_FILE: 'run/subnet.env' }),
    (e: unknown) => e instanceof SettingsError && e.problems.length === 2 && /IP_MASQ/.test(e.problems[0]!) && /SUBNET_FILE/.test(e.problems[1]!),
  );
});

test('FakeKernel masquerade contract: ensure is idempotent, a new subnet rewrites, remove counts, no chain does nothing', async () => {
  const k = new FakeKernel();
  assert.equal(await k.ensureMasquerade('10.5.0.0/16', '10.5.72.0/24'), 'updated');
  assert.equal(await k.ensureMasquerade('10.5.0.0/16', '10.5.72.0/24'), 'present');
  assert.equal(await k.ensureMasquerade('10.5.0.0/16', '10.5.9.0/24'), 'updated');
  assert.equal(k.masquerade.get('10.5.0.0/16'), '10.5.9.0/24');
  assert.equal(await k.removeMasquerade('10.5.0.0/16'), 5);
  assert.equal(await k.removeMasquerade('10.5.0.0/16'), 0);
  await assert.rejects(k.ensureMasquerade('10.5.0.0/16', 'nope'));
  k.natChain = false;
  assert.equal(await k.ensureMasquerade('10.5.0.0/16', '10.5.72.0/24'), 'no-chain');
  assert.equal(await k.removeMasquerade('10.5.0.0/16'), 'no-chain');
  assert.equal(k.masquerade.size, 0);
});

const log = pino({ level: 'silent' });
const cfg = parseNetworkConfig('{"Network":"10.7.0.0/16","Backend":{"Type":"vxlan","VNI":9}}');
const lease = (third: number): Lease => ({
  subnet: parseCidr(`10.7.${third}.0/24`),
  attrs: { publicIP: '192.0.2.1', backendType: 'vxlan', vxlan: { vni: 9, vtepMac: vtepMacFor(9, '192.0.2.1') } },
  etcdLease: '1',
});
function dataplane(ipMasq: boolean) {
  const kernel = new FakeKernel();
  const eth = kernel.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.1/24' });
  const pub: PublicInterface = { link: eth, address: '192.0.2.1', publicIP: '192.0.2.1', networks: [parseCidr('192.0.2.0/24')] };
  return { kernel, dp: new OverlayDataplane(kernel, new SerialQueue(), log, cfg, pub, { ipMasq, notrack: false }) };
}

test('the dataplane writes the masquerade rules for its subnet, follows a subnet change, repairs them on a full sync and removes them on detach', async () => {
  const { kernel, dp } = dataplane(true);
  await dp.attach(lease(1));
  await dp.idle();
  assert.deepEqual([...kernel.masquerade], [['10.7.0.0/16', '10.7.1.0/24']]);
  await dp.attach(lease(2)); // the lease changed
  await dp.idle();
  assert.deepEqual([...kernel.masquerade], [['10.7.0.0/16', '10.7.2.0/24']]);
  kernel.masquerade.clear(); // someone flushed the nat table
  await dp.requestSync('full');
  assert.deepEqual([...kernel.masquerade], [['10.7.0.0/16', '10.7.2.0/24']]);
  kernel.natChain = false; // no nat chain: nothing to do, the sync still succeeds
  await dp.requestSync('full');
  assert.equal(dp.stats.errors, 0);
  kernel.natChain = true;
  kernel.failNext('ensureMasquerade', new Error('boom')); // a failure is logged, not a sync error
  await dp.requestSync('full');
  assert.equal(dp.stats.errors, 0);
  await dp.detach();
  assert.equal(kernel.masquerade.size, 0);
  await dp.requestSync('full'); // nothing brings them back after detach
  assert.equal(kernel.masquerade.size, 0);
});

test('with IP_MASQ off the dataplane writes no rules and removes those of an earlier run once', async () => {
  const { kernel, dp } = dataplane(false);
  await kernel.ensureMasquerade('10.7.0.0/16', '10.7.1.0/24'); // left by an earlier run
  await dp.attach(lease(1));
  await dp.idle();
  assert.equal(kernel.masquerade.size, 0);
  await dp.requestSync('full');
  assert.equal(kernel.writes.filter((w) => w.startsWith('removeMasquerade')).length, 1);
  await dp.detach();
});

test('detach during a failing sync stops the retries, removes the rules and returns', async () => {
  const { kernel, dp } = dataplane(true);
  await dp.attach(lease(1));
  await dp.idle();
  for (let i = 0; i < 5; i++) kernel.failNext('listRoutes', new Error('down'));
  void dp.requestSync('full');
  const t0 = Date.now();
  await dp.detach();
  assert.ok(Date.now() - t0 < 3000, `detach took ${Date.now() - t0} ms`);
  assert.equal(kernel.masquerade.size, 0);
  assert.ok(dp.stats.errors <= 2, `retried ${dp.stats.errors} times after detach`);
});
