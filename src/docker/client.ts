/**
 * The Docker API client of this process (dockerode over the local Docker socket), shared by its
 * three users: the status page's container list (containers.ts), the address audit
 * (endpoint-addresses.ts), network replication (network-replicator.ts) and the plain driver
 * names (plain-names.ts).
 *
 * Design note: each user gets its own client with its own call timeout (a status page must answer
 * quickly, the audit and replication may wait on a busy dockerd); a client is only options
 * (its calls go through node's shared HTTP agent), so separate clients cost nothing. What they
 * share is here: how the socket is dialled, whether it is usable at all, and how a failed call's
 * HTTP status is read (dockerode puts it on the error as `statusCode`: 404 unknown, 409 conflict).
 *
 * dockerode is loaded at the first client, not with this module: with its docker-modem and ssh2
 * (required at load for ssh:// hosts, which this plugin never dials) it is ~7 MB of RSS, and a
 * daemon whose Docker socket is absent (a bare host, the kernel bench) never makes a client.
 */
import { access, constants, stat } from 'node:fs/promises';
import type Docker from 'dockerode';
import { errorText } from '../errors';

export type DockerClient = Docker;

let dockerode: typeof Docker | null = null;

/** A client of the Docker API at the unix socket `socketPath`; each call fails after `timeoutMs`. */
export function dockerClient(socketPath: string, timeoutMs: number): DockerClient {
  dockerode ??= require('dockerode') as typeof Docker;
  return new dockerode({ socketPath, timeout: timeoutMs });
}

/** The HTTP status of a failed Docker API call (undefined when the call never got an answer). */
export function dockerStatusOf(e: unknown): number | undefined {
  const status = (e as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** Whether the Docker socket can be used at all (a socket, read/writable by us): null, or why not. */
export async function dockerSocketUsable(path: string): Promise<string | null> {
  try {
    await access(path, constants.R_OK | constants.W_OK);
    if (!(await stat(path)).isSocket()) return `${path} is not a socket`;
    return null;
  } catch (e) {
    return errorText(e);
  }
}
