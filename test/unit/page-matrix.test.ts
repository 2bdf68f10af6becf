// The page's form of the path matrix (status/cluster-view.ts pageMatrix): cells compact up to
// PAGE_MATRIX_HOSTS hosts, none beyond (the problems carry the cut paths); sizes and build time
// of generated 50- and 200-host matrices are printed. The API's by-row form (apiMatrix): every
// cell decodes back to what buildMatrix made (lossless), and its size against one object per cell.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildMatrix } from '../../src/domain/path-matrix';
import type { PathReport } from '../../src/domain/path-report';
import { apiMatrix, PAGE_MATRIX_HOSTS, pageMatrix } from '../../src/status/cluster-view';
import { cellAt, type ApiMatrix } from '../helpers/api-matrix';

const NOW = Date.UTC(2030, 0, 1, 12);
const ip = (i: number) => `192.0.${2 + Math.floor(i / 250)}.${(i % 250) + 1}`;

function generated(n: number) {
  const hosts = Array.from({ length: n }, (_, i) => ({ overlay: 'default', publicIP: ip(i), subnet: `10.${Math.floor(i / 250)}.${i % 250}.0/24`, live: true, own: i === 0 }));
  const peers = (i: number) => hosts.map((h, j) => ({ peer: h.publicIP, subnet: h.subnet, state: j % 97 === 5 ? ('unreachable' as const) : ('reachable' as const), rttMs: j % 97 === 5 ? null : 0.1 + (j % 7) / 10, loss: 0, lastReplyAt: NOW - 1000, j })).filter((p) => p.j !== i).map(({ j: _j, ...p }) => p);
  const reports: PathReport[] = hosts.slice(1).map((h, k) => ({ host: h.publicIP, version: '0.1.0', at: NOW - 2000, overlays: [{ overlay: 'default', peers: peers(k + 1) }] }));
  const t0 = performance.now();
  const m = buildMatrix({ hosts, reports, local: [{ overlay: 'default', peers: peers(0).map((p) => ({ ...p, publicIP: p.peer })) }], thisHost: hosts[0]!.publicIP, nowMs: NOW });
  return { ...m, ms: performance.now() - t0 };
}

test('page matrix: compact cells up to 50 hosts, none beyond; sizes and build time', () => {
  const small = generated(PAGE_MATRIX_HOSTS);
  const sp = pageMatrix(small.matrix);
  assert.equal(sp[0]!.rows!.length, PAGE_MATRIX_HOSTS);
  assert.deepEqual(sp[0]!.rows![0]![0], ['-', null, null, null]);
  assert.equal(sp[0]!.rows![1]![0]![0], 'r');
  const smallBytes = JSON.stringify(sp).length;
  assert.ok(smallBytes < 120_000, `${smallBytes} bytes at 50 hosts`);
  const big = generated(200);
  const bp = pageMatrix(big.matrix);
  assert.equal(bp[0]!.rows, null);
  assert.equal(bp[0]!.hosts.length, 200);
  const bigBytes = JSON.stringify(bp).length;
  assert.ok(bigBytes < 40_000, `${bigBytes} bytes at 200 hosts`);
  assert.equal(big.problems.length, 3, 'one problem per host cut off (hosts 5, 102 and 199, from every row), not one per reporter');
  assert.match(big.problems[0]!.text, /from 192\.0\.2\.\d+, .* and \d+ more \(\d+ hosts\)/);
  console.log(`# page matrix: ${smallBytes} bytes at 50 hosts (built in ${small.ms.toFixed(1)} ms), ${bigBytes} bytes at 200 hosts (no cells; ${JSON.stringify(big.matrix).length} bytes as one object per cell, built in ${big.ms.toFixed(1)} ms, ${big.problems.length} path problems)`);
});

test('API matrix: by row, lossless (every cell decodes back), much smaller than one object per cell', () => {
  const big = generated(200);
  // Notes of every kind: a host without a report, a stale row, a host not probed.
  const m = big.matrix[0]!;
  m.rows[3] = m.rows[3]!.map((c) => (c.state === 'self' ? c : { ...c, state: 'unknown', note: 'report stale' }));
  m.rows[4] = m.rows[4]!.map((c) => (c.state === 'self' ? c : { state: 'unknown', rttMs: null, loss: null, ageSec: null, lastReplyAgeSec: null, note: 'no report' }));
  m.rows[0]![7] = { ...m.rows[0]![7]!, state: 'unknown', note: 'no echo' };
  m.rows[1]![9] = { state: 'unknown', rttMs: null, loss: null, ageSec: m.rows[1]![8]!.ageSec, lastReplyAgeSec: null, note: 'not probed' };
  const t0 = performance.now();
  const api = apiMatrix(big.matrix) as ApiMatrix[];
  const text = JSON.stringify(api);
  const ms = performance.now() - t0;
  const back = (JSON.parse(text) as ApiMatrix[])[0]!;
  for (let i = 0; i < 200; i++) for (let j = 0; j < 200; j++) assert.deepEqual(cellAt(back, i, j), m.rows[i]![j], `cell ${i}, ${j}`);
  assert.deepEqual(back.hosts, m.hosts);
  const before = JSON.stringify(big.matrix).length;
  assert.ok(text.length * 4 < before, `${text.length} bytes by row, ${before} as objects`);
  assert.ok(text.length < 800_000, `${text.length} bytes at 200 hosts`);
  console.log(`# API matrix at 200 hosts: ${text.length} bytes by row (encoded and serialised in ${ms.toFixed(1)} ms), ${before} bytes as one object per cell`);
});
