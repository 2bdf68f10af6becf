/**
 * plugin-build.ts — assembles the managed plugin: `<out>/config.json` + `<out>/rootfs/`
 * (default out: plugin/build), ready for `docker plugin create NAME <out>`.
 *
 *   npm run plugin:build [-- --out DIR] [--no-build] [--no-slim] [--dockerfile [--base IMAGE]]
 *
 * Design note: by default the rootfs is made from this machine's files, without any image or
 * registry: /usr/bin/node as /usr/local/bin/node (the path of the official node images, which the
 * Dockerfile path uses too) plus the libraries `ldd` lists for it and for every native addon
 * (*.node) of the app, and the dynamic loader /lib64/ld-linux-x86-64.so.2; a minimal /etc
 * (passwd, group, nsswitch.conf, CA bundle when the host has one); /tmp; /run/docker/plugins
 * (the plugin socket's folder) and the mount points of config.json (its mounts and its
 * propagatedMount, STATE_DIR). The app goes to /app:
 * dist/, package.json, package-lock.json and node_modules copied from the working tree (so it
 * works offline once `npm ci` has run) and pruned of devDependencies by scripts/prune-dev.js
 * (the set `npm prune --omit=dev` removes), then slimmed (*.d.ts, *.map, *.md, prebuilt addons
 * of other platforms). `npm run build` runs first unless --no-build.
 * --dockerfile instead builds the repository's Dockerfile on the daemon of DOCKER_HOST and
 * exports the resulting container's filesystem as the rootfs (see {@link dockerfileRootfs}).
 * The functions are exported for tests (test/helpers/docker-lab.ts, test/lab/docker-harness.test.ts).
 */
import { execFile } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '..');
export const DOCKER_CLI = process.env.DOCKER_CLI ?? '/usr/bin/docker';
const LOADER = '/lib64/ld-linux-x86-64.so.2';
const WG_TOOLS = ['/usr/bin/wireguard-go', '/usr/bin/setpriv'];

/** Run a program; rejects with its stderr on failure. */
export function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((res, rej) => {
    execFile(
      cmd,
      args,
      { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 300_000, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) {
          const how = err.killed ? 'timed out' : `failed (exit ${String(err.code)})`;
          rej(new Error(`${cmd} ${args.join(' ')} ${how}:\n${(stderr || stdout).trim().split('\n').slice(-15).join('\n')}`));
        } else res(stdout);
      },
    );
  });
}

/** Absolute paths of the shared libraries `ldd` resolves for a binary (the loader included). */
export async function lddLibs(binary: string): Promise<string[]> {
  const out = await sh('ldd', [binary]);
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    if (/not found/.test(line)) throw new Error(`ldd ${binary}: ${line.trim()}`);
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

/** Copy a file to the same path under `root`, dereferencing symlinks; keeps the mode. */
function copyInto(root: string, file: string, as = file): void {
  const dst = join(root, as);
  mkdirSync(dirname(dst), { recursive: true });
  copyFileSync(realpathSync(file), dst);
  chmodSync(dst, lstatSync(realpathSync(file)).mode & 0o7777);
}

/** Files of `dir` (recursively) whose name ends with `suffix`. */
function findFiles(dir: string, suffix: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && e.name.endsWith(suffix)) out.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** Options of {@link hostNodeRootfs}. */
export interface NodeRootfsOptions {
  /** The node binary to copy. Default /usr/bin/node, else this process's node. */
  nodeBinary?: string;
  /** More binaries whose libraries must be present (e.g. native addons). */
  extraBinaries?: string[];
}

/**
 * A minimal root filesystem holding node from this machine at /usr/local/bin/node, with its
 * libraries and the loader — what an official node image offers the app, and what the test base
 * image of the Dockerfile path is made of.
 */
export async function hostNodeRootfs(dest: string, opts: NodeRootfsOptions = {}): Promise<void> {
  const node = opts.nodeBinary ?? (existsSync('/usr/bin/node') ? '/usr/bin/node' : process.execPath);
  mkdirSync(dest, { recursive: true });
  copyInto(dest, node, '/usr/local/bin/node');
  const libs = new Set<string>();
  for (const bin of [node, ...(opts.extraBinaries ?? [])]) for (const l of await lddLibs(bin)) libs.add(l);
  libs.add(LOADER);
  for (const l of libs) copyInto(dest, l);
  for (const d of ['etc', 'host/etc', 'tmp', 'run/docker/plugins', 'root', 'dev', 'proc', 'sys']) mkdirSync(join(dest, d), { recursive: true });
  chmodSync(join(dest, 'tmp'), 0o1777);
  if (!existsSync(join(dest, 'var/run'))) {
    mkdirSync(join(dest, 'var'), { recursive: true });
    symlinkSync('../run', join(dest, 'var/run'));
  }
  writeFileSync(join(dest, 'etc/passwd'), 'root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
  writeFileSync(join(dest, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  writeFileSync(join(dest, 'etc/nsswitch.conf'), 'passwd: files\ngroup: files\nhosts: files dns\n');
  for (const f of ['etc/hosts', 'etc/resolv.conf', 'etc/hostname']) writeFileSync(join(dest, f), '');
  const ca = '/etc/ssl/certs/ca-certificates.crt';
  if (existsSync(ca)) copyInto(dest, ca);
}

/** Options of {@link buildPlugin}. */
export interface BuildOptions {
  /** Output folder (config.json + rootfs/). Default plugin/build. Emptied first. */
  out?: string;
  /** Run `npm run build` first. Default true. */
  build?: boolean;
  /** Drop files the daemon never loads (types, maps, docs, other platforms' addons). Default true. */
  slim?: boolean;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** What {@link buildPlugin} made. */
export interface BuildResult {
  dir: string;
  rootfs: string;
  /** Size of the rootfs in bytes (regular files). */
  bytes: number;
}

/** Assemble `<out>/config.json` and `<out>/rootfs` from this machine's files (see the design note). */
export async function buildPlugin(opts: BuildOptions = {}): Promise<BuildResult> {
  const log = opts.log ?? (() => undefined);
  const out = resolve(opts.out ?? join(ROOT, 'plugin/build'));
  const rootfs = join(out, 'rootfs');
  if (opts.build !== false) {
    log('npm run build');
    await sh('npm', ['run', 'build', '--silent'], { cwd: ROOT });
  }
  for (const f of ['dist/main.js', 'package.json', 'package-lock.json', 'node_modules']) {
    if (!existsSync(join(ROOT, f))) throw new Error(`${f} is missing: run \`npm ci\` and \`npm run build\` first`);
  }
  rmSync(out, { recursive: true, force: true });
  mkdirSync(rootfs, { recursive: true });

  // The app first: its native addons decide which more libraries the rootfs needs.
  const app = join(rootfs, 'app');
  log('copying dist/, package*.json, node_modules/ to /app');
  mkdirSync(app, { recursive: true });
  cpSync(join(ROOT, 'dist'), join(app, 'dist'), { recursive: true, verbatimSymlinks: true });
  for (const f of ['package.json', 'package-lock.json']) copyFileSync(join(ROOT, f), join(app, f));
  // realpath: in a worktree node_modules is a symlink, and copying the link would prune the shared tree.
  cpSync(realpathSync(join(ROOT, 'node_modules')), join(app, 'node_modules'), {
    recursive: true,
    verbatimSymlinks: true,
    filter: (src) => !src.includes('/node_modules/.cache'),
  });
  log(await sh(process.execPath, [join(ROOT, 'scripts/prune-dev.js'), app, ...(opts.slim === false ? [] : ['--slim'])]));
  const addons = findFiles(join(app, 'node_modules'), '.node');

  // The wireguard backend's userspace device: wireguard-go and setpriv (docs/wireguard.md), when installed here.
  const wgTools = WG_TOOLS.filter((b) => existsSync(b));
  log(`node, its libraries and those of ${addons.length} native addon(s)${wgTools.length ? `, ${wgTools.join(', ')}` : ''}`);
  if (wgTools.length < WG_TOOLS.length) log(`not found, so the wireguard backend cannot run in this plugin: ${WG_TOOLS.filter((b) => !wgTools.includes(b)).join(', ')} (apt-get install wireguard-go util-linux)`);
  await hostNodeRootfs(rootfs, { extraBinaries: [...addons, ...wgTools] });
  for (const b of wgTools) copyInto(rootfs, b);
  const config = JSON.parse(readFileSync(join(ROOT, 'plugin/config.json'), 'utf8')) as PluginConfig;
  for (const m of config.mounts ?? []) mountPoint(rootfs, m.destination, m.source);
  // Docker bind-mounts <plugin dir>/propagated-mount here, outside the rootfs an upgrade replaces (STATE_DIR).
  if (config.propagatedMount) mountPoint(rootfs, config.propagatedMount);
  writeFileSync(join(out, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  return { dir: out, rootfs, bytes: treeBytes(rootfs) };
}

/** The fields of plugin/config.json this script reads. */
export interface PluginConfig {
  entrypoint: string[];
  interface: { types: string[]; socket: string };
  network: { type: string };
  linux?: { capabilities?: string[]; devices?: Array<{ name: string; path: string }> };
  mounts?: Array<{ name: string; source?: string; destination: string; type: string; options?: string[]; settable?: string[] }>;
  env?: Array<{ name: string; value?: string; settable?: string[] }>;
  /** Docker keeps this folder's content in /var/lib/docker/plugins/<id>/propagated-mount, across upgrades. */
  propagatedMount?: string;
}

/** An empty mount point in the rootfs: a file for a socket/file source or destination (/dev/null placeholder), else a folder. */
function mountPoint(rootfs: string, destination: string, source?: string): void {
  const p = join(rootfs, destination);
  if (existsSync(p)) return;
  mkdirSync(dirname(p), { recursive: true });
  const fileLike = /\.(sock|json|env|pem|crt|key)$/;
  if (fileLike.test(destination) || (source && (fileLike.test(source) || source.startsWith('/dev/')))) writeFileSync(p, '');
  else mkdirSync(p, { recursive: true });
}

/** Bytes of the regular files under `dir` (symlinks not followed). */
export function treeBytes(dir: string): number {
  let n = 0;
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) n += lstatSync(p).size;
    }
  };
  walk(dir);
  return n;
}

/** Runs the docker CLI against one daemon; rejects on a non-zero exit. */
export type DockerCli = (args: string[], opts?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }) => Promise<string>;

/** `/usr/bin/docker -H <host>` (DOCKER_HOST, default the system daemon). */
export function dockerCli(host = process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock'): DockerCli {
  return (args, o = {}) => sh(DOCKER_CLI, ['-H', host, ...args], { timeoutMs: o.timeoutMs ?? 120_000, env: { ...process.env, ...o.env } });
}

/** Options of {@link dockerfileRootfs}. */
export interface DockerfileOptions {
  /** Output folder (config.json + rootfs/). Emptied first. */
  out: string;
  /** Build argument BASE (an image with node at /usr/local/bin/node). Default: the Dockerfile's. */
  base?: string;
  /** Tag of the built image. Default overlay-flannel-rootfs:build. */
  tag?: string;
  /** Build context. Default the repository root (needs dist/ and node_modules/). */
  context?: string;
  log?: (line: string) => void;
}

/**
 * The release path: `docker build` the repository's Dockerfile (classic builder, no network in
 * RUN steps), `docker create` + `docker export` the image's filesystem into `<out>/rootfs`, and
 * put plugin/config.json beside it. Works offline when `base` is a local image (docs/lab.md §6).
 */
export async function dockerfileRootfs(docker: DockerCli, opts: DockerfileOptions): Promise<BuildResult> {
  const log = opts.log ?? (() => undefined);
  const context = opts.context ?? ROOT;
  const tag = opts.tag ?? 'overlay-flannel-rootfs:build';
  const out = resolve(opts.out);
  const rootfs = join(out, 'rootfs');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(rootfs, { recursive: true });
  log(`docker build ${opts.base ? `--build-arg BASE=${opts.base} ` : ''}-t ${tag}`);
  await docker(
    ['build', '--network', 'none', '--pull=false', ...(opts.base ? ['--build-arg', `BASE=${opts.base}`] : []), '-t', tag, '-f', join(context, 'Dockerfile'), context],
    { timeoutMs: 600_000, env: { DOCKER_BUILDKIT: '0' } },
  );
  const id = (await docker(['create', tag])).trim();
  const tar = join(out, 'rootfs.tar');
  try {
    await docker(['export', '-o', tar, id], { timeoutMs: 300_000 });
  } finally {
    await docker(['rm', '-f', id]).catch(() => undefined);
  }
  await sh('tar', ['-x', '-f', tar, '-C', rootfs]);
  rmSync(tar, { force: true });
  copyFileSync(join(ROOT, 'plugin/config.json'), join(out, 'config.json'));
  return { dir: out, rootfs, bytes: treeBytes(rootfs) };
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

async function cli(argv: string[]): Promise<void> {
  const val = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const out = val('--out');
  const log = (l: string): void => void process.stdout.write(`plugin:build: ${l.trim()}\n`);
  let r: BuildResult;
  if (argv.includes('--dockerfile')) {
    if (!argv.includes('--no-build')) await sh('npm', ['run', 'build', '--silent'], { cwd: ROOT });
    r = await dockerfileRootfs(dockerCli(), { out: out ?? join(ROOT, 'plugin/build'), base: val('--base'), log });
  } else {
    r = await buildPlugin({ out, build: !argv.includes('--no-build'), slim: !argv.includes('--no-slim'), log });
  }
  log(`${r.dir}: config.json + rootfs/ (${mib(r.bytes)}); next: docker plugin create NAME ${r.dir}`);
}

if (require.main === module) {
  cli(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`plugin:build: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
