/**
 * Issue 8, "20 daemons starting at the same moment against one etcd": 20 lab hosts on one LAN, the
 * real daemon in each, all spawned in the same tick. Every one must lease a distinct subnet, none
 * may exit, and every host's kernel must end up with the 19 other hosts as vxlan peers.
 * CI has 2 cores: LOG_LEVEL=warn, bounded waits; the file prints the time to 20 leases and to the
 * full mesh.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { join, resolve } from 'node:path';
import { createLab, DaemonHandle, Lab } from '../helpers/netns-lab';
import { EtcdServer, startEtcd } from '../helpers/etcd-server';
import { run } from '../helpers/run';
import { waitFor } from '../helpers/wait';

const MAIN = join(resolve(__dirname, '../..'), 'dist/main.js');
const N = 20;
const HOSTS = Array.from({ length: N }, (_, i) => i + 1);

describe(`${N} daemons starting at the same moment`, { timeout: 150_000 }, () => {
  let lab: Lab;
  let etcd: EtcdServer;
  const network = `10.${randomInt(100, 250)}.0.0/16`;
  const vni = randomInt(2, 4000);
  const prefix = `/faults-many-${randomInt(1e9).toString(36)}/network`;
  const daemons = new Map<number, DaemonHandle>();
  const exits: string[] = [];
  let t0 = 0;

  async function leases(): Promise<Map<string, string>> {
    const { stdout } = await etcd.etcdctl(['get', '--prefix', `${prefix}/subnets/`]);
    const lines = stdout.split('\n').filter(Boolean);
    const out = new Map<string, string>(); // public IP → subnet key
    for (let i = 0; i + 1 < lines.length; i += 2) out.set(JSON.parse(lines[i + 1]).PublicIP, lines[i].slice(lines[i].lastIndexOf('/') + 1));
    return out;
  }

  async function fdbPeers(n: number): Promise<number> {
    const r = await run('bridge', ['-n', lab.hosts.get(n)!.ns, '-j', 'fdb', 'show', 'dev', `flannel.${vni}`], { check: false, timeoutMs: 10_000 });
    if (r.code !== 0) return -1;
    return (JSON.parse(r.stdout || '[]') as { dst?: string }[]).filter((e) => e.dst).length;
  }

  before(async () => {
    lab = await createLab('of');
    const lan = await lab.lan();
    etcd = await startEtcd({ netns: lan.ns, host: '192.0.2.254' });
    for (const n of HOSTS) await lab.addHost(n);
    await lab.hosts.get(1)!.execOk('node', [MAIN, 'config', 'set', '--network', network, '--vni', String(vni)], {
      env: { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, ETCD_PREFIX: prefix },
      timeoutMs: 20_000,
    });
    t0 = Date.now();
    for (const n of HOSTS) {
      const d = lab.hosts.get(n)!.spawnDaemon('node', [MAIN], {
        ETCD_ENDPOINTS: etcd.endpoint,
        ETCD_PREFIX: prefix,
        LOG_LEVEL: 'warn',
        PLUGIN_SOCKET: `/run/of-faults-${lab.runId}-h${n}.sock`,
        SUBNET_FILE: '',
      });
      daemons.set(n, d);
      void d.exited.then((x) => exits.push(`host ${n} exited ${JSON.stringify(x)}:\n${d.logs().slice(-1500)}`));
    }
  });

  after(async () => {
    for (const d of daemons.values()) d.kill('SIGKILL');
    await Promise.all([...daemons.values()].map((d) => d.exited));
    await etcd?.cleanup().catch(() => undefined);
    await lab?.destroy();
  });

  it(`${N} distinct leases, no daemon exits, every host programs the ${N - 1} others`, async () => {
    const all = await waitFor(
      async () => {
        assert.deepEqual(exits, []);
        const l = await leases();
        return l.size >= N ? l : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250, what: `${N} leases`, bail: (e) => e instanceof assert.AssertionError },
    );
    const tLeases = Date.now() - t0;
    assert.deepEqual([...all.keys()].sort(), HOSTS.map((n) => `192.0.2.${n}`).sort());
    assert.equal(new Set(all.values()).size, N, `distinct subnets: ${[...all.values()].join(' ')}`);

    const sample = [1, 7, 14, N];
    await waitFor(
      async () => {
        const counts = await Promise.all(sample.map(fdbPeers));
        return counts.every((c) => c === N - 1) ? counts : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500, what: `${N - 1} FDB peers on hosts ${sample.join(', ')}` },
    );
    const tMesh = Date.now() - t0;
    // And the whole mesh: every host ends up with exactly the 19 others (hosts outside the sample
    // may still be one sync behind, on a loaded 2-core machine: polled, with the same bound).
    let counts: number[] = [];
    await waitFor(
      async () => {
        counts = await Promise.all(HOSTS.map(fdbPeers));
        return counts.every((c) => c === N - 1);
      },
      { timeoutMs: 90_000, intervalMs: 500, what: `${N - 1} FDB peers on every host` },
    ).catch(() => undefined);
    assert.deepEqual(counts, HOSTS.map(() => N - 1), `FDB peer counts per host`);
    assert.deepEqual(exits, [], 'no daemon exited');
    for (const [n, d] of daemons) assert.ok(!/"level":(50|60)/.test(d.logs()), `host ${n} logged an error:\n${d.logs().slice(-1500)}`);
    console.log(`# ${N} daemons: all leases in ${tLeases} ms, full mesh programmed in ${tMesh} ms`);
  });
});
