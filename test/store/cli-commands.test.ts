/**
 * The operator commands (`node dist/main.js config set|show`, `status [--json]`, with and without
 * --name) against a real etcd that answers: what they print and their exit codes. Their failures
 * against etcds that do not answer are in test/faults/etcd-error-texts.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { EtcdServer, startEtcd } from '../helpers/etcd-server';
import { run, RunResult } from '../helpers/run';
import { randomPrefix } from '../helpers/store-fixtures';

const MAIN = join(resolve(__dirname, '../..'), 'dist/main.js');

describe('operator commands against a real etcd', { timeout: 120_000 }, () => {
  let etcd: EtcdServer;
  const prefix = randomPrefix('cli');
  const cli = (args: string[], more: Record<string, string> = {}): Promise<RunResult> => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_') && k !== 'LOG_LEVEL'));
    return run(process.execPath, [MAIN, ...args], { env: { ...env, ETCD_ENDPOINTS: etcd.endpoint, ETCD_PREFIX: prefix, PUBLIC_IP: '192.0.2.7', ...more }, timeoutMs: 20_000, check: false });
  };

  before(async () => {
    etcd = await startEtcd();
  });
  after(() => etcd?.cleanup());

  it('config show before any config: exit 1, says how to write one', async () => {
    const r = await cli(['config', 'show', '--name', 'blue']);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout.trim(), `no config at ${prefix}-blue/config; write one with: overlay-flannel config set --name blue --network 10.1.0.0/16`);
  });

  it('config set, then config show prints it and what it means', async () => {
    const set = await cli(['config', 'set', '--network', '10.31.0.0/16', '--vni', '31', '--name', 'blue']);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, new RegExp(`^wrote ${prefix}-blue/config: \\{"Network":"10\\.31\\.0\\.0/16"`));
    const stored = (await etcd.etcdctl(['get', `${prefix}-blue/config`, '--print-value-only'])).stdout.trim();
    assert.equal(JSON.parse(stored).Backend.VNI, 31);
    const show = await cli(['config', 'show', '--name', 'blue']);
    assert.equal(show.code, 0, show.stderr);
    assert.equal(show.stdout.split('\n')[0], stored);
    assert.match(show.stdout, /10\.31\.0\.0\/16/);
  });

  it('an invalid stored config: config show exits 1 naming the problem', async () => {
    await etcd.etcdctl(['put', `${prefix}/config`, '{"Network":"10.32.0.0/16","SubnetLen":33}']);
    const r = await cli(['config', 'show']);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /INVALID: .*"SubnetLen" must be between 0 and 32, got 33/);
  });

  it('status and status --json list every lease, this host marked, expiry read from etcd', async () => {
    const empty = await cli(['status', '--name', 'blue']);
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(empty.stdout.trim(), 'no leases');
    const id = /lease ([0-9a-f]+) granted/.exec((await etcd.etcdctl(['lease', 'grant', '600'])).stdout)?.[1];
    assert.ok(id, 'an etcd lease');
    const value = (ip: string, mac: string) => `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":31,"VtepMAC":"${mac}"}}`;
    await etcd.etcdctl(['put', `--lease=${id}`, `${prefix}-blue/subnets/10.31.9.0-24`, value('192.0.2.7', '0e:00:00:00:00:07')]);
    await etcd.etcdctl(['put', `${prefix}-blue/subnets/10.31.10.0-24`, value('192.0.2.8', '0e:00:00:00:00:08')]); // a reservation
    const table = await cli(['status', '--name', 'blue']);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0], /^SUBNET\s+PUBLIC IP\s+BACKEND\s+VTEP MAC\s+EXPIRES\s+THIS HOST$/);
    assert.match(lines[1], /^10\.31\.9\.0\/24\s+192\.0\.2\.7\s+vxlan\s+0e:00:00:00:00:07\s+\d{4}-\d\d-\d\dT[\d:.]+Z\s+\*$/);
    assert.match(lines[2], /^10\.31\.10\.0\/24\s+192\.0\.2\.8\s+vxlan\s+0e:00:00:00:00:08\s+never \(reservation\)$/);
    const json = await cli(['status', '--json', '--name', 'blue']);
    assert.equal(json.code, 0, json.stderr);
    const rows = JSON.parse(json.stdout) as Array<{ subnet: string; thisHost: boolean; expires: string }>;
    assert.deepEqual(rows.map((r) => [r.subnet, r.thisHost]), [['10.31.9.0/24', true], ['10.31.10.0/24', false]]);
    const expires = Date.parse(rows[0].expires);
    assert.ok(expires > Date.now() + 500_000 && expires <= Date.now() + 601_000, `expiry from the etcd lease: ${rows[0].expires}`);
  });

  const p6 = randomPrefix('cli6'); // issue 21: IPv6 fields and dual-stack leases

  it('config set --ipv6-network writes flannel\'s IPv6 fields; config show explains both families', async () => {
    const set = await cli(['config', 'set', '--prefix', p6, '--network', '10.33.0.0/16', '--ipv6-network', 'fd00:33::9/48', '--backend', 'alloc']);
    assert.equal(set.code, 0, set.stderr);
    const stored = (await etcd.etcdctl(['get', `${p6}/config`, '--print-value-only'])).stdout.trim();
    assert.equal(stored, '{"Network":"10.33.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:33::/48","Backend":{"Type":"alloc"}}');
    const show = await cli(['config', 'show', '--prefix', p6]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /IPv6 fd00:33::\/48, \/64 per host \(fd00:33:0:1::–fd00:33:0:ffff::, 65535 subnets\)/);
    const bad = await cli(['config', 'set', '--prefix', p6, '--network', '10.33.0.0/16', '--ipv6-network', 'fd00:33::/125']);
    assert.equal(bad.code, 1, bad.stdout);
    assert.match(bad.stderr, /IPv6Network fd00:33::\/125 is too small; the minimum useful network prefix is \/124/);
  });

  it('status shows the v6 subnet and PublicIPv6 of dual-stack leases (as flanneld writes them)', async () => {
    const value = '{"PublicIP":"192.0.2.7","PublicIPv6":"2001:db8::7","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:00:00:00:00:07"},"BackendV6Data":{"VNI":1,"VtepMAC":"0e:00:00:00:06:07"}}';
    await etcd.etcdctl(['put', `${p6}/subnets/10.33.9.0-24&fd00:33:0:9::-64`, value]);
    const table = await cli(['status', '--prefix', p6]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0], /^SUBNET\s+IPV6 SUBNET\s+PUBLIC IP\s+PUBLIC IPV6\s+BACKEND/);
    assert.match(lines[1], /^10\.33\.9\.0\/24\s+fd00:33:0:9::\/64\s+192\.0\.2\.7\s+2001:db8::7\s+vxlan\s+0e:00:00:00:00:07\s/);
    const rows = JSON.parse((await cli(['status', '--json', '--prefix', p6])).stdout) as Array<{ subnet6?: string; publicIPv6?: string }>;
    assert.deepEqual([rows[0].subnet6, rows[0].publicIPv6], ['fd00:33:0:9::/64', '2001:db8::7']);
  });

  it('status marks an IPv6-only lease (PublicIP 0.0.0.0) as this host by its PublicIPv6', async () => {
    const p6only = randomPrefix('cli6only');
    const v = (ip6: string, mac: string) => `{"PublicIP":"0.0.0.0","PublicIPv6":"${ip6}","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"${mac}"}}`;
    await etcd.etcdctl(['put', `${p6only}/subnets/0.0.0.0-0&fd00:44:0:7::-64`, v('2001:db8::7', '0e:00:00:00:06:07')]);
    await etcd.etcdctl(['put', `${p6only}/subnets/0.0.0.0-0&fd00:44:0:8::-64`, v('2001:db8::8', '0e:00:00:00:06:08')]);
    const rows = JSON.parse((await cli(['status', '--json', '--prefix', p6only], { PUBLIC_IPV6: '2001:db8::7' })).stdout) as Array<{ subnet6?: string; thisHost: boolean }>;
    assert.deepEqual(rows.map((r) => [r.subnet6, r.thisHost]).sort(), [['fd00:44:0:7::/64', true], ['fd00:44:0:8::/64', false]]);
    const none = JSON.parse((await cli(['status', '--json', '--prefix', p6only])).stdout) as Array<{ thisHost: boolean }>;
    assert.deepEqual(none.map((r) => r.thisHost), [false, false], 'PublicIP 0.0.0.0 is nobody (this host has no such v6 address)');
  });
});
