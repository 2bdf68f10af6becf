/**
 * The repository stands alone: every design note a comment in src/, test/, bench/ or scripts/
 * cites (`lab.md`, `docs/flannel-compat.md §4`) must be a file of this repository — a bare name
 * in docs/ or at the top, a path from the top — and a numbered section it names (`§4`, `§4–§6`)
 * must be a `## 4.` heading of that note. No comment may point into the machine it was written
 * on (an absolute /work path, the shared reference folder). And docs/README.md lists every note.
 * The scanner is pure (tested with a table first); the second test runs it on the tree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..');
const SCANNED = ['src', 'test', 'bench', 'scripts'];
const SOURCE = /\.(ts|js|mjs|cjs|sh)$/;
const SKIPPED_DIRS = new Set(['node_modules', 'results']); // bench/results: measured data, not code

/** A name ending in .md, not inside a URL or a longer path; optionally followed by `§N` or `§N–§M`. */
const CITATION = /(?<![\w./-])((?:[\w.-]+\/)*[\w-]+(?:\.[\w-]+)*\.md)\b(?:'s)?(?:\s*(§\s*\d+(?:\s*[–-]\s*§?\s*\d+)?))?/g;
/** Paths of the machine a comment was written on (spelled so this file does not match itself). */
const MACHINE_PATH = new RegExp(['\\', 'work', ''].join('/') + '|shared[ /]docs', 'i');

export interface NoteIndex {
  /** repo-relative path → numbered `## N.` sections, or null when the file does not exist. */
  sections(path: string): Set<number> | null;
}

export function citationProblems(file: string, text: string, notes: NoteIndex): string[] {
  const problems: string[] = [];
  text.split('\n').forEach((line, i) => {
    const where = `${file}:${i + 1}`;
    if (MACHINE_PATH.test(line)) problems.push(`${where}: names a path outside the repository: ${line.trim()}`);
    for (const m of line.matchAll(CITATION)) {
      const cited = m[1]!;
      const candidates = cited.includes('/') ? [cited] : [`docs/${cited}`, cited];
      const path = candidates.find((c) => notes.sections(c) !== null);
      if (!path) {
        problems.push(`${where}: cites ${cited}, which is not in the repository (docs/ or the top folder)`);
        continue;
      }
      const wanted = [...(m[2] ?? '').matchAll(/\d+/g)].map((d) => Number(d[0]));
      const have = notes.sections(path)!;
      for (const n of wanted) if (!have.has(n)) problems.push(`${where}: cites ${path} §${n}, which has no "## ${n}." section`);
    }
  });
  return problems;
}

function sectionsOf(text: string): Set<number> {
  return new Set([...text.matchAll(/^##\s+(\d+)\./gm)].map((m) => Number(m[1])));
}

const repoNotes: NoteIndex = {
  sections(path) {
    const full = join(ROOT, path);
    return existsSync(full) && statSync(full).isFile() ? sectionsOf(readFileSync(full, 'utf8')) : null;
  },
};

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) {
      if (!SKIPPED_DIRS.has(e.name)) sourceFiles(join(dir, e.name), out);
    } else if (e.isFile() && SOURCE.test(e.name)) out.push(join(dir, e.name));
  }
  return out;
}

test('the scanner flags missing notes, missing sections and machine paths, and accepts real ones', () => {
  const fake: NoteIndex = {
    sections: (p) => ({ 'docs/lab.md': new Set([1, 2, 8]), 'README.md': new Set<number>() } as Record<string, Set<number>>)[p] ?? null,
  };
  const md = '.md';
  const table: [text: string, problems: RegExp[]][] = [
    [`// Stop order (lab${md}): containers first`, []],
    [`// see docs/lab${md} §8 and docs/lab${md} §1–§2`, []],
    [`// follows lab${md}'s stop order (README${md})`, []],
    [`// the rootfs is slimmed (*${md}, *.map); https://example.org/x/perf-notes${md}`, []],
    [`// (perf-notes${md}, "lesson")`, [/cites perf-notes\.md, which is not in the repository/]],
    [`// docs/docker-trace${md} §2`, [/cites docs\/docker-trace\.md/]],
    [`// docs/lab${md} §3–§8`, [/docs\/lab\.md §3, which has no "## 3\." section/]],
    [`// see ${['', 'work', 'shared', 'docs', `x${md}`].join('/')}`, [/outside the repository/]],
    [`// ${'shared'} docs lab${md}`, [/outside the repository/]],
  ];
  for (const [text, wanted] of table) {
    const got = citationProblems('f.ts', text, fake);
    assert.equal(got.length, wanted.length, `${text}\n${got.join('\n')}`);
    wanted.forEach((re, i) => assert.match(got[i]!, re, text));
  }
});

test('every design note cited in src/, test/, bench/ and scripts/ is in the repository', () => {
  const files = SCANNED.flatMap((d) => sourceFiles(join(ROOT, d)));
  assert.ok(files.length > 100, `scanned only ${files.length} files`);
  const problems = files.flatMap((f) => citationProblems(relative(ROOT, f), readFileSync(f, 'utf8'), repoNotes));
  assert.deepEqual(problems, [], problems.join('\n'));
});

test('docs/README.md links every note in docs/', () => {
  const index = readFileSync(join(ROOT, 'docs', 'README.md'), 'utf8');
  const notes = readdirSync(join(ROOT, 'docs')).filter((n) => n.endsWith('.md') && n !== 'README.md');
  assert.ok(notes.length >= 6, `only ${notes.length} notes in docs/`);
  for (const n of notes) assert.ok(index.includes(`](${n})`), `docs/README.md does not link ${n}`);
});
