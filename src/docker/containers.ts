/**
 * The containers of this host as Docker names them, for the status page: one row per network
 * attachment (container name, network name, endpoint id, address), from `GET /containers/json`.
 * Read-only and bounded in time; the caller falls back to the kernel's view when Docker is away.
 */
import Docker from 'dockerode';

export interface DockerEndpoint {
  /** The container's name, without Docker's leading "/". */
  container: string;
  containerId: string;
  network: string;
  networkId: string;
  endpointId: string;
  /** IPv4 address without prefix length ('' if Docker has none). */
  address: string;
}

/** A lister of the running containers' network attachments, over the Docker socket. */
export function dockerEndpointLister(socketPath: string, timeoutMs = 5000): () => Promise<DockerEndpoint[]> {
  const docker = new Docker({ socketPath, timeout: timeoutMs });
  return async () => {
    const out: DockerEndpoint[] = [];
    for (const c of await docker.listContainers()) {
      const name = (c.Names?.[0] ?? c.Id.slice(0, 12)).replace(/^\//, '');
      for (const [network, n] of Object.entries(c.NetworkSettings?.Networks ?? {})) {
        if (!n?.EndpointID) continue;
        out.push({ container: name, containerId: c.Id, network, networkId: n.NetworkID ?? '', endpointId: n.EndpointID, address: n.IPAddress ?? '' });
      }
    }
    return out;
  };
}
