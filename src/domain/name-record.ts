/**
 * Name records of cross-host DNS names (issue 16, docs/names-design.md §7): one per container
 * endpoint on an overlay network, written by the host that runs the container, read by every host.
 *
 * Design note.
 * - The value is JSON, version 1:
 *     {"v":1,"network":{"id":"…","name":"appnet"},"container":{"id":"…","name":"web-1"},
 *      "endpointId":"…","aliases":["web"],"ipv4":["10.1.16.5"],"ipv6":[],"host":"192.0.2.11",
 *      "updatedAt":"2026-12-02T20:00:00.000Z"}
 *   `container.id` and `ipv6` may be absent. The key repeats the network id and the endpoint id
 *   (src/store/keys.ts), and the store checks that both agree.
 * - {@link parseNameRecord} never throws: a value another writer broke (or a newer version) comes
 *   back as `{ ok: false, reason }`, and the reader logs the reason and skips that record alone.
 * - Names follow Docker's rules (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 255 characters); a leading
 *   "/" (Docker's container names) is dropped. Ids must be safe as one key segment (no "/").
 * - {@link encodeNameRecord} validates too: what we write is always what we would accept.
 */
import { Address6 } from 'ip-address';
import { invalid } from '../errors';
import { isIPv4 } from './ipv4';

export const NAME_RECORD_VERSION = 1;

export interface NameRecord {
  readonly networkId: string;
  readonly networkName: string;
  readonly containerName: string;
  /** Docker's container id, when known (its short form is an alias Docker answers too). */
  readonly containerId?: string;
  readonly endpointId: string;
  readonly aliases: readonly string[];
  /** At least one. */
  readonly ipv4: readonly string[];
  readonly ipv6: readonly string[];
  /** The public IP of the host that runs the container (flannel's PublicIP). */
  readonly host: string;
  /** When the writer last wrote it (ISO 8601). */
  readonly updatedAt: string;
}

export type ParsedNameRecord = { ok: true; record: NameRecord } | { ok: false; reason: string };

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const MAX_NAME = 255;
const MAX_ID = 128;
const MAX_LIST = 64;

/** A Docker name without its leading "/", or null when Docker would not accept it. */
export function normalizeDockerName(name: string): string | null {
  const n = name.startsWith('/') ? name.slice(1) : name;
  return n.length <= MAX_NAME && NAME_RE.test(n) ? n : null;
}

/** Whether `id` can be one key segment (a network or endpoint id). */
export function isRecordId(id: unknown): id is string {
  return typeof id === 'string' && id.length <= MAX_ID && ID_RE.test(id);
}

class Bad extends Error {}
const bad = (reason: string): never => {
  throw new Bad(reason);
};
const obj = (v: unknown, what: string): Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : bad(`${what} must be an object`);
const str = (v: unknown, what: string): string => (typeof v === 'string' ? v : bad(`${what} must be a string, got ${JSON.stringify(v) ?? 'nothing'}`));
const id = (v: unknown, what: string): string =>
  isRecordId(v) ? v : bad(`${what} ${JSON.stringify(v) ?? 'is missing'}: must be 1–${MAX_ID} of [a-zA-Z0-9_.-] (no "/")`);
const name = (v: unknown, what: string): string =>
  normalizeDockerName(str(v, what)) ?? bad(`${what} ${JSON.stringify(v)} is not a Docker name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, ≤ ${MAX_NAME})`);

function list(v: unknown, what: string, each: (x: unknown, what: string) => string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) return bad(`${what} must be a list`);
  if (v.length > MAX_LIST) return bad(`${what} has ${v.length} entries (at most ${MAX_LIST})`);
  return [...new Set(v.map((x, i) => each(x, `${what}[${i}]`)))];
}

const ipv4 = (v: unknown, what: string): string => (isIPv4(v) ? v : bad(`${what} ${JSON.stringify(v)} is not an IPv4 address`));
const ipv6 = (v: unknown, what: string): string =>
  typeof v === 'string' && !v.includes('/') && Address6.isValid(v) ? v : bad(`${what} ${JSON.stringify(v)} is not an IPv6 address`);

function check(v: Record<string, unknown>): NameRecord {
  if (v.v !== NAME_RECORD_VERSION) bad(`version ${JSON.stringify(v.v) ?? 'missing'} (this reader knows ${NAME_RECORD_VERSION})`);
  const network = obj(v.network, 'network');
  const container = obj(v.container, 'container');
  const addrs = list(v.ipv4, 'ipv4', ipv4);
  if (addrs.length === 0) bad('ipv4 must list at least one address');
  const updatedAt = str(v.updatedAt, 'updatedAt');
  if (!Number.isFinite(Date.parse(updatedAt))) bad(`updatedAt ${JSON.stringify(updatedAt)} is not a date`);
  const rec: NameRecord = {
    networkId: id(network.id, 'network.id'),
    networkName: name(network.name, 'network.name'),
    containerName: name(container.name, 'container.name'),
    ...(container.id !== undefined ? { containerId: id(container.id, 'container.id') } : {}),
    endpointId: id(v.endpointId, 'endpointId'),
    aliases: list(v.aliases, 'aliases', name),
    ipv4: addrs,
    ipv6: list(v.ipv6, 'ipv6', ipv6),
    host: isIPv4(v.host) ? v.host : bad(`host ${JSON.stringify(v.host) ?? 'is missing'}: must be the host's public IPv4 address`),
    updatedAt,
  };
  return rec;
}

/** Read a stored value; never throws. */
export function parseNameRecord(text: string): ParsedNameRecord {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { ok: false, reason: `not valid JSON (${(e as Error).message})` };
  }
  try {
    return { ok: true, record: check(obj(v, 'the value')) };
  } catch (e) {
    if (e instanceof Bad) return { ok: false, reason: e.message };
    return { ok: false, reason: `unreadable (${String(e)})` };
  }
}

function serialize(rec: NameRecord): string {
  return JSON.stringify({
    v: NAME_RECORD_VERSION,
    network: { id: rec.networkId, name: rec.networkName },
    container: { ...(rec.containerId !== undefined ? { id: rec.containerId } : {}), name: rec.containerName },
    endpointId: rec.endpointId,
    aliases: rec.aliases,
    ipv4: rec.ipv4,
    ipv6: rec.ipv6,
    host: rec.host,
    updatedAt: rec.updatedAt,
  });
}

/**
 * The stored form of `rec`, normalised as a reader would see it (names without "/", duplicates
 * dropped); throws INVALID naming the bad field (a caller's bug or bad input).
 */
export function encodeNameRecord(rec: NameRecord): string {
  const back = parseNameRecord(serialize(rec));
  if (!back.ok) throw invalid(`name record of endpoint ${JSON.stringify(rec.endpointId)}: ${back.reason}`);
  return serialize(back.record);
}
