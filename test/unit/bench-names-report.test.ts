// The names benchmark's tables from fixed samples: ratios against the same-run references (from
// the start of docker run, so never of negative numbers), a missing reference as "-", the memory
// deltas per record, and the one-hop line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderNames, type NamesResults } from '../../bench/names-report';

const base = (): NamesResults => ({
  date: '2026-12-03T06:00:00.000Z',
  quick: false,
  machine: { cpus: 2, cpu: 'test cpu', kernel: '6.18', docker: 'Docker 20.10', node: 'v20', loadavg: '0 0 0' },
  settings: { runs: 3, gapMs: 8, pollMs: 10, rounds: 1 },
  notes: [],
  lifecycle: {
    'overlay-flannel (h2 → h1)': { runMs: [700, 710, 720], upMs: [4, 2, 17], upFromStartMs: [704, 712, 737], goneMs: [-6, 124, 3], errors: [] },
    'swarm (h2 → h1)': { runMs: [800, 800, 800], upMs: [-400, -380, -350], upFromStartMs: [400, 420, 450], goneMs: [-80, 10, 16], errors: [] },
    'same host (Docker itself, h1)': { runMs: [650, 660, 670], upMs: [-500, -520, -540], upFromStartMs: [150, 140, 130], goneMs: [-60, -50, 900], errors: ['x'] },
  },
  latency: {
    'overlay name of h2 (our resolver)': { us: [2000, 2000, 4000], wrong: 0, timeouts: 0 },
    'same-host name (Docker answers)': { us: [1000, 1000, 2000], wrong: 0, timeouts: 0 },
    'external name, NAMES=true (forwarded through the queue)': { us: [1600, 1600, 3000], wrong: 1, timeouts: 0, lastWrong: 'rcode 3' },
    'external name, NAMES=false on h3 (forwarded, reference)': { us: [1500, 1500, 2500], wrong: 0, timeouts: 0 },
  },
  limitedDuringLatency: 0,
  memory: {
    records: 10_000,
    writtenMs: 3000,
    tablesLoadedMs: 20,
    hosts: [{ host: 'h1', pid: 1, before: { rssKb: 80 * 1024, hwmKb: 100 * 1024 }, after: { rssKb: 90 * 1024, hwmKb: 100 * 1024 }, removed: { rssKb: 85 * 1024, hwmKb: 100 * 1024 } }],
  },
  errors: [],
});

test('lifecycle rows: p50 / p99 as measured, negatives kept, ratios from run start against swarm and the same host', () => {
  const out = renderNames(base());
  const row = out.split('\n').find((l) => l.startsWith('| overlay-flannel (h2 → h1)'))!;
  const cells = row.split('|').map((c) => c.trim());
  assert.equal(cells[2], '710', 'docker run p50');
  assert.equal(cells[3], '4 / 17');
  assert.equal(cells[4], '712 / 737');
  assert.equal(cells[5], `${(712 / 420).toFixed(2)} / ${(737 / 450).toFixed(2)}`, '×swarm of p50s / of p99s');
  assert.equal(cells[6], `${(712 / 140).toFixed(2)} / ${(737 / 150).toFixed(2)}`, '×same host');
  assert.equal(cells[7], '3 / 124');
  const swarm = out.split('\n').find((l) => l.startsWith('| swarm (h2 → h1)'))!.split('|').map((c) => c.trim());
  assert.equal(swarm[3], '-380 / -350', 'negative: before docker run returned');
  assert.match(out, /same host \(Docker itself, h1\): 1 failed run\(s\), first: x/);
});

test('without swarm the ratio says "-", never 0', () => {
  const r = base();
  delete r.lifecycle['swarm (h2 → h1)'];
  const cells = renderNames(r).split('\n').find((l) => l.startsWith('| overlay-flannel'))!.split('|').map((c) => c.trim());
  assert.equal(cells[5], '-');
});

test('latency rows: ms, ratios against the same-host answer and the NAMES=false forward; the one-hop line', () => {
  const out = renderNames(base());
  const cells = out.split('\n').find((l) => l.startsWith('| overlay name of h2'))!.split('|').map((c) => c.trim());
  assert.deepEqual(cells.slice(2, 9), ['2.000', '4.000', '2.667', '2.00 / 2.00', `${(2000 / 1500).toFixed(2)} / ${(4000 / 2500).toFixed(2)}`, '3', '0/0']);
  const ref = out.split('\n').find((l) => l.startsWith('| same-host name'))!.split('|').map((c) => c.trim());
  assert.equal(ref[5], '', 'a reference has no ratio against itself');
  assert.match(out, /One hop \(forwarded, NAMES=false − same-host, p50\): 500 µs; the queue's cost on forwarded names \(NAMES=true − NAMES=false, p50\): 100 µs/);
  assert.match(out, /external name, NAMES=true \(forwarded through the queue\): 1 wrong answer\(s\), last: rcode 3/);
});

test('memory row: MB before / with / delta, bytes per record', () => {
  const cells = renderNames(base()).split('\n').find((l) => l.startsWith('| h1 '))!.split('|').map((c) => c.trim());
  assert.deepEqual(cells.slice(2, 8), ['80.0', '90.0', '10.0', '0.0', '85.0', String(Math.round((10 * 1024 * 1024) / 10_000))]);
});
