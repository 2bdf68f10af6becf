// The overlay benchmark's encrypted rows (issue 22) from fixed samples: the CPU table (busy cores ÷
// Gbit/s per run, wireguard-go's own), the ratios of-wg ÷ hand-wg / ÷ of-vxlan, a path that failed
// to come up printed as "-" with its error (never 0), the kernel and swarm notes; and the
// /proc/stat arithmetic of encrypted.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { busyCores } from '../../bench/encrypted';
import { renderTables, type PathResult, type Results } from '../../bench/report';

const path = (id: string, label: string, kind: PathResult['kind'], gbps: number[], cores: number, wg?: number, ref?: string): PathResult => ({
  id,
  label,
  kind,
  ref,
  tcp1Gbps: gbps,
  tcp1Cpu: gbps.map((g) => ({ gbps: g, busyCores: cores, coresPerGbps: cores / g, ...(wg === undefined ? {} : { wgCores: wg, wgCoresPerGbps: wg / g }) })),
  tcp4Gbps: gbps.map((g) => g * 2),
  pingMs: [1, 1],
  pingLost: 0,
  udpUs: [100, 100],
  udpLost: 0,
  errors: [],
});

const results = (paths: PathResult[]): Results => ({
  date: '2026-12-04T19:00:00.000Z',
  quick: true,
  machine: { cpus: 2, cpu: 'test cpu', kernel: '6.18', loadavg: '1 1 1' },
  settings: {},
  notes: [],
  paths,
  cpuBaseline: { seconds: 2, busyCores: 0.25, loadavg: '1.00 1.00 1.00' },
  encrypted: { kernel: 'kernel WireGuard: not measured: none here', swarm: 'swarm encrypted overlay: no ping passed' },
  dockerRun: {},
  control: { startToReach: {}, errors: [] },
  scale: { errors: [] },
});

/** The cells of the first row starting with `first` after the table titled `title`. */
const row = (text: string, title: string, first: string): string[] => {
  const at = text.indexOf(title);
  assert.ok(at >= 0, `a table "${title}" in:\n${text}`);
  const line = text.slice(at).split('\n').find((l) => l.startsWith(`| ${first} `));
  assert.ok(line, `a row "${first}" in:\n${text}`);
  return line.split('|').slice(1, -1).map((c) => c.trim());
};

const CPU = '### CPU cost, TCP 1 stream';
const ENC = '### Encrypted (wireguard)';

test('CPU table and encrypted ratios from fixed samples', () => {
  const text = renderTables(
    results([
      path('hand-vxlan', 'hand vxlan', 'reference', [10, 10], 2),
      path('hand-wg', 'hand wireguard', 'reference', [0.2, 0.2], 2, 1),
      path('of-vxlan', 'of vxlan', 'product', [8, 12], 1.5, undefined, 'hand-vxlan'),
      path('of-wg', 'of wireguard', 'product', [0.1, 0.1], 2, 0.8, 'hand-wg'),
    ]),
  );
  // path | Gbit/s | busy cores | cores per Gbit/s | wireguard-go cores | wireguard-go cores per Gbit/s
  assert.deepEqual(row(text, CPU, 'of wireguard'), ['of wireguard', '0.10', '2.00', '20.00 [20.00–20.00]', '0.80', '8.00 [8.00–8.00]']);
  assert.deepEqual(row(text, CPU, 'of vxlan').slice(1, 5), ['10.00', '1.50', '0.16 [0.13–0.19]', '-']);
  // ratio | 1 stream | 4 streams | ping avg | UDP RR avg | cores per Gbit/s
  assert.deepEqual(row(text, ENC, 'of-wg ÷ hand-wg'), ['of-wg ÷ hand-wg', '0.50', '0.50', '1.00', '1.00', '2.00']);
  assert.deepEqual(row(text, ENC, 'of-wg ÷ of-vxlan').slice(1, 2), ['0.01']);
  assert.deepEqual(row(text, ENC, 'hand-wg ÷ hand-vxlan').slice(1, 2), ['0.02']);
  assert.ok(!text.includes('of-wg ÷ swarm'), 'no swarm row without a swarm path');
  assert.match(text, /machine had 0\.25 busy cores/);
  assert.match(text, /- kernel WireGuard: not measured: none here\n- swarm encrypted overlay: no ping passed/);
});

test('a wireguard path that failed to come up is "-" with its error, never 0', () => {
  const failed = { ...path('hand-wg', 'hand wireguard', 'reference', [], 0), pingMs: [], udpUs: [], errors: ['not built: wg set exited with code 1'] };
  const text = renderTables(results([path('of-wg', 'of wireguard', 'product', [0.1], 2, 0.8, 'hand-wg'), failed]));
  assert.deepEqual(row(text, CPU, 'hand wireguard').slice(1), ['-', '-', '-', '-', '-']);
  assert.deepEqual(row(text, ENC, 'of-wg ÷ hand-wg').slice(1), ['-', '-', '-', '-', '-']);
  assert.match(text, /- hand-wg: 1 failed measurement\(s\), first: not built: wg set exited with code 1/);
});

test('no encrypted table without a wireguard path; no CPU table without CPU samples', () => {
  const old = { ...path('of-vxlan', 'of vxlan', 'product', [8], 1), tcp1Cpu: undefined };
  const text = renderTables({ ...results([old]), encrypted: undefined });
  assert.ok(!text.includes('Encrypted (wireguard)'));
  assert.ok(!text.includes('CPU cost'));
});

test('busy cores: Δbusy ÷ Δtotal × CPUs, NaN without elapsed jiffies', () => {
  const cpus = busyCores({ busy: 0, total: 0 }, { busy: 100, total: 100 });
  assert.ok(cpus >= 1, 'all busy is every CPU');
  assert.equal(busyCores({ busy: 0, total: 0 }, { busy: 50, total: 100 }), cpus / 2);
  assert.ok(Number.isNaN(busyCores({ busy: 5, total: 10 }, { busy: 5, total: 10 })));
});
