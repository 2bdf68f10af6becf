/**
 * From Docker's view of a container (`GET /containers/{id}/json`) to the name records of its
 * endpoints on our networks (docs/names-design.md §7–8). Pure: src/docker/name-events.ts does the
 * Docker calls and hands the JSON in.
 *
 * Design note.
 * - Which network is ours: its Driver names our plugin. Docker records the name the user typed:
 *   `overlay-flannel` (the plain name), `overlay-flannel:latest`, or the full plugin reference
 *   `registry:5000/org/overlay-flannel:tag`; so the last path segment without its tag must be
 *   `overlay-flannel`. A plugin installed under an alias of its own is still found: every network
 *   of ours has the bridge `ofb-<id>` on this host (src/driver/network.ts), which the caller
 *   checks in the kernel when the driver name does not tell.
 * - The record's network id is the network's NAME: Docker gives each host's copy of a network an
 *   id of its own, while replication (src/docker/network-replicator.ts, records keyed by name)
 *   keeps the name the same on every host. So `networkId === networkName`, and the resolver finds
 *   the same key for the querying container and the answering one.
 * - Only a running container has endpoints (a stopped one keeps its Networks entries with an
 *   empty EndpointID and address). An endpoint without an endpoint id or an IPv4 address has no
 *   record; a bad alias is dropped alone; each skip names its reason for the log.
 */
import { Address6 } from 'ip-address';
import { isIPv4 } from './ipv4';
import { isRecordId, normalizeDockerName, type NameRecord } from './name-record';

/** The repository name of our plugin, as Docker's Driver field ends with it. */
export const PLUGIN_REPOSITORY = 'overlay-flannel';
/** What a record may list (name-record.ts refuses more). */
const MAX_ALIASES = 64;

/** Whether Docker's Driver field (`overlay-flannel`, `overlay-flannel:latest`, `reg:5000/x/overlay-flannel:1`) names our plugin. */
export function isOurDriver(driver: string): boolean {
  if (typeof driver !== 'string' || driver === '') return false;
  const last = driver.slice(driver.lastIndexOf('/') + 1);
  const colon = last.indexOf(':');
  const repo = colon >= 0 ? last.slice(0, colon) : last;
  return repo.toLowerCase() === PLUGIN_REPOSITORY;
}

/** One entry of NetworkSettings.Networks, the fields read. */
export interface InspectedEndpoint {
  NetworkID?: string;
  EndpointID?: string;
  IPAddress?: string;
  GlobalIPv6Address?: string;
  Aliases?: string[] | null;
}

/** The fields of `GET /containers/{id}/json` read. */
export interface InspectedContainer {
  Id: string;
  Name: string;
  State?: { Running?: boolean } | null;
  NetworkSettings?: { Networks?: Record<string, InspectedEndpoint | null | undefined> | null } | null;
}

export interface EndpointNames {
  records: NameRecord[];
  /** Endpoints (or aliases) left out, each with why: for one log line each. */
  skipped: Array<{ network: string; reason: string }>;
}

/**
 * The records of `c`'s endpoints on the networks `isOurs` accepts (given Docker's per-host
 * network id and the network's name). `host` is this host's public IP, `now` the writing time.
 */
export function nameRecordsOf(c: InspectedContainer, isOurs: (networkId: string, networkName: string) => boolean, host: string, now: string): EndpointNames {
  const out: EndpointNames = { records: [], skipped: [] };
  if (c.State?.Running !== true) return out;
  const containerName = normalizeDockerName(c.Name ?? '');
  const containerId = isRecordId(c.Id) ? c.Id : undefined;
  for (const [network, ep] of Object.entries(c.NetworkSettings?.Networks ?? {})) {
    if (!ep || !isOurs(ep.NetworkID ?? '', network)) continue;
    const skip = (reason: string) => out.skipped.push({ network, reason });
    if (containerName === null) {
      skip(`container name ${JSON.stringify(c.Name)} is not a Docker name`);
      continue;
    }
    if (!isRecordId(network)) {
      skip('the network name cannot be a key segment');
      continue;
    }
    if (!ep.EndpointID) continue; // not joined (yet): no endpoint, no record
    if (!isRecordId(ep.EndpointID)) {
      skip(`endpoint id ${JSON.stringify(ep.EndpointID)} is not an id`);
      continue;
    }
    if (!isIPv4(ep.IPAddress)) {
      skip(`no IPv4 address (IPAddress ${JSON.stringify(ep.IPAddress ?? '')})`);
      continue;
    }
    const aliases: string[] = [];
    for (const a of ep.Aliases ?? []) {
      const n = typeof a === 'string' ? normalizeDockerName(a) : null;
      if (n === null) skip(`alias ${JSON.stringify(a)} is not a Docker name ([a-zA-Z0-9][a-zA-Z0-9_.-]*); left out`);
      else if (n !== containerName && !aliases.includes(n)) aliases.push(n);
    }
    if (aliases.length > MAX_ALIASES) skip(`${aliases.length} aliases: only the first ${MAX_ALIASES} are recorded`);
    const v6 = ep.GlobalIPv6Address;
    out.records.push({
      networkId: network,
      networkName: network,
      containerName,
      ...(containerId ? { containerId } : {}),
      endpointId: ep.EndpointID,
      aliases: aliases.slice(0, MAX_ALIASES),
      ipv4: [ep.IPAddress],
      ipv6: v6 && Address6.isValid(v6) && !v6.includes('/') ? [v6] : [],
      host,
      updatedAt: now,
    });
  }
  return out;
}

/** Whether two records say the same (everything but updatedAt): an unchanged endpoint is not rewritten. */
export function sameNameRecord(a: NameRecord, b: NameRecord): boolean {
  const strip = ({ updatedAt: _, ...rest }: NameRecord) => JSON.stringify(rest);
  return strip(a) === strip(b);
}
