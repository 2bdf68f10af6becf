/**
 * Finds dockerd's API socket when DOCKER_SOCKET is not one.
 *
 * Design note: the managed plugin used to bind-mount /var/run/docker.sock, and enabling it failed
 * in runc ("error mounting /var/run/docker.sock … no such file or directory") on every host whose
 * dockerd listens elsewhere (`-H unix:///some/where.sock`). Now its `docker-socket` mount defaults
 * to /dev/null (a file that always exists: enabling never depends on the socket) and the host's
 * root is mounted read-only at DOCKER_SEARCH_ROOT (/host/root; connecting to a unix socket works on
 * a read-only mount). When DOCKER_SOCKET is a socket (`docker-socket.source=/path/docker.sock`, or
 * a daemon run on the host), it is used, preferably through the search root (below). Otherwise the candidates of
 * domain/docker-host.ts are tried through the search root: the first that accepts a
 * connection wins. A socket that accepts is enough: at dockerd's boot its API does not answer
 * yet (it starts managed plugins first), but it already listens. Nothing found: one warning that
 * says what was tried and the fix; the daemon then runs without the Docker API (daemon.ts).
 *
 * A socket named by `docker-socket.source` is a bind mount of ONE file, and a bind mount pins the
 * inode: dockerd unlinks and re-creates its socket at every start, so after a dockerd restart that
 * leaves the plugin running (`--live-restore`) the mounted file is a dead socket (ECONNREFUSED
 * for good: the names, the replication and the address audit stopped following Docker; found by
 * the soak, issue 24). So when the same file (same device and inode) is among the candidates
 * under the search root, that path is used instead: a path through the host's directories reaches
 * whatever socket dockerd re-creates there.
 */
import { connect } from 'node:net';
import { readFile, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import type { Logger } from 'pino';
import { dockerSocketCandidates, underRoot } from '../domain/docker-host';
import { errorText } from '../errors';
import { sleep } from '../util/backoff';

/** How long one connection attempt may take. */
const PROBE_TIMEOUT_MS = 2_000;
/** Passes over the candidates before giving up (dockerd may be creating its socket right now). */
const PASSES = 3;
const PASS_INTERVAL_MS = 1_000;

/** `path`'s stat when it is a unix socket (null when missing or not a socket). */
async function socketStat(path: string): Promise<Stats | null> {
  try {
    const st = await stat(path);
    return st.isSocket() ? st : null;
  } catch {
    return null;
  }
}

const isSocket = async (path: string): Promise<boolean> => (await socketStat(path)) !== null;

/** The candidates of this host, each as the host names it and as this process reaches it. */
async function candidates(searchRoot: string): Promise<Array<{ hostPath: string; local: string }>> {
  const table = await readFile('/proc/net/unix', 'utf8').catch(() => '');
  return dockerSocketCandidates(table).map((hostPath) => ({ hostPath, local: underRoot(searchRoot, hostPath) }));
}

/** The socket file `st` reached through the search root (a path that survives dockerd re-creating it), or null. */
async function sameSocketUnderRoot(st: Stats, searchRoot: string): Promise<{ hostPath: string; local: string } | null> {
  for (const c of await candidates(searchRoot)) {
    const other = await socketStat(c.local);
    if (other && other.dev === st.dev && other.ino === st.ino) return c;
  }
  return null;
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
  const named = await socketStat(settings.dockerSocket);
  if (named) {
    const via = await sameSocketUnderRoot(named, settings.dockerSearchRoot);
    if (via && via.local !== settings.dockerSocket) {
      log.info({ dockerSocket: via.local, hostPath: via.hostPath, configured: settings.dockerSocket }, 'using the Docker API socket through the host root (it follows dockerd re-creating its socket; the mounted file would not)');
      return via.local;
    }
    return settings.dockerSocket;
  }
  let tried: string[] = [];
  for (let pass = 0; pass < PASSES; pass++) {
    if (pass > 0) await sleep(PASS_INTERVAL_MS);
    tried = [];
    for (const { hostPath, local } of await candidates(settings.dockerSearchRoot)) {
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
