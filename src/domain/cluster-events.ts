/**
 * Recent events of the whole overlay, found by comparing two views of it (domain/cluster.ts)
 * taken a few seconds apart: host joined or lost (a lease appears or goes), lease renewed (its
 * expiry moved on) or changed (new public IP, VTEP MAC or backend), container started or stopped
 * (a name record appears or goes), a path that stops answering this host's probes and comes
 * back, etcd lost and back.
 *
 * Design note.
 * - The first view is the baseline: nothing is "joined" because this daemon just started.
 * - While the view is stale (etcd unreachable) it is the last known state; nothing is lost then,
 *   and what changed meanwhile shows when etcd answers again.
 * - Renewals of many hosts in one step are one event ("12 leases renewed: …"), so 200 hosts
 *   renewing do not push everything else out of the bounded log.
 * - The log keeps the newest {@link EVENT_LOG_SIZE}, newest first.
 */
import type { Cluster, ClusterContainer, ClusterHost } from './cluster';

export type ClusterEventKind =
  | 'host-joined'
  | 'host-lost'
  | 'lease-renewed'
  | 'lease-changed'
  | 'path-lost'
  | 'path-back'
  | 'container-started'
  | 'container-stopped'
  | 'etcd-down'
  | 'etcd-up';

export interface ClusterEvent {
  /** ISO 8601, when this daemon noticed it. */
  at: string;
  kind: ClusterEventKind;
  text: string;
  /** The host (public IP) it is about; null for etcd and for grouped renewals. */
  host: string | null;
}

export const EVENT_LOG_SIZE = 100;
/** More renewals than this in one step are one event. */
const RENEWALS_APART = 3;

const hostKey = (h: ClusterHost) => `${h.overlay} ${h.subnet}`;
const containerKey = (c: ClusterContainer) => `${c.network} ${c.name} ${c.host} ${c.addresses.join(',')}`;
const who = (h: ClusterHost) => `${h.publicIP} (${h.subnet}, overlay ${h.overlay})`;

export interface ClusterStep {
  cluster: Cluster;
  stale: boolean;
  etcdUp: boolean | null;
}

/** Each step's hosts and containers by key, made once per step (a step is compared twice: as next, then as prev). */
const keyedSteps = new WeakMap<ClusterStep, { hosts: Map<string, ClusterHost>; containers: Map<string, ClusterContainer> }>();
function keyed(s: ClusterStep) {
  let k = keyedSteps.get(s);
  if (!k) {
    k = { hosts: new Map(s.cluster.hosts.map((h) => [hostKey(h), h])), containers: new Map(s.cluster.containers.map((c) => [containerKey(c), c])) };
    keyedSteps.set(s, k);
  }
  return k;
}

/** What changed from `prev` to `next` (none when `prev` is null: the baseline). */
export function clusterEvents(prev: ClusterStep | null, next: ClusterStep, at: string): ClusterEvent[] {
  if (!prev) return [];
  const out: ClusterEvent[] = [];
  if (prev.etcdUp !== false && next.etcdUp === false) out.push({ at, kind: 'etcd-down', text: 'etcd became unreachable: keeping the last known state', host: null });
  if (prev.etcdUp === false && next.etcdUp === true) out.push({ at, kind: 'etcd-up', text: 'etcd answers again', host: null });
  const { hosts: before, containers: cBefore } = keyed(prev);
  const { hosts: after, containers: cAfter } = keyed(next);
  const renewed: ClusterHost[] = [];
  for (const [k, h] of after) {
    const old = before.get(k);
    if (old && old.path?.state !== 'unreachable' && h.path?.state === 'unreachable') out.push({ at, kind: 'path-lost', text: `host ${who(h)} stopped answering path probes`, host: h.publicIP });
    if (old?.path?.state === 'unreachable' && h.path?.state === 'reachable') out.push({ at, kind: 'path-back', text: `host ${who(h)} answers path probes again`, host: h.publicIP });
    if (!old) out.push({ at, kind: 'host-joined', text: `host ${who(h)} joined`, host: h.publicIP });
    else if (old.publicIP !== h.publicIP || old.vtepMac !== h.vtepMac || old.backend !== h.backend) {
      out.push({ at, kind: 'lease-changed', text: `the lease ${h.subnet} (overlay ${h.overlay}) changed: ${old.publicIP} ${old.vtepMac ?? ''} → ${h.publicIP} ${h.vtepMac ?? ''}`.trimEnd(), host: h.publicIP });
    } else if (h.expiresAt && old.expiresAt && Date.parse(h.expiresAt) > Date.parse(old.expiresAt)) renewed.push(h);
  }
  if (!next.stale) {
    for (const [k, h] of before) if (!after.has(k)) out.push({ at, kind: 'host-lost', text: `host ${who(h)} lost its lease`, host: h.publicIP });
  }
  if (renewed.length > RENEWALS_APART) {
    const some = renewed.slice(0, RENEWALS_APART).map((h) => h.publicIP).join(', ');
    out.push({ at, kind: 'lease-renewed', text: `${renewed.length} leases renewed: ${some}, …`, host: null });
  } else {
    for (const h of renewed) out.push({ at, kind: 'lease-renewed', text: `host ${who(h)} renewed its lease`, host: h.publicIP });
  }
  for (const [k, c] of cAfter) if (!cBefore.has(k)) out.push({ at, kind: 'container-started', text: `container ${c.name} started on ${c.host} (${c.addresses.join(', ')}, network ${c.network})`, host: c.host });
  if (!next.stale) {
    for (const [k, c] of cBefore) if (!cAfter.has(k)) out.push({ at, kind: 'container-stopped', text: `container ${c.name} stopped on ${c.host} (network ${c.network})`, host: c.host });
  }
  return out;
}

/** The newest events, newest first, at most `size`. */
export class EventLog {
  private items: ClusterEvent[] = [];
  constructor(readonly size = EVENT_LOG_SIZE) {}

  add(events: readonly ClusterEvent[]): void {
    if (events.length === 0) return;
    this.items = [...[...events].reverse(), ...this.items].slice(0, this.size);
  }

  list(): ClusterEvent[] {
    return [...this.items];
  }
}
