#!/usr/bin/env node
/**
 * prune-dev.js APP_DIR [--slim] [--self-delete]
 *
 * Removes devDependencies from APP_DIR/node_modules using APP_DIR/package-lock.json (v2/v3), the
 * same set `npm prune --omit=dev` removes (lockfile entries flagged "dev": true). Needs only node:
 * no npm, no network — so it also runs in a Dockerfile RUN step on a base image without npm.
 * --slim also deletes what the daemon never loads: *.d.ts/*.map/*.md files, `test`/`docs`
 * folders of packages and prebuilt addons for other platforms (prebuilds/<os>-<arch>).
 * --self-delete removes this file afterwards (used by the Dockerfile, which copies it into /tmp).
 * Plain CommonJS JavaScript on purpose: it must run before anything is compiled.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

function main(argv) {
  const app = argv.find((a) => !a.startsWith('--'));
  if (!app) throw new Error('usage: prune-dev.js APP_DIR [--slim] [--self-delete]');
  const lock = JSON.parse(fs.readFileSync(path.join(app, 'package-lock.json'), 'utf8'));
  if (!lock.packages || (lock.lockfileVersion ?? 1) < 2) throw new Error('package-lock.json v2 or v3 needed (npm ≥ 7)');
  const modules = path.join(app, 'node_modules');
  if (fs.lstatSync(modules).isSymbolicLink()) {
    // Pruning through a link would delete the devDependencies of the tree it points to (a worktree's shared one).
    throw new Error(`${modules} is a symlink (to ${fs.realpathSync(modules)}): copy the real folder into ${app} first`);
  }
  let removed = 0;
  for (const [rel, entry] of Object.entries(lock.packages)) {
    if (!rel.startsWith('node_modules/') || entry.dev !== true) continue;
    const dir = path.join(app, rel);
    if (fs.existsSync(dir)) {
      fs.rmSync(dir, { recursive: true, force: true });
      removed++;
    }
  }
  const nm = path.join(app, 'node_modules');
  // npm's hidden lockfile would now describe packages that are gone; npm rebuilds it when missing.
  fs.rmSync(path.join(nm, '.package-lock.json'), { force: true });
  removeDanglingBins(nm);
  removeEmptyScopes(nm);
  let slimmed = 0;
  if (argv.includes('--slim')) slimmed = slim(nm);
  if (argv.includes('--self-delete')) fs.rmSync(__filename, { force: true });
  process.stdout.write(`prune-dev: removed ${removed} dev package(s)${argv.includes('--slim') ? `, ${slimmed} unneeded file(s)/folder(s)` : ''}\n`);
}

/** Links in every node_modules/.bin whose target is gone. */
function removeDanglingBins(nm) {
  for (const bin of findDirs(nm, '.bin')) {
    for (const f of fs.readdirSync(bin)) {
      const p = path.join(bin, f);
      if (!fs.existsSync(p)) fs.rmSync(p, { force: true });
    }
  }
}

function removeEmptyScopes(nm) {
  if (!fs.existsSync(nm)) return;
  for (const f of fs.readdirSync(nm)) {
    const p = path.join(nm, f);
    if (f.startsWith('@') && fs.statSync(p).isDirectory() && fs.readdirSync(p).length === 0) fs.rmdirSync(p);
  }
}

/** Every directory named `name` below `root` (not following symlinks). */
function findDirs(root, name) {
  const out = [];
  const walk = (d) => {
    let ents;
    try {
      ents = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      if (!e.isDirectory()) continue;
      const p = path.join(d, e.name);
      if (e.name === name) out.push(p);
      else walk(p);
    }
  };
  walk(root);
  return out;
}

function slim(nm) {
  const platform = `${process.platform}-${process.arch}`;
  let n = 0;
  const walk = (d, inPackage) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (e.name === 'node_modules') {
          walk(p, false);
        } else if (path.basename(d) === 'prebuilds' && !e.name.startsWith(platform)) {
          fs.rmSync(p, { recursive: true, force: true });
          n++;
        } else if (inPackage && /^(test|tests|__tests__|docs|example|examples|\.github)$/.test(e.name) && fs.existsSync(path.join(d, 'package.json'))) {
          fs.rmSync(p, { recursive: true, force: true });
          n++;
        } else {
          walk(p, true);
        }
      } else if (e.isFile() && /(\.d\.[cm]?ts|\.map|\.md|\.markdown)$/i.test(e.name) && !/^licen[cs]e/i.test(e.name)) {
        fs.rmSync(p, { force: true });
        n++;
      }
    }
  };
  if (fs.existsSync(nm)) walk(nm, false);
  return n;
}

try {
  main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`prune-dev: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
