/**
 * The decisions of network replication, as pure functions of the records in etcd and the networks
 * of the local Docker daemon (src/docker/network-replicator.ts carries them out with dockerode).
 *   - a record whose name the local Docker does not know → create that network here;
 *   - a record deleted → remove the local network of that name if it is ours (same driver) and no
 *     container uses it; otherwise keep it (and say why);
 *   - a network our driver created for a user → record it (name, driver and IPAM options, labels),
 *     never its subnet: every host's network gets the subnet of that host's lease.
 *   - a replica is never recorded: it carries the label REPLICA_LABEL (= the host that defined it),
 *     so a plugin process that did not make it (restarted while Docker created it) still tells it
 *     from a user's network. Without the label, a replica whose record was deleted before the new
 *     process saw its CreateNetwork was recorded again and came back on every host (the soak,
 *     issue 24). The label never goes into a record.
 */
import type { NetworkRecord } from '../store/network-records';

/** A network of the local Docker daemon, as `docker network inspect` shows it: a record's fields plus its id. */
export type LocalNetwork = Omit<NetworkRecord, 'createdBy'> & {
  id: string;
  /** Containers attached on this host (undefined when the listing did not say: unknown). */
  containers?: number;
};

/** The label on every replica: the host (PublicIP) whose network it copies. */
export const REPLICA_LABEL = 'overlay-flannel.replica-of';

/** Whether a local network is a replica of a network defined on another host (see REPLICA_LABEL). */
export function isReplica(n: Pick<LocalNetwork, 'labels'>): boolean {
  return Object.prototype.hasOwnProperty.call(n.labels, REPLICA_LABEL);
}

/** The records whose network the local Docker lacks (by name), in name order. */
export function networksToCreate(records: Iterable<NetworkRecord>, local: Iterable<Pick<LocalNetwork, 'name'>>): NetworkRecord[] {
  const have = new Set([...local].map((n) => n.name));
  return [...records].filter((r) => !have.has(r.name)).sort((a, b) => a.name.localeCompare(b.name));
}

export type RemovalDecision =
  | { action: 'remove'; id: string }
  | { action: 'keep'; reason: string }
  | { action: 'none' };

/** What to do with the local network `name` when its record was deleted. */
export function removalOf(name: string, local: LocalNetwork | null, prev: NetworkRecord | null): RemovalDecision {
  if (!local) return { action: 'none' };
  if (prev && local.driver !== prev.driver) return { action: 'keep', reason: `the local network "${name}" has another driver (${local.driver})` };
  if (local.containers === undefined) return { action: 'keep', reason: `cannot tell whether containers use "${name}"` };
  if (local.containers > 0) return { action: 'keep', reason: `${local.containers} container(s) on this host still use "${name}"` };
  return { action: 'remove', id: local.id };
}

/** The record of a network a user created with our driver on this host. */
export function recordOf(n: LocalNetwork, createdBy: string): NetworkRecord {
  return {
    name: n.name,
    driver: n.driver,
    ipamDriver: n.ipamDriver || n.driver,
    driverOpts: { ...n.driverOpts },
    ipamOpts: { ...n.ipamOpts },
    labels: withoutReplicaLabel(n.labels),
    internal: n.internal,
    attachable: n.attachable,
    ...(n.enableIPv6 ? { enableIPv6: true as const } : {}),
    createdBy,
  };
}

/** The body of Docker's POST /networks/create for a record (no subnet: IPAM picks this host's lease). */
export function createRequestOf(r: NetworkRecord): {
  Name: string;
  Driver: string;
  CheckDuplicate: boolean;
  Internal: boolean;
  Attachable: boolean;
  Options: Record<string, string>;
  Labels: Record<string, string>;
  IPAM: { Driver: string; Options: Record<string, string>; Config: never[] };
  EnableIPv6?: boolean;
} {
  return {
    Name: r.name,
    Driver: r.driver,
    CheckDuplicate: true,
    Internal: r.internal,
    Attachable: r.attachable,
    Options: { ...r.driverOpts },
    Labels: { ...withoutReplicaLabel(r.labels), [REPLICA_LABEL]: r.createdBy },
    IPAM: { Driver: r.ipamDriver, Options: { ...r.ipamOpts }, Config: [] },
    ...(r.enableIPv6 ? { EnableIPv6: true } : {}),
  };
}

/**
 * The named overlays (`--ipam-opt network=NAME`) that networks of our drivers on this host use, in
 * name order. A restarted plugin joins only the default overlay by itself, and Docker asks nothing
 * of the networks it already has: without this, a named overlay would go unjoined (no renewal of
 * this host's lease, no peer updates) until a new container on it made an IPAM call.
 */
export function overlaysInUse(local: Iterable<Pick<LocalNetwork, 'driver' | 'ipamOpts'>>, drivers: ReadonlySet<string>): string[] {
  const names = new Set<string>();
  for (const n of local) {
    const o = n.ipamOpts['network'];
    if (drivers.has(n.driver) && o) names.add(o);
  }
  return [...names].sort();
}

/** A Docker inspect/list entry as a LocalNetwork. */
export function localNetworkOf(info: {
  Id: string;
  Name: string;
  Driver: string;
  IPAM?: { Driver?: string; Options?: Record<string, string> | null } | null;
  Options?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
  Internal?: boolean;
  Attachable?: boolean;
  EnableIPv6?: boolean;
  Containers?: Record<string, unknown> | null;
}, withContainers: boolean): LocalNetwork {
  return {
    id: info.Id,
    name: info.Name,
    driver: info.Driver,
    ipamDriver: info.IPAM?.Driver ?? '',
    driverOpts: { ...(info.Options ?? {}) },
    ipamOpts: { ...(info.IPAM?.Options ?? {}) },
    labels: { ...(info.Labels ?? {}) },
    internal: info.Internal ?? false,
    attachable: info.Attachable ?? false,
    ...(info.EnableIPv6 === true ? { enableIPv6: true as const } : {}),
    ...(withContainers ? { containers: Object.keys(info.Containers ?? {}).length } : {}),
  };
}

function withoutReplicaLabel(labels: Record<string, string>): Record<string, string> {
  const out = { ...labels };
  delete out[REPLICA_LABEL];
  return out;
}
