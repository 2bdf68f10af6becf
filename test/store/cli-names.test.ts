/**
 * `overlay-flannel names [--network NET] [--json]` (node dist/main.js) against a real etcd: the
 * records as etcd holds them (written here with the product's codec), filtered by network, as a
 * table and as JSON, a broken record left out and counted; and a fail-fast error naming the
 * endpoint when etcd refuses the connection.
 */
import { after, before, describe, it } from 'node:test';
import { nameRecord } from '../helpers/name-records';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { EtcdServer, findFreePorts, startEtcd } from '../helpers/etcd-server';
import { run, RunResult } from '../helpers/run';
import { randomPrefix } from '../helpers/store-fixtures';
import { encodeNameRecord, type NameRecord } from '../../src/domain/name-record';
import { overlayKeys } from '../../src/store/keys';

const MAIN = join(resolve(__dirname, '../..'), 'dist/main.js');

describe('overlay-flannel names against a real etcd', { timeout: 120_000 }, () => {
  let etcd: EtcdServer;
  const prefix = randomPrefix('cli-names');
  const keys = overlayKeys(prefix);
  const cli = (args: string[], endpoint = etcd.endpoint): Promise<RunResult & { ms: number }> => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_') && k !== 'LOG_LEVEL'));
    const t0 = Date.now();
    return run(process.execPath, [MAIN, ...args], { env: { ...env, ETCD_ENDPOINTS: endpoint, ETCD_PREFIX: prefix }, timeoutMs: 20_000, check: false }).then((r) => ({ ...r, ms: Date.now() - t0 }));
  };
  const rec = (over: Partial<NameRecord>): NameRecord =>
    nameRecord({ aliases: ['web', 'front'], ipv4: ['10.41.1.2'], host: '192.0.2.11', updatedAt: new Date(Date.now() - 125_000).toISOString(), ...over });
  const put = (r: NameRecord) => etcd.etcdctl(['put', keys.nameKey(r.networkId, r.endpointId), encodeNameRecord(r)]);

  before(async () => {
    etcd = await startEtcd();
  });
  after(() => etcd?.cleanup());

  it('no records yet: says so, exit 0', async () => {
    const r = await cli(['names']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'no name records');
  });

  it('lists every host\'s records as a table, filtered by --network, and as JSON', async () => {
    await put(rec({}));
    await put(rec({ containerName: 'web-2', endpointId: 'e2'.repeat(32), ipv4: ['10.41.2.5'], host: '192.0.2.12', aliases: ['web'] }));
    await put(rec({ networkId: 'backnet', networkName: 'backnet', containerName: 'db', endpointId: 'e3'.repeat(32), aliases: [], ipv4: ['10.42.1.9'] }));
    await etcd.etcdctl(['put', `${keys.namesRoot}appnet/broken`, '{"v":1,"not":"a record"}']);

    const all = await cli(['names']);
    assert.equal(all.code, 0, all.stderr);
    const lines = all.stdout.trim().split('\n');
    assert.match(lines[0]!, /^NETWORK\s+NAME\s+ALIASES\s+ADDRESS\s+HOST\s+AGE$/);
    assert.match(lines[1]!, /^appnet\s+web-1\s+web,front\s+10\.41\.1\.2\s+192\.0\.2\.11\s+2m$/);
    assert.match(lines[2]!, /^appnet\s+web-2\s+web\s+10\.41\.2\.5\s+192\.0\.2\.12\s+2m$/);
    assert.match(lines[3]!, /^backnet\s+db\s+-\s+10\.42\.1\.9\s+192\.0\.2\.11\s+2m$/);
    assert.match(lines[4]!, /1 record\(s\) that do not parse were left out/);

    const one = await cli(['names', '--network', 'backnet']);
    assert.equal(one.code, 0, one.stderr);
    const oneLines = one.stdout.trim().split('\n');
    assert.match(oneLines[0]!, /^NAME\s+ALIASES\s+ADDRESS\s+HOST\s+AGE$/);
    assert.match(oneLines[1]!, /^db\s+-\s+10\.42\.1\.9\s+192\.0\.2\.11\s+2m$/);
    assert.equal(oneLines.filter((l) => /web/.test(l)).length, 0);

    const none = await cli(['names', '--network', 'nosuchnet']);
    assert.equal(none.stdout.split('\n')[0], 'no name records on network nosuchnet');

    const json = await cli(['names', '--json', '--network', 'appnet']);
    assert.equal(json.code, 0, json.stderr);
    const rows = JSON.parse(json.stdout.slice(0, json.stdout.lastIndexOf(']') + 1)) as Array<Record<string, unknown>>;
    assert.deepEqual(rows.map((x) => [x.network, x.name, x.aliases, x.addresses, x.host]), [
      ['appnet', 'web-1', ['web', 'front'], ['10.41.1.2'], '192.0.2.11'],
      ['appnet', 'web-2', ['web'], ['10.41.2.5'], '192.0.2.12'],
    ]);
    assert.ok(typeof rows[0]!.ageSec === 'number' && (rows[0]!.ageSec as number) >= 124, `ageSec ${rows[0]!.ageSec}`);
  });

  it('a bad --network: exit 2 naming the flag', async () => {
    const r = await cli(['names', '--network', 'bad/name']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--network: "bad\/name" is not a Docker network name/);
  });

  it('etcd refusing: one line naming the endpoint, exit 1, within seconds', async () => {
    const [port] = await findFreePorts('127.0.0.1', 1);
    const endpoint = `http://127.0.0.1:${port}`;
    const r = await cli(['names'], endpoint);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`etcd at ${endpoint.replace(/[.:/]/g, '\\$&')}.*refused the connection`));
    assert.ok(r.ms < 5000, `took ${r.ms} ms`);
  });
});
