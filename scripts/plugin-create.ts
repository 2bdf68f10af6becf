/**
 * plugin-create.ts — (re)creates and enables the managed plugin from `npm run plugin:build`'s output
 * on the daemon of DOCKER_HOST (default unix:///var/run/docker.sock), with /usr/bin/docker.
 *
 *   npm run plugin:create [-- --name NAME] [--dir DIR] [--no-enable] [--no-mkdir] [--timeout SEC] [KEY=VALUE …]
 *
 * Steps: `docker plugin rm -f NAME` when it exists; `docker plugin create NAME DIR`;
 * `docker plugin set NAME …` with every settable env variable of DIR/config.json that is set in
 * this process's environment (e.g. ETCD_ENDPOINTS=… npm run plugin:create) plus the KEY=VALUE
 * arguments (mount sources: `docker-socket.source=/path`, `flannel-run.source=…`, `etc.source=…`);
 * then `docker plugin enable NAME` unless --no-enable. NAME defaults to `overlay-flannel`
 * (Docker lists it as overlay-flannel:latest; `-d overlay-flannel` works too, see src/docker/plain-names.ts).
 * Enabling needs the host folders of the bind mounts to exist (/run/flannel, /etc/overlay-flannel,
 * a `docker-socket.source` you set): Docker does not create them, runc fails with "stat …: no such
 * file or directory" (the defaults — /etc, /, /run/docker/plugins, /dev/null — always exist). When DOCKER_HOST is a unix socket (a daemon on this machine) the folder sources
 * (effective values, after KEY=VALUE overrides) are created here first (`--no-mkdir`: don't).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { dockerCli, ROOT, type DockerCli, type PluginConfig } from './plugin-build';

/** Options of {@link createPlugin}. */
export interface CreateOptions {
  /** Docker CLI bound to the target daemon. Default: DOCKER_HOST. */
  docker?: DockerCli;
  /** Plugin name. Default overlay-flannel. */
  name?: string;
  /** Folder with config.json + rootfs/. Default plugin/build. */
  dir?: string;
  /** Environment to read settable variables from. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** More `docker plugin set` pairs (KEY=VALUE). */
  set?: string[];
  /** Enable after creating. Default true. */
  enable?: boolean;
  /** Create missing folder sources of the bind mounts on this machine. Default: when DOCKER_HOST is unix://. */
  mkdirSources?: boolean;
  /** Seconds `docker plugin enable` waits for the plugin's socket. Default 30. */
  timeoutSec?: number;
  log?: (line: string) => void;
}

/** The `docker plugin set` pairs for the settable env variables of `config` found in `env`. */
export function settableEnvPairs(config: PluginConfig, env: NodeJS.ProcessEnv): string[] {
  return (config.env ?? [])
    .filter((e) => e.settable?.includes('value') && env[e.name] !== undefined)
    .map((e) => `${e.name}=${env[e.name]}`);
}

/** Host folders the bind mounts need, after `name.source=…` overrides (sockets and files left out). */
export function folderSources(config: PluginConfig, set: string[]): string[] {
  const out: string[] = [];
  for (const m of config.mounts ?? []) {
    if (m.type !== 'bind') continue;
    const over = set.find((p) => p.startsWith(`${m.name}.source=`));
    const src = over ? over.slice(m.name.length + '.source='.length) : m.source;
    if (src && !/\.(sock|json|env|pem|crt|key)$/.test(src)) out.push(src);
  }
  return out;
}

/** Remove (if present), create, configure and (by default) enable the plugin. */
export async function createPlugin(opts: CreateOptions = {}): Promise<void> {
  const docker = opts.docker ?? dockerCli();
  const name = opts.name ?? 'overlay-flannel';
  const dir = resolve(opts.dir ?? join(ROOT, 'plugin/build'));
  const log = opts.log ?? (() => undefined);
  if (!existsSync(join(dir, 'config.json')) || !existsSync(join(dir, 'rootfs'))) {
    throw new Error(`${dir} has no config.json + rootfs/: run \`npm run plugin:build\` first`);
  }
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as PluginConfig;
  const present = await docker(['plugin', 'inspect', '--format', '{{.Id}}', name]).then(
    () => true,
    () => false,
  );
  if (present) {
    log(`docker plugin rm -f ${name}`);
    await docker(['plugin', 'rm', '-f', name]);
  }
  log(`docker plugin create ${name} ${dir}`);
  await docker(['plugin', 'create', name, dir], { timeoutMs: 600_000 });
  const pairs = [...settableEnvPairs(config, opts.env ?? process.env), ...(opts.set ?? [])];
  if (pairs.length) {
    log(`docker plugin set ${name} ${pairs.map((p) => (/PASSWORD=/.test(p) ? p.replace(/=.*/, '=***') : p)).join(' ')}`);
    await docker(['plugin', 'set', name, ...pairs]);
  }
  const local = (process.env.DOCKER_HOST ?? 'unix://').startsWith('unix://');
  if (opts.enable !== false && (opts.mkdirSources ?? (opts.docker === undefined && local))) {
    for (const dirPath of folderSources(config, opts.set ?? [])) {
      if (!existsSync(dirPath)) {
        log(`mkdir -p ${dirPath} (bind-mount source)`);
        mkdirSync(dirPath, { recursive: true });
      }
    }
  }
  if (opts.enable !== false) {
    const t = opts.timeoutSec ?? 30;
    log(`docker plugin enable --timeout ${t} ${name}`);
    await docker(['plugin', 'enable', '--timeout', String(t), name], { timeoutMs: (t + 30) * 1000 });
  }
}

async function cli(argv: string[]): Promise<void> {
  const opts: CreateOptions = { set: [], log: (l) => void process.stdout.write(`plugin:create: ${l}\n`) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--name') opts.name = next();
    else if (a === '--dir') opts.dir = next();
    else if (a === '--no-enable') opts.enable = false;
    else if (a === '--no-mkdir') opts.mkdirSources = false;
    else if (a === '--timeout') opts.timeoutSec = Number(next());
    else if (/^[A-Za-z_][\w.-]*=/.test(a)) opts.set?.push(a);
    else throw new Error(`unknown argument "${a}"\nusage: plugin-create.ts [--name NAME] [--dir DIR] [--no-enable] [--no-mkdir] [--timeout SEC] [KEY=VALUE …]`);
  }
  await createPlugin(opts);
  process.stdout.write(await (opts.docker ?? dockerCli())(['plugin', 'ls']));
}

if (require.main === module) {
  cli(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`plugin:create: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
