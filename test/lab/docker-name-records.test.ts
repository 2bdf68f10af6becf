/**
 * docker-name-records.test.ts — cross-host name RECORDS (issue 16) with the managed plugin on two
 * real dockerds: what a container's name, aliases and address become in etcd, and how other hosts
 * see them (`overlay-flannel names` and GET /api/v1/names on h2). Resolution is not tested here.
 *
 * One lab for the file: LAN namespace with etcd (192.0.2.254); h1 and h2 with dockerd, the
 * plugin created from `npm run plugin:build`'s folder as `overlay-flannel` (Docker's driver name
 * overlay-flannel:latest), NAME_TTL=10, the status server on each host's 127.0.0.1:9890. Two
 * overlays (default and a named one, random per run), one network on each, created on h1 and
 * replicated to h2. Container names are random per run. Scenarios, in order: `docker run --name X
 * --network-alias A` on h1 → its record (name, alias, address, host) in etcd within a deadline,
 * and on h2 in the CLI and the status API; rename; `network connect --alias` to the second
 * network; disconnect; stop; start; rm; plugin SIGKILL → the running containers' records are put
 * again on a new lease and the record of a container removed around the kill is gone; h1's dockerd
 * restarted with --live-restore (both dockerds have it) → a rename, a disconnect, an rm and a run
 * right after the restart are in etcd within a deadline (the soak's `roam1x` leak, issue 24).
 * Needs root, docker.io, busybox-static, etcd and `npm run build`; fails (never skips) otherwise.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DOCKER, DOCKERD, createDockerLab, leftovers, stopAll, type DockerHost } from '../helpers/docker-lab';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import type { Host, Lab } from '../helpers/netns-lab';
import { waitFor } from '../helpers/wait';
import * as L from './docker-plugin-lab';

const ROOT = resolve(__dirname, '../..');
const MAIN = join(ROOT, 'dist/main.js');
const missing = [DOCKERD, DOCKER, '/bin/busybox', MAIN].filter((f) => !existsSync(f));
if (process.getuid?.() !== 0) throw new Error('the name-records lab needs root');
if (missing.length) throw new Error(`the name-records lab needs ${missing.join(', ')} (apt-get install docker.io busybox-static; npm run build)`);

const STATUS = '127.0.0.1:9890';
const RECORD_DEADLINE_MS = 15_000;
/** After a dockerd restart: the plugin's event stream comes back with backoff (≤ 15 s), far within the names audit (60 s). */
const RESTART_DEADLINE_MS = 30_000;

interface StoredRecord {
  key: string;
  lease: string;
  network: string;
  name: string;
  containerId: string;
  endpointId: string;
  aliases: string[];
  ipv4: string[];
  host: string;
}

describe('cross-host name records from two real dockerds', { timeout: 600_000 }, () => {
  const ov = L.randomOverlay();
  let ov2 = L.randomOverlay();
  while (ov2.network === ov.network || ov2.vni === ov.vni) ov2 = L.randomOverlay();
  const tag = randomBytes(3).toString('hex');
  const NET = `ofn-${tag}`;
  const NET2 = `ofn2-${tag}`;
  const X = `x-${tag}`;
  const X2 = `x2-${tag}`;
  const A = `alias-a-${tag}`;
  const B = `alias-b-${tag}`;
  let lab: Lab | undefined;
  let etcd: EtcdServer | undefined;
  let h1: Host, h2: Host;
  let d1: DockerHost, d2: DockerHost;
  const timings: number[] = [];
  /** How long each wait for etcd to show a change took (after the docker command returned). */
  const waits: string[] = [];

  const namesRoot = () => `${ov.prefix}/overlay-flannel/names/`;
  /** Every name record in etcd, with its etcd lease. */
  async function stored(): Promise<StoredRecord[]> {
    const { stdout } = await etcd!.etcdctl(['get', '--prefix', namesRoot(), '-w', 'json']);
    // etcd's lease ids are int64: read them as text (JSON numbers lose the low bits of neighbouring ids).
    const kvs = (JSON.parse(stdout.replace(/"lease":(\d+)/g, '"lease":"$1"')) as { kvs?: Array<{ key: string; value: string; lease?: number | string }> }).kvs ?? [];
    return kvs.map((kv) => {
      const key = Buffer.from(kv.key, 'base64').toString();
      const v = JSON.parse(Buffer.from(kv.value, 'base64').toString()) as {
        network: { name: string };
        container: { name: string; id: string };
        endpointId: string;
        aliases: string[];
        ipv4: string[];
        host: string;
      };
      return { key, lease: String(kv.lease ?? '0'), network: v.network.name, name: v.container.name, containerId: v.container.id, endpointId: v.endpointId, aliases: v.aliases, ipv4: v.ipv4, host: v.host };
    });
  }
  const recordsOf = async (container: string, net?: string) => (await stored()).filter((r) => r.name === container && (net === undefined || r.network === net));
  /** Wait until `pred` holds for the records of `container` on `net`; returns them. */
  const waitRecords = async (what: string, container: string, net: string, pred: (rs: StoredRecord[]) => boolean, timeoutMs = RECORD_DEADLINE_MS) => {
    const t0 = Date.now();
    const out = await waitFor(async () => {
      const rs = await recordsOf(container, net);
      return pred(rs) && rs;
    }, { timeoutMs, intervalMs: 50, what });
    waits.push(`${what}: ${Date.now() - t0} ms`);
    return out;
  };
  const inspect = async (d: DockerHost, container: string, net: string) => {
    const f = `{{.Id}} {{with index .NetworkSettings.Networks "${net}"}}{{.IPAddress}} {{.EndpointID}}{{end}}`;
    const [id = '', ip = '', eid = ''] = (await d.dockerOk(['inspect', '-f', f, container])).stdout.trim().split(' ');
    return { id, ip, eid };
  };
  const env = () => ({ ...process.env, ETCD_ENDPOINTS: etcd!.endpoint, ETCD_PREFIX: ov.prefix });

  before(async () => {
    lab = await createDockerLab('ofnr');
    const lan = await lab.lan();
    etcd = await startEtcd({ netns: lan.ns, host: '192.0.2.254' });
    let pluginDir: string;
    ({ h1, h2, d1, d2, pluginDir } = await L.twoDockerHosts(lab, { liveRestore: true }));
    await h1.execOk('node', [MAIN, 'config', 'set', '--network', ov.network, '--vni', String(ov.vni)], { env: env(), timeoutMs: 20_000 });
    await h1.execOk('node', [MAIN, 'config', 'set', '--name', 'blue', '--network', ov2.network, '--vni', String(ov2.vni)], { env: env(), timeoutMs: 20_000 });
    await Promise.all([d1, d2].map((d) => L.installPlugin(d, pluginDir, L.pluginSettings(etcd!, ov.prefix, d, ['NAME_TTL=10', `STATUS_ADDR=${STATUS}`]))));
    await waitFor(async () => {
      const l = await L.leases(etcd!, ov.prefix);
      return l.has(h1.ip) && l.has(h2.ip);
    }, { timeoutMs: 60_000, what: 'leases of both hosts' });
    await d1.dockerOk(['network', 'create', '-d', L.DRIVER, '--ipam-driver', L.DRIVER, NET], { timeoutMs: 90_000 });
    // The bridge data path on the second network: a container on two routed networks of ours gets
    // the link-local gateway route twice, which Docker refuses ("file exists").
    await d1.dockerOk(['network', 'create', '-d', L.DRIVER, '--ipam-driver', L.DRIVER, '--ipam-opt', 'network=blue', '-o', 'datapath=bridge', NET2], { timeoutMs: 90_000 });
    for (const n of [NET, NET2]) await waitFor(async () => (await d2.docker(['network', 'inspect', n])).code === 0, { timeoutMs: 60_000, what: `${n} replicated to h2` });
  });

  after(async () => {
    const runId = lab?.runId;
    if (timings.length) console.log(`# record in etcd after docker run returned: ${timings.map((t) => `${t} ms`).join(', ')}`);
    for (const w of waits) console.log(`# ${w}`);
    await etcd?.cleanup();
    await stopAll(lab);
    if (runId) assert.deepEqual(await leftovers(runId), { namespaces: [], folder: false, mounts: [], processes: [] }, 'the lab left something behind');
  });

  it('1. docker run --name X --network-alias A on h1: X\'s record in etcd (name, alias, address, host), then on h2 in `names` and /api/v1/names', async (t) => {
    await d1.dockerOk(['run', '-d', '--init', '--name', X, '--network', NET, '--network-alias', A, 'ofbox:1', 'sleep', '3600'], { timeoutMs: 120_000 });
    const ran = Date.now();
    const [r] = await waitRecords(`the record of ${X}`, X, NET, (rs) => rs.length === 1);
    timings.push(Date.now() - ran);
    const ep = await inspect(d1, X, NET);
    assert.equal(r!.host, h1.ip);
    assert.deepEqual(r!.ipv4, [ep.ip]);
    assert.equal(r!.endpointId, ep.eid);
    assert.equal(r!.containerId, ep.id);
    assert.ok(r!.aliases.includes(A), `aliases ${r!.aliases}`);
    assert.equal(r!.key, `${namesRoot()}${NET}/${ep.eid}`, 'keyed by the network name (the same on every host) and the endpoint id');
    t.diagnostic(`${X} recorded ${timings[0]} ms after docker run returned: ${JSON.stringify(r)}`);

    const cli = await waitFor(async () => {
      const o = await h2.execOk('node', [MAIN, 'names', '--network', NET], { env: env(), timeoutMs: 20_000 });
      return o.stdout.includes(X) && o.stdout;
    }, { timeoutMs: 20_000, what: `${X} in overlay-flannel names on h2` });
    const line = cli.split('\n').find((l) => l.startsWith(X))!;
    assert.match(line, new RegExp(`^${X}\\s+\\S*${A}\\S*\\s+${ep.ip.replace(/\./g, '\\.')}\\s+${h1.ip.replace(/\./g, '\\.')}\\s+\\d+s$`), line);

    const api = await waitFor(async () => {
      const o = await h2.exec('curl', ['-s', '-m', '5', `http://${STATUS}/api/v1/names`], { timeoutMs: 10_000 });
      if (o.code !== 0) return false;
      const body = JSON.parse(o.stdout) as { enabled: boolean; state: { records: number }; records: Array<{ name: string; aliases: string[]; addresses: string[]; host: string; network: string }> };
      return body.records.some((x) => x.name === X) && body;
    }, { timeoutMs: 20_000, what: `${X} in /api/v1/names on h2` });
    assert.equal(api.enabled, true);
    const row = api.records.find((x) => x.name === X)!;
    assert.deepEqual([row.network, row.host, row.addresses], [NET, h1.ip, [ep.ip]]);
    assert.ok(row.aliases.includes(A));
    const metrics = (await h2.execOk('curl', ['-s', '-m', '5', `http://${STATUS}/metrics`], { timeoutMs: 10_000 })).stdout;
    assert.match(metrics, new RegExp(`overlay_flannel_name_records\\{network="${NET}"\\} 1`));
  });

  it('2. rename X → X2: the same key now says X2', async () => {
    const before = (await recordsOf(X, NET))[0]!;
    await d1.dockerOk(['rename', X, X2]);
    const [r] = await waitRecords(`the record renamed to ${X2}`, X2, NET, (rs) => rs.length === 1);
    assert.equal(r!.key, before.key);
    assert.deepEqual(await recordsOf(X), [], 'no record under the old name');
  });

  it('3. network connect --alias B to the second network: a second record with B; disconnect: only it goes', async () => {
    await d1.dockerOk(['network', 'connect', '--alias', B, NET2, X2], { timeoutMs: 60_000 });
    const [r] = await waitRecords(`${X2} on ${NET2}`, X2, NET2, (rs) => rs.length === 1);
    const ep = await inspect(d1, X2, NET2);
    assert.deepEqual(r!.ipv4, [ep.ip]);
    assert.ok(r!.aliases.includes(B), `aliases ${r!.aliases}`);
    assert.ok(L.inCidr(ep.ip, ov2.network), `${ep.ip} in the second overlay ${ov2.network}`);
    await d1.dockerOk(['network', 'disconnect', NET2, X2], { timeoutMs: 60_000 });
    await waitRecords(`${X2} gone from ${NET2}`, X2, NET2, (rs) => rs.length === 0);
    assert.equal((await recordsOf(X2, NET)).length, 1, `${X2} still on ${NET}`);
  });

  it('4. stop: the record goes; start: it comes back; rm: it goes', async () => {
    await d1.dockerOk(['stop', '-t', '1', X2], { timeoutMs: 60_000 });
    await waitRecords(`${X2} gone after stop`, X2, NET, (rs) => rs.length === 0);
    await d1.dockerOk(['start', X2], { timeoutMs: 60_000 });
    const [r] = await waitRecords(`${X2} back after start`, X2, NET, (rs) => rs.length === 1);
    assert.deepEqual(r!.ipv4, [(await inspect(d1, X2, NET)).ip]);
    await d1.dockerOk(['rm', '-f', X2], { timeoutMs: 60_000 });
    await waitRecords(`${X2} gone after rm`, X2, NET, (rs) => rs.length === 0);
  });

  it('5. plugin SIGKILL: running containers\' records are put again on a new lease; the one removed meanwhile is gone', async (t) => {
    const Y = `y-${tag}`;
    const Z = `z-${tag}`;
    for (const c of [Y, Z]) await d1.dockerOk(['run', '-d', '--init', '--name', c, '--network', NET, 'ofbox:1', 'sleep', '3600'], { timeoutMs: 120_000 });
    await waitRecords(`${Y} recorded`, Y, NET, (rs) => rs.length === 1);
    await waitRecords(`${Z} recorded`, Z, NET, (rs) => rs.length === 1);
    const leaseBefore = (await recordsOf(Y, NET))[0]!.lease;
    const [pid] = await waitFor(async () => {
      const p = await L.pluginPids(h1);
      return p.length === 1 && p;
    }, { timeoutMs: 20_000, what: 'one plugin process on h1' });
    const mark = d1.logs().length;
    process.kill(pid!, 'SIGKILL');
    await waitFor(async () => !existsSync(`/proc/${pid}`), { timeoutMs: 10_000, what: `plugin pid ${pid} gone` });
    // Removed right after the kill: the dead process cannot delete Z's record, and Docker's destroy
    // event may come before the new process follows events; either way Z must end up gone.
    await d1.dockerOk(['rm', '-f', Z], { timeoutMs: 120_000 });
    const restarted = await waitFor(async () => {
      const p = await L.pluginPids(h1);
      return p.length === 1 && p[0] !== pid && p[0];
    }, { timeoutMs: 60_000, intervalMs: 100, what: 'a new plugin process (Docker restarts a killed managed plugin)' }).catch(async () => {
      await d1.docker(['plugin', 'disable', '-f', 'overlay-flannel'], { timeoutMs: 60_000 });
      await d1.dockerOk(['plugin', 'enable', 'overlay-flannel'], { timeoutMs: 60_000 });
      return null;
    });
    const [y] = await waitRecords(`${Y} put again on a new lease`, Y, NET, (rs) => rs.length === 1 && rs[0]!.lease !== leaseBefore);
    assert.deepEqual(y!.ipv4, [(await inspect(d1, Y, NET)).ip]);
    await waitRecords(`${Z} gone after the restart`, Z, NET, (rs) => rs.length === 0);
    const log = d1.logs().slice(mark);
    const viaAudit = /deleting a stale name record of this host/.test(log);
    t.diagnostic(`plugin restarted by ${restarted ? `Docker (pid ${restarted})` : 'disable/enable'}; lease ${leaseBefore} → ${y!.lease}; ${Z}'s record removed by ${viaAudit ? 'the start-up re-list (stale record of the previous process)' : 'its destroy event'}`);
    // h2 follows: Z gone, Y there.
    await waitFor(async () => {
      const o = await h2.execOk('node', [MAIN, 'names', '--network', NET, '--json'], { env: env(), timeoutMs: 20_000 });
      const rows = JSON.parse(o.stdout.slice(0, o.stdout.lastIndexOf(']') + 1)) as Array<{ name: string }>;
      return rows.some((r) => r.name === Y) && !rows.some((r) => r.name === Z);
    }, { timeoutMs: 20_000, what: `h2's names: ${Y} there, ${Z} gone` });
    await d1.dockerOk(['rm', '-f', Y], { timeoutMs: 60_000 });
    await waitRecords(`${Y} gone after rm`, Y, NET, (rs) => rs.length === 0);
  });

  it('6. dockerd restart with --live-restore (h1): the plugin keeps running and its records still follow Docker (rename, disconnect, rm, run)', async (t) => {
    const R = `r-${tag}`;
    const R2 = `r2-${tag}`;
    const W = `w-${tag}`;
    const N = `n-${tag}`;
    for (const c of [R, W]) await d1.dockerOk(['run', '-d', '--init', '--name', c, '--network', NET, 'ofbox:1', 'sleep', '3600'], { timeoutMs: 120_000 });
    await waitRecords(`${R} recorded`, R, NET, (rs) => rs.length === 1);
    await waitRecords(`${W} recorded`, W, NET, (rs) => rs.length === 1);
    const [pid] = await L.pluginPids(h1);
    await d1.restart();
    const pidsAfter = await L.pluginPids(h1);
    assert.deepEqual(pidsAfter, [pid], 'the plugin kept running across the live-restore restart (else this scenario tests nothing)');
    // Right after dockerd is back, before or while the plugin follows its events again.
    await d1.dockerOk(['rename', R, R2]);
    await waitRecords(`the record renamed to ${R2} after the restart`, R2, NET, (rs) => rs.length === 1, RESTART_DEADLINE_MS);
    await d1.dockerOk(['network', 'disconnect', NET, R2], { timeoutMs: 60_000 });
    await d1.dockerOk(['rm', '-f', W], { timeoutMs: 60_000 });
    await d1.dockerOk(['run', '-d', '--init', '--name', N, '--network', NET, 'ofbox:1', 'sleep', '3600'], { timeoutMs: 120_000 });
    await waitRecords(`${R2} gone from ${NET} after its disconnect`, R2, NET, (rs) => rs.length === 0, RESTART_DEADLINE_MS);
    await waitRecords(`${W} gone after its rm`, W, NET, (rs) => rs.length === 0, RESTART_DEADLINE_MS);
    await waitRecords(`${N} recorded after the restart`, N, NET, (rs) => rs.length === 1, RESTART_DEADLINE_MS);
    assert.deepEqual(await recordsOf(R), [], `no record under ${R}`);
    t.diagnostic(`plugin kept running (pid ${pid}) across the live-restore restart; its records followed Docker right after it`);
    for (const c of [R2, N]) await d1.dockerOk(['rm', '-f', c], { timeoutMs: 60_000 });
    await waitRecords(`${N} gone after rm`, N, NET, (rs) => rs.length === 0);
  });
});
