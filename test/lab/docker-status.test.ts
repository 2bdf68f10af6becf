/**
 * docker-status.test.ts — issue 20's proof on real dockerd hosts: the whole overlay on one status
 * page, from each host, with containers started by `docker run --name`, a flanneld-programmed host
 * beside them and real Chromium (playwright-core driving Debian's chromium).
 *
 * One lab for the file: LAN namespace with etcd and the fake upstream DNS (every dockerd runs
 * with `--dns 192.0.2.254`); h1 and h2 with dockerd and the managed plugin (STATUS_ADDR on each
 * host's own 192.0.2.N:9890, default PROBE_PORT); h3 a flanneld host made by hand as flanneld
 * does it (docker-plugin-lab.ts flanneldHost: its lease in flanneld's bytes, flannel.<VNI> with
 * its .0, neighbour, FDB entry and route per plugin host), running no plugin and no echo. One
 * browser in the LAN namespace opens both hosts' pages. Names random per run.
 * Scenarios: a container on h1 pings the flanneld host's .0 (its hand-made kernel entries and the
 * plugins' agree); on each dockerd host's page, the OTHER host's containers by name (and its
 * own), h3 shown as a flanneld host with no containers, the matrix h1 ↔ h2 with RTTs and h3's
 * column "no echo" (no problem, not "unreachable", no `overlay_flannel_path_up` series), search by
 * name, address, host and alias; h2 cut off the LAN (its LAN port down, its lease live): unreachable on
 * h1's page and h1 unreachable in h2's own view within 15 s, h2's containers still listed, both
 * directions back to an RTT within 15 s of the port coming up.
 * Needs root, docker.io, busybox-static, etcd, chromium and `npm run build`; fails (never skips).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { DOCKER, DOCKERD, createDockerLab, leftovers, stopAll, type DockerHost } from '../helpers/docker-lab';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server';
import type { Host, Lab, Ns } from '../helpers/netns-lab';
import { cellOf as cellAt, type ApiMatrix } from '../helpers/api-matrix';
import { run } from '../helpers/run';
import { waitFor } from '../helpers/wait';
import { startFakeUpstream } from './fake-upstream-dns';
import { CHROMIUM, launchBrowserIn, type NsBrowser } from './status-browser';
import * as L from './docker-plugin-lab';

const ROOT = resolve(__dirname, '../..');
const MAIN = join(ROOT, 'dist/main.js');
const missing = [DOCKERD, DOCKER, '/bin/busybox', MAIN, CHROMIUM ?? '/usr/bin/chromium'].filter((f) => !existsSync(f));
if (process.getuid?.() !== 0) throw new Error('the status lab needs root');
if (missing.length) throw new Error(`the status lab needs ${missing.join(', ')} (apt-get install docker.io busybox-static chromium; npm run build)`);

const DOCKERD_OPTS = { extraArgs: ['--dns', '192.0.2.254'] };
const PORT = 9890;

interface ClusterJson {
  hosts: { publicIP: string; subnet: string; kind: string; containers: number; path: { state: string; note: string | null } | null }[];
  containers: { name: string; aliases: string[]; addresses: string[]; network: string; host: string }[];
  problems: { kind: string; text: string }[];
  matrix: ApiMatrix[];
}

describe('the whole overlay on one page, from two real dockerds and a flanneld host', { timeout: 420_000 }, () => {
  const ov = L.randomOverlay();
  const tag = randomBytes(3).toString('hex');
  const NET = `ofs-${tag}`;
  // Two on h1 (one with an alias), one on h2.
  const WEB = `web-${tag}`, API = `api-${tag}`, DB = `db-${tag}`, ALIAS = `front-${tag}`;
  let lab: Lab | undefined;
  let etcd: EtcdServer | undefined;
  let lan: Ns;
  let h1: Host, h2: Host, h3: Host;
  let d1: DockerHost, d2: DockerHost;
  let nsb: NsBrowser | undefined;
  let flanneld: L.VxlanLease;
  const addr = new Map<string, string>();
  const notes: string[] = [];
  const artifacts = join(ROOT, 'test-artifacts');

  const env = () => ({ ...process.env, ETCD_ENDPOINTS: etcd!.endpoint, ETCD_PREFIX: ov.prefix });
  const url = (h: Host, path = '/') => `http://${h.ip}:${PORT}${path}`;
  const cluster = async (h: Host): Promise<ClusterJson> => JSON.parse((await lan.execOk('curl', ['-s', '-m', '5', url(h, '/api/v1/cluster')], { timeoutMs: 10_000 })).stdout) as ClusterJson;
  const cellOf = (c: ClusterJson, from: string, to: string) => cellAt(c.matrix.find((x) => x.overlay === 'default'), from, to);

  before(async () => {
    lab = await createDockerLab('ofst');
    lan = await lab.lan();
    [etcd] = await Promise.all([startEtcd({ netns: lan.ns, host: '192.0.2.254' }), startFakeUpstream(lan, {})]);
    let pluginDir: string;
    ({ h1, h2, d1, d2, pluginDir } = await L.twoDockerHosts(lab, DOCKERD_OPTS));
    h3 = await lab.addHost(3);
    await h1.execOk('node', [MAIN, 'config', 'set', '--network', ov.network, '--vni', String(ov.vni)], { env: env(), timeoutMs: 20_000 });
    await Promise.all([d1, d2].map((d) => L.installPlugin(d, pluginDir, L.pluginSettings(etcd!, ov.prefix, d, [`STATUS_ADDR=${d.host.ip}:${PORT}`]))));
    const plugins = await waitFor(async () => {
      const l = await L.vxlanLeases(etcd!, ov.prefix);
      return l.length === 2 && l;
    }, { timeoutMs: 60_000, what: 'the leases of h1 and h2' });
    flanneld = await L.flanneldHost(etcd, ov.prefix, h3, ov, plugins);
    await d1.dockerOk(['network', 'create', '-d', L.DRIVER, '--ipam-driver', L.DRIVER, NET], { timeoutMs: 90_000 });
    await waitFor(async () => (await d2.docker(['network', 'inspect', NET])).code === 0, { timeoutMs: 60_000, what: `${NET} replicated to h2` });
    await Promise.all([
      L.runBox(d1, WEB, NET),
      d1.dockerOk(['run', '-d', '--init', '--name', API, '--network', NET, '--network-alias', ALIAS, 'ofbox:1', 'sleep', '3600'], { timeoutMs: 120_000 }),
      L.runBox(d2, DB, NET),
    ]);
    for (const [d, c] of [[d1, WEB], [d1, API], [d2, DB]] as const) addr.set(c, (await L.endpointOf(d, c, NET)).ip);
    mkdirSync(artifacts, { recursive: true });
  });

  after(async () => {
    const runId = lab?.runId;
    for (const n of notes) console.log(`# ${n}`);
    await nsb?.close();
    await etcd?.cleanup();
    await stopAll(lab);
    if (runId) assert.deepEqual(await leftovers(runId), { namespaces: [], folder: false, mounts: [], processes: [] }, 'the lab left something behind');
  });

  it('1. the flanneld host\'s hand-made kernel entries and the plugins\' agree: a container on h1 pings its .0', async () => {
    const dot0 = flanneld.subnet.replace(/\/\d+$/, '');
    await L.pingOk(d1, WEB, dot0, 30_000);
    // Each plugin host programmed the flanneld host's lease as a peer.
    for (const h of [h1, h2]) {
      const fdb = (await h.execOk('bridge', ['fdb', 'show', 'dev', `flannel.${ov.vni}`])).stdout;
      assert.ok(fdb.includes(`${flanneld.vtepMac} dst ${h3.ip}`), `${h.ns}: FDB entry for the flanneld host: ${fdb}`);
    }
  });

  it('2. /api/v1/cluster on each dockerd host: every container by name, h3 a flanneld host with none, RTTs h1 ↔ h2, h3 "no echo" and no problem', async () => {
    for (const [me, other] of [[h1, h2], [h2, h1]] as const) {
      const c = await waitFor(async () => {
        const v = await cluster(me).catch(() => undefined);
        const names = new Set(v?.containers.map((x) => x.name));
        const rtt = v && cellOf(v, me.ip, other.ip)?.rttMs !== null && cellOf(v, other.ip, me.ip)?.rttMs !== null;
        const echo = v && cellOf(v, me.ip, h3.ip)?.note === 'no echo' && cellOf(v, other.ip, h3.ip)?.note === 'no echo';
        return v && [WEB, API, DB].every((n) => names.has(n)) && rtt && echo && v.hosts.length === 3 && v;
      }, { timeoutMs: 60_000, intervalMs: 1000, what: `${me.ns}'s cluster view complete (containers, RTTs, h3 no echo)` });
      for (const [n, host] of [[WEB, h1.ip], [API, h1.ip], [DB, h2.ip]] as const) {
        const x = c.containers.find((y) => y.name === n)!;
        assert.deepEqual([x.network, x.host, x.addresses], [NET, host, [addr.get(n)]], `${me.ns}: ${n}`);
      }
      assert.ok(c.containers.find((y) => y.name === API)!.aliases.includes(ALIAS));
      const k = Object.fromEntries(c.hosts.map((h) => [h.publicIP, [h.kind, h.containers]]));
      assert.deepEqual(k, { [h1.ip]: ['plugin', 2], [h2.ip]: ['plugin', 1], [h3.ip]: ['flanneld', 0] }, `${me.ns}: host kinds and containers`);
      assert.deepEqual(c.hosts.find((h) => h.publicIP === h3.ip)!.path, { state: 'unknown', rttMs: null, loss: 1, note: 'no echo' } as never);
      assert.equal(cellOf(c, h3.ip, me.ip)?.note, 'no report', 'the flanneld host publishes no path report');
      assert.deepEqual(c.problems.filter((p) => p.kind === 'path-unreachable'), [], `${me.ns}: the flanneld host is no path problem`);
      const metrics = (await lan.execOk('curl', ['-s', '-m', '5', url(me, '/metrics')], { timeoutMs: 10_000 })).stdout;
      assert.match(metrics, new RegExp(`overlay_flannel_path_up\\{overlay="default",peer="${other.ip.replace(/\./g, '\\.')}"\\} 1\n`));
      assert.doesNotMatch(metrics, new RegExp(`overlay_flannel_path_up\\{overlay="default",peer="${h3.ip.replace(/\./g, '\\.')}"\\}`), 'no path_up series for the flanneld host (no echo)');
      notes.push(`${me.ns} → ${other.ns} RTT ${cellOf(c, me.ip, other.ip)!.rttMs} ms, ${other.ns} → ${me.ns} ${cellOf(c, other.ip, me.ip)!.rttMs} ms (from ${me.ns}'s view)`);
    }
  });

  it('3. each dockerd host\'s page in Chromium: the other host\'s containers by name, the flanneld host, the matrix, search by name, address and host', async () => {
    nsb = await launchBrowserIn(lan, lab!.runId);
    for (const [me, other, mine, theirs] of [[h1, h2, [WEB, API], [DB]], [h2, h1, [DB], [WEB, API]]] as const) {
      const page = await nsb.browser.newPage({ viewport: { width: 1280, height: 1000 } });
      await page.goto(url(me), { timeout: 30_000 });
      const row = (n: string) => page.locator(`tr.ctr[data-name="${n}"]`);
      for (const n of [...theirs, ...mine]) await row(n).waitFor({ timeout: 20_000 });
      for (const n of theirs) assert.equal(await row(n).getAttribute('data-host'), other.ip, `${me.ns}'s page: ${n} on ${other.ns}`);
      assert.match(await row(API).innerText(), new RegExp(ALIAS));
      // The flanneld host: shown as such, no containers, "no echo" in its path and its matrix column.
      const fl = page.locator(`tr.host[data-subnet="${flanneld.subnet}"]`);
      assert.equal(await fl.getAttribute('data-kind'), 'flanneld');
      assert.match(await fl.innerText(), /flanneld \(no name records\)/);
      assert.equal((await fl.locator('td[data-label="containers"]').innerText()).trim(), '0');
      assert.equal((await fl.locator('td.path').innerText()).trim(), 'no echo');
      const cell = (a: Host, b: Host) => page.locator(`table.matrix td[data-from="${a.ip}"][data-to="${b.ip}"]`);
      for (const [a, b] of [[me, other], [other, me]] as const) {
        await waitFor(async () => (/\d ms/.test(await cell(a, b).innerText()) ? true : undefined), { timeoutMs: 20_000, intervalMs: 250, what: `an RTT ${a.ns} → ${b.ns} on ${me.ns}'s page` });
      }
      for (const a of [me, other]) assert.match(await cell(a, h3).innerText(), /^no echo/);
      assert.match(await cell(h3, me).innerText(), /^no report/);
      assert.equal(await page.locator('#problems li.problem[data-kind="path-unreachable"]').count(), 0, `${me.ns}: no path problem`);
      if (me === h1) {
        await page.screenshot({ path: join(artifacts, 'status-page-docker-cluster.png'), fullPage: true });
      }
      await search(page, theirs, mine, other, me);
      await page.close();
    }
  });

  it('4. h2 cut off the LAN: unreachable on h1\'s page and h1 unreachable in h2\'s own view within 15 s, h2\'s containers kept; both clear within 15 s', async (t) => {
    const page = await nsb!.browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(url(h1), { timeout: 30_000 });
    const path2 = page.locator(`tr.host[data-kind="plugin"]:has(td[data-label="public IP"]:text-is("${h2.ip}")) td.path`);
    const cell = (a: Host, b: Host) => page.locator(`table.matrix td[data-from="${a.ip}"][data-to="${b.ip}"]`);
    await waitFor(async () => (/\d ms/.test(await path2.innerText()) ? true : undefined), { timeoutMs: 20_000, intervalMs: 250, what: 'an RTT to h2 on h1\'s page' });
    /** h2's own view, asked inside its namespace (the LAN cannot reach it while cut off). */
    const own2 = async () => JSON.parse((await h2.exec('curl', ['-s', '-m', '5', url(h2, '/api/v1/cluster')], { timeoutMs: 10_000 })).stdout) as ClusterJson;
    await run('ip', ['-n', lan.ns, 'link', 'set', 'p2', 'down']);
    const cut = Date.now();
    let lostMs = 0, ownMs = 0;
    try {
      await waitFor(async () => (/unreachable/.test(await path2.innerText()) ? true : undefined), { timeoutMs: 15_000, intervalMs: 250, what: 'h2 unreachable on h1\'s page within 15 s' });
      lostMs = Date.now() - cut;
      assert.match(await cell(h1, h2).innerText(), /^unreachable/);
      assert.match(await page.locator('#problems').innerText(), new RegExp(`${h2.ip.replace(/\./g, '\\.')} .*unreachable through the overlay from this host`));
      assert.equal(await page.locator(`tr.ctr[data-name="${DB}"]`).getAttribute('data-host'), h2.ip, 'h2\'s container still listed (its name records outlive a short cut)');
      await waitFor(async () => {
        const v = await own2().catch(() => undefined);
        return (v && cellOf(v, h2.ip, h1.ip)?.state === 'unreachable' && v.problems.some((p) => p.kind === 'path-unreachable' && p.text.startsWith(h1.ip))) || undefined;
      }, { timeoutMs: Math.max(1, 15_000 - (Date.now() - cut)), intervalMs: 500, what: 'h1 unreachable in h2\'s own view (its live probes) within 15 s' });
      ownMs = Date.now() - cut;
      await page.screenshot({ path: join(artifacts, 'status-page-docker-cut.png'), fullPage: true });
    } finally {
      await run('ip', ['-n', lan.ns, 'link', 'set', 'p2', 'up']);
    }
    const up = Date.now();
    for (const [a, b] of [[h1, h2], [h2, h1]] as const) {
      await waitFor(async () => (/\d ms/.test(await cell(a, b).innerText()) ? true : undefined), { timeoutMs: Math.max(1, 15_000 - (Date.now() - up)), intervalMs: 250, what: `${a.ns} → ${b.ns} back to an RTT on h1's page within 15 s` });
    }
    const backMs = Date.now() - up;
    await page.close();
    t.diagnostic(`h2 cut off: unreachable on h1's page ${lostMs} ms, h1 unreachable in h2's own view ${ownMs} ms after the cut; both directions back ${backMs} ms after the port came up`);
    notes.push(`cut: h1's page ${lostMs} ms, h2's own view ${ownMs} ms; back ${backMs} ms`);
  });

  /** Type into the search box: by a name, an address, a host; the list filters live. */
  async function search(page: Page, theirs: readonly string[], mine: readonly string[], other: Host, me: Host): Promise<void> {
    const shown = async () => (await page.locator('tr.ctr').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-name') ?? ''))).sort();
    const expect = async (q: string, want: string[]) => {
      await page.fill('#q', q);
      await waitFor(async () => JSON.stringify(await shown()) === JSON.stringify([...want].sort()) || undefined, { timeoutMs: 5000, intervalMs: 100, what: `search "${q}" on ${me.ns}'s page shows ${want.join(', ')} (shows ${(await shown()).join(', ')})` });
    };
    await expect(theirs[0]!, [theirs[0]!]);
    await expect(addr.get(mine[0]!)!, [mine[0]!]);
    await expect(other.ip, [...theirs]);
    await expect(ALIAS, [API]);
    await expect(`nosuch-${tag}`, []);
    assert.match(await page.locator('#nomatch').innerText(), /no container matches/);
    await page.locator('#q').press('Escape');
    await waitFor(async () => (await shown()).length === 3 || undefined, { timeoutMs: 5000, intervalMs: 100, what: 'Escape clears the search' });
  }
});
