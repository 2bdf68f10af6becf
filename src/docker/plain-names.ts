/**
 * The plain driver names: `docker network create -d overlay-flannel --ipam-driver overlay-flannel`
 * with the managed plugin, which Docker itself only resolves as `overlay-flannel:latest`.
 *
 * Design note (read from moby 20.10's plugin store and libnetwork; still so in moby master):
 * - A managed (v2) plugin is registered with libnetwork when it is enabled, under its full name
 *   `overlay-flannel:latest` (store.CallHandler passes p.Name()). libnetwork looks a driver up in
 *   its registry by the exact name the user typed; when that fails it asks the plugin store, whose
 *   Get("overlay-flannel") finds the v2 plugin (the name with `:latest` added) and stops there:
 *   the registry still has no "overlay-flannel", hence `could not resolve driver overlay-flannel
 *   in registry` / `invalid ipam driver` (moby#33347). The legacy (v1) lookup, which would register
 *   the plain name, only runs when no v2 plugin answers to it.
 * - Legacy plugins are sockets in the host's /run/docker/plugins: `<name>.sock` is plugin <name>,
 *   and whoever activates it registers it under that plain name for every type it implements.
 * - The volume service lists volume drivers with GetAllByCap, which scans /run/docker/plugins and
 *   activates every legacy socket it finds there — whatever it implements, while a v2 plugin
 *   exists. So listing volumes (GET /volumes, what `docker volume ls` does) registers the plain
 *   names once the socket is there.
 * So the plugin serves `<LEGACY_SOCKET_DIR>/overlay-flannel.sock` (the host's /run/docker/plugins,
 * mounted at /host/run/docker/plugins), a byte-for-byte forwarder to its own plugin socket, and
 * asks Docker to list volumes. It does that again whenever its long-lived GET /events connection
 * ends (dockerd restarted: its registry is empty again). The registrations outlive
 * `docker plugin disable/enable` and `upgrade` (Docker dials the legacy path for each request, and
 * keeps retrying for 30 s while it is missing); the socket is removed on stop and recreated on
 * start; a stale one (after SIGKILL) is replaced. A live socket of that name that is not ours is
 * left alone, with a warning: two plugins must not fight over it. Containers dockerd failed to
 * restart at its boot because the names were not registered yet are started once they are
 * (domain/docker-host.ts).
 * When the managed plugin is installed under another name, Docker's own legacy lookup finds the
 * socket by itself (no Docker API needed, also at dockerd's boot).
 */
import { createServer, connect } from 'node:net';
import { chmod, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { dockerClient, type DockerClient } from './client';
import { needsStartAfterRegistration, PLAIN_NAMES } from '../domain/docker-host';
import { probeSocket } from './socket-locator';
import { errorText } from '../errors';
import { Backoff, sleep } from '../util/backoff';

const SOCKET_MODE = 0o600;
const VOLUME_LIST_TIMEOUT_MS = 60_000;

export interface PlainNames {
  /** The legacy sockets served (host paths as this process sees them). */
  readonly sockets: readonly string[];
  stop(): Promise<void>;
}

/** A listening forwarder; close() also ends its open connections (Docker keeps them alive). */
interface Forwarder {
  close(): Promise<void>;
}

/** Listen on `path` and forward every connection to the unix socket `target`. */
async function forwarder(path: string, target: string, log: Logger): Promise<Forwarder> {
  const open = new Set<() => void>();
  const server = createServer((conn) => {
    const up = connect(target);
    const close = (): void => {
      conn.destroy();
      up.destroy();
      open.delete(close);
    };
    open.add(close);
    conn.on('error', close).on('close', close);
    up.on('error', (e) => {
      log.debug({ err: errorText(e), target }, 'legacy socket: the plugin socket did not answer');
      close();
    }).on('close', close);
    conn.pipe(up);
    up.pipe(conn);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(path, SOCKET_MODE);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of [...open]) c();
      }),
  };
}

/** Serve `path` unless a live socket is there: true when we serve it. */
async function claim(path: string, target: string, log: Logger): Promise<Forwarder | null> {
  const existing = await stat(path).catch(() => null);
  if (existing) {
    if (existing.isSocket() && (await probeSocket(path)) === null) {
      log.warn({ socket: path }, 'another process already serves this legacy plugin socket (a second overlay-flannel on this host?); leaving it alone');
      return null;
    }
    await unlink(path); // stale: its plugin died without removing it
  }
  return forwarder(path, target, log);
}

/** Start the containers dockerd could not restart at boot for want of the plain names (domain/docker-host.ts). */
async function startFailedAtBoot(api: DockerClient, log: Logger): Promise<void> {
  const exited = await api.listContainers({ all: true, filters: { status: ['exited', 'created'] } });
  for (const summary of exited) {
    const c = await api.getContainer(summary.Id).inspect().catch(() => null);
    if (!c) continue;
    const state = { restartPolicy: c.HostConfig?.RestartPolicy?.Name ?? '', running: c.State?.Running === true, error: c.State?.Error ?? '' };
    if (!needsStartAfterRegistration(state)) continue;
    try {
      await api.getContainer(summary.Id).start();
      log.info({ container: c.Name.replace(/^\//, ''), restartPolicy: state.restartPolicy, startError: state.error }, 'started a container dockerd could not restart before the plain driver names were registered');
    } catch (e) {
      log.warn({ container: c.Name.replace(/^\//, ''), err: errorText(e) }, 'cannot start a container that failed on the plain driver names at dockerd\'s boot');
    }
  }
}

/** Ask Docker to register the legacy sockets (see the note), and again after each dockerd restart. */
async function registerLoop(dockerSocket: string, signal: AbortSignal, log: Logger): Promise<void> {
  const api = dockerClient(dockerSocket, VOLUME_LIST_TIMEOUT_MS);
  const events = dockerClient(dockerSocket, 0); // a stream that may stay idle for days
  const backoff = new Backoff({ initialMs: 500, maxMs: 15_000 });
  let failures = 0;
  while (!signal.aborted) {
    try {
      const stream = (await events.getEvents({ filters: { type: ['daemon'] } })) as NodeJS.ReadableStream & { destroy(): void };
      const ended = new Promise<void>((resolve) => {
        stream.on('end', resolve).on('close', resolve).on('error', () => resolve());
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
      stream.resume();
      await api.listVolumes();
      log.info({ names: PLAIN_NAMES }, 'Docker registered the plain driver names: -d overlay-flannel --ipam-driver overlay-flannel work');
      await startFailedAtBoot(api, log).catch((e: unknown) => log.warn({ err: errorText(e) }, 'cannot list the containers dockerd failed to restart'));
      failures = 0;
      backoff.reset();
      await ended;
      stream.destroy();
      if (!signal.aborted) log.info('the Docker API connection ended (dockerd restarting?); registering the plain driver names again when it is back');
    } catch (e) {
      if (signal.aborted) break;
      if (failures++ === 0) log.warn({ err: errorText(e), dockerSocket }, 'cannot ask Docker to register the plain driver names yet; retrying (use overlay-flannel:latest meanwhile)');
    }
    await sleep(backoff.next(), signal);
  }
}

/**
 * Serve the plain names in `dir` (the host's /run/docker/plugins) for the plugin socket `target`;
 * `dockerSocket` (null: none usable) lets it ask Docker to register them.
 */
export async function servePlainNames(dir: string, target: string, dockerSocket: string | null, log: Logger): Promise<PlainNames> {
  const served: Array<{ path: string; server: Forwarder; ino: number }> = [];
  for (const name of PLAIN_NAMES) {
    const path = join(dir, `${name}.sock`);
    try {
      const server = await claim(path, target, log);
      if (server) served.push({ path, server, ino: (await stat(path)).ino });
    } catch (e) {
      log.warn({ socket: path, err: errorText(e) }, `cannot serve the legacy plugin socket: only -d ${name}:latest works on this host`);
    }
  }
  const abort = new AbortController();
  let loop: Promise<void> = Promise.resolve();
  if (served.length) {
    log.info({ sockets: served.map((s) => s.path) }, 'legacy plugin sockets for the plain driver names');
    if (dockerSocket) loop = registerLoop(dockerSocket, abort.signal, log);
    else log.warn('without the Docker API the plain driver names work only when the managed plugin is installed under another name (see the README)');
  }
  return {
    sockets: served.map((s) => s.path),
    async stop() {
      abort.abort();
      await loop;
      for (const s of served) {
        await s.server.close();
        // node (libuv) unlinks the path of a unix socket server it closes; this is for when it did not.
        const now = await stat(s.path).catch(() => null);
        if (now?.ino === s.ino) await unlink(s.path).catch(() => undefined);
      }
    },
  };
}
