/**
 * harness.test.ts — self-test of the test helpers: a real etcd (restart keeps data), and a
 * namespace lab (LAN + 2 hosts, ping across the bridge, etcd on the LAN reached from a host).
 * Needs root, etcd, etcdctl, iproute2, nsenter and ping; skips when not root.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { startEtcd, type EtcdServer } from './etcd-server';
import { createLab, listNamespaces, sweepStale, type Lab } from './netns-lab';
import { run } from './run';
import { waitFor, WaitTimeoutError } from './wait';

const notRoot = process.getuid?.() !== 0 ? 'needs root' : false;

describe('run and waitFor', () => {
  it('run returns output and rejects on failure unless check is false', async () => {
    assert.equal((await run('echo', ['hi'])).stdout, 'hi\n');
    await assert.rejects(run('false', []), /false exited with code 1/);
    assert.equal((await run('false', [], { check: false })).code, 1);
    const slow = await run('sleep', ['5'], { timeoutMs: 200, check: false });
    assert.equal(slow.timedOut, true);
  });

  it('waitFor returns the first truthy value and names what timed out', async () => {
    let n = 0;
    assert.equal(await waitFor(async () => ++n >= 3 && n, { intervalMs: 10 }), 3);
    await assert.rejects(
      waitFor(async () => false, { timeoutMs: 150, intervalMs: 20, what: 'the moon' }),
      (e: unknown) => e instanceof WaitTimeoutError && /the moon/.test(e.message) && /last value: false/.test(e.message),
    );
  });
});

describe('etcd-server', { skip: notRoot, timeout: 60_000 }, () => {
  let etcd: EtcdServer | undefined;
  after(async () => etcd?.cleanup());

  it('keeps a key across stop and start on the same data dir', async () => {
    etcd = await startEtcd();
    assert.match(etcd.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    await etcd.etcdctl(['put', '/harness/k', 'v1']);
    assert.equal((await etcd.etcdctl(['get', '--print-value-only', '/harness/k'])).stdout.trim(), 'v1');

    await etcd.stop();
    assert.equal(etcd.pid, undefined);
    const down = await etcd.etcdctl(['--command-timeout=1s', 'get', '/harness/k'], { check: false, timeoutMs: 10_000 });
    assert.notEqual(down.code, 0, 'etcd still answers after stop()');

    await etcd.start();
    assert.equal((await etcd.etcdctl(['get', '--print-value-only', '/harness/k'])).stdout.trim(), 'v1');
    await etcd.compact();

    const dir = etcd.dataDir;
    await etcd.cleanup();
    etcd = undefined;
    assert.equal(existsSync(dir), false);
  });
});

describe('netns-lab', { skip: notRoot, timeout: 90_000 }, () => {
  let lab: Lab | undefined;
  let etcd: EtcdServer | undefined;
  after(async () => {
    await etcd?.cleanup();
    await lab?.destroy();
  });

  it('builds a LAN with two hosts, runs etcd on the LAN, and destroys it all', async () => {
    await sweepStale('of');
    lab = await createLab('of');
    const h1 = await lab.addHost(1);
    const h2 = await lab.addHost(2);
    const lan = await lab.lan();
    assert.ok(lab.namespaceNames.every((n) => n.length <= 15 && n.startsWith(lab!.runId)));
    assert.equal(h1.nsPath, `/var/run/netns/${lab.runId}h1`);

    const addrs = await h1.execJson<Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>>(['addr', 'show', 'dev', 'eth0']);
    assert.deepEqual(addrs[0]?.addr_info.filter((a) => a.local.includes('.')).map((a) => `${a.local}/${a.prefixlen}`), ['192.0.2.1/24']);
    const routes = await h1.execJson<Array<{ dst: string; gateway?: string }>>(['route', 'show', 'default']);
    assert.equal(routes[0]?.gateway, '192.0.2.254');

    for (const [from, to] of [[h1, h2.ip], [h2, h1.ip]] as const) {
      await waitFor(async () => (await from.exec('ping', ['-c', '1', '-W', '1', to], { timeoutMs: 5_000 })).code === 0, {
        timeoutMs: 6_000,
        what: `ping ${from.ip} -> ${to}`,
      });
    }

    etcd = await startEtcd({ netns: lan.ns, host: '192.0.2.254' });
    assert.match(etcd.endpoint, /^http:\/\/192\.0\.2\.254:\d+$/);
    const ctl = (args: string[]) =>
      h1.exec('etcdctl', [`--endpoints=${etcd!.endpoint}`, '--dial-timeout=2s', ...args], {
        env: { ...process.env, ETCDCTL_API: '3' },
        timeoutMs: 10_000,
      });
    assert.equal((await ctl(['put', '/harness/from-h1', 'yes'])).code, 0);
    assert.equal((await ctl(['get', '--print-value-only', '/harness/from-h1'])).stdout.trim(), 'yes');
    // The root namespace has no route to the lab's LAN.
    const root = await run('etcdctl', [`--endpoints=${etcd.endpoint}`, '--dial-timeout=1s', '--command-timeout=2s', 'get', '/x'], {
      check: false,
      env: { ...process.env, ETCDCTL_API: '3' },
      timeoutMs: 10_000,
    });
    assert.notEqual(root.code, 0);

    const daemon = h2.spawnDaemon('sleep', ['60']);
    assert.ok(daemon.pid > 0);

    const names = lab.namespaceNames;
    await etcd.cleanup();
    etcd = undefined;
    await lab.destroy();
    lab = undefined;
    assert.notEqual((await daemon.exited).signal, null);
    const left = await listNamespaces();
    assert.deepEqual(names.filter((n) => left.includes(n)), []);
  });
});
