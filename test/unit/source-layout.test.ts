// The source layout the README's "Source layout" section describes, checked on every file of src/:
// each library imported only in its folder (type imports included), the layers importing only
// downward, nothing outside src/kernel past src/kernel/index.ts, and no Docker wire field names
// outside src/api. Reads the files as text (imports by regex, comments stripped): no compiler needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');
const SRC = join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

interface SourceFile {
  /** "src/driver/network.ts" */
  path: string;
  /** "driver", or "" for src/main.ts and src/errors.ts */
  folder: string;
  text: string;
  /** Every module specifier it imports or re-exports (type-only included). */
  imports: string[];
}

/** Comments out, strings kept (a regex literal with // in it would be cut: none in src/ today). */
function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

const FILES: SourceFile[] = sourceFiles(SRC).map((abs) => {
  const path = relative(ROOT, abs);
  const parts = relative(SRC, abs).split('/');
  const text = readFileSync(abs, 'utf8');
  const code = stripComments(text);
  const imports = [...code.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)['"]([^'"]+)['"]/g)].map((m) => m[1]!);
  return { path, folder: parts.length > 1 ? parts[0]! : '', text: code, imports };
});

/** The folder of src/ a relative specifier of `file` lands in ('' for src/*.ts), or null for a package. */
function targetOf(file: SourceFile, spec: string): { folder: string; rel: string } | null {
  if (!spec.startsWith('.')) return null;
  const rel = relative(SRC, resolve(ROOT, dirname(file.path), spec));
  const parts = rel.split('/');
  return { folder: parts.length > 1 ? parts[0]! : '', rel };
}

const packageOf = (spec: string): string => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);

test('the tree was read (a guard against a test that checks nothing)', () => {
  assert.ok(FILES.length > 60, `only ${FILES.length} files under src/`);
  for (const f of ['kernel', 'store', 'api', 'docker', 'domain', 'driver', 'reconcile', 'status', 'host', 'daemon', 'util']) {
    assert.ok(FILES.some((x) => x.folder === f), `no files in src/${f}`);
  }
  assert.ok(FILES.filter((f) => f.imports.length > 0).length > 50, 'imports were found');
  const importsOf = (p: string) => FILES.find((f) => f.path === p)?.imports ?? [];
  assert.ok(importsOf('src/api/server.ts').includes('fastify'), 'a value import of a package is seen');
  assert.ok(importsOf('src/driver/network.ts').includes('../kernel'), 'a type import is seen');
});

test('each library is imported only in its folder (type imports included)', () => {
  const owners: Record<string, string> = { netlink: 'kernel', etcd3: 'store', fastify: 'api', '@fastify': 'api', dockerode: 'docker' };
  const bad: string[] = [];
  for (const f of FILES) {
    for (const spec of f.imports) {
      const pkg = packageOf(spec);
      const owner = owners[pkg] ?? owners[pkg.split('/')[0]!];
      if (owner !== undefined && f.folder !== owner) bad.push(`${f.path} imports ${spec} (only src/${owner} may)`);
    }
  }
  assert.deepEqual(bad, []);
});

test('nothing outside src/kernel imports past src/kernel/index.ts', () => {
  const bad: string[] = [];
  for (const f of FILES.filter((x) => x.folder !== 'kernel')) {
    for (const spec of f.imports) {
      const t = targetOf(f, spec);
      if (t && t.folder === 'kernel' && t.rel !== 'kernel' && t.rel !== 'kernel/index') bad.push(`${f.path} imports ${spec}`);
    }
  }
  assert.deepEqual(bad, []);
});

/**
 * Which folders each folder may import (besides itself). Adapters (kernel, store, docker) sit at
 * the bottom with domain; daemon/ and src/main.ts compose everything and are not listed.
 */
const MAY_IMPORT: Record<string, string[]> = {
  domain: [''], // src/errors.ts only
  util: [''],
  config: ['', 'domain', 'util'],
  kernel: ['', 'domain', 'util'],
  store: ['', 'domain', 'util', 'config'],
  docker: ['', 'domain', 'util', 'kernel', 'store'],
  host: ['', 'domain', 'util', 'kernel'],
  reconcile: ['', 'domain', 'util', 'kernel', 'store', 'docker', 'host'],
  driver: ['', 'domain', 'util', 'kernel'],
  api: ['', 'domain', 'util', 'driver'],
  status: ['', 'domain', 'util', 'api', 'reconcile', 'docker'],
  cli: ['', 'domain', 'util', 'config', 'kernel', 'store', 'host', 'driver', 'daemon'],
};

test('each folder imports only the layers below it (src/api the driver alone)', () => {
  const bad: string[] = [];
  for (const f of FILES) {
    const allowed = MAY_IMPORT[f.folder];
    if (f.folder === '' || f.folder === 'daemon') continue;
    assert.ok(allowed, `src/${f.folder} is a folder the layout does not know: add it to MAY_IMPORT and the README`);
    for (const spec of f.imports) {
      const t = targetOf(f, spec);
      if (t && t.folder !== f.folder && !allowed.includes(t.folder)) bad.push(`${f.path} imports ${spec} (src/${t.folder || t.rel})`);
    }
  }
  assert.deepEqual(bad, []);
});

test('no libnetwork wire field names outside src/api (the driver speaks domain values)', () => {
  const WIRE = ['SrcName', 'DstPrefix', 'StaticRoutes', 'RouteType', 'NextHop', 'InterfaceName', 'HostPort', 'HostPortEnd', 'HostIP', 'Proto', 'AuxAddresses', 'LocalDefaultAddressSpace', 'GlobalDefaultAddressSpace', 'DisableGatewayService'];
  const re = new RegExp(`\\b(${WIRE.join('|')})\\b`, 'g');
  const bad: string[] = [];
  for (const f of FILES.filter((x) => x.folder !== 'api')) {
    // netlink's own enum rt.RouteType (src/kernel/routes.ts) is not Docker's wire.
    const code = f.text.replace(/\brt\.RouteType\b/g, '');
    for (const m of code.matchAll(re)) bad.push(`${f.path}: ${m[1]}`);
  }
  assert.deepEqual(bad, []);
});

test('files stay under 400 lines', () => {
  const long = FILES.map((f) => [f.path, readFileSync(join(ROOT, f.path), 'utf8').split('\n').length] as const).filter(([, n]) => n > 400);
  assert.deepEqual(long, []);
});
