/**
 * The addresses Docker's endpoints hold, for the address audit (src/daemon/address-audit.ts):
 * every network of the local Docker daemon whose IPAM subnet is one of ours, and the IPv4
 * address and endpoint id of each endpoint on it, as `docker network inspect` shows them
 * (containers that have joined and endpoints not yet in a sandbox, listed as "ep-<id>", alike).
 *
 * Only reads. Any failure (Docker not answering, a network vanishing between the list and the
 * inspect) rejects: the audit must never decide on a partial picture.
 */
import { dockerClient, dockerStatusOf } from './client';

/** What the audit needs of the local Docker daemon (dockerode in production, a fake in tests). */
export interface EndpointsPort {
  ping(): Promise<void>;
  /**
   * The IPv4 addresses (dotted, no prefix length) held by endpoints of every network whose IPAM
   * config has one of `subnets` (e.g. "10.1.15.0/24"), and the networks that were read.
   */
  addressesIn(subnets: readonly string[]): Promise<{ addresses: Set<string>; networks: string[]; endpointIds?: Set<string> }>;
}

interface NetworkInfo {
  Id: string;
  Name: string;
  IPAM?: { Config?: Array<{ Subnet?: string }> | null } | null;
  Containers?: Record<string, { IPv4Address?: string; EndpointID?: string } | undefined> | null;
}

export function dockerEndpoints(socketPath: string): EndpointsPort {
  const docker = dockerClient(socketPath, 30_000);
  return {
    async ping() {
      await docker.ping();
    },
    async addressesIn(subnets) {
      const wanted = new Set(subnets);
      const list = (await docker.listNetworks()) as unknown as NetworkInfo[];
      const ours = list.filter((n) => (n.IPAM?.Config ?? []).some((c) => c.Subnet !== undefined && wanted.has(c.Subnet)));
      const addresses = new Set<string>();
      const endpointIds = new Set<string>();
      for (const n of ours) {
        let info: NetworkInfo;
        try {
          info = (await docker.getNetwork(n.Id).inspect()) as NetworkInfo;
        } catch (e) {
          // Removed since the list: its endpoints went with it (Docker released their addresses).
          if (dockerStatusOf(e) === 404) continue;
          throw e;
        }
        for (const ep of Object.values(info.Containers ?? {})) {
          const a = ep?.IPv4Address?.split('/')[0];
          if (a) addresses.add(a);
          if (ep?.EndpointID) endpointIds.add(ep.EndpointID);
        }
      }
      return { addresses, networks: ours.map((n) => n.Name), endpointIds };
    },
  };
}
