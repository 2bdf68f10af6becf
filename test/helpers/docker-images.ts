/**
 * Images for the Docker lab without a registry: busybox (optionally with iperf3) and a node base
 * assembled from host files and `docker import`ed, and the plugin rootfs built from the repository's
 * Dockerfile on that base. Each folder is built once per process. Split out of docker-lab.ts, which
 * re-exports importBusybox, importNodeBase and dockerfilePlugin.
 */
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dockerfileRootfs, hostNodeRootfs, lddLibs, type BuildResult } from '../../scripts/plugin-build';
import type { DockerHost } from './docker-lab';
import { run } from './run';
import { sleep } from './wait';

/** `tar -C dir -c .` into a file and `docker import` it as `tag` (with `changes`, e.g. CMD). */
async function importDir(d: DockerHost, dir: string, tag: string, changes: string[] = []): Promise<void> {
  const tar = `${dir}.tar`;
  if (!existsSync(tar)) await run('tar', ['-C', dir, '-c', '-f', tar, '.'], { timeoutMs: 120_000 });
  await d.dockerOk(['import', ...changes.flatMap((c) => ['--change', c]), tar, tag], { timeoutMs: 180_000 });
}

/** Copy a host file to the same path under `root` (dereferenced). */
async function copyHostFile(root: string, file: string): Promise<void> {
  const dst = join(root, file);
  mkdirSync(join(dst, '..'), { recursive: true });
  await run('cp', ['-L', '--preserve=mode', file, dst], { timeoutMs: 30_000 });
}

const building = new Map<string, Promise<string>>();

/** Build a folder once per run (concurrent callers share the work). */
function once(path: string, make: (dir: string) => Promise<void>): Promise<string> {
  let p = building.get(path);
  if (!p) {
    p = (async () => {
      rmSync(path, { recursive: true, force: true });
      rmSync(`${path}.tar`, { force: true });
      mkdirSync(path, { recursive: true });
      await make(path);
      return path;
    })();
    building.set(path, p);
    p.catch(() => building.delete(path));
  }
  return p;
}

/**
 * Import a busybox image (busybox-static with a symlink for every applet in /bin: sh, ip, ping,
 * nc, sleep, cat, echo, ifconfig, route, hostname, wget, httpd, ls, grep, …), CMD sh.
 * With `iperf3`, /usr/bin/iperf3 and the libraries `ldd` lists for it (plus the loader) too; with
 * `socat` (Debian's, it joins multicast groups), /usr/bin/socat and its libraries likewise.
 */
export async function importBusybox(d: DockerHost, tag = 'ofbox:1', opts: { iperf3?: boolean; socat?: boolean } = {}): Promise<void> {
  const extras = (['iperf3', 'socat'] as const).filter((x) => opts[x]);
  const dir = join(d.dir, '..', 'images', ['busybox', ...extras].join('-'));
  await once(dir, async (root) => {
    mkdirSync(join(root, 'bin'), { recursive: true });
    await run('cp', ['/bin/busybox', join(root, 'bin/busybox')]);
    const list = (await run('/bin/busybox', ['--list'])).stdout.split('\n').filter((a) => /^[\w.[-]+$/.test(a) && a !== 'busybox');
    for (const a of list) symlinkSync('busybox', join(root, 'bin', a));
    for (const f of ['etc', 'tmp', 'root', 'proc', 'sys', 'dev', 'usr/bin', 'var/run']) mkdirSync(join(root, f), { recursive: true });
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
    await run('chmod', ['1777', join(root, 'tmp')]);
    for (const x of extras) {
      await copyHostFile(root, `/usr/bin/${x}`);
      for (const l of new Set([...(await lddLibs(`/usr/bin/${x}`)), '/lib64/ld-linux-x86-64.so.2'])) await copyHostFile(root, l);
    }
  });
  await importDir(d, dir, tag, ['CMD ["sh"]']);
}

/**
 * Import a node base image made of this machine's files (node at /usr/local/bin/node, its
 * libraries, the loader, a minimal /etc) — a stand-in for node:20-bookworm-slim offline.
 */
export async function importNodeBase(d: DockerHost, tag = 'ofnode:20'): Promise<void> {
  const dir = join(d.dir, '..', 'images', 'node-base');
  await once(dir, (root) => hostNodeRootfs(root));
  await importDir(d, dir, tag, ['CMD ["/usr/local/bin/node"]']);
}

/**
 * The Dockerfile path offline (docs/lab.md §6): import a node base from host files on `d`, build the
 * repository's Dockerfile with `--build-arg BASE=<it>`, export the container filesystem into
 * `<out>/rootfs` and put plugin/config.json beside it. Needs dist/ and node_modules/.
 */
export async function dockerfilePlugin(d: DockerHost, out: string, opts: { log?: (l: string) => void } = {}): Promise<BuildResult> {
  await importNodeBase(d, 'ofnode:20');
  return dockerfileRootfs(d.cli, { out, base: 'ofnode:20', tag: 'of-plugin-rootfs:test', log: opts.log });
}
