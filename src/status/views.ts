/**
 * What the status server shows, as plain JSON: the overlays (config, state, every lease with its
 * expiry and when the watch last saw it written), the kernel's view (peers programmed, sync
 * stats; a wireguard overlay's device and, dual-stack, its v6 device), etcd's connection state and the containers on this host. The same objects feed the
 * JSON API, the page's first render and the server-sent events. The daemon hands in a
 * StatusSource; unit tests hand in fakes.
 */
import type { OverlayAgent } from '../reconcile/overlay-agent';
import type { WireguardPlane } from '../reconcile/wireguard-plane';
import { formatCidr } from '../domain/ipv4';
import type { Lease } from '../domain/lease';
import { leaseId } from '../domain/lease-v6';
import { formatCidr6 } from '../domain/ipv6';
import type { ContainersView } from '../docker/containers';
import type { StatusNames } from './names-view';
import type { PathsOfOverlay } from '../reconcile/path-prober';
import type { PathReport } from '../domain/path-report';

/** The subset of OverlayAgent the status server reads (fakes implement it in tests). */
export type StatusAgent = Pick<OverlayAgent, 'state' | 'config' | 'dataplane' | 'lease' | 'lastConfigError' | 'on' | 'off'> &
  Partial<Pick<OverlayAgent, 'lastSeen' | 'leaseExpiry' | 'notReadyReason'>>;

export interface EtcdState {
  up: boolean | null;
  lastOkAt: number | null;
  since: number | null;
  lastError: string | null;
}

export interface StatusSource {
  defaultOverlay: string;
  /** The joined overlays, by name. */
  overlays(): { name: string; prefix: string; agent: StatusAgent }[];
  /** Whether the plugin socket is listening (null: no plugin API in this process). */
  socketServing(): boolean | null;
  publicIP?: string;
  /** The store's view of etcd (absent: not known). */
  etcd?(): EtcdState;
  /** The endpoints on this host (absent: no plugin API in this process). */
  containers?(): Promise<ContainersView>;
  /** Cross-host names (absent or null: NAMES=false, or no plugin API in this process). */
  names?(): StatusNames | null;
  /** This host's path probes to its peers (absent: PROBE_PORT=0 or no prober in this process). */
  paths?(): PathsOfOverlay[];
  /** Every host's path report as last read from etcd (absent: no prober here). */
  pathReports?(): PathReport[];
  /** Called when a path report comes, changes or goes. */
  onPathReports?(cb: () => void): void;
}

/** Subnets in numeric order (one collator: localeCompare with options builds one per call). */
const bySubnet = new Intl.Collator('en', { numeric: true }).compare;

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

/** A peer's expiry from etcd, bounded in time: the page must not wait on an etcd outage. */
async function expiryOf(agent: StatusAgent, l: Lease, etcdUp: boolean): Promise<number | undefined> {
  if (l.expiresAt !== undefined) return l.expiresAt;
  if (!agent.leaseExpiry) return undefined;
  let timer: NodeJS.Timeout | undefined;
  // etcd known down: only what the watcher has cached answers in time (a call would hit its deadline).
  const timeout = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), etcdUp ? 2000 : 50)));
  try {
    return await Promise.race([agent.leaseExpiry(l).catch(() => undefined), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Peer expiries not cached yet are etcd calls: a page opened on 2000 hosts asks at most this many at once. */
const EXPIRY_LOOKUPS_AT_ONCE = 32;

async function mapLimited<T, R>(items: T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

async function leaseJson(agent: StatusAgent, l: Lease, ownSubnet: string | null, etcdUp: boolean) {
  const subnet = leaseId(l); // an IPv6-only lease: its v6 subnet
  return {
    subnet,
    publicIP: l.attrs.publicIP,
    backend: l.attrs.backendType || 'alloc', // flanneld's alloc leases carry no BackendType
    vtepMac: l.attrs.vxlan?.vtepMac ?? null,
    expiresAt: iso(await expiryOf(agent, l, etcdUp)),
    lastSeen: iso(agent.lastSeen?.(subnet)),
    own: subnet === ownSubnet,
  };
}

export type LeaseJson = Awaited<ReturnType<typeof leaseJson>>;

export async function overlaysView(src: StatusSource) {
  const etcdUp = src.etcd?.().up !== false;
  return Promise.all(
    src.overlays().map(async ({ name, prefix, agent }) => {
      const own = agent.lease();
      const ownSubnet = own ? leaseId(own) : null;
      const c = agent.config;
      // Our own entry comes from the keeper: it knows our expiry without asking etcd.
      const known = (agent.dataplane?.knownLeases() ?? []).map((l) => (own && leaseId(l) === ownSubnet ? own : l));
      if (own && !known.some((l) => leaseId(l) === ownSubnet)) known.push(own);
      const leases = await mapLimited(known, EXPIRY_LOOKUPS_AT_ONCE, (l) => leaseJson(agent, l, ownSubnet, etcdUp));
      leases.sort((a, b) => bySubnet(a.subnet, b.subnet));
      return {
        name,
        prefix,
        state: agent.state,
        configError: agent.lastConfigError,
        // an IPv6-only overlay: its IPv6Network (its Network is flannel's zero 0.0.0.0/0)
        config: c ? { ...(c.ipv6 && !c.enableIPv4 ? { network: formatCidr6(c.ipv6.network), subnetLen: c.ipv6.subnetLen } : { network: formatCidr(c.network), subnetLen: c.subnetLen }), backend: c.backend } : null,
        lease: leases.find((l) => l.own) ?? null,
        leases,
      };
    }),
  );
}

/** One peer in the kernel view: vxlan's entries, or (wireguard) the device's peer for the subnet. */
export interface KernelPeerJson {
  subnet: string;
  neighbours: readonly unknown[];
  fdb: readonly unknown[];
  routes: readonly unknown[];
  wireguard?: { publicKey: string; endpoint: string | null };
}

/** The v6 WireGuard device of a dual-stack wireguard overlay: its peers by v6 subnet with their endpoints. */
export interface KernelWireguard6Json {
  device: string;
  implementation: string;
  reason: string;
  listenPort: number;
  mtu: number;
  peers: { subnet: string; endpoint: string | null }[];
}

export function kernelView(src: StatusSource) {
  return src.overlays().map(({ name, agent }) => {
    const dp = agent.dataplane;
    const wg = dp?.wireguard;
    // wireguard: the device's peers (vxlan's neighbour/FDB/route entries are not its kind of entry).
    const entries: KernelPeerJson[] = wg
      ? [...wg.programmedPeers()].map(([subnet, p]) => ({ subnet, neighbours: [], fdb: [], routes: [], wireguard: p }))
      : [...(dp?.appliedPeers() ?? [])].map(([subnet, st]) => ({ subnet, neighbours: st.neighbours, fdb: st.fdb, routes: st.routes }));
    const peers = entries.sort((a, b) => bySubnet(a.subnet, b.subnet));
    const impl = (p: WireguardPlane) => p.implementation ?? { implementation: 'not started', reason: '' };
    const wireguard = wg ? { ...impl(wg), publicKey: wg.publicKey, listenPort: wg.listenPort } : null;
    // A dual-stack overlay's v6 device (flannel-wg-v6 / fw6-<name>): no key here (the key pair is the v4 device's).
    const wg6 = dp?.wireguard6;
    const wireguard6: KernelWireguard6Json | null = wg6
      ? { device: wg6.device, ...impl(wg6), listenPort: wg6.listenPort, mtu: wg6.mtu, peers: [...wg6.programmedPeers()].map(([subnet, p]) => ({ subnet, endpoint: p.endpoint })) }
      : null;
    return { name, device: dp?.deviceName ?? null, mtu: dp?.mtu ?? null, peers, stats: dp ? { ...dp.stats } : null, wireguard, wireguard6 };
  });
}

export function etcdView(src: StatusSource) {
  const e = src.etcd?.();
  if (!e) return null;
  return { up: e.up, lastOkAt: iso(e.lastOkAt), since: iso(e.since), lastError: e.lastError };
}

export async function containersView(src: StatusSource): Promise<ContainersView | { source: 'none'; dockerError: string; endpoints: [] }> {
  if (!src.containers) return { source: 'none', dockerError: 'this process serves no plugin API', endpoints: [] };
  try {
    return await src.containers();
  } catch (e) {
    return { source: 'none', dockerError: `listing endpoints: ${e instanceof Error ? e.message : String(e)}`, endpoints: [] };
  }
}

/** Everything at once: the page's first render and every server-sent event. */
export async function snapshot(src: StatusSource) {
  const [overlays, containers] = await Promise.all([overlaysView(src), containersView(src)]);
  return { publicIP: src.publicIP ?? null, etcd: etcdView(src), overlays, kernel: kernelView(src), containers, names: src.names?.()?.state() ?? null };
}

export function health(src: StatusSource): { ok: boolean; reason?: string } {
  const def = src.overlays().find((o) => o.name === src.defaultOverlay);
  if (!def) return { ok: false, reason: 'the default overlay is not joined yet' };
  if (def.agent.state !== 'ready') {
    // The cause the agent knows (etcd refused our certificate, no config …), as Docker's errors say it.
    const why = def.agent.notReadyReason?.() ?? (def.agent.lastConfigError === 'missing' ? 'no overlay config in etcd' : def.agent.lastConfigError ? `config invalid: ${def.agent.lastConfigError}` : 'no lease yet');
    return { ok: false, reason: `the default overlay is ${def.agent.state} (${why})` };
  }
  if (src.socketServing() === false) return { ok: false, reason: 'the plugin socket is not serving' };
  return { ok: true };
}
