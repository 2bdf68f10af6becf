/**
 * "Containers on this host" for the status page. The kernel is the truth about which endpoints
 * this plugin serves here: every host-side veth `ofh<endpoint id>` (enslaved to the network's
 * bridge `ofb-<network id>` in the bridge data path; in the routed one the driver remembers the
 * network of endpoints it created). Docker, when its socket answers, adds the container's name, the
 * network's name and the addresses, v4 and v6 (`GET /containers/json`, read-only, bounded in time); without
 * Docker the rows still show, with the address the driver remembers (endpoints created since
 * this process started) and no names. The kernel's links come in as a port: no netlink here.
 */
import { dockerClient } from './client';
import type { LinkInfo } from '../kernel';
import { errorText } from '../errors';
import { BRIDGE_PREFIX, bridgeName } from '../domain/names';

export interface DockerEndpoint {
  /** The container's name, without Docker's leading "/". */
  container: string;
  containerId: string;
  network: string;
  networkId: string;
  endpointId: string;
  /** IPv4 address without prefix length ('' if Docker has none). */
  address: string;
  /** IPv6 address (GlobalIPv6Address, a --ipv6 network) without prefix length ('' if none). */
  address6: string;
}

/** A lister of the running containers' network attachments, over the Docker socket. */
export function dockerEndpointLister(socketPath: string, timeoutMs = 5000): () => Promise<DockerEndpoint[]> {
  const docker = dockerClient(socketPath, timeoutMs);
  return async () => {
    const out: DockerEndpoint[] = [];
    for (const c of await docker.listContainers()) {
      const name = (c.Names?.[0] ?? c.Id.slice(0, 12)).replace(/^\//, '');
      for (const [network, n] of Object.entries(c.NetworkSettings?.Networks ?? {})) {
        if (!n?.EndpointID) continue;
        out.push({ container: name, containerId: c.Id, network, networkId: n.NetworkID ?? '', endpointId: n.EndpointID, address: n.IPAddress ?? '', address6: n.GlobalIPv6Address ?? '' });
      }
    }
    return out;
  };
}

export interface LocalEndpoint {
  /** The first 12 characters of the endpoint id (what the veth name carries). */
  endpoint: string;
  hostVeth: string;
  bridge: string | null;
  /** Network name (Docker) or null. */
  network: string | null;
  /** Full network id (Docker), else the start of it from the bridge name. */
  networkId: string | null;
  address: string | null;
  /** Its IPv6 address (a --ipv6 network), else null. */
  address6: string | null;
  /** Container name (Docker) or null. */
  container: string | null;
  containerId: string | null;
}

export interface ContainersView {
  /** Where names came from: 'docker', or 'kernel' when Docker could not be asked. */
  source: 'docker' | 'kernel';
  /** Why Docker was not used (null when it was). */
  dockerError: string | null;
  endpoints: LocalEndpoint[];
}

export interface LocalEndpointSources {
  /** The kernel's links (the daemon passes its Kernel's listLinks). */
  kernel: { listLinks(): Promise<LinkInfo[]> };
  /** Lists Docker's attachments; null when the Docker socket is not usable. */
  docker: (() => Promise<DockerEndpoint[]>) | null;
  /** Why there is no Docker lister (shown on the page). */
  dockerUnusable?: string;
  /** The driver's memory of endpoint addresses, by endpoint id prefix. */
  addressOf?(endpointIdPrefix: string): string | undefined;
  /** The same for IPv6 addresses. */
  address6Of?(endpointIdPrefix: string): string | undefined;
  /** The driver's memory of endpoint networks (a routed veth has no bridge as master to tell it). */
  networkOf?(endpointIdPrefix: string): string | undefined;
}

export async function localEndpoints(src: LocalEndpointSources): Promise<ContainersView> {
  const links = await src.kernel.listLinks();
  const byIndex = new Map(links.map((l) => [l.index, l]));
  let docker: DockerEndpoint[] | null = null;
  let dockerError: string | null = src.docker ? null : (src.dockerUnusable ?? 'no Docker socket');
  if (src.docker) {
    try {
      docker = await src.docker();
    } catch (e) {
      dockerError = `Docker API: ${errorText(e)}`;
    }
  }
  const endpoints: LocalEndpoint[] = [];
  for (const l of links) {
    if (!l.name.startsWith('ofh')) continue;
    const short = l.name.slice(3);
    const remembered = src.networkOf?.(short);
    const bridge = l.master ? (byIndex.get(l.master)?.name ?? null) : remembered ? bridgeName(remembered) : null;
    const d = docker?.find((e) => e.endpointId.toLowerCase().startsWith(short));
    endpoints.push({
      endpoint: short,
      hostVeth: l.name,
      bridge,
      network: d?.network ?? null,
      networkId: d?.networkId || (bridge?.startsWith(BRIDGE_PREFIX) ? bridge.slice(BRIDGE_PREFIX.length) : null),
      address: d?.address || src.addressOf?.(short) || null,
      address6: d?.address6 || src.address6Of?.(short) || null,
      container: d?.container ?? null,
      containerId: d?.containerId ?? null,
    });
  }
  // Named containers first, by name; then the unnamed, by endpoint id.
  endpoints.sort((a, b) => Number(a.container === null) - Number(b.container === null) || (a.container ?? a.endpoint).localeCompare(b.container ?? b.endpoint));
  return { source: docker ? 'docker' : 'kernel', dockerError, endpoints };
}
