// The overlay benchmark's IPv6 row (issue 21) from fixed samples: of-v6 ÷ of-v6v4 (the same
// containers over v4) and ÷ of-vxlan as ratios of medians (throughput) and of averages (latency),
// the ≥ 0.95× verdict, the ×ref column of the v6 row, a missing side printed "-" (never 0), and no
// table at all in a run without the v6 row.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ipv6Table, renderTables, V6_TARGET, type PathResult, type Results } from '../../bench/report';

const path = (id: string, kind: PathResult['kind'], tcp1: number[], tcp4: number[], pingMs: number[], udpUs: number[], ref?: string): PathResult => ({
  id, label: `label ${id}`, kind, ref, tcp1Gbps: tcp1, tcp4Gbps: tcp4, pingMs, pingLost: 0, udpUs, udpLost: 0, errors: [],
});
const results = (paths: PathResult[]): Results => ({
  date: '2026-12-04T21:00:00.000Z', quick: true, machine: { cpus: 2, cpu: 'test cpu', kernel: '6.18' }, settings: {}, notes: [], paths,
  dockerRun: {}, control: { startToReach: {}, errors: [] }, scale: { errors: [] },
});
const TITLE = '### IPv6 ÷ IPv4 through the vxlan overlay';
const row = (text: string, first: string): string[] => {
  const at = text.indexOf(TITLE);
  assert.ok(at >= 0, `a table "${TITLE}" in:\n${text}`);
  const line = text.slice(at).split('\n').find((l) => l.startsWith(`| ${first} `));
  assert.ok(line, `a row "${first}" in:\n${text}`);
  return line.split('|').slice(1, -1).map((c) => c.trim());
};

test('v6 ÷ v4: ratios of medians and averages, the target verdict, the ×ref column', () => {
  const text = renderTables(results([
    path('hand-vxlan', 'reference', [10], [12], [0.5], [100]),
    path('of-vxlan', 'product', [8, 10, 12], [12], [0.4], [100], 'hand-vxlan'),
    path('of-v6v4', 'product', [9, 10, 11], [12, 12], [0.4, 0.6], [90, 110], 'hand-vxlan'),
    path('of-v6', 'product', [9.4, 9.6, 50], [10.8], [0.6, 0.6], [120, 120], 'of-v6v4'),
  ]));
  // ratio | 1 stream | 4 streams | ping avg | UDP RR avg | ≥ 0.95×
  assert.deepEqual(row(text, 'of-v6 ÷ of-v6v4'), ['of-v6 ÷ of-v6v4', '0.96', '0.90', '1.20', '1.20', 'no'], 'median 9.6 ÷ 10; 10.8 ÷ 12 misses the target');
  assert.deepEqual(row(text, 'of-v6 ÷ of-vxlan'), ['of-v6 ÷ of-vxlan', '0.96', '0.90', '1.50', '1.20', 'no']);
  const tput = text.split('\n').find((l) => l.startsWith('| label of-v6 '))!.split('|').map((c) => c.trim());
  assert.equal(tput[4], '0.96', `the v6 row's ×ref is v6 ÷ v4: ${tput}`);
  const ok = ipv6Table(results([path('of-v6v4', 'product', [10], [10], [1], [100]), path('of-v6', 'product', [9.5], [10], [1], [100], 'of-v6v4')]));
  assert.deepEqual(row(ok.join('\n'), 'of-v6 ÷ of-v6v4').slice(1), ['0.95', '1.00', '1.00', '1.00', 'yes'], `exactly ${V6_TARGET}× meets it`);
});

test('a v6 row with no samples prints "-", and no v6 row prints no table', () => {
  const text = ipv6Table(results([path('of-v6v4', 'product', [10], [10], [1], [100]), path('of-v6', 'product', [], [], [], [], 'of-v6v4')])).join('\n');
  assert.deepEqual(row(text, 'of-v6 ÷ of-v6v4').slice(1), ['-', '-', '-', '-', '-']);
  assert.deepEqual(ipv6Table(results([path('of-vxlan', 'product', [10], [10], [1], [100])])), []);
  assert.ok(!renderTables(results([path('of-vxlan', 'product', [10], [10], [1], [100])])).includes(TITLE));
});
