/**
 * Pure rules about the Docker host the plugin runs on (the I/O is in src/docker/socket-locator.ts
 * and src/docker/plain-names.ts).
 *
 * Where dockerd's API socket may be, best first: a managed plugin shares the host's network
 * namespace, and /proc/net/unix lists the unix sockets of that namespace with the path each was
 * bound to — dockerd's `-H unix://…` socket included, wherever it is. So the sockets listening in
 * this namespace whose file is named like Docker's (docker.sock, docker-<x>.sock) come first: they
 * belong to the dockerd that runs this plugin, even when another dockerd (another namespace) owns
 * /run/docker.sock. The usual paths follow. Sockets under /run/docker/ are Docker's own
 * (containerd, plugins): never the API.
 *
 * Which containers to start once Docker knows the plain driver names: dockerd restarts containers
 * with a restart policy during its own boot, before it serves its API, so before the plugin can
 * have the plain names registered. A container on a network created with a plain name then stays
 * exited with Docker's start error as its State.Error (measured with Docker 20.10.24:
 * `invalid ipam driver: "overlay-flannel"`; the network driver's lookup says `could not resolve
 * driver overlay-flannel in registry`). Once the names are registered, the plugin starts exactly
 * those containers: a restart policy other than "no", not running, and a start error that names
 * one of our plain names — what dockerd would have done. A container a user stopped has no start
 * error, so it stays stopped.
 */

/** Usual places of the API socket (/var/run is a link to /run on current systems). */
export const USUAL_DOCKER_SOCKETS = ['/run/docker.sock', '/var/run/docker.sock'] as const;

/** __SO_ACCEPTCON in the Flags column of /proc/net/unix: the socket listens. */
const SO_ACCEPTCON = 0x10000;

/**
 * Paths of the listening, path-bound unix sockets in the text of /proc/net/unix
 * (`Num RefCount Protocol Flags Type St Inode Path`; abstract names start with "@" and are left out).
 */
export function listeningUnixSockets(procNetUnix: string): string[] {
  const out: string[] = [];
  for (const line of procNetUnix.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 8) continue;
    const flags = Number.parseInt(cols[3] ?? '', 16);
    const path = cols.slice(7).join(' ');
    if (!Number.isFinite(flags) || (flags & SO_ACCEPTCON) === 0 || !path.startsWith('/')) continue;
    if (!out.includes(path)) out.push(path);
  }
  return out;
}

/** Whether a socket path looks like a Docker API socket (docker.sock, docker-x.sock), not one of Docker's internal ones. */
export function looksLikeDockerApi(path: string): boolean {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return /^docker([._-][\w.-]*)?\.sock$/.test(base) && !path.startsWith('/run/docker/') && !path.startsWith('/var/run/docker/');
}

/**
 * Candidate socket paths as seen on the host, best first: Docker-named sockets listening in this
 * network namespace, then the usual paths. No duplicates.
 */
export function dockerSocketCandidates(procNetUnix: string): string[] {
  const out = listeningUnixSockets(procNetUnix).filter(looksLikeDockerApi);
  for (const p of USUAL_DOCKER_SOCKETS) if (!out.includes(p)) out.push(p);
  return out;
}

/** `path` (absolute, on the host) seen through the host's root mounted at `root` ("/" = no prefix). */
export function underRoot(root: string, path: string): string {
  const r = root.replace(/\/+$/, '');
  return r === '' ? path : `${r}${path}`;
}


/** The names users type; each is served as `<name>.sock` in Docker's legacy plugin folder. */
export const PLAIN_NAMES = ['overlay-flannel'] as const;

/** What the plugin knows of a container from `docker inspect`. */
export interface ContainerStartState {
  /** HostConfig.RestartPolicy.Name: "", "no", "always", "unless-stopped", "on-failure". */
  restartPolicy: string;
  running: boolean;
  /** State.Error: why the last start failed ('' when it did not). */
  error: string;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Whether a start error is Docker not knowing one of `names` as network or IPAM driver. */
export function isPlainNameStartError(error: string, names: readonly string[] = PLAIN_NAMES): boolean {
  return names.some((n) => {
    const name = escape(n);
    return new RegExp(`invalid ipam driver: "${name}"`).test(error) || new RegExp(`could not resolve driver ${name} in registry`).test(error);
  });
}

/** Whether the plugin should start this container once the plain names are registered (see the note). */
export function needsStartAfterRegistration(c: ContainerStartState, names: readonly string[] = PLAIN_NAMES): boolean {
  return !c.running && c.restartPolicy !== '' && c.restartPolicy !== 'no' && isPlainNameStartError(c.error, names);
}
