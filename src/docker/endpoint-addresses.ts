/**
 * The endpoints of the local Docker daemon, for the address audit (src/reconcile/address-audit.ts):
 * every network, and the addresses and endpoint id of each endpoint on it, as `docker network
 * inspect` shows them (containers that have joined and endpoints not yet in a sandbox, listed as
 * "ep-<id>", alike), the addresses grouped by the network's IPAM subnet: under a v4 subnet the
 * endpoints' IPv4Address, under a v6 one (a `--ipv6` network) their IPv6Address, the subnet
 * spelled as formatCidr6 spells it (so the audit finds it whatever spelling Docker used).
 *
 * Only reads. Any failure (Docker not answering) rejects: the audit must never decide on a partial
 * picture. A network removed between the list and its inspect is left out (its endpoints went
 * with it).
 */
import { formatCidr6, parseCidr6 } from '../domain/ipv6';
import { dockerClient, dockerStatusOf } from './client';

/** One picture of the local Docker daemon's endpoints, for one audit round. */
export interface DockerEndpoints {
  /**
   * Addresses (no prefix length) held by endpoints, by the IPAM subnet of their network: IPv4 ones
   * under "10.1.15.0/24", IPv6 ones under "fd00:10:0:f::/64" (formatCidr6).
   */
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

/** What `docker network inspect` tells of a network, as far as the audit reads it. */
export interface NetworkInfo {
  Id: string;
  Name: string;
  IPAM?: { Config?: Array<{ Subnet?: string }> | null } | null;
  Containers?: Record<string, { IPv4Address?: string; IPv6Address?: string; EndpointID?: string } | undefined> | null;
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
        addNetwork(out, info);
      }
      return out;
    },
  };
}

/** Add one inspected network's endpoints to `out` (exported for the unit tests). */
export function addNetwork(out: DockerEndpoints, info: NetworkInfo): void {
  const endpoints = Object.values(info.Containers ?? {});
  for (const ep of endpoints) if (ep?.EndpointID) out.endpointIds.add(ep.EndpointID);
  for (const text of (info.IPAM?.Config ?? []).map((c) => c.Subnet).filter((x): x is string => !!x)) {
    const v6 = text.includes(':');
    const subnet = v6 ? subnet6Text(text) : text;
    if (subnet === null) continue; // a v6 subnet we cannot read is none of ours
    const held = out.addressesBySubnet.get(subnet) ?? new Set<string>();
    for (const ep of endpoints) {
      const a = (v6 ? ep?.IPv6Address : ep?.IPv4Address)?.split('/')[0];
      if (a) held.add(a);
    }
    out.addressesBySubnet.set(subnet, held);
  }
}

/** A v6 IPAM subnet as formatCidr6 spells it, or null when it does not parse. */
function subnet6Text(text: string): string | null {
  try {
    return formatCidr6(parseCidr6(text));
  } catch {
    return null;
  }
}
