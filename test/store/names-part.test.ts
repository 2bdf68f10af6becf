/**
 * names-part.test.ts — the daemon's names part (src/daemon/names-part.ts) against a real etcd,
 * without Docker: another host's records reach this daemon's NameTable (what the resolver asks);
 * through an etcd outage the table keeps them and the state says etcdStale; records written after
 * etcd returns arrive; NAMES=false builds nothing; the undo stack stops it. Its own etcd (stopped).
 */
import assert from 'node:assert/strict';
import { nameRecord } from '../helpers/name-records';
import { after, before, it } from 'node:test';
import type { NameRecord } from '../../src/domain/name-record';
import { startNames } from '../../src/daemon/names-part';
import type { Kernel } from '../../src/kernel';
import { openStore } from '../../src/store';
import { UndoStack } from '../../src/util/undo-stack';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import { randomPrefix, testLogger } from '../helpers/store-fixtures';
import { waitFor } from '../helpers/wait';

let etcd: EtcdServer;
before(async () => {
  etcd = await startEtcd();
});
after(async () => etcd?.cleanup());

const THIS_HOST = '192.0.2.91';
const OTHER = '192.0.2.92';
const rec = (endpointId: string, containerName: string, ip: string): NameRecord =>
  nameRecord({ networkId: 'appnet', networkName: 'appnet', containerName, endpointId, aliases: [`${containerName}-alias`], ipv4: [ip], host: OTHER });
const noKernel = {} as Kernel; // no Docker follower asks it; the resolver's start fails on it (off, records go on)
const settings = { names: true, nameTtlSec: 5, dockerSocket: '/nonexistent/docker.sock', nameQueue: 53, nameMarkBit: 0x00100000, nameCtZone: 53, nameAnswerAddr: '169.254.53.53', dockerSearchRoot: '/' };

it('another host\'s records fill the table; an outage keeps them (etcdStale); new ones arrive after it', { timeout: 90_000 }, async () => {
  const log = testLogger();
  const store = openStore({ etcdEndpoints: [etcd.endpoint], etcdPrefix: randomPrefix('names-part') }, log);
  const undo = new UndoStack();
  try {
    const names = await startNames(settings, { store, kernel: noKernel, publicIP: THIS_HOST, dockerUnusable: 'no Docker in this test' }, log, undo);
    assert.ok(names);
    assert.equal(names.state().notWriting, 'no Docker in this test');
    assert.equal(names.state().localRecords, null);
    assert.equal(names.state().resolving, false, 'no kernel: the resolver is off, the records part runs');
    assert.equal(names.resolver(), null);
    const other = store.overlay().nameRegistry({ host: OTHER, ttlSec: 30 });
    await other.put(rec('e1', 'web-1', '10.1.40.2'));
    await waitFor(async () => names.table.size === 1, { what: 'the record in the table', timeoutMs: 10_000 });
    assert.deepEqual(names.table.lookup('appnet', 'web-1-alias', 'ipv4'), { found: true, addresses: ['10.1.40.2'] });
    assert.deepEqual(names.table.lookup('appnet', 'web-1.appnet.', 'ipv4'), { found: true, addresses: ['10.1.40.2'] });
    assert.equal(names.records().length, 1);

    await etcd.stop();
    await waitFor(async () => names.state().etcdStale, { what: 'etcdStale during the outage', timeoutMs: 20_000 });
    assert.match(names.state().problem ?? '', /etcd/);
    assert.deepEqual(names.table.lookup('appnet', 'web-1', 'ipv4'), { found: true, addresses: ['10.1.40.2'] }, 'known names stay');
    const late = other.put(rec('e2', 'web-2', '10.1.40.3')).catch(() => undefined); // held by the other host's registry
    await etcd.start();
    await late;
    await waitFor(async () => names.table.size === 2 && !names.state().etcdStale, { what: 'the record written after the outage', timeoutMs: 30_000 });
    assert.deepEqual(names.table.lookup('appnet', 'web-2', 'ipv4'), { found: true, addresses: ['10.1.40.3'] });
    await other.stop(); // revokes: both names go everywhere
    await waitFor(async () => names.table.size === 0, { what: 'the revoked names gone from the table', timeoutMs: 10_000 });
  } finally {
    await undo.unwind((what, e) => assert.fail(`${what}: ${String(e)}`));
    await store.close();
  }
});

it('NAMES=false: no names part, nothing on the undo stack', async () => {
  const log = testLogger();
  const store = openStore({ etcdEndpoints: [etcd.endpoint], etcdPrefix: randomPrefix('names-off') }, log);
  const undo = new UndoStack();
  try {
    assert.equal(await startNames({ ...settings, names: false }, { store, kernel: noKernel, publicIP: THIS_HOST, dockerUnusable: null }, log, undo), null);
    assert.equal(undo.size, 0);
  } finally {
    await store.close();
  }
});
