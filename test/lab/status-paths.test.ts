/**
 * Issue 20's path probes on the real kernel: three lab hosts run the real daemon (vxlan) with
 * STATUS_ADDR and the default PROBE_PORT; host 1's /api/v1/paths must show both peers reachable
 * with a measured RTT, /metrics the per-peer series; host 3 cut off the LAN (its port on the LAN
 * bridge down; its lease, LEASE_TTL 120 s, stays live) must read "unreachable" on host 1's page in
 * words, and in the problems list, within 15 s, and clear within 15 s of the port coming back.
 * `overlay-flannel status --paths` on host 1 measures the same (exit 3 while host 3 is away).
 * The host × host matrix: every host's path report in etcd (`overlay-flannel/paths/<ip>`, on an
 * etcd lease), host 1's /api/v1/cluster and page full with RTTs; while host 3 is cut off its
 * column reads "unreachable" in hosts 1's and 2's rows within 15 s, and clears within 15 s.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { OverlayLab, LeaseView, MAIN, ROOT } from './overlay-lab';
import { launchBrowserIn, NsBrowser } from './status-browser';
import { run } from '../helpers/run';
import { waitFor } from '../helpers/wait';
import { cellOf, type ApiMatrix } from '../helpers/api-matrix';
import { nameRecord } from '../helpers/name-records';
import { encodeNameRecord } from '../../src/domain/name-record';
import { overlayKeys } from '../../src/store/keys';

const PAGE = 'http://192.0.2.1:9890/';

const HOSTS = ['192.0.2.1', '192.0.2.2', '192.0.2.3'];

interface Peer {
  publicIP: string;
  state: string;
  rttMs: number | null;
  loss: number | null;
}

describe('path probes on three lab hosts', { timeout: 300_000 }, () => {
  let lab: OverlayLab;
  let leases: Map<string, LeaseView>;
  let nsb: NsBrowser | undefined;
  const artifacts = join(ROOT, 'test-artifacts');

  const get = async (path: string): Promise<string> => (await lab.host(1).exec('curl', ['-s', '-m', '5', `http://192.0.2.1:9890${path}`], { timeoutMs: 10_000 })).stdout;
  const peers = async (): Promise<Peer[]> => JSON.parse(await get('/api/v1/paths')).overlays[0]?.peers ?? [];
  const matrix = async (): Promise<ApiMatrix | undefined> => (JSON.parse(await get('/api/v1/cluster')).matrix as ApiMatrix[]).find((m) => m.overlay === 'default');
  const full = (m: ApiMatrix | undefined) =>
    m && m.hosts.length === 3 && HOSTS.every((a) => HOSTS.every((b) => (a === b ? cellOf(m, a, b)?.state === 'self' : cellOf(m, a, b)?.state === 'reachable' && cellOf(m, a, b)?.rttMs !== null))) ? m : undefined;
  const env = (n: number) => ({ LEASE_TTL: '120', STATUS_ADDR: '0.0.0.0:9890', DOCKER_SOCKET: `/run/of-lab-${lab.lab.runId}-h${n}-no-docker.sock` });

  before(async () => {
    lab = await OverlayLab.create(3);
    await lab.cli(['config', 'set', '--network', lab.network, '--vni', String(lab.vni)]);
    for (const n of [1, 2, 3]) lab.startDaemon(n, env(n));
    leases = await lab.waitForLeases(['192.0.2.1', '192.0.2.2', '192.0.2.3']);
    mkdirSync(artifacts, { recursive: true });
    // A container on hosts 2 and 3 each (their daemons have no Docker here): name records as theirs would be.
    const keys = overlayKeys(lab.prefix);
    for (const n of [2, 3]) {
      const r = nameRecord({ containerName: `web-${n}`, aliases: ['web'], ipv4: [`${leases.get(`192.0.2.${n}`)!.subnet.split('.').slice(0, 3).join('.')}.2`], host: `192.0.2.${n}`, endpointId: `b${n}`.repeat(32) });
      await lab.etcd.etcdctl(['put', keys.nameKey(r.networkId, r.endpointId), encodeNameRecord(r)]);
    }
  });

  after(async () => {
    await nsb?.close();
    await lab?.destroy();
  });

  it('/api/v1/paths: both peers reachable with an RTT; /metrics has the per-peer series', async () => {
    const ps = await waitFor(
      async () => {
        const p = await peers().catch(() => []);
        return p.length === 2 && p.every((x) => x.state === 'reachable' && x.rttMs !== null) ? p : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: `both peers reachable in /api/v1/paths; log:\n${lab.logs(1).slice(-3000)}` },
    );
    assert.deepEqual(ps.map((p) => p.publicIP).sort(), ['192.0.2.2', '192.0.2.3']);
    for (const p of ps) assert.ok(p.rttMs! > 0 && p.rttMs! < 100, `RTT ${p.rttMs} ms to ${p.publicIP}`);
    const bound = JSON.parse(await get('/api/v1/paths')).overlays[0].bound;
    assert.equal(bound, `${leases.get('192.0.2.1')!.subnet.split('/')[0]}:8479`, 'bound to this host\'s .0');
    const m = await get('/metrics');
    assert.match(m, /overlay_flannel_path_up\{overlay="default",peer="192\.0\.2\.2"\} 1\n/);
    assert.match(m, /overlay_flannel_path_rtt_seconds\{overlay="default",peer="192\.0\.2\.3"\} 0\.\d+/);
    console.log(`# path RTT from host 1: ${ps.map((p) => `${p.publicIP} ${p.rttMs} ms`).join(', ')}`);
    // The CLI measures the same paths now, from an ephemeral port on host 1's .0.
    const cli = await lab.cli(['status', '--paths']);
    assert.match(cli, /^PEER\s+SUBNET\s+RTT\s+LOSS\s+STATE$/m);
    for (const ip of ['192.0.2.2', '192.0.2.3']) assert.match(cli, new RegExp(`^${ip.replace(/\./g, '\\.')}\\s+\\S+\\s+[\\d.]+ ms\\s+0%\\s+reachable$`, 'm'), cli);
  });

  it('the host × host matrix: every host\'s report in etcd on a lease, full with RTTs in /api/v1/cluster and on the page', async () => {
    const m = await waitFor(async () => full(await matrix().catch(() => undefined)), { timeoutMs: 30_000, intervalMs: 500, what: 'a full 3 × 3 matrix in /api/v1/cluster' });
    assert.deepEqual(m.hosts.map((h) => h.publicIP).sort(), HOSTS, 'rows: the hosts holding a lease (in subnet order)');
    assert.deepEqual(HOSTS.map((ip) => m.hosts.find((h) => h.publicIP === ip)!.version), [null, '0.1.0', '0.1.0'], 'the others\' plugin version from their reports');
    for (const a of HOSTS) for (const b of HOSTS) if (a !== b) assert.ok(cellOf(m, a, b)!.rttMs! < 100 && cellOf(m, a, b)!.ageSec! <= 15, `${a} → ${b}: ${JSON.stringify(cellOf(m, a, b))}`);
    // In etcd: one record per host under overlay-flannel/paths (not under subnets), each on an etcd lease.
    const root = overlayKeys(lab.prefix).pathsRoot;
    const kvs = async () => (JSON.parse((await lab.etcd.etcdctl(['get', '--prefix', root, '-w', 'json'])).stdout).kvs ?? []) as { key: string; version: number; lease?: number | string }[];
    const before = await kvs();
    assert.deepEqual(before.map((k) => Buffer.from(k.key, 'base64').toString()).sort(), HOSTS.map((h) => root + h));
    for (const k of before) assert.ok(k.lease && String(k.lease) !== '0', `${Buffer.from(k.key, 'base64')} is on an etcd lease`);
    // The write rate, steady: puts per host (each key's version) over 12 s; the rule says ≤ 1 / 3 s, ~1 / 10 s steady.
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 12_000));
    const after = await kvs();
    const secs = (Date.now() - t0) / 1000;
    const rates = after.map((k) => (k.version - before.find((b) => b.key === k.key)!.version) / secs);
    for (const r of rates) assert.ok(r <= 1 / 3 + 0.01, `at most one write per 3 s per host, got ${r.toFixed(3)}/s`);
    console.log(`# path report writes per host over ${secs.toFixed(1)} s (steady): ${rates.map((r) => r.toFixed(3)).join(', ')} /s`);
    const value = (await lab.etcd.etcdctl(['get', root + '192.0.2.2', '--print-value-only'])).stdout.trim();
    console.log(`# path report size: ${Buffer.byteLength(value)} bytes for 2 peers`);
    nsb = await launchBrowserIn(lab.host(1), lab.lab.runId);
    const page = await nsb.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(PAGE, { timeout: 30_000 });
    for (const a of HOSTS) for (const b of HOSTS) if (a !== b) await waitFor(async () => (/\d ms/.test(await page.locator(`table.matrix td[data-from="${a}"][data-to="${b}"]`).innerText()) ? true : undefined), { timeoutMs: 15_000, intervalMs: 250, what: `an RTT ${a} → ${b} in the page's matrix` });
    const html = await page.content();
    console.log(`# page with the matrix: ${Buffer.byteLength(html)} bytes`);
    await page.locator('table.matrix').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(artifacts, 'status-matrix.png'), fullPage: true });
    await page.close();
  });

  it('host 3 cut off the LAN: "unreachable" on the page within 15 s while its lease is live; clears within 15 s', async () => {
    nsb ??= await launchBrowserIn(lab.host(1), lab.lab.runId);
    const page = await nsb.browser.newPage({ viewport: { width: 1280, height: 900 } });
    const mcell = (a: string, b: string) => page.locator(`table.matrix td[data-from="${a}"][data-to="${b}"]`);
    await page.goto(PAGE, { timeout: 30_000 });
    const row3 = page.locator(`tr.host[data-subnet="${leases.get('192.0.2.3')!.subnet}"] td.path`);
    await waitFor(async () => (/ms/.test(await row3.innerText()) ? true : undefined), { timeoutMs: 15_000, intervalMs: 250, what: 'an RTT for host 3 on the page' });
    await page.locator('tr.ctr[data-name="web-3"]').waitFor({ timeout: 15_000 });
    await page.screenshot({ path: join(artifacts, 'status-paths.png') });
    const lan = (await lab.lab.lan()).ns;
    await run('ip', ['-n', lan, 'link', 'set', 'p3', 'down']);
    const cut = Date.now();
    let lostMs = 0;
    let columnMs = 0;
    try {
      await waitFor(async () => (/unreachable/.test(await row3.innerText()) ? true : undefined), { timeoutMs: 15_000, intervalMs: 250, what: 'host 3 unreachable on the page' });
      lostMs = Date.now() - cut;
      // Its column in the matrix: host 1's own probes, and host 2's through its report in etcd.
      for (const from of ['192.0.2.1', '192.0.2.2']) {
        await waitFor(async () => ((await mcell(from, '192.0.2.3').innerText()).startsWith('unreachable') ? true : undefined), { timeoutMs: Math.max(1, 15_000 - (Date.now() - cut)), intervalMs: 250, what: `${from} → 192.0.2.3 unreachable in the page's matrix within 15 s` });
      }
      columnMs = Date.now() - cut;
      assert.equal(await mcell('192.0.2.2', '192.0.2.3').getAttribute('data-state'), 'unreachable');
      assert.match(await mcell('192.0.2.1', '192.0.2.2').innerText(), /\d ms/, 'host 1 → host 2 unaffected');
      assert.match(await page.locator('#problems').innerText(), /192\.0\.2\.3 .*unreachable through the overlay from 192\.0\.2\.2 while both leases are live/);
      const m = (await matrix())!;
      assert.equal(cellOf(m, '192.0.2.2', '192.0.2.3')!.state, 'unreachable');
      assert.match(await page.locator('#problems li.problem[data-kind="path-unreachable"]', { hasText: 'from this host' }).innerText(), /192\.0\.2\.3 .*unreachable through the overlay/);
      const p3 = (await peers()).find((p) => p.publicIP === '192.0.2.3')!;
      assert.equal(p3.state, 'unreachable');
      assert.ok((p3.loss ?? 0) > 0, `loss ${p3.loss}`);
      assert.match(await get('/metrics'), /overlay_flannel_path_up\{overlay="default",peer="192\.0\.2\.3"\} 0\n/);
      assert.equal((await peers()).find((p) => p.publicIP === '192.0.2.2')!.state, 'reachable', 'host 2 is not affected');
      const cli = await lab.host(1).exec('node', [MAIN, 'status', '--paths'], { env: { ...process.env, ...lab.env() }, timeoutMs: 20_000 });
      assert.equal(cli.code, 3, `exit 3 when a peer is unreachable: ${cli.stdout}${cli.stderr}`);
      assert.match(cli.stdout, /^192\.0\.2\.3\s+\S+\s+-\s+100%\s+unreachable$/m);
      await page.screenshot({ path: join(artifacts, 'status-paths-cut.png') });
      // Host 3's own row: it cannot write its report while cut off, so the row goes "unknown (report stale)".
      const staleAt = await waitFor(async () => (/report stale|no report/.test(await mcell('192.0.2.3', '192.0.2.1').innerText()) ? Date.now() - cut : undefined), { timeoutMs: 30_000, intervalMs: 250, what: 'host 3\'s row stale' });
      console.log(`# host 3's own row marked stale ${staleAt} ms after the cut`);
      assert.match(await page.locator('table.matrix tr.mrow[data-host="192.0.2.3"] th').innerText(), /report \d+ s old/, 'the stale row says how old its report is');
      // Host 3's own view (its status server, asked inside its namespace): its row is its live
      // probes (both peers unreachable), the others' rows "etcd unreachable" (not "report stale":
      // it is host 3 that cannot read etcd), the view stale, and its peers in its problems.
      const own3 = async (): Promise<{ stale: boolean; matrix: ApiMatrix[]; problems: { kind: string; text: string }[] }> =>
        JSON.parse((await lab.host(3).exec('curl', ['-s', '-m', '5', 'http://127.0.0.1:9890/api/v1/cluster'], { timeoutMs: 10_000 })).stdout);
      const v3 = await waitFor(async () => {
        const v = await own3().catch(() => undefined);
        const m = v?.matrix.find((x) => x.overlay === 'default');
        const ok = v?.stale && ['192.0.2.1', '192.0.2.2'].every((p) => cellOf(m, '192.0.2.3', p)?.state === 'unreachable' && cellOf(m, p, '192.0.2.3')?.note === 'etcd unreachable');
        return ok ? { v: v!, at: Date.now() - cut } : undefined;
      }, { timeoutMs: 40_000, intervalMs: 500, what: 'host 3\'s own view: its peers unreachable, the others\' rows "etcd unreachable"' });
      const kinds = v3.v.problems.map((p) => p.kind);
      assert.ok(kinds.includes('etcd-down'), `host 3's problems: ${kinds}`);
      assert.equal(v3.v.problems.filter((p) => p.kind === 'path-unreachable' && /from this host/.test(p.text)).length, 2, 'both peers unreachable from host 3, in its own problems');
      console.log(`# host 3's own view: peers unreachable, the others' rows "etcd unreachable" ${v3.at} ms after the cut`);
      await page.locator('table.matrix').scrollIntoViewIfNeeded();
      await page.screenshot({ path: join(artifacts, 'status-matrix-cut.png'), fullPage: true });
    } finally {
      await run('ip', ['-n', lan, 'link', 'set', 'p3', 'up']);
    }
    const up = Date.now();
    await waitFor(async () => (/ms/.test(await row3.innerText()) ? true : undefined), { timeoutMs: 15_000, intervalMs: 250, what: 'host 3 reachable again on the page' });
    const backMs = Date.now() - up;
    for (const [a, b] of [['192.0.2.1', '192.0.2.3'], ['192.0.2.2', '192.0.2.3'], ['192.0.2.3', '192.0.2.1'], ['192.0.2.3', '192.0.2.2']]) {
      await waitFor(async () => (/\d ms/.test(await mcell(a!, b!).innerText()) ? true : undefined), { timeoutMs: Math.max(1, 15_000 - (Date.now() - up)), intervalMs: 250, what: `${a} → ${b} back to an RTT in the matrix within 15 s` });
    }
    const matrixBackMs = Date.now() - up;
    await page.locator('li.event[data-kind="path-back"]').first().waitFor({ timeout: 10_000 });
    console.log(`# host 3 cut off: unreachable on host 1's page after ${lostMs} ms; back ${backMs} ms after the port came up`);
    console.log(`# matrix: host 3's column unreachable (rows 1 and 2) ${columnMs} ms after the cut; row and column back ${matrixBackMs} ms after the port came up`);
    await page.close();
  });
});
