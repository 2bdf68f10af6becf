/**
 * Path reports (issue 20, the host × host matrix): one small record per host with its own path
 * probes' results (reconcile/path-prober.ts) and its plugin version, so every host's status page
 * can show every host's view of every other. Stored by src/store/path-reports.ts under
 * `<prefix>/overlay-flannel/paths/<public IP>` (never under `<prefix>/subnets`: flanneld reads that).
 *
 * Design note.
 * - The value is JSON, version 1:
 *     {"v":1,"host":"192.0.2.1","version":"0.1.0","at":1764755000000,
 *      "overlays":[{"overlay":"default","peers":[{"peer":"192.0.2.2","subnet":"10.5.2.0/24",
 *        "state":"reachable","rttMs":0.12,"loss":0,"lastReplyAt":1764754999000}]}]}
 *   `at` is when the writer summed up its probes (its wall clock, ms). At most {@link MAX_OVERLAYS}
 *   overlays and {@link MAX_PEERS_PER_OVERLAY} peers each (the prober's bound): ~100 bytes a peer.
 * - {@link parsePathReport} never throws: a value a writer broke (or a newer version) comes back
 *   as `{ ok: false, reason }`; the reader logs it and skips that host's report alone.
 * - {@link publishDue}: the writer's rule that keeps etcd writes bounded. A report is written when
 *   it changed enough (a peer's state changed, a peer came or went, or a median RTT moved by more
 *   than 50 % and 1 ms) but at most once per {@link MIN_PUBLISH_MS}, and at least once per
 *   {@link REFRESH_MS} (so a cell's age says how old it is). Per host: ≤ 1 write / 3 s while paths
 *   change, 1 write / 10 s when steady; 200 hosts: ≤ 67 writes/s worst case, 20 writes/s steady.
 */
import { isIPv4 } from './ipv4';
import type { PathState } from './path-stats';

export const PATH_REPORT_VERSION = 1;
export const MIN_PUBLISH_MS = 3000;
export const REFRESH_MS = 10_000;
export const MAX_OVERLAYS = 16;
export const MAX_PEERS_PER_OVERLAY = 256;
const MAX_VERSION = 64;
const MAX_NAME = 64;

export interface PeerReport {
  /** The peer's public IP. */
  readonly peer: string;
  readonly subnet: string;
  readonly state: PathState;
  readonly rttMs: number | null;
  readonly loss: number | null;
  /** When the peer last answered (ms, the writer's clock), null: never. */
  readonly lastReplyAt: number | null;
}

export interface PathReport {
  readonly host: string;
  readonly version: string;
  /** When the writer summed up its probes (ms). */
  readonly at: number;
  readonly overlays: readonly { readonly overlay: string; readonly peers: readonly PeerReport[] }[];
}

export type ParsedPathReport = { ok: true; report: PathReport } | { ok: false; reason: string };

class Bad extends Error {}
const bad = (reason: string): never => {
  throw new Bad(reason);
};
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown, what: string, min: number, max: number): number =>
  typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max ? v : bad(`${what} ${JSON.stringify(v) ?? 'missing'}: must be a number ${min}–${max}`);
const numOrNull = (v: unknown, what: string, min: number, max: number): number | null => (v === null || v === undefined ? null : num(v, what, min, max));
const STATES: readonly PathState[] = ['unknown', 'reachable', 'unreachable'];

function peer(v: unknown, what: string): PeerReport {
  if (!isObj(v)) return bad(`${what} must be an object`);
  if (!isIPv4(v.peer)) bad(`${what}.peer ${JSON.stringify(v.peer) ?? 'missing'} is not an IPv4 address`);
  if (typeof v.subnet !== 'string' || !/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(v.subnet)) bad(`${what}.subnet ${JSON.stringify(v.subnet) ?? 'missing'} is not a CIDR`);
  if (!STATES.includes(v.state as PathState)) bad(`${what}.state ${JSON.stringify(v.state) ?? 'missing'} is not one of ${STATES.join(', ')}`);
  return {
    peer: v.peer as string,
    subnet: v.subnet as string,
    state: v.state as PathState,
    rttMs: numOrNull(v.rttMs, `${what}.rttMs`, 0, 60_000),
    loss: numOrNull(v.loss, `${what}.loss`, 0, 1),
    lastReplyAt: numOrNull(v.lastReplyAt, `${what}.lastReplyAt`, 0, 8.64e15),
  };
}

function check(v: unknown): PathReport {
  if (!isObj(v)) return bad('not a JSON object');
  if (v.v !== PATH_REPORT_VERSION) bad(`version ${JSON.stringify(v.v) ?? 'missing'} (this reader knows ${PATH_REPORT_VERSION})`);
  if (!isIPv4(v.host)) bad(`host ${JSON.stringify(v.host) ?? 'missing'} is not an IPv4 address`);
  if (typeof v.version !== 'string' || v.version.length > MAX_VERSION) bad(`version string ${JSON.stringify(v.version) ?? 'missing'} (a string of at most ${MAX_VERSION})`);
  if (!Array.isArray(v.overlays) || v.overlays.length > MAX_OVERLAYS) return bad(`overlays must be a list of at most ${MAX_OVERLAYS}`);
  const overlays = v.overlays.map((o, i) => {
    if (!isObj(o) || typeof o.overlay !== 'string' || o.overlay.length < 1 || o.overlay.length > MAX_NAME) return bad(`overlays[${i}].overlay must be a name of 1–${MAX_NAME} characters`);
    if (!Array.isArray(o.peers) || o.peers.length > MAX_PEERS_PER_OVERLAY) return bad(`overlays[${i}].peers must be a list of at most ${MAX_PEERS_PER_OVERLAY}`);
    return { overlay: o.overlay, peers: o.peers.map((p, j) => peer(p, `overlays[${i}].peers[${j}]`)) };
  });
  return { host: v.host as string, version: v.version as string, at: num(v.at, 'at', 0, 8.64e15), overlays };
}

/** Read a stored value; never throws. `keyHost`: the host its key names (must agree). */
export function parsePathReport(text: string, keyHost?: string): ParsedPathReport {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  try {
    const report = check(v);
    if (keyHost !== undefined && report.host !== keyHost) return { ok: false, reason: `host ${report.host} does not match its key (${keyHost})` };
    return { ok: true, report };
  } catch (e) {
    if (e instanceof Bad) return { ok: false, reason: e.message };
    throw e;
  }
}

/** The stored value; validated (throws RangeError on what the reader would refuse). */
export function encodePathReport(r: PathReport): string {
  const text = JSON.stringify({ v: PATH_REPORT_VERSION, host: r.host, version: r.version, at: r.at, overlays: r.overlays });
  const back = parsePathReport(text);
  if (!back.ok) throw new RangeError(`path report of ${r.host}: ${back.reason}`);
  return text;
}

const movedEnough = (a: number | null, b: number | null) => (a === null) !== (b === null) || (a !== null && b !== null && Math.abs(a - b) > Math.max(1, 0.5 * Math.min(a, b)));

/** Whether `next` differs from `prev` enough to be written before the refresh is due. */
export function changedEnough(prev: PathReport, next: PathReport): boolean {
  if (prev.version !== next.version || prev.overlays.length !== next.overlays.length) return true;
  for (let i = 0; i < next.overlays.length; i++) {
    const a = prev.overlays[i]!;
    const b = next.overlays[i]!;
    if (a.overlay !== b.overlay || a.peers.length !== b.peers.length) return true;
    const before = new Map(a.peers.map((p) => [p.peer, p]));
    for (const p of b.peers) {
      const q = before.get(p.peer);
      if (!q || q.state !== p.state || q.subnet !== p.subnet || movedEnough(q.rttMs, p.rttMs)) return true;
    }
  }
  return false;
}

/** Whether to write `next` now, given the last report written and when (see the design note). */
export function publishDue(last: { report: PathReport; atMs: number } | null, next: PathReport, nowMs: number): boolean {
  if (!last) return true;
  const since = nowMs - last.atMs;
  if (since < MIN_PUBLISH_MS) return false;
  return since >= REFRESH_MS || changedEnough(last.report, next);
}
