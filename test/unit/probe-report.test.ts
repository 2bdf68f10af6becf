import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderProbeRows, type ProbeResult } from '../../bench/probe-report';

const base: ProbeResult = {
  peers: 200,
  windowS: 20,
  outPerS: 199.6,
  inPerS: 200.4,
  rcvbufErrors: 0,
  cpuMsPerS: 12.34,
  before: { rssKb: 102_400, hwmKb: 110_000, heapUsed: 10_000_000 },
  after: { rssKb: 104_448, hwmKb: 112_048, heapUsed: 10_204_800, rawRssKb: 106_496 },
  reachable: 200,
  lossMean: 0.005,
  rttMedianMs: 0.1234,
};

test('the probe table: rates, memory deltas and the per-peer heap', () => {
  const t = renderProbeRows(base);
  const rows = t.split('\n');
  assert.equal(rows[0], '| measure | result |');
  assert.match(t, /\| path probes, 200 peers: UDP datagrams\/s out \/ in \(20 s window\) \| 200 \/ 200 \(by design 200 \/ 200\) \|/);
  assert.match(t, /200\/200, 0\.5 %, 0\.123 ms/);
  assert.match(t, /100\.0 MB → 102\.0 MB \(\+2\.0 MB; raw 104\.0 MB\)/);
  assert.match(t, /\+0\.2 MB \(1024 B\/peer\)/);
  assert.doesNotMatch(t, /drops/);
});

test('drops and a missing RTT are shown, a negative delta keeps its sign', () => {
  const t = renderProbeRows({ ...base, rcvbufErrors: 3, rttMedianMs: null, reachable: 0, after: { ...base.after, rssKb: 101_376 } });
  assert.match(t, /\| … UDP receive buffer drops \| 3 \|/);
  assert.match(t, /0\/200, 0\.5 %, - \|/);
  assert.match(t, /\(-1\.0 MB; raw/);
});
