/**
 * config-store.test.ts — the network config key (missing / invalid / ok, followed by a watch) and the
 * etcd client's error mapping: unreachable and hung endpoints, unreadable TLS files, and etcd auth
 * (wrong, missing and right credentials; the password never shows up in a message).
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { OverlayError } from '../../src/errors';
import { createEtcdClient, openStore, toStoreError, type ConfigState, type Store } from '../../src/store';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import { withEtcdStore, randomPrefix, record, testLogger } from '../helpers/store-fixtures';
import { waitFor } from '../helpers/wait';

let etcd: EtcdServer;
let store: Store;

withEtcdStore((e, s) => {
  etcd = e;
  store = s;
});

const code = (c: string, re: RegExp = /./) => (e: unknown) => e instanceof OverlayError && e.code === c && re.test(e.message);

describe('config store', () => {
  it('missing → invalid (with the reason) → ok, followed by the watch; read agrees', async () => {
    const prefix = randomPrefix();
    const cfg = store.overlay(prefix).config;
    assert.deepEqual(await cfg.read(), { state: 'missing' });
    const states: ConfigState[] = [];
    const w = cfg.watch((s) => states.push(s));
    await waitFor(async () => states.length === 1, { what: 'the first state' });
    await etcd.etcdctl(['put', `${prefix}/config`, '{"Network":"10.1.0.0/16",']);
    await waitFor(async () => states.length === 2, { what: 'invalid' });
    await etcd.etcdctl(['put', `${prefix}/config`, '{"Network":"10.1.0.0/16",']); // same bytes: no callback
    await etcd.etcdctl(['put', `${prefix}/config`, '{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan"}}']);
    await waitFor(async () => states.length === 3, { what: 'ok' });
    assert.deepEqual(states.map((s) => s.state), ['missing', 'invalid', 'ok']);
    assert.match((states[1] as Extract<ConfigState, { state: 'invalid' }>).error, /not valid JSON/);
    const ok = states[2] as Extract<ConfigState, { state: 'ok' }>;
    assert.equal(ok.config.subnetLen, 24);
    assert.equal((await cfg.read()).state, 'ok');
    await cfg.remove();
    await waitFor(async () => states.length === 4, { what: 'missing again' });
    assert.equal(states[3].state, 'missing');
    assert.equal(w.current()?.state, 'missing');
    await w.stop();
  });

  it('write validates first; waitForValid resolves once a good config is written', async () => {
    const prefix = randomPrefix();
    const cfg = store.overlay(prefix).config;
    await assert.rejects(cfg.write('{"Network":"10.1.0.0/16"}'), code('UNSUPPORTED', /no "Backend"/));
    assert.deepEqual(await cfg.read(), { state: 'missing' });
    const waiting = cfg.waitForValid(AbortSignal.timeout(10_000));
    await cfg.write('{"Network":"10.5.0.0/16","Backend":{"Type":"host-gw"}}');
    assert.equal((await waiting).config.backend.type, 'host-gw');
    await assert.rejects(store.overlay(randomPrefix()).config.waitForValid(AbortSignal.timeout(200)), code('INVALID', /aborted/));
  });
});

describe('etcd client errors', () => {
  let hung: Server;
  const sockets = new Set<Socket>();
  before(async () => {
    hung = createServer((s) => sockets.add(s)); // accepts, never answers
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
  });
  after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => hung.close(() => r()));
  });

  it('a closed port is UNAVAILABLE at once, every time (no circuit-breaker error)', async () => {
    const client = createEtcdClient({ etcdEndpoints: ['http://127.0.0.1:1'] });
    try {
      for (let i = 0; i < 3; i++) {
        const t = Date.now();
        const e = await client.get('/x').string().then(() => null, (err: unknown) => toStoreError(err, 'read /x'));
        assert.ok(code('UNAVAILABLE', /^read \/x: etcd at http:\/\/127\.0\.0\.1:1 refused the connection/)(e), String(e));
        assert.doesNotMatch(e!.message, /circuit/i);
        assert.ok(Date.now() - t < 1500, `took ${Date.now() - t} ms`);
      }
    } finally {
      client.close();
    }
  });

  it('a server that never answers fails after the per-call deadline', async () => {
    const port = (hung.address() as { port: number }).port;
    const client = createEtcdClient({ etcdEndpoints: [`http://127.0.0.1:${port}`] }, { callDeadlineMs: 400 });
    try {
      const t = Date.now();
      const e = await client.get('/x').string().then(() => null, (err: unknown) => toStoreError(err, 'read /x'));
      assert.ok(code('UNAVAILABLE', new RegExp(`^read /x: etcd at http://127\\.0\\.0\\.1:${port} did not answer within 0\\.4 s \\(timed out\\)`))(e), String(e));
      assert.ok(Date.now() - t < 2000, `took ${Date.now() - t} ms`);
    } finally {
      client.close();
    }
  });

  it('an unreadable TLS file is INVALID naming the setting and the file', () => {
    assert.throws(
      () => createEtcdClient({ etcdEndpoints: ['https://127.0.0.1:2379'], etcdCaFile: '/nonexistent/ca.pem' }),
      code('INVALID', /ETCD_CAFILE "\/nonexistent\/ca\.pem": ENOENT/),
    );
    assert.throws(
      () => createEtcdClient({ etcdEndpoints: ['https://127.0.0.1:2379'], etcdCertFile: '/nonexistent/c.pem', etcdKeyFile: '/etc/hostname' }),
      code('INVALID', /ETCD_CERTFILE "\/nonexistent\/c\.pem"/),
    );
  });

  it('auth: wrong password, no credentials and permission problems name the fix, never the password', { timeout: 30_000 }, async () => {
    const secure = await startEtcd();
    try {
      await secure.etcdctl(['user', 'add', 'root', '--new-user-password=S3cret-pw']);
      await secure.etcdctl(['auth', 'enable']);
      const wrong = createEtcdClient({ etcdEndpoints: [secure.endpoint], etcdUsername: 'root', etcdPassword: 'wrong-pw-123' });
      const e1 = await wrong.get('/x').string().then(() => null, (err: unknown) => toStoreError(err, 'read /x'));
      assert.ok(code('INVALID', /etcd at \S+ rejected the credentials of user "root" \(authentication failed\): check ETCD_USERNAME\/ETCD_PASSWORD/)(e1), String(e1));
      assert.doesNotMatch(String(e1?.message), /wrong-pw-123/);
      wrong.close();

      const none = createEtcdClient({ etcdEndpoints: [secure.endpoint] });
      const e2 = await none.get('/x').string().then(() => null, (err: unknown) => toStoreError(err, 'read /x'));
      assert.ok(code('INVALID', /ETCD_USERNAME and ETCD_PASSWORD/)(e2), String(e2));
      none.close();

      const right = openStore({ etcdEndpoints: [secure.endpoint], etcdPrefix: randomPrefix(), etcdUsername: 'root', etcdPassword: 'S3cret-pw' }, testLogger());
      const w = right.overlay().leases();
      const events = record(w, 'snapshot');
      await w.start();
      assert.equal(events.length, 1);
      assert.deepEqual(await right.overlay().config.read(), { state: 'missing' });
      await right.close();
    } finally {
      await secure.cleanup();
    }
  });
});
