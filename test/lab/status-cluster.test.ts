/**
 * Issue 20's size proof: the status page with 200 hosts and 5,000 containers (generated records,
 * test/helpers/cluster-source.ts, behind the real status server on loopback) in real headless
 * Chromium (playwright-core, Debian's chromium). Measured: the page's weight (bytes of GET /,
 * the only resource: no CDN, nothing else loaded) and its first paint (first-contentful-paint of
 * the Paint Timing API, from navigation start: the server's work to build the page included),
 * three loads, each after a load of a reference page (the same server and page with 3 hosts and
 * no containers) so the ratio shows what the machine's load adds; the best of three must be
 * ≤ 1 s. Then: search filters live, the keyboard ("/" focuses, Escape clears), "show all"
 * draws every row, a new host appears without a reload, etcd stopped shows stale with the last
 * state kept, and the phone layout has no sideways scrolling. Runs in the test's own network
 * namespace (unshare --net, loopback only). Screenshots go to test-artifacts/.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { buildStatusServer, StatusMetrics } from '../../src/status/server';
import type { GetServer } from '../../src/api/get-server';
import { generatedOverlay, hostIP, hostSubnet, makeLease, type GeneratedOverlay } from '../helpers/cluster-source';
import { launchBrowser, type NsBrowser } from './status-browser';

const HOSTS = 200;
const CONTAINERS = 5000;
const MAX_BYTES = 300 * 1024;
const MAX_FIRST_PAINT_MS = 1000;
const artifacts = join(resolve(__dirname, '../..'), 'test-artifacts');

describe(`status page with ${HOSTS} hosts and ${CONTAINERS} containers`, { timeout: 180_000 }, () => {
  let g: GeneratedOverlay;
  let app: GetServer;
  let nsb: NsBrowser;
  let url = '';
  let ref: GetServer;
  let refUrl = '';

  before(async () => {
    g = generatedOverlay(HOSTS, CONTAINERS);
    app = buildStatusServer(g.src, pino({ level: 'silent' }), { metrics: new StatusMetrics(), refreshMs: 2000 });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${app.address()!.port}/`;
    // The reference, measured in the same run: the same page with 3 hosts and no containers.
    ref = buildStatusServer(generatedOverlay(3, 0).src, pino({ level: 'silent' }), { metrics: new StatusMetrics() });
    await ref.listen({ host: '127.0.0.1', port: 0 });
    refUrl = `http://127.0.0.1:${ref.address()!.port}/`;
    nsb = await launchBrowser();
    mkdirSync(artifacts, { recursive: true });
  });

  after(async () => {
    await nsb?.close();
    await app?.close();
    await ref?.close();
  });

  it(`weighs ≤ ${MAX_BYTES / 1024} KB and paints first within ${MAX_FIRST_PAINT_MS} ms`, async () => {
    const bytes = Buffer.byteLength((await app.inject('/')).body);
    const paints: number[] = [];
    const drawnAt: number[] = [];
    const refPaints: number[] = [];
    const fcpEntry = "performance.getEntriesByType('paint').find((e) => e.name === 'first-contentful-paint')";
    for (let i = 0; i < 3; i++) {
      const r = await nsb.browser.newPage({ viewport: { width: 1280, height: 900 } });
      await r.goto(refUrl, { waitUntil: 'load', timeout: 30_000 });
      await r.waitForFunction(`!!${fcpEntry}`, undefined, { timeout: 10_000 });
      refPaints.push(Math.round(await r.evaluate<number>(`${fcpEntry}.startTime`)));
      await r.close();
      const page = await nsb.browser.newPage({ viewport: { width: 1280, height: 900 } });
      const external: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith(url)) external.push(r.url());
      });
      await page.goto(url, { waitUntil: 'load', timeout: 30_000 });
      await page.waitForFunction(`!!${fcpEntry}`, undefined, { timeout: 10_000 });
      const fcp = await page.evaluate<number>(`${fcpEntry}.startTime`);
      const nav = await page.evaluate<{ decoded: number; responseStart: number; responseEnd: number; domInteractive: number }>(
        "(({ decodedBodySize, responseStart, responseEnd, domInteractive }) => ({ decoded: decodedBodySize, responseStart, responseEnd, domInteractive }))(performance.getEntriesByType('navigation')[0])",
      );
      await page.waitForFunction("performance.getEntriesByName('containers-drawn').length > 0", undefined, { timeout: 10_000 });
      const drawn = await page.evaluate<number>("performance.getEntriesByName('containers-drawn')[0].startTime");
      drawnAt.push(Math.round(drawn));
      console.log(
        `# load ${i + 1}: first byte ${Math.round(nav.responseStart)} ms, last byte ${Math.round(nav.responseEnd)} ms, script done (domInteractive) ${Math.round(nav.domInteractive)} ms, ` +
          `first contentful paint (problems, hosts) ${Math.round(fcp)} ms, containers list drawn ${Math.round(drawn)} ms`,
      );
      assert.ok(fcp > 0, 'a first contentful paint was recorded');
      assert.equal(nav.decoded, bytes, 'the browser got the page the server made');
      assert.deepEqual(external, [], 'nothing but the page itself');
      paints.push(Math.round(fcp));
      assert.equal(await page.locator('tr.host').count(), HOSTS);
      assert.equal(await page.locator('tr.ctr').count(), 200, 'the first 200 containers drawn');
      assert.match(await page.locator('#ccount').innerText(), new RegExp(`^${CONTAINERS} in all, 200 shown`));
      if (i === 0) await page.screenshot({ path: join(artifacts, 'status-cluster.png') });
      await page.close();
    }
    const sorted = [...paints].sort((a, b) => a - b);
    const refMedian = [...refPaints].sort((a, b) => a - b)[1]!;
    const drawnMedian = [...drawnAt].sort((a, b) => a - b)[1]!;
    console.log(`# page: ${bytes} bytes (${(bytes / 1024).toFixed(1)} KB) for ${HOSTS} hosts / ${CONTAINERS} containers; first contentful paint ${paints.join(', ')} ms (median ${sorted[1]}), containers drawn ${drawnAt.join(', ')} ms (median ${drawnMedian})`);
    console.log(`# reference (3 hosts, no containers, same run): first contentful paint ${refPaints.join(', ')} ms (median ${refMedian}); ratio ${(sorted[1]! / refMedian).toFixed(2)}`);
    assert.ok(bytes <= MAX_BYTES, `page ${bytes} bytes`);
    // The best of three: the machine is shared (the reference above shows what it gives a trivial page).
    assert.ok(sorted[0]! <= MAX_FIRST_PAINT_MS, `first paint ${paints.join(', ')} ms (reference ${refPaints.join(', ')} ms)`);
    // First contentful paint may come before the script ran (the parser yields on a large page): the data drawn too.
    assert.ok(Math.min(...drawnAt) <= MAX_FIRST_PAINT_MS, `containers drawn ${drawnAt.join(', ')} ms`);
  });

  it('search filters live; "/" focuses it, Escape clears it; "show all" draws every match', async () => {
    const page = await nsb.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(url, { timeout: 30_000 });
    await page.keyboard.press('/');
    assert.equal(await page.evaluate<string>('document.activeElement.id'), 'q', '"/" focuses the search box');
    await page.keyboard.type('svc150-');
    await page.waitForFunction("document.querySelectorAll('tr.ctr').length === 26", undefined, { timeout: 5000 });
    const names = await page.evaluate<string[]>("[...document.querySelectorAll('tr.ctr')].map((r) => r.dataset.name)");
    assert.ok(names.every((n) => n.startsWith('svc150-')), names.join(' '));
    assert.match(await page.locator('#ccount').innerText(), /^26 of 5000 match/);
    // By address and by host.
    await page.fill('#q', '10.20.42.7');
    await page.waitForFunction("document.querySelectorAll('tr.ctr').length === 1", undefined, { timeout: 5000 });
    assert.equal(await page.locator('tr.ctr').getAttribute('data-name'), 'svc42-5');
    await page.fill('#q', hostIP(160)); // 198.51.100.161: no other host's address starts with it
    await page.waitForFunction("document.querySelectorAll('tr.ctr').length === 26", undefined, { timeout: 5000 });
    assert.ok((await page.evaluate<string[]>("[...document.querySelectorAll('tr.ctr')].map((r) => r.dataset.host)")).every((h) => h === hostIP(160)));
    await page.fill('#q', 'no-such-container');
    await page.locator('#nomatch').waitFor({ timeout: 5000 });
    await page.focus('#q');
    await page.keyboard.press('Escape');
    await page.waitForFunction("document.querySelectorAll('tr.ctr').length === 200", undefined, { timeout: 5000 });
    assert.equal(await page.inputValue('#q'), '');
    const t0 = Date.now();
    await page.click('#showall');
    await page.waitForFunction(`document.querySelectorAll('tr.ctr').length === ${CONTAINERS}`, undefined, { timeout: 10_000 });
    console.log(`# show all ${CONTAINERS} rows: ${Date.now() - t0} ms`);
    // Keyboard: the button is reachable by Tab from the search box.
    await page.fill('#q', 'svc1');
    await page.locator('#showall').waitFor({ timeout: 5000 }); // the list is redrawn at the next animation frame
    await page.focus('#q');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate<string>('document.activeElement.id'), 'showall');
    await page.close();
  });

  it('live: a new host appears without a reload; etcd stopped: stale, the last state kept, the problem first', async () => {
    const page = await nsb.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(url, { timeout: 30_000 });
    await page.waitForFunction("document.getElementById('conn')?.textContent === 'live'", undefined, { timeout: 20_000 });
    await page.evaluate('window.marker = 7');
    g.leases.push(makeLease(HOSTS + 10, Date.now() + 3_600_000));
    g.agent.emit('peers', { type: 'added' });
    await page.locator(`tr.host[data-subnet="${hostSubnet(HOSTS + 10)}"]`).waitFor({ timeout: 10_000 });
    assert.equal(await page.locator(`tr.host[data-subnet="${hostSubnet(HOSTS + 10)}"]`).getAttribute('data-kind'), 'flanneld');
    await page.locator('li.event[data-kind="host-joined"]').first().waitFor({ timeout: 10_000 });
    g.etcd.up = false;
    g.etcd.since = Date.now();
    g.etcd.lastError = 'etcd at http://192.0.2.254:2379: connect ECONNREFUSED';
    g.names.stale = true;
    await page.locator('#stale').waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#problems li.problem').first().getAttribute('data-kind'), 'etcd-down');
    assert.match(await page.locator('#problems').innerText(), /ECONNREFUSED/);
    assert.equal(await page.locator('tr.host').count(), HOSTS + 1, 'every host still shown');
    assert.match(await page.locator('#ccount').innerText(), new RegExp(`^${CONTAINERS} in all`));
    assert.equal(await page.evaluate('window.marker'), 7, 'not reloaded');
    await page.screenshot({ path: join(artifacts, 'status-cluster-stale.png') });
    g.etcd.up = true;
    g.names.stale = false;
    await page.locator('#noproblems').waitFor({ timeout: 10_000 });
    await page.close();
  });

  it('on a phone-sized screen: no sideways scrolling, rows as labelled cards', async () => {
    const page = await nsb.browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    await page.goto(url, { timeout: 30_000 });
    await page.locator('tr.ctr').first().waitFor({ timeout: 10_000 });
    const widths = await page.evaluate<{ scroll: number; inner: number }>('({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth })');
    assert.ok(widths.scroll <= widths.inner, `page ${widths.scroll}px wide in a ${widths.inner}px screen`);
    const label = String(await page.evaluate("getComputedStyle(document.querySelector('tr.ctr td'), '::before').content"));
    assert.match(label, /name/);
    await page.screenshot({ path: join(artifacts, 'status-cluster-phone.png') });
    await page.close();
  });
});
