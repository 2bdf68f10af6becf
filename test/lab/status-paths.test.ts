/**
 * Issue 20's path probes on the real kernel: three lab hosts run the real daemon (vxlan) with
 * STATUS_ADDR and the default PROBE_PORT; host 1's /api/v1/paths must show both peers reachable
 * with a measured RTT, /metrics the per-peer series; host 3 cut off the LAN (its port on the LAN
 * bridge down; its lease, LEASE_TTL 120 s, stays live) must read "unreachable" on host 1's page in
 * words, and in the problems list, within 15 s, and clear within 15 s of the port coming back.
 * `overlay-flannel status --paths` on host 1 measures the same (exit 3 while host 3 is away).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { OverlayLab, LeaseView, MAIN, ROOT } from './overlay-lab';
import { launchBrowserIn, NsBrowser } from './status-browser';
import { run } from '../helpers/run';
import { waitFor } from '../helpers/wait';
import { nameRecord } from '../helpers/name-records';
import { encodeNameRecord } from '../../src/domain/name-record';
import { overlayKeys } from '../../src/store/keys';

const PAGE = 'http://192.0.2.1:9890/';

interface Peer {
  publicIP: string;
  state: string;
  rttMs: number | null;
  loss: number | null;
}

describe('path probes on three lab hosts', { timeout: 240_000 }, () => {
  let lab: OverlayLab;
  let leases: Map<string, LeaseView>;
  let nsb: NsBrowser | undefined;
  const artifacts = join(ROOT, 'test-artifacts');

  const get = async (path: string): Promise<string> => (await lab.host(1).exec('curl', ['-s', '-m', '5', `http://192.0.2.1:9890${path}`], { timeoutMs: 10_000 })).stdout;
  const peers = async (): Promise<Peer[]> => JSON.parse(await get('/api/v1/paths')).overlays[0]?.peers ?? [];
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

  it('host 3 cut off the LAN: "unreachable" on the page within 15 s while its lease is live; clears within 15 s', async () => {
    nsb = await launchBrowserIn(lab.host(1), lab.lab.runId);
    const page = await nsb.browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(PAGE, { timeout: 30_000 });
    const row3 = page.locator(`tr.host[data-subnet="${leases.get('192.0.2.3')!.subnet}"] td.path`);
    await waitFor(async () => (/ms/.test(await row3.innerText()) ? true : undefined), { timeoutMs: 15_000, intervalMs: 250, what: 'an RTT for host 3 on the page' });
    await page.locator('tr.ctr[data-name="web-3"]').waitFor({ timeout: 15_000 });
    await page.screenshot({ path: join(artifacts, 'status-paths.png') });
    const lan = (await lab.lab.lan()).ns;
    await run('ip', ['-n', lan, 'link', 'set', 'p3', 'down']);
    const cut = Date.now();
    let lostMs = 0;
    try {
      await waitFor(async () => (/unreachable/.test(await row3.innerText()) ? true : undefined), { timeoutMs: 15_000, intervalMs: 250, what: 'host 3 unreachable on the page' });
      lostMs = Date.now() - cut;
      assert.match(await page.locator('#problems li.problem[data-kind="path-unreachable"]').innerText(), /192\.0\.2\.3 .*unreachable through the overlay/);
      const p3 = (await peers()).find((p) => p.publicIP === '192.0.2.3')!;
      assert.equal(p3.state, 'unreachable');
      assert.ok((p3.loss ?? 0) > 0, `loss ${p3.loss}`);
      assert.match(await get('/metrics'), /overlay_flannel_path_up\{overlay="default",peer="192\.0\.2\.3"\} 0\n/);
      assert.equal((await peers()).find((p) => p.publicIP === '192.0.2.2')!.state, 'reachable', 'host 2 is not affected');
      const cli = await lab.host(1).exec('node', [MAIN, 'status', '--paths'], { env: { ...process.env, ...lab.env() }, timeoutMs: 20_000 });
      assert.equal(cli.code, 3, `exit 3 when a peer is unreachable: ${cli.stdout}${cli.stderr}`);
      assert.match(cli.stdout, /^192\.0\.2\.3\s+\S+\s+-\s+100%\s+unreachable$/m);
      await page.screenshot({ path: join(artifacts, 'status-paths-cut.png') });
    } finally {
      await run('ip', ['-n', lan, 'link', 'set', 'p3', 'up']);
    }
    const up = Date.now();
    await waitFor(async () => (/ms/.test(await row3.innerText()) ? true : undefined), { timeoutMs: 15_000, intervalMs: 250, what: 'host 3 reachable again on the page' });
    const backMs = Date.now() - up;
    await page.locator('li.event[data-kind="path-back"]').first().waitFor({ timeout: 10_000 });
    console.log(`# host 3 cut off: unreachable on host 1's page after ${lostMs} ms; back ${backMs} ms after the port came up`);
    await page.close();
  });
});
