/**
 * The endpoints of the local Docker daemon, for the address audit (src/reconcile/address-audit.ts):
 * every network, and the IPv4 address and endpoint id of each endpoint on it, as `docker network
 * inspect` shows them (containers that have joined and endpoints not yet in a sandbox, listed as
 * "ep-<id>", alike), the addresses grouped by the network's IPAM subnet.
 *
 * Only reads. Any failure (Docker not answering) rejects: the audit must never decide on a partial
 * picture. A network removed between the list and its inspect is left out (its endpoints went
 * with it).
 */
import { dockerClient, dockerStatusOf } from './client';

/** One picture of the local Docker daemon's endpoints, for one audit round. */
export interface DockerEndpoints {
  /** IPv4 addresses (dotted, no prefix length) held by endpoints, by the IPAM subnet of their network (e.g. "10.1.15.0/24"). */
  addressesBySubnet: Map<string, Set<string>>;
  /** The id of every endpoint on every network. */
  endpointIds: Set<string>;
}

/** What the audit needs of the local Docker daemon (dockerode in production, a fake in tests). */
export interface EndpointsPort {
  ping(): Promise<void>;
  /** Every network, inspected once. */
  endpoints(): Promise<DockerEndpoints>;
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
    async endpoints() {
      const list = (await docker.listNetworks()) as unknown as NetworkInfo[];
      const out: DockerEndpoints = { addressesBySubnet: new Map(), endpointIds: new Set() };
      for (const n of list) {
        let info: NetworkInfo;
        try {
          info = (await docker.getNetwork(n.Id).inspect()) as NetworkInfo;
        } catch (e) {
          // Removed since the list: its endpoints went with it (Docker released their addresses).
          if (dockerStatusOf(e) === 404) continue;
          throw e;
        }
        const endpoints = Object.values(info.Containers ?? {});
        for (const ep of endpoints) if (ep?.EndpointID) out.endpointIds.add(ep.EndpointID);
        for (const subnet of (info.IPAM?.Config ?? []).map((c) => c.Subnet).filter((x): x is string => !!x)) {
          const held = out.addressesBySubnet.get(subnet) ?? new Set<string>();
          for (const ep of endpoints) {
            const a = ep?.IPv4Address?.split('/')[0];
            if (a) held.add(a);
          }
          out.addressesBySubnet.set(subnet, held);
        }
      }
      return out;
    },
  };
}
