/**
 * Issue 9 on the real kernel: lab hosts run the real daemon with STATUS_ADDR; the status server of
 * host 1, read from inside its namespace, must agree with etcd and the kernel (leases, expiries,
 * peers programmed, an endpoint made through the plugin socket), count reconciles, renewals and
 * API calls in /metrics, report etcd's state (up, then down while etcd is stopped), and the page,
 * open in a real headless Chromium (playwright-core), must show a new lease without a reload.
 * The whole-overlay view (issue 20): name records put in etcd show as containers of host 2 on host
 * 1's page (searchable), a record of a host without a lease as a problem, and with etcd stopped
 * /api/v1/cluster keeps every host and container, marked stale, until etcd is back.
 * Screenshots (desktop and phone) go to test-artifacts/.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { OverlayLab, LeaseView, ROOT } from './overlay-lab';
import { launchBrowserIn, NsBrowser } from './status-browser';
import { waitFor } from '../helpers/wait';
import { nameRecord } from '../helpers/name-records';
import { encodeNameRecord, type NameRecord } from '../../src/domain/name-record';
import { overlayKeys } from '../../src/store/keys';

const TTL = 6;
const ADDR = '0.0.0.0:9890';
const PAGE = 'http://192.0.2.1:9890/';

describe('status server on three lab hosts', { timeout: 240_000 }, () => {
  let lab: OverlayLab;
  let leases: Map<string, LeaseView>;
  let nsBrowser: NsBrowser | undefined;
  // The page's own scripts run in the browser; the few expressions evaluated there are strings
  // (this project's TypeScript has no DOM types).
  const artifacts = join(ROOT, 'test-artifacts');
  const endpointId = randomBytes(32).toString('hex');
  let endpointIp = '';

  /** GET http://<host n>:9890<path> from inside host 1's namespace (curl). */
  async function get(path: string, n = 1): Promise<{ status: number; body: string }> {
    const r = await lab.host(1).exec('curl', ['-s', '-m', '5', '-w', '\n%{http_code}', `http://192.0.2.${n}:9890${path}`], { timeoutMs: 10_000 });
    const i = r.stdout.lastIndexOf('\n');
    return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
  }
  const getJson = async (path: string) => JSON.parse((await get(path)).body);
  const sock = () => `/run/of-lab-${lab.lab.runId}-h1.sock`;
  /** One plugin API call on host 1's socket; the parsed answer. */
  async function plugin(call: string, body: unknown): Promise<Record<string, unknown>> {
    const r = await lab.host(1).execOk('curl', ['-s', '-m', '10', '--unix-socket', sock(), '-X', 'POST', '-d', JSON.stringify(body), `http://plugin/${call}`], { timeoutMs: 15_000 });
    return JSON.parse(r.stdout || '{}');
  }
  const env = (n: number) => ({ LEASE_TTL: String(TTL), STATUS_ADDR: ADDR, DOCKER_SOCKET: `/run/of-lab-${lab.lab.runId}-h${n}-no-docker.sock` });

  before(async () => {
    lab = await OverlayLab.create(3);
    await lab.cli(['config', 'set', '--network', lab.network, '--vni', String(lab.vni)]);
    for (const n of [1, 2]) lab.startDaemon(n, env(n));
    leases = await lab.waitForLeases(['192.0.2.1', '192.0.2.2']);
    mkdirSync(artifacts, { recursive: true });
  });

  after(async () => {
    await nsBrowser?.close();
    await lab?.destroy();
  });

  it('/healthz is 200 once the lease is held and the socket serves', async () => {
    await waitFor(async () => ((await get('/healthz')).status === 200 ? true : undefined), { timeoutMs: 20_000, intervalMs: 200, what: `healthz 200; log:\n${lab.logs(1)}` });
  });

  it('/api/v1/overlays matches the leases in etcd, with expiries and last seen', async () => {
    const j = await waitFor(
      async () => {
        const v = await getJson('/api/v1/overlays');
        return v.overlays[0]?.leases.length === 2 && v.overlays[0].leases.every((l: { lastSeen: string | null }) => l.lastSeen) ? v : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'two leases, both seen, in /api/v1/overlays' },
    );
    const o = j.overlays[0];
    assert.equal(o.name, 'default');
    assert.equal(o.prefix, lab.prefix);
    assert.equal(o.state, 'ready');
    assert.deepEqual([o.config.network, o.config.backend.type, o.config.backend.vni], [lab.network, 'vxlan', lab.vni]);
    assert.equal(o.lease.subnet, leases.get('192.0.2.1')!.subnet);
    const got = o.leases.map((l: { subnet: string; publicIP: string; vtepMac: string; own: boolean }) => `${l.subnet} ${l.publicIP} ${l.vtepMac} ${l.own}`).sort();
    const want = [...leases.values()].map((l) => `${l.subnet} ${l.publicIP} ${l.vtepMac} ${l.publicIP === '192.0.2.1'}`).sort();
    assert.deepEqual(got, want);
    const now = Date.now();
    for (const l of o.leases as { subnet: string; expiresAt: string; lastSeen: string }[]) {
      // TTL 6 s, renewed every 2 s: every lease (the peer's asked from etcd) expires within 6 s,
      // and was last written (renewed) within the last 6 s.
      const exp = Date.parse(l.expiresAt) - now;
      const seen = now - Date.parse(l.lastSeen);
      assert.ok(exp > -1000 && exp <= TTL * 1000 + 1000, `${l.subnet} expires in ${exp} ms`);
      assert.ok(seen >= -1000 && seen <= TTL * 1000 + 1000, `${l.subnet} last seen ${seen} ms ago`);
    }
    // The peer's expiry follows its renewals: read again after one, it has moved forward.
    const peer = (v: { overlays: { leases: { own: boolean; expiresAt: string }[] }[] }) => Date.parse(v.overlays[0].leases.find((l) => !l.own)!.expiresAt);
    const first = peer(j);
    await waitFor(async () => (peer(await getJson('/api/v1/overlays')) > first ? true : undefined), { timeoutMs: 10_000, intervalMs: 300, what: 'the peer lease expiry moves on after a renewal' });
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

  it('/api/v1/containers: an endpoint made through the plugin socket, from the kernel when Docker is away', async () => {
    const subnet = leases.get('192.0.2.1')!.subnet;
    const [base, len] = subnet.split('/');
    const p3 = base!.split('.').slice(0, 3).join('.');
    endpointIp = `${p3}.77`;
    const networkId = randomBytes(32).toString('hex');
    await plugin('NetworkDriver.CreateNetwork', { NetworkID: networkId, Options: {}, IPv4Data: [{ AddressSpace: 'overlay-flannel', Pool: subnet, Gateway: `${p3}.1/${len}` }], IPv6Data: [] });
    await plugin('NetworkDriver.CreateEndpoint', { NetworkID: networkId, EndpointID: endpointId, Interface: { Address: `${endpointIp}/${len}` }, Options: {} });
    const veth = `ofh${endpointId.slice(0, 12)}`;
    const link = (await lab.host(1).execJson<{ ifname: string }[]>(['link', 'show', veth]))[0];
    assert.equal(link?.ifname, veth, 'the driver made the veth');
    const c = await getJson('/api/v1/containers');
    assert.equal(c.source, 'kernel');
    assert.match(c.dockerError, /no-docker\.sock/, 'says why there are no names');
    assert.deepEqual(c.endpoints, [
      { endpoint: endpointId.slice(0, 12), hostVeth: veth, bridge: `ofb-${networkId.slice(0, 11)}`, network: null, networkId: networkId.slice(0, 11), address: endpointIp, address6: null, container: null, containerId: null },
    ]);
  });

  it('/api/v1/cluster: every host, the containers of another host from its name records, records of a host without a lease as a problem', async () => {
    const l2 = leases.get('192.0.2.2')!;
    const ip2 = `${l2.subnet.split('.').slice(0, 3).join('.')}.9`;
    const keys = overlayKeys(lab.prefix);
    const put = (r: NameRecord) => lab.etcd.etcdctl(['put', keys.nameKey(r.networkId, r.endpointId), encodeNameRecord(r)]);
    await put(nameRecord({ containerName: 'chat-2', aliases: ['chat'], ipv4: [ip2], host: '192.0.2.2', endpointId: 'a2'.repeat(32) }));
    await put(nameRecord({ containerName: 'ghost', ipv4: ['10.99.0.2'], host: '192.0.2.77', endpointId: 'a7'.repeat(32) }));
    const c = await waitFor(
      async () => {
        const v = await getJson('/api/v1/cluster');
        return v.containers.length === 2 ? v : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 300, what: 'two containers in /api/v1/cluster' },
    );
    assert.deepEqual(
      c.hosts.map((h: { subnet: string; publicIP: string; kind: string; containers: number; own: boolean }) => `${h.subnet} ${h.publicIP} ${h.kind} ${h.containers} ${h.own}`).sort(),
      [`${leases.get('192.0.2.1')!.subnet} 192.0.2.1 plugin 0 true`, `${l2.subnet} 192.0.2.2 plugin 1 false`].sort(),
    );
    const chat = c.containers.find((x: { name: string }) => x.name === 'chat-2');
    assert.deepEqual(chat, { name: 'chat-2', aliases: ['chat'], addresses: [ip2], network: 'appnet', host: '192.0.2.2', overlay: 'default', subnet: l2.subnet });
    assert.deepEqual(c.problems.map((p: { kind: string; host: string }) => `${p.kind} ${p.host}`), ['names-without-lease 192.0.2.77']);
    assert.equal(c.stale, false);
    // Started after the server's first step: an event.
    assert.ok(c.events.some((e: { kind: string; text: string }) => e.kind === 'container-started' && /chat-2/.test(e.text)), JSON.stringify(c.events));
  });

  it('/metrics: leases, reconciles, kernel ops, API calls, renewals, etcd up', async () => {
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
    assert.match(text, /overlay_flannel_etcd_up 1\n/);
    assert.match(text, /overlay_flannel_api_requests_total\{call="NetworkDriver\.CreateEndpoint",status="200"\} 1\n/);
    assert.match(text, /overlay_flannel_api_request_duration_seconds_count\{call="NetworkDriver\.CreateNetwork"\} 1\n/);
    await lab.host(1).execOk('curl', ['-s', '--unix-socket', sock(), '-X', 'POST', 'http://plugin/Plugin.Activate']);
    const t2 = (await get('/metrics')).body;
    assert.match(t2, /overlay_flannel_api_requests_total\{call="Plugin\.Activate",status="200"\} 1\n/);
  });

  it('the page in Chromium shows hosts, subnets and the endpoint, then host 3 without a reload (and streams it)', async () => {
    nsBrowser = await launchBrowserIn(lab.host(1), lab.lab.runId);
    const page = await nsBrowser.browser.newPage({ viewport: { width: 1100, height: 760 } });
    await page.goto(PAGE, { timeout: 30_000 });
    await page.waitForFunction("document.getElementById('conn')?.textContent === 'live'", undefined, { timeout: 20_000 });
    for (const l of leases.values()) {
      const row = page.locator(`tr.host[data-subnet="${l.subnet}"]`);
      assert.equal(await row.count(), 1, `a row for ${l.subnet}`);
      assert.match(await row.innerText(), new RegExp(l.publicIP.replace(/\./g, '\\.')));
    }
    assert.match(await page.locator('tr.host.own').innerText(), /\(this host\)/);
    assert.match(await page.locator(`tr.endpoint[data-endpoint="${endpointId.slice(0, 12)}"]`).innerText(), new RegExp(endpointIp.replace(/\./g, '\\.')));
    assert.match(await page.locator('#etcd').innerText(), /up/);
    // Every host's containers (host 2's, from its name record), and the search.
    assert.match(await page.locator('tr.ctr[data-name="chat-2"]').innerText(), /192\.0\.2\.2/);
    assert.match(await page.locator('#problems li.problem[data-kind="names-without-lease"]').innerText(), /192\.0\.2\.77/);
    await page.fill('#q', 'chat');
    await page.waitForFunction("document.querySelectorAll('tr.ctr').length === 1", undefined, { timeout: 5000 });
    await page.fill('#q', '');
    // A marker in the window: a reload would lose it.
    await page.evaluate('window.marker = 42');
    const stream = lab.host(1).exec('curl', ['-s', '-N', '-m', '25', 'http://192.0.2.1:9890/api/v1/events'], { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 500));
    lab.startDaemon(3, env(3));
    const third = (await lab.waitForLeases(['192.0.2.1', '192.0.2.2', '192.0.2.3'])).get('192.0.2.3')!;
    await page.locator(`tr.host[data-subnet="${third.subnet}"]`).waitFor({ timeout: 30_000 });
    assert.match(await page.locator(`tr.host[data-subnet="${third.subnet}"]`).innerText(), /192\.0\.2\.3/);
    assert.equal(await page.evaluate('window.marker'), 42, 'the page was not reloaded');
    assert.equal(await page.locator('svg circle').count(), 3, 'the picture has three hosts');
    await page.screenshot({ path: join(artifacts, 'status-page.png'), fullPage: true });
    assert.ok(statSync(join(artifacts, 'status-page.png')).size > 10_000);
    const out = (await stream).stdout;
    // The "status" events (the stream also carries "cluster" and "containers" ones).
    const snapshots = out
      .split('\n\n')
      .filter((b) => b.startsWith('event: status\n'))
      .map((b) => JSON.parse(b.split('\n').find((l) => l.startsWith('data: '))!.slice(6)));
    assert.ok(snapshots.length >= 2, `≥ 2 snapshots, got ${snapshots.length}`);
    assert.ok(!snapshots[0].overlays[0].leases.some((l: { subnet: string }) => l.subnet === third.subnet), 'the first snapshot predates host 3');
    assert.ok(snapshots.at(-1).overlays[0].leases.some((l: { subnet: string }) => l.subnet === third.subnet), `a later snapshot has ${third.subnet}`);
  });

  it('the page on a phone-sized screen: no sideways scrolling, rows as labelled cards', async () => {
    assert.ok(nsBrowser, 'the browser of the previous test');
    const page = await nsBrowser.browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    await page.goto(PAGE, { timeout: 30_000 });
    await page.locator('tr.host').first().waitFor({ timeout: 20_000 });
    const widths = await page.evaluate<{ scroll: number; inner: number }>('({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth })');
    assert.ok(widths.scroll <= widths.inner, `page ${widths.scroll}px wide in a ${widths.inner}px screen`);
    assert.equal(await page.locator('thead').first().isVisible(), false, 'table headers give way to labels');
    const label = String(await page.evaluate("getComputedStyle(document.querySelector('tr.host td'), '::before').content"));
    assert.match(label, /subnet/);
    await page.screenshot({ path: join(artifacts, 'status-page-phone.png'), fullPage: true });
    assert.ok(existsSync(join(artifacts, 'status-page-phone.png')));
  });

  it('etcd stopped: overlay_flannel_etcd_up goes 0 and the page says down; back to 1 after a restart', async () => {
    await lab.etcd.stop();
    try {
      await waitFor(async () => (/overlay_flannel_etcd_up 0\n/.test((await get('/metrics')).body) ? true : undefined), { timeoutMs: 20_000, intervalMs: 300, what: 'etcd_up 0 with etcd stopped' });
      const e = await getJson('/api/v1/etcd');
      assert.equal(e.up, false);
      assert.ok(e.lastError, 'the last error is shown');
      // The whole-overlay view keeps the last known state, marked stale, etcd's outage first.
      const c = await getJson('/api/v1/cluster');
      assert.equal(c.stale, true);
      assert.ok(c.staleSince, 'since when');
      assert.equal(c.problems[0].kind, 'etcd-down');
      assert.equal(c.hosts.length, 3, 'every host kept');
      assert.ok(c.hosts.every((h: { expiresAt: string | null }) => h.expiresAt), 'expiries as last known');
      assert.deepEqual(c.containers.map((x: { name: string }) => x.name).sort(), ['chat-2', 'ghost'], 'every container kept');
    } finally {
      await lab.etcd.start();
    }
    await waitFor(async () => (/overlay_flannel_etcd_up 1\n/.test((await get('/metrics')).body) ? true : undefined), { timeoutMs: 30_000, intervalMs: 300, what: 'etcd_up 1 after etcd is back' });
    await waitFor(async () => ((await getJson('/api/v1/cluster')).stale === false ? true : undefined), { timeoutMs: 30_000, intervalMs: 300, what: 'the cluster view fresh again after etcd is back' });
  });
});
