/**
 * The kernel side of one overlay on this host: its vxlan device and the neighbour/FDB/route
 * entries for every remote lease.
 *
 * Reconciliation, not replay. Two paths share one plan (domain/peers.ts; a full sync makes it while the dumps are read, peer-index.ts):
 * - full sync: list what the kernel has for this overlay, diff against the leases, apply. Runs at
 *   start (removing entries of hosts that vanished while we were down), on every lease snapshot
 *   (reconnect, compaction) and on a timer, so drift (a deleted route or device) is repaired.
 *   Until the first snapshot it only ensures the device: no lease is known yet, not "none".
 * - fast path: on a single lease event, diff against what we last applied, without kernel dumps,
 *   so a new host is programmed in milliseconds even with thousands of peers.
 * All kernel writes go through the host's serial queue; runs coalesce while one is in flight.
 * alloc (leases only): no device and no peer entries; a sync keeps forwarding and the firewall
 * rules only, and never lists or deletes routes: those toward the overlay are the operator's.
 * wireguard: WireguardPlane's (dual-stack: a second one, flannel-wg-v6); syncs run here. Dual-stack
 * vxlan: flannel-v6.<VNI> is VxlanV6Plane's, synced after flannel.<VNI>; IPv6-only vxlan: it is the
 * whole data plane, as flanneld's (no flannel.<VNI>, no v4 entries or v4 firewall rules).
 * Firewall: an OverlayFirewall per family (IPv6Network's in the `ip6` tables; vxlan's is
 * VxlanV6Plane's, wireguard's made here), kept on full syncs, masquerade/NOTRACK removed on detach.
 */
import type { Logger } from 'pino';
import type { Kernel } from '../kernel';
import { SerialQueue } from '../util/serial-queue';
import { Cidr, formatCidr, formatIPv4 } from '../domain/ipv4';
import { formatCidr6 } from '../domain/ipv6';
import { Lease } from '../domain/lease';
import { leaseId } from '../domain/lease-v6';
import { vtepMacFor } from '../domain/mac';
import { vxlanDeviceName } from '../domain/names';
import { NetworkConfig } from '../domain/network-config';
import { desiredPeers, PeerOp, PeerState, planPeers } from '../domain/peers';
import { compactPeerState, type PeerIndex } from '../domain/peer-index';
import { WG_DEVICE_NAME, wireguardV6DeviceName } from '../domain/wireguard-config';
import type { WireguardKeyPair } from '../host/wireguard-key';
import { WireguardPlane } from './wireguard-plane';
import { applyPeerOps, planFullSync } from './peer-entries';
import { isOnLink, PublicInterface } from '../host/public-interface';
import { errorText } from '../errors';
import { OverlayFirewall, type FirewallOptions } from './overlay-firewall';
import { VxlanV6Plane } from './vxlan-v6-plane';
import { dataplaneObserver, type DataplaneStats } from './dataplane-stats';
export { setDataplaneObserver, type DataplaneObserver, type DataplaneStats } from './dataplane-stats';

export const VXLAN_OVERHEAD = 50;
const DEFAULT_VXLAN_PORT = 8472; // port 0 in the config: the kernel's default, as flannel
const EMPTY: PeerState = Object.freeze({ neighbours: [], fdb: [], routes: [], flood: [] }) as PeerState;

export class OverlayDataplane {
  private leases = new Map<string, Lease>();
  private own: Lease | null = null;
  private vxIndex = 0;
  /** What we last wrote (or saw) per lease subnet: the fast path diffs against it. */
  private applied = new Map<string, PeerState>();
  private dirty = new Set<string>(); // subnets changed since the last sync
  /** desiredFor's answers while the lease object is the same (cleared when our lease or flooding
   *  changes), compacted (peer-index.ts compactPeerState): a full sync does not rebuild 10,000 states (docs/performance.md §7). */
  private desiredCache = new Map<string, { lease: Lease; state: PeerState }>();
  /** The full sync's index of those states (domain/peer-index.ts), rebuilt when one of them changes. */
  private index: PeerIndex | null = null;
  /** Whether a lease snapshot came (setLeases): before it, an empty lease set means "not known yet". */
  private leasesKnown = false;
  private pending: 'none' | 'fast' | 'full' = 'none';
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private warned = new Set<string>();
  private detached = false;
  /** Flood entries for overlay-flannel peers (the multicast keeper turns it on; domain/peers.ts). */
  private flooding = false;
  /** Why `applied` is not what the kernel should hold: 'catch-up' (we changed it) or 'drift' (device recreated). */
  private appliedUnknown: 'catch-up' | 'drift' | null = 'catch-up'; // nothing written yet
  /** A lease snapshot replaced the lease set since the last full sync (a watch restart). */
  private leasesReplaced = false;
  private readonly firewall: OverlayFirewall | null; // the v4 half's rules (none when IPv6-only: Network is 0.0.0.0/0)
  private readonly firewall6: OverlayFirewall | null; // IPv6Network's (dual-stack vxlan or wireguard)
  /** The wireguard backend's device and peers (null for the other backends); v6: flannel-wg-v6. */
  readonly wireguard: WireguardPlane | null = null;
  readonly wireguard6: WireguardPlane | null = null;
  readonly v6: VxlanV6Plane | null = null;
  readonly v6Only: boolean; // IPv6-only vxlan: flannel-v6.<VNI> alone
  readonly stats: DataplaneStats = { fullSyncs: 0, fastSyncs: 0, opsApplied: 0, errors: 0, statesBuilt: 0, lastDrift: 0 };

  constructor(
    private readonly kernel: Kernel,
    private readonly queue: SerialQueue,
    private readonly log: Logger,
    private readonly config: NetworkConfig,
    private readonly pub: PublicInterface,
    firewall: FirewallOptions = { ipMasq: false, notrack: false },
    wireguardKey?: WireguardKeyPair,
    /** The wireguard overlay's device: flannel-wg (default overlay) or fwg-<name> (wireguardDeviceName). */
    wireguardDevice: string = WG_DEVICE_NAME,
  ) {
    this.v6Only = !config.enableIPv4 && config.backend.type === 'vxlan';
    this.firewall = config.enableIPv4 ? new OverlayFirewall(kernel, log, formatCidr(config.network), firewall) : null;
    const b = config.backend;
    if (b.type === 'wireguard') {
      if (!wireguardKey) throw new Error('OverlayDataplane: the wireguard backend needs this host\'s key pair');
      this.wireguard = new WireguardPlane(kernel, log, config, b, pub, wireguardKey, wireguardDevice);
      if (config.ipv6) this.wireguard6 = new WireguardPlane(kernel, log, config, b, pub, wireguardKey, wireguardV6DeviceName(wireguardDevice), 6);
    }
    if (b.type === 'vxlan' && config.ipv6) this.v6 = new VxlanV6Plane(kernel, log, { ...config, ipv6: config.ipv6 }, b, pub, firewall);
    this.firewall6 = this.v6?.firewall ?? (this.wireguard6 && config.ipv6 ? new OverlayFirewall(kernel, log, formatCidr6(config.ipv6.network), firewall) : null);
  }

  /** The MTU containers on this overlay must use. */
  get mtu(): number {
    const b = this.config.backend;
    if (this.wireguard) return this.wireguard.mtu;
    if (this.v6Only && this.v6) return this.v6.mtu; // flannel-v6's parent − 70 (flanneld writes − 50: docs/ipv6.md §8)
    return b.type === 'vxlan' ? (b.mtu ?? this.pub.link.mtu) - VXLAN_OVERHEAD : this.pub.link.mtu;
  }

  get deviceName(): string | null {
    const b = this.config.backend;
    if (this.v6Only) return this.v6?.deviceName ?? null;
    return b.type === 'vxlan' ? vxlanDeviceName(b.vni) : b.type === 'wireguard' ? (this.wireguard?.device ?? WG_DEVICE_NAME) : null;
  }

  vtepMac(): string | null {
    return this.config.backend.type === 'vxlan' && !this.v6Only ? vtepMacFor(this.config.backend.vni, this.pub.publicIP) : null;
  }

  /** Create or repair this host's device for `own` (our lease); call again when the lease changes. */
  async attach(own: Lease): Promise<void> {
    const previous = this.own;
    this.own = own;
    this.desiredCache.clear();
    if (previous && leaseId(previous) !== leaseId(own)) {
      this.log.error(
        { old: leaseId(previous), new: leaseId(own) },
        'our subnet changed: the device address follows, but containers started on the old subnet must be restarted or reconnected',
      );
    }
    await this.queue.run(() => this.ensureDevice());
    this.requestSync('full');
  }

  private async ensureDevice(): Promise<void> {
    const b = this.config.backend;
    if (!this.detached) await this.ensureFirewalls();
    if (this.wireguard) {
      if (this.own) for (const p of [this.wireguard, this.wireguard6]) await p?.ensureDevice(this.own);
      return;
    }
    if (b.type !== 'vxlan') {
      // host-gw, alloc: packets from peers arrive on the public interface (alloc: however the
      // operator routes them) and are routed to the local containers.
      await this.kernel.setForwarding(this.pub.link.index, true);
      return;
    }
    if (!this.own) return;
    if (this.v6Only) return this.v6?.ensureDevice(this.own);
    const name = vxlanDeviceName(b.vni);
    const { vni, port, learning, gbp } = b;
    const dev = await this.kernel.ensureVxlan({ name, vni, parentIndex: this.pub.link.index, local: this.pub.address, port, learning, gbp, mtu: this.mtu, mac: vtepMacFor(vni, this.pub.publicIP) });
    if (dev.index !== this.vxIndex && this.vxIndex !== 0) {
      this.log.warn({ device: name }, 'vxlan device was recreated; reprogramming all peers');
      this.applied.clear();
      this.appliedUnknown = 'drift';
    }
    this.vxIndex = dev.index;
    await this.kernel.setForwarding(dev.index, true); // decapsulated packets are routed to local bridges
    await this.kernel.ensureOnlyAddress(dev.index, `${formatIPv4(this.own.subnet.base)}/32`, formatCidr(this.config.network));
    if (this.v6) await this.v6.ensureDevice(this.own);
  }

  /** Both families' rules for our lease (before it: FORWARD accepts only); no tunnel NOTRACK on wireguard. */
  private async ensureFirewalls(): Promise<void> {
    const b = this.config.backend;
    const vxlan = b.type === 'vxlan' ? { publicIP: this.pub.address, port: b.port || DEFAULT_VXLAN_PORT } : null;
    await this.firewall?.ensure(this.own ? formatCidr(this.own.subnet) : null, vxlan);
    if (this.v6) await this.v6.ensureFirewall(this.own);
    else await this.firewall6?.ensure(this.own?.subnet6 ? formatCidr6(this.own.subnet6) : null, null);
  }

  /** Leaving the overlay (clean stop): stop syncing, wait for a sync in flight, remove our masquerade
   *  and NOTRACK rules (no NAT left behind); device and peer entries stay, as flanneld's. Never throws. */
  async detach(): Promise<void> {
    this.stop();
    this.detached = true; // no new syncs, no retries
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.idle(), new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    await this.queue.run(async () => {
      await this.firewall?.remove();
      await this.firewall6?.remove();
    }).catch(() => undefined);
  }

  /** Replace the whole lease set (a watcher snapshot). */
  setLeases(leases: readonly Lease[]): void {
    this.leasesKnown = true;
    this.leases = new Map(leases.map((l) => [leaseId(l), l]));
    for (const k of this.desiredCache.keys()) if (!this.leases.has(k)) this.desiredCache.delete(k);
    this.leasesReplaced = true;
    this.requestSync('full');
  }

  leaseAdded(lease: Lease): void {
    const key = leaseId(lease);
    this.leases.set(key, lease);
    this.dirty.add(key);
    this.requestSync('fast');
  }

  leaseRemoved(lease: Lease): void {
    const key = leaseId(lease);
    this.leases.delete(key);
    this.dirty.add(key);
    this.requestSync('fast');
  }

  /** Whether overlay-flannel peers get flood entries (multicast on for this host's network of the
   *  overlay): a change reprograms every peer in one full sync. */
  setFlooding(on: boolean): void {
    if (this.flooding === on) return;
    this.flooding = on;
    this.desiredCache.clear();
    this.applied.clear();
    this.appliedUnknown ??= 'catch-up';
    this.requestSync('full');
  }

  get floodingOn(): boolean {
    return this.flooding;
  }

  /** Periodic full syncs (drift repair). */
  startTimer(intervalMs: number): void {
    this.timer = setInterval(() => this.requestSync('full'), intervalMs);
    this.timer.unref();
  }

  requestSync(kind: 'fast' | 'full'): Promise<void> {
    if (this.detached) return this.running ?? Promise.resolve();
    if (kind === 'full' || this.pending === 'none') this.pending = kind;
    if (!this.running) {
      this.running = this.loop().finally(() => (this.running = null));
    }
    return this.running;
  }

  /** Resolves once every requested sync has run. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async loop(): Promise<void> {
    while (this.pending !== 'none') {
      const kind = this.pending;
      this.pending = 'none';
      const t0 = performance.now();
      try {
        await this.queue.run(() => this.sync(kind));
        dataplaneObserver()?.onSync(kind, (performance.now() - t0) / 1000, true);
      } catch (e) {
        dataplaneObserver()?.onSync(kind, (performance.now() - t0) / 1000, false);
        this.stats.errors++;
        this.log.error({ err: errorText(e) }, 'overlay sync failed; retrying with a full sync');
        this.applied.clear();
        this.appliedUnknown ??= 'catch-up';
        await new Promise((r) => setTimeout(r, 1000));
        if (this.pending === 'none' && !this.detached) this.pending = 'full';
      }
    }
  }

  private async sync(kind: 'fast' | 'full'): Promise<void> {
    if (this.wireguard) return this.syncWireguard(kind === 'full');
    if (!this.own && this.config.backend.type === 'vxlan') return; // no device yet
    if (this.v6Only) return this.syncV6Only(kind === 'full');
    if (this.config.backend.type === 'alloc') {
      if (kind === 'full') await this.ensureDevice();
      this.dirty.clear();
      this.stats[kind === 'full' ? 'fullSyncs' : 'fastSyncs']++;
      return;
    }
    if (kind === 'full' && !this.leasesKnown) {
      // attach() precedes the first lease snapshot (overlay-agent.ts): planning now would delete the
      // entries of an earlier run (a restart) until the snapshot writes them back. Not a full sync.
      await this.ensureDevice();
      return;
    }
    let ops: PeerOp[];
    if (kind === 'full') {
      await this.ensureDevice();
      const desired = new Map([...this.leases.keys()].map((k) => [k, this.desiredFor(k)]));
      const caughtUp = this.dirty.size > 0 || this.leasesReplaced;
      this.dirty.clear();
      this.leasesReplaced = false;
      ops = await this.planFull([...desired.values()], caughtUp);
      this.stats.fullSyncs++;
      this.appliedUnknown = null;
      await this.applyAll(ops);
      this.applied = desired;
    } else {
      const keys = [...this.dirty];
      this.dirty.clear();
      const desired = new Map(keys.map((k) => [k, this.desiredFor(k)]));
      ops = keys.flatMap((k) => planPeers(desired.get(k)!, this.applied.get(k) ?? EMPTY));
      this.stats.fastSyncs++;
      await this.applyAll(ops);
      for (const [k, v] of desired) {
        if (v.neighbours.length || v.fdb.length || v.routes.length || v.flood.length) this.applied.set(k, v);
        else this.applied.delete(k);
      }
    }
    if (ops.length) this.log.debug({ kind, ops: ops.length }, 'overlay synced');
    if (this.v6 && this.own) await this.v6.sync(this.own, this.leases.values(), (op) => this.countOp(op));
  }

  private countOp(op: PeerOp['op']): void {
    this.stats.opsApplied++;
    dataplaneObserver()?.onOp(op);
  }

  /** IPv6-only vxlan: flannel-v6.<VNI>'s peers (each sync reads the device back: vxlan-v6-plane.ts); before the first snapshot, the device only. */
  private async syncV6Only(full: boolean): Promise<void> {
    if (full) await this.ensureDevice();
    if (!this.leasesKnown || !this.own || !this.v6) return;
    const caughtUp = this.dirty.size > 0 || this.leasesReplaced;
    this.dirty.clear();
    this.leasesReplaced = false;
    const ops = await this.v6.sync(this.own, this.leases.values(), (op) => this.countOp(op));
    this.stats[full ? 'fullSyncs' : 'fastSyncs']++;
    if (full) this.stats.lastDrift = caughtUp ? 0 : ops;
  }

  /** wireguard: the device's peers made those of the leases (before the first snapshot: the device only). */
  private async syncWireguard(full: boolean): Promise<void> {
    if (!this.own || !this.wireguard) return;
    if (full && !this.detached) await this.ensureFirewalls(); // v4 and (dual-stack) v6 rules
    const caughtUp = this.dirty.size > 0 || this.leasesReplaced;
    this.dirty.clear();
    this.leasesReplaced = false;
    const leases = this.leasesKnown ? [...this.leases.values()] : null;
    const ops = (await this.wireguard.sync(this.own, leases, full)).ops + ((await this.wireguard6?.sync(this.own, leases, full))?.ops ?? 0);
    if (!this.leasesKnown) return;
    this.stats[full ? 'fullSyncs' : 'fastSyncs']++;
    this.stats.opsApplied += ops;
    if (full) this.stats.lastDrift = caughtUp ? 0 : ops;
  }

  /** A full sync's plan and its drift (peer-entries.ts planFullSync: made while the dumps are read). */
  private async planFull(states: PeerState[], caughtUp: boolean): Promise<PeerOp[]> {
    const drift = { appliedUnknown: this.appliedUnknown, caughtUp, applied: () => this.applied.values() };
    const r = await planFullSync(this.kernel, { vxIndex: this.vxIndex, pubIndex: this.pub.link.index }, this.config, states, this.index, drift);
    this.index = r.index;
    this.stats.lastDrift = r.drift;
    return r.ops;
  }

  /** The entries one lease asks for (none if it is gone, ours, or cannot be programmed). */
  private desiredFor(key: string): PeerState {
    const lease = this.leases.get(key);
    if (!lease) { this.desiredCache.delete(key); return EMPTY; }
    const cached = this.desiredCache.get(key);
    if (cached?.lease === lease) return cached.state;
    this.stats.statesBuilt++;
    const { state, skipped } = desiredPeers({
      backend: this.config.backend,
      ownSubnet: this.own?.subnet ?? null,
      leases: [lease],
      onLink: (ip) => isOnLink(this.pub, ip),
      flood: this.flooding,
    });
    for (const s of skipped) {
      const warnKey = `${s.subnet}|${s.reason}`;
      if (!this.warned.has(warnKey)) this.log.warn(s, 'peer lease not programmed');
      this.warned.add(warnKey);
    }
    if (skipped.length) return EMPTY; // one lease: skipped means no entries (EMPTY keeps the full sync's index valid)
    const kept = compactPeerState(state, key); // ≈ 230 bytes a peer less than desiredPeers' arrays (peer-index.ts)
    this.desiredCache.set(key, { lease, state: kept });
    return kept;
  }

  private async applyAll(ops: PeerOp[]): Promise<void> {
    await applyPeerOps(this.kernel, ops, { vxIndex: this.vxIndex, pubIndex: this.pub.link.index }, (op) => this.countOp(op));
  }

  ownSubnet(): Cidr | null {
    return this.own?.subnet ?? null;
  }

  /** The peer entries last programmed, per lease subnet (the status server's kernel view). */
  appliedPeers(): Map<string, PeerState> {
    return new Map(this.applied);
  }

  knownLeases(): Lease[] {
    return [...this.leases.values()];
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
