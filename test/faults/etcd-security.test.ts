/**
 * Issue 8, "etcd over TLS with client certificates and with username/password": the real daemon
 * (`node dist/main.js`) in lab hosts against a real etcd on the LAN. The certificates are made here
 * with openssl (a CA, a server certificate for the etcd address, a client certificate, and an
 * unrelated CA with its own client certificate). A daemon with the right credentials leases a
 * subnet; one with the wrong ones keeps running, says clearly (at warn level) what is wrong, and
 * leases nothing. Every daemon logs at trace level into a file, and neither the etcd passwords
 * nor the client keys' material ever appear in those files.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createLab, DaemonHandle, Lab } from '../helpers/netns-lab';
import { EtcdServer, startEtcd } from '../helpers/etcd-server';
import { makeEtcdPki, startTlsEtcd } from '../helpers/tls-certs';
import { sleep, waitFor } from '../helpers/wait';

const MAIN = join(resolve(__dirname, '../..'), 'dist/main.js');
const ETCD_IP = '192.0.2.254';

describe('etcd security: TLS client certificates and username/password', { timeout: 150_000 }, () => {
  let lab: Lab;
  let lanNs: string;
  let dir: string;
  const etcds: EtcdServer[] = [];
  const network = `10.${randomInt(100, 250)}.0.0/16`;
  const vni = randomInt(2, 4000);
  const prefix = `/faults-sec-${randomInt(1e9).toString(36)}/network`;
  const f = (name: string) => join(dir, name);
  const daemons: DaemonHandle[] = [];

  /** Every daemon's whole output (the handle keeps only a tail). */
  const logFiles: string[] = [];
  function start(n: number, env: NodeJS.ProcessEnv): DaemonHandle {
    const logFile = f(`daemon-h${n}.log`);
    logFiles.push(logFile);
    const d = lab.hosts.get(n)!.spawnDaemon('node', [MAIN], {
      ETCD_PREFIX: prefix,
      LOG_LEVEL: 'trace',
      PLUGIN_SOCKET: `/run/of-faults-${lab.runId}-h${n}.sock`,
      SUBNET_FILE: '',
      ...env,
    }, { logFile });
    daemons.push(d);
    return d;
  }

  async function leaseIps(etcd: EtcdServer, extra: string[] = []): Promise<string[]> {
    const { stdout } = await etcd.etcdctl([...extra, 'get', '--prefix', `${prefix}/subnets/`, '--print-value-only']);
    return stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l).PublicIP as string).sort();
  }

  /** Runs `ms` with the daemon alive throughout, then returns its log. */
  async function staysUp(d: DaemonHandle, ms: number): Promise<string> {
    const outcome = await Promise.race([d.exited.then((x) => `exited ${JSON.stringify(x)}`), sleep(ms).then(() => 'up')]);
    assert.equal(outcome, 'up', `daemon must keep running; log:\n${d.logs().slice(-3000)}`);
    return d.logs();
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'of-faults-tls-'));
    lab = await createLab('of');
    lanNs = (await lab.lan()).ns;
    for (const n of [1, 2, 3, 4]) await lab.addHost(n);
  });

  after(async () => {
    for (const d of daemons) d.kill('SIGKILL');
    await Promise.all(daemons.map((d) => d.exited));
    for (const e of etcds) await e.cleanup().catch(() => undefined);
    await lab?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('TLS with client certificates', () => {
    let etcd: EtcdServer;
    const tlsEnv = () => ({ ETCD_ENDPOINTS: etcd.endpoint, ETCD_CAFILE: f('good-ca.crt'), ETCD_CERTFILE: f('client.crt'), ETCD_KEYFILE: f('client.key') });

    before(async () => {
      await makeEtcdPki(dir, ETCD_IP);
      etcd = await startTlsEtcd(dir, { netns: lanNs, host: ETCD_IP });
      etcds.push(etcd);
      assert.match(etcd.endpoint, /^https:\/\//);
      await lab.hosts.get(1)!.execOk('node', [MAIN, 'config', 'set', '--network', network, '--vni', String(vni)], {
        env: { ...process.env, ETCD_PREFIX: prefix, ...tlsEnv() },
        timeoutMs: 20_000,
      });
    });

    it('the daemon with the right CA and client certificate leases a subnet', async () => {
      const t0 = Date.now();
      const d = start(1, tlsEnv());
      await waitFor(async () => ((await leaseIps(etcd)).includes('192.0.2.1') ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 200,
        what: `lease of 192.0.2.1 over TLS; log:\n${d.logs().slice(-3000)}`,
      });
      console.log(`# TLS: lease acquired in ${Date.now() - t0} ms`);
    });

    it('with a client certificate of another CA it keeps running, names the TLS problem, and leases nothing', async () => {
      const d = start(2, { ...tlsEnv(), ETCD_CERTFILE: f('intruder.crt'), ETCD_KEYFILE: f('intruder.key') });
      // Warnings and errors only (the startup line quotes the settings, file paths included).
      const problems = () => d.logs().split('\n').filter((l) => /^\{"level":[4-6]0,/.test(l));
      const tlsLine = () => problems().find((l) => /certificate/i.test(l));
      await waitFor(async () => tlsLine(), { timeoutMs: 30_000, intervalMs: 200, what: `a TLS error in the log:\n${d.logs().slice(-3000)}` });
      await staysUp(d, 4_000);
      console.log(`# TLS wrong cert log: ${tlsLine()!.slice(0, 500)}`);
      // A warning (the daemon retries), naming the files to fix, without OpenSSL's internals.
      assert.match(tlsLine()!, /^\{"level":40,/);
      assert.match(tlsLine()!, /etcd at https:\/\/192\.0\.2\.254:\d+ refused this host's client certificate \(ETCD_CERTFILE=[^,]*intruder\.crt, ETCD_KEYFILE=[^)]*intruder\.key\)/);
      assert.doesNotMatch(tlsLine()!, /rec_layer|deps\/openssl/);
      assert.deepEqual(await leaseIps(etcd), ['192.0.2.1']);
    });
  });

  describe('username/password', () => {
    let etcd: EtcdServer;
    const password = `pw-${randomBytes(12).toString('hex')}`;
    const wrong = `wrong-${randomBytes(12).toString('hex')}`;
    const user = [`--user=root:${password}`];
    const authEnv = (pw: string) => ({ ETCD_ENDPOINTS: etcd.endpoint, ETCD_USERNAME: 'root', ETCD_PASSWORD: pw });

    before(async () => {
      etcd = await startEtcd({ netns: lanNs, host: ETCD_IP });
      etcds.push(etcd);
      await etcd.etcdctl(['user', 'add', 'root', `--new-user-password=${password}`, '--interactive=false']);
      await etcd.etcdctl(['auth', 'enable']);
      await lab.hosts.get(1)!.execOk('node', [MAIN, 'config', 'set', '--network', network, '--vni', String(vni)], {
        env: { ...process.env, ETCD_PREFIX: prefix, ...authEnv(password) },
        timeoutMs: 20_000,
      });
    });

    it('the right password leases a subnet', async () => {
      const t0 = Date.now();
      const d = start(3, authEnv(password));
      await waitFor(async () => ((await leaseIps(etcd, user)).includes('192.0.2.3') ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 200,
        what: `lease of 192.0.2.3 with auth; log:\n${d.logs().slice(-3000)}`,
      });
      console.log(`# auth: lease acquired in ${Date.now() - t0} ms`);
    });

    it('a wrong password: clear message naming ETCD_USERNAME/ETCD_PASSWORD, no crash, no lease', async () => {
      const d = start(4, authEnv(wrong));
      await waitFor(async () => d.logs().split('\n').some((l) => /^\{"level":[4-6]0,/.test(l) && /ETCD_USERNAME\/ETCD_PASSWORD/.test(l)), {
        timeoutMs: 30_000,
        intervalMs: 200,
        what: `a credentials error in the log:\n${d.logs().slice(-3000)}`,
      });
      const log = await staysUp(d, 4_000);
      console.log(`# auth wrong password log: ${log.split('\n').find((l) => /ETCD_USERNAME|ETCD_PASSWORD/.test(l))!.slice(0, 400)}`);
      assert.deepEqual(await leaseIps(etcd, user), ['192.0.2.3']);
    });

    it('no password and no key material ever appears in any daemon output (trace level)', async () => {
      // The base64 lines of every private key made here (client, intruder, CAs, server).
      const keyLines: string[] = [];
      for (const k of ['client.key', 'intruder.key', 'good-ca.key', 'rogue-ca.key', 'server.key']) {
        keyLines.push(...(await readFile(f(k), 'utf8')).split('\n').filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l)));
      }
      assert.ok(keyLines.length >= 5 * 10, `key material to look for (${keyLines.length} lines)`);
      assert.equal(logFiles.length, 4, 'four daemons logged');
      for (const file of logFiles) {
        const log = await readFile(file, 'utf8');
        assert.match(log, /"logLevel":"trace"/, `${file} is the log of a daemon at trace level`);
        assert.ok(!log.includes(password), `the right password leaked into ${file}`);
        assert.ok(!log.includes(wrong), `the wrong password leaked into ${file}`);
        for (const l of keyLines) assert.ok(!log.includes(l.slice(0, 40)), `key material leaked into ${file}`);
      }
    });
  });
});
