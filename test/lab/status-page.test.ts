/**
 * Issue 9 on the real kernel: three lab hosts run the real daemon with STATUS_ADDR; the status
 * server of host 1, read from inside its namespace, must agree with etcd and the kernel, count
 * reconciles and renewals in /metrics, and stream a new lease over /api/v1/events.
 * If `chromium` is installed, the page is also opened headless and a screenshot saved.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { OverlayLab, LeaseView, ROOT } from './overlay-lab';
import { waitFor } from '../helpers/wait';
import { run } from '../helpers/run';

const TTL = '6';
const ADDR = '0.0.0.0:9890';

describe('status server on three lab hosts', () => {
  let lab: OverlayLab;
  let leases: Map<string, LeaseView>;

  /** GET http://<host n>:9890<path> from inside host 1's namespace (curl). */
  async function get(path: string, n = 1): Promise<{ status: number; body: string }> {
    const r = await lab.host(1).exec('curl', ['-s', '-m', '5', '-w', '\n%{http_code}', `http://192.0.2.${n}:9890${path}`], { timeoutMs: 10_000 });
    const i = r.stdout.lastIndexOf('\n');
    return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
  }
  const getJson = async (path: string) => JSON.parse((await get(path)).body);

  before(async () => {
    lab = await OverlayLab.create(3);
    await lab.cli(['config', 'set', '--network', lab.network, '--vni', String(lab.vni)]);
    for (const n of [1, 2]) lab.startDaemon(n, { LEASE_TTL: TTL, STATUS_ADDR: ADDR });
    leases = await lab.waitForLeases(['192.0.2.1', '192.0.2.2']);
  });

  after(async () => {
    await lab?.destroy();
  });

  it('/healthz is 200 once the lease is held and the socket serves', async () => {
    await waitFor(async () => ((await get('/healthz')).status === 200 ? true : undefined), { timeoutMs: 20_000, intervalMs: 200, what: `healthz 200; log:\n${lab.logs(1)}` });
  });

  it('/api/v1/overlays matches the leases in etcd', async () => {
    const j = await waitFor(
      async () => {
        const v = await getJson('/api/v1/overlays');
        return v.overlays[0]?.leases.length === 2 ? v : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'two leases in /api/v1/overlays' },
    );
    const o = j.overlays[0];
    assert.equal(o.name, 'default');
    assert.equal(o.prefix, lab.prefix);
    assert.equal(o.state, 'ready');
    assert.deepEqual([o.config.network, o.config.backend.type, o.config.backend.vni], [lab.network, 'vxlan', lab.vni]);
    assert.equal(o.lease.subnet, leases.get('192.0.2.1')!.subnet);
    const got = o.leases.map((l: { subnet: string; publicIP: string; vtepMac: string; own: boolean; expiresAt: string }) => `${l.subnet} ${l.publicIP} ${l.vtepMac} ${l.own}`).sort();
    const want = [...leases.values()].map((l) => `${l.subnet} ${l.publicIP} ${l.vtepMac} ${l.publicIP === '192.0.2.1'}`).sort();
    assert.deepEqual(got, want);
    assert.ok(Date.parse(o.lease.expiresAt) > Date.now(), `own expiresAt ${o.lease.expiresAt} in the future`);
    assert.equal(o.leases.find((l: { own: boolean }) => l.own).expiresAt, o.lease.expiresAt);
  });

  it('/api/v1/kernel matches what the kernel holds', async () => {
    const entries = await lab.peerEntries(1);
    const k = (await getJson('/api/v1/kernel')).overlays[0];
    assert.equal(k.device, `flannel.${lab.vni}`);
    const neigh = k.peers.flatMap((p: { neighbours: { ip: string; mac: string }[] }) => p.neighbours.map((n) => `${n.ip} ${n.mac}`)).sort();
    const fdb = k.peers.flatMap((p: { fdb: { mac: string; dst: string }[] }) => p.fdb.map((f) => `${f.mac} ${f.dst}`)).sort();
    const routes = k.peers.flatMap((p: { routes: { dst: string; gateway: string; onlink: boolean }[] }) => p.routes.map((r) => `${r.dst} via ${r.gateway}${r.onlink ? ' onlink' : ''}`)).sort();
    assert.deepEqual({ neigh, fdb, routes }, entries);
    assert.equal(entries.routes.length, 1);
    assert.ok(k.stats.fullSyncs >= 1);
  });

  it('/metrics counts leases, reconciles, kernel ops, API calls and renewals', async () => {
    // TTL 6 s renews every 2 s: wait for one renewal.
    const text = await waitFor(
      async () => {
        const t = (await get('/metrics')).body;
        return /overlay_flannel_lease_renewals_total\{overlay="default"\} [1-9]/.test(t) ? t : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 500, what: 'a renewal in /metrics' },
    );
    assert.match(text, /overlay_flannel_leases\{overlay="default"\} 2\n/);
    assert.match(text, /overlay_flannel_reconcile_runs_total\{kind="full"\} [1-9]/);
    assert.match(text, /overlay_flannel_reconcile_duration_seconds_bucket\{le="\+Inf",kind="full"\} [1-9]/);
    assert.match(text, /overlay_flannel_kernel_ops_total\{op="setRoute"\} [1-9]/);
    assert.match(text, /overlay_flannel_reconcile_errors_total 0/);
    // A plugin call on host 1's socket shows up by call and status.
    const sock = `/run/of-lab-${lab.lab.runId}-h1.sock`;
    await lab.host(1).execOk('curl', ['-s', '--unix-socket', sock, '-X', 'POST', 'http://plugin/Plugin.Activate']);
    const t2 = (await get('/metrics')).body;
    assert.match(t2, /overlay_flannel_api_requests_total\{call="[^"]*Activate[^"]*",status="200"\} 1/);
    assert.match(t2, /overlay_flannel_api_request_duration_seconds_count\{call="[^"]*Activate[^"]*"\} 1/);
  });

  it('/api/v1/events streams a new lease when host 3 joins; the page is served', async () => {
    const page = await get('/');
    assert.equal(page.status, 200);
    assert.match(page.body, /EventSource/);
    const stream = lab.host(1).exec('curl', ['-s', '-N', '-m', '25', 'http://192.0.2.1:9890/api/v1/events'], { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 500));
    lab.startDaemon(3, { LEASE_TTL: TTL, STATUS_ADDR: ADDR });
    const all = await lab.waitForLeases(['192.0.2.1', '192.0.2.2', '192.0.2.3']);
    const third = all.get('192.0.2.3')!.subnet;
    // the stream ends at curl's -m; the last snapshot must hold the third host
    const out = (await stream).stdout;
    const snapshots = out.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
    assert.ok(snapshots.length >= 2, `≥ 2 snapshots, got ${snapshots.length}`);
    assert.ok(!snapshots[0].overlays[0].leases.some((l: { subnet: string }) => l.subnet === third), 'the first snapshot predates host 3');
    assert.ok(snapshots.at(-1).overlays[0].leases.some((l: { subnet: string }) => l.subnet === third), `a later snapshot has ${third}`);
  });

  it('headless chromium shows every host and this host', async () => {
    const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
    assert.ok(chromium, 'chromium is not installed (.ci/run installs it: apt-get install chromium)');
    const all = await lab.leases();
    const dir = join(ROOT, 'test-artifacts');
    mkdirSync(dir, { recursive: true });
    const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--user-data-dir=/tmp/of-chromium-' + lab.lab.runId];
    const dom = await lab.host(1).execOk(chromium, [...flags, '--dump-dom', 'http://192.0.2.1:9890/'], { timeoutMs: 60_000 });
    for (const l of all.values()) {
      assert.ok(dom.stdout.includes(`data-subnet="${l.subnet}"`), `page shows ${l.subnet}`);
      assert.ok(dom.stdout.includes(l.publicIP), `page shows ${l.publicIP}`);
    }
    assert.match(dom.stdout, /\(this host\)/);
    await lab.host(1).execOk(chromium, [...flags, '--window-size=1000,700', `--screenshot=${join(dir, 'status-page.png')}`, 'http://192.0.2.1:9890/'], { timeoutMs: 60_000 });
    assert.ok(existsSync(join(dir, 'status-page.png')));
    await run('true', []);
  });
});
