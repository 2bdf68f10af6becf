/**
 * `overlay-flannel status --containers [--json]` (node dist/main.js) against a real etcd: every
 * container of every host from the name records (written here with the product's codec), each
 * with its host's subnet from the leases; a host with no records named as such; records of a host
 * without a lease shown as a problem; the JSON with the fields of GET /api/v1/cluster.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { EtcdServer, startEtcd } from '../helpers/etcd-server';
import { nameRecord } from '../helpers/name-records';
import { run, RunResult } from '../helpers/run';
import { randomPrefix } from '../helpers/store-fixtures';
import { encodeNameRecord, type NameRecord } from '../../src/domain/name-record';
import { overlayKeys } from '../../src/store/keys';

const MAIN = join(resolve(__dirname, '../..'), 'dist/main.js');

describe('overlay-flannel status --containers against a real etcd', { timeout: 120_000 }, () => {
  let etcd: EtcdServer;
  const prefix = randomPrefix('cli-containers');
  const keys = overlayKeys(prefix);
  const cli = (args: string[]): Promise<RunResult> => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_') && k !== 'LOG_LEVEL'));
    return run(process.execPath, [MAIN, ...args], { env: { ...env, ETCD_ENDPOINTS: etcd.endpoint, ETCD_PREFIX: prefix, PUBLIC_IP: '192.0.2.7' }, timeoutMs: 20_000, check: false });
  };
  const put = (r: NameRecord) => etcd.etcdctl(['put', keys.nameKey(r.networkId, r.endpointId), encodeNameRecord(r)]);
  const lease = (ip: string, mac: string) => `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`;

  before(async () => {
    etcd = await startEtcd();
  });
  after(() => etcd?.cleanup());

  it('no records: says so, exit 0', async () => {
    const r = await cli(['status', '--containers']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^no containers \(no name records/);
  });

  it('every container of every host with its subnet; a host without records; records without a lease', async () => {
    await etcd.etcdctl(['put', `${prefix}/subnets/10.51.7.0-24`, lease('192.0.2.7', '0e:00:00:00:00:07')]);
    await etcd.etcdctl(['put', `${prefix}/subnets/10.51.8.0-24`, lease('192.0.2.8', '0e:00:00:00:00:08')]);
    await etcd.etcdctl(['put', `${prefix}/subnets/10.51.9.0-24`, lease('192.0.2.9', '0e:00:00:00:00:09')]);
    const old = new Date(Date.now() - 125_000).toISOString();
    await put(nameRecord({ containerName: 'web-1', aliases: ['web'], ipv4: ['10.51.7.2'], host: '192.0.2.7', endpointId: 'e1'.repeat(32), updatedAt: old }));
    await put(nameRecord({ containerName: 'api', ipv4: ['10.51.8.5'], host: '192.0.2.8', endpointId: 'e2'.repeat(32), updatedAt: old }));
    await put(nameRecord({ containerName: 'ghost', ipv4: ['10.51.99.2'], host: '192.0.2.99', endpointId: 'e3'.repeat(32), updatedAt: old }));

    const r = await cli(['status', '--containers']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^NAME\s+ALIASES\s+ADDRESS\s+NETWORK\s+HOST\s+SUBNET\s+AGE$/);
    assert.match(lines[1]!, /^api\s+-\s+10\.51\.8\.5\s+appnet\s+192\.0\.2\.8\s+10\.51\.8\.0\/24\s+2m$/);
    assert.match(lines[2]!, /^ghost\s+-\s+10\.51\.99\.2\s+appnet\s+192\.0\.2\.99\s+-\s+2m$/);
    assert.match(lines[3]!, /^web-1\s+web\s+10\.51\.7\.2\s+appnet\s+192\.0\.2\.7\s+10\.51\.7\.0\/24\s+2m$/);
    assert.equal(lines[4], '3 container(s) on 3 host(s)');
    assert.equal(lines[5], 'hosts with no name records (flanneld, or no containers yet): 192.0.2.9 (10.51.9.0/24)');
    assert.match(lines[6]!, /^problem: 1 name record of host 192\.0\.2\.99, which holds no lease/);

    const j = await cli(['status', '--containers', '--json']);
    assert.equal(j.code, 0, j.stderr);
    const body = JSON.parse(j.stdout);
    assert.deepEqual(body.containers[2], { name: 'web-1', aliases: ['web'], addresses: ['10.51.7.2'], network: 'appnet', host: '192.0.2.7', overlay: 'default', subnet: '10.51.7.0/24' });
    assert.deepEqual(
      body.hosts.map((h: { publicIP: string; kind: string; containers: number; own: boolean }) => `${h.publicIP} ${h.kind} ${h.containers} ${h.own}`),
      ['192.0.2.7 plugin 1 true', '192.0.2.8 plugin 1 false', '192.0.2.9 flanneld 0 false'],
    );
    assert.deepEqual(body.problems.map((p: { kind: string; host: string }) => `${p.kind} ${p.host}`), ['names-without-lease 192.0.2.99']);
  });
});
