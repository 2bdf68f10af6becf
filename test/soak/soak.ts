/**
 * `npm run soak [-- --minutes N] [--seed S] [--faults K] [--kinds plugin-kill,etcd-restart,…]`: the long soak (soak-run.ts), as root,
 * inside the private network namespace scripts/soak.sh makes. Prints progress, then a table;
 * writes test-artifacts/soak-<time>.json; exits 1 on any leak or duplicate address.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../faults/fault-lab';
import { runSoak, RSS_GROWTH_BOUND_MIB } from './soak-run';
import { FAULT_KINDS, type FaultKind } from './soak-faults';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number, got ${process.argv[i + 1]}`);
  return v;
}

async function main(): Promise<void> {
  const minutes = arg('minutes', 20);
  const seed = arg('seed', Math.floor(Math.random() * 1e9));
  const faults = process.argv.includes('--faults') ? arg('faults', 0) : undefined;
  const k = process.argv.indexOf('--kinds');
  const kinds = k < 0 ? undefined : (process.argv[k + 1] ?? '').split(',').filter(Boolean);
  for (const x of kinds ?? []) if (!(FAULT_KINDS as readonly string[]).includes(x)) throw new Error(`--kinds: unknown fault ${x}; known: ${FAULT_KINDS.join(', ')}`);
  process.stdout.write(`soak: ${minutes} min, seed ${seed} (repeat with --seed ${seed})\n`);
  const r = await runSoak({ minutes, seed, faults, kinds: kinds as FaultKind[] | undefined });
  const file = join(ROOT, 'test-artifacts', `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(r, null, 2)}\n`);
  const byKind = new Map<string, number>();
  for (const f of r.faults) byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1);
  const rows: Array<[string, string]> = [
    ['duration', `${minutes} min (seed ${seed})`],
    ['containers started (docker run --rm)', `${r.runs.ok} ok, ${r.runs.failed} failed (${r.runs.failedOutsideFaults} outside a fault's window)`],
    ['other steps', Object.entries(r.steps).map(([k, v]) => `${k} ${v}`).join(', ')],
    ['probes (ping every 20 ms, c1 on h1 → c2 on h2)', `${r.probes.sent} sent, ${r.probes.lost} lost, longest gap ${r.probes.longestGapMs} ms`],
    ['faults injected', [...byKind].map(([k, v]) => `${k} ×${v}`).join(', ')],
    ['checkpoints', r.checkpoints.map((c) => `${c.atMin} min: ${c.report.problems.length ? `${c.report.problems.length} problem(s)` : 'clean'} (${c.settledMs} ms)`).join('; ')],
    ['leaks found', String(r.leaks.length)],
    ['duplicate addresses seen', String(r.duplicates.length)],
    ...Object.entries(r.rss).map(([h, x]): [string, string] => [`plugin RSS on ${h}`, `${x.startMiB} → ${x.endMiB} MiB${x.samePid ? '' : ' (restarted by a fault: not comparable)'}; bound +${RSS_GROWTH_BOUND_MIB} MiB`]),
  ];
  process.stdout.write(`\n| what | result |\n|---|---|\n${rows.map(([a, b]) => `| ${a} | ${b} |`).join('\n')}\n\n(${file})\n`);
  for (const l of [...r.leaks, ...r.duplicates]) process.stdout.write(`LEAK: ${l}\n`);
  process.exit(r.leaks.length + r.duplicates.length > 0 ? 1 : 0);
}

main().catch((e: unknown) => {
  process.stderr.write(`soak: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(2);
});
