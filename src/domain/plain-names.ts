/**
 * The plain driver names and what follows from Docker registering them late (pure; the Docker
 * side is src/docker/plain-names.ts, whose design note explains the registration).
 *
 * Design note: dockerd restarts containers with a restart policy during its own boot, before it
 * serves its API, so before the plugin can have the plain names registered. A container on a
 * network created with a plain name then stays exited with Docker's start error as its State.Error
 * (measured with Docker 20.10.24: `invalid ipam driver: "overlay-flannel"`; the network driver's
 * lookup says `could not resolve driver overlay-flannel in registry`). Once the names are
 * registered, the plugin starts exactly those containers: a restart policy other than "no", not
 * running, and a start error that names one of our plain names — what dockerd would have done.
 * A container a user stopped has no start error, so it stays stopped.
 */

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
