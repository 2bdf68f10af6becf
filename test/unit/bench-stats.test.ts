// The benchmark's statistics as tables: percentiles by nearest rank, medians, spread, ratios, the
// interleaved order of repetitions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { interleave, median, percentile, ratio, round, summarize } from '../../bench/stats';

test('percentile: nearest rank on the sorted samples, whatever the input order', () => {
  const hundred = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1
  const cases: Array<[number[], number, number]> = [
    [hundred, 99, 99],
    [hundred, 100, 100],
    [hundred, 50, 50],
    [hundred, 1, 1],
    [[3, 1, 2], 50, 2],
    [[3, 1, 2], 99, 3],
    [[7], 99, 7],
    [[5, 9], 50, 5],
  ];
  for (const [xs, p, want] of cases) assert.equal(percentile(xs, p), want, `p${p} of ${xs.length} samples`);
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.throws(() => percentile([1], 0), /outside \(0, 100\]/);
  assert.throws(() => percentile([1], 101), /outside/);
});

test('median: middle sample, mean of the two middle ones for an even count', () => {
  const cases: Array<[number[], number]> = [
    [[5], 5],
    [[9, 1, 5], 5],
    [[4, 1, 3, 2], 2.5],
    [[10.5, 10.5], 10.5],
  ];
  for (const [xs, want] of cases) assert.equal(median(xs), want, xs.join(','));
  assert.ok(Number.isNaN(median([])));
});

test('summarize: min, max, mean, median, p99 and the relative spread of repetitions', () => {
  const s = summarize([12, 10, 8, 11, 9]);
  assert.deepEqual(s, { n: 5, min: 8, max: 12, mean: 10, median: 10, p50: 10, p90: 12, p99: 12, spread: 0.4 });
  assert.equal(summarize([0, 0]).spread, 0);
  const e = summarize([]);
  assert.equal(e.n, 0);
  assert.ok(Number.isNaN(e.median) && Number.isNaN(e.spread));
  assert.throws(() => summarize([1, NaN]), /not a finite number/);
  assert.throws(() => summarize([Infinity]), /not a finite number/);
});

test('ratio: NaN (not 0 or Infinity) when a side is missing or the divisor is 0', () => {
  assert.equal(ratio(9, 10), 0.9);
  for (const [a, b] of [[1, 0], [undefined, 1], [1, undefined], [NaN, 1]] as Array<[number | undefined, number | undefined]>) {
    assert.ok(Number.isNaN(ratio(a, b)), `${a}/${b}`);
  }
  assert.equal(round(2 / 3, 3), 0.667);
  assert.ok(Number.isNaN(round(NaN)));
});

test('interleave: every item once per round, the order rotated each round', () => {
  assert.deepEqual(interleave(['a', 'b', 'c'], 3), ['a', 'b', 'c', 'b', 'c', 'a', 'c', 'a', 'b']);
  assert.deepEqual(interleave(['a', 'b'], 0), []);
  assert.deepEqual(interleave([], 4), []);
  const order = interleave([1, 2, 3, 4], 5);
  for (const x of [1, 2, 3, 4]) assert.equal(order.filter((y) => y === x).length, 5);
});
