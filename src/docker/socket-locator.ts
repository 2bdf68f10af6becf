/**
 * Finds dockerd's API socket when DOCKER_SOCKET is not one.
 *
 * Design note: the managed plugin used to bind-mount /var/run/docker.sock, and enabling it failed
 * in runc ("error mounting /var/run/docker.sock … no such file or directory") on every host whose
 * dockerd listens elsewhere (`-H unix:///some/where.sock`). Now its `docker-socket` mount defaults
 * to /dev/null (a file that always exists: enabling never depends on the socket) and the host's
 * root is mounted read-only at DOCKER_SEARCH_ROOT (/host/root; connecting to a unix socket works on
 * a read-only mount). When DOCKER_SOCKET is a socket (`docker-socket.source=/path/docker.sock`, or
 * a daemon run on the host), it is used as it is. Otherwise the candidates of
 * domain/docker-host.ts are tried through the search root: the first that accepts a
 * connection wins. A socket that accepts is enough: at dockerd's boot its API does not answer
 * yet (it starts managed plugins first), but it already listens. Nothing found: one warning that
 * says what was tried and the fix; the daemon then runs without the Docker API (daemon.ts).
 */
import { connect } from 'node:net';
import { readFile, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { dockerSocketCandidates, underRoot } from '../domain/docker-host';
import { errorText } from '../errors';
import { sleep } from '../util/backoff';

/** How long one connection attempt may take. */
const PROBE_TIMEOUT_MS = 2_000;
/** Passes over the candidates before giving up (dockerd may be creating its socket right now). */
const PASSES = 3;
const PASS_INTERVAL_MS = 1_000;

/** Whether `path` is a unix socket (false when missing). */
async function isSocket(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isSocket();
  } catch {
    return false;
  }
}

/** Connect to the unix socket at `path` and hang up: null when it accepted, else why not. */
export function probeSocket(path: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<string | null> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (why: string | null): void => {
      clearTimeout(t);
      s.destroy();
      resolve(why);
    };
    const t = setTimeout(() => done(`no answer within ${timeoutMs} ms`), timeoutMs);
    s.once('connect', () => done(null));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? errorText(e)));
  });
}

/** The Docker socket this process should use: `settings.dockerSocket` when it is a socket, else the first candidate found. */
export async function locateDockerSocket(settings: { dockerSocket: string; dockerSearchRoot: string }, log: Logger): Promise<string> {
  if (await isSocket(settings.dockerSocket)) return settings.dockerSocket;
  let tried: string[] = [];
  for (let pass = 0; pass < PASSES; pass++) {
    if (pass > 0) await sleep(PASS_INTERVAL_MS);
    const table = await readFile('/proc/net/unix', 'utf8').catch(() => '');
    tried = [];
    for (const hostPath of dockerSocketCandidates(table)) {
      const local = underRoot(settings.dockerSearchRoot, hostPath);
      const why = (await isSocket(local)) ? await probeSocket(local) : 'no socket there';
      if (why === null) {
        log.info({ dockerSocket: local, hostPath }, 'found the Docker API socket');
        return local;
      }
      tried.push(`${hostPath}: ${why}`);
    }
  }
  log.warn(
    { configured: settings.dockerSocket, searchRoot: settings.dockerSearchRoot, tried },
    'Docker cannot be reached: DOCKER_SOCKET is no socket and no Docker API socket was found on this host. Network replication, the address audit and ' +
      'the plain driver names are off. Fix: point the plugin at dockerd\'s socket: docker plugin disable overlay-flannel; ' +
      'docker plugin set overlay-flannel docker-socket.source=/path/to/docker.sock; docker plugin enable overlay-flannel',
  );
  return settings.dockerSocket;
}
