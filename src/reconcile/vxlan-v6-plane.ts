/**
 * The IPv6 half of a dual-stack vxlan overlay on this host (issue 21, docs/ipv6.md), for
 * OverlayDataplane: flanneld's flannel-v6.<VNI> and its per-peer entries.
 *
 * Device: vxlan over the public interface's global IPv6 address (IFLA_VXLAN_LOCAL6), same VNI,
 * port, learning and gbp as flannel.<VNI>, MTU (Backend MTU or the interface's) − 70 (the kernel
 * refuses more: docs/spikes/ipv6/results.txt), MAC vtepMacFor(VNI, PublicIPv6), and the lease's v6
 * subnet address as its only /128 inside IPv6Network; accept_ra=0 (procfs) when it is made, as flanneld.
 * Peers: domain/peers-v6.ts's entries, planned by domain/peers.ts's planPeers against what the
 * device holds and applied in peer-entries.ts's stages (neighbour, FDB, route; deletions first).
 * Every sync reads the device's v6 tables back (three dumps of one device): simpler than the v4
 * half's no-dump fast path, and the same answer; added, changed and removed leases all converge.
 * Firewall: the v6 half's FORWARD accepts, masquerade and NOTRACK (an OverlayFirewall of
 * IPv6Network, whose rules go to the `ip6` tables), kept with the v4 ones on every full sync.
 */
import type { Logger } from 'pino';
import type { Kernel } from '../kernel';
import { formatCidr6, formatIPv6 } from '../domain/ipv6';
import { Lease } from '../domain/lease';
import { vtepMacFor } from '../domain/mac';
import { DEFAULT_VXLAN_PORT, type NetworkConfig, type VxlanBackend } from '../domain/network-config';
import { desiredPeersV6, vxlanV6DeviceName } from '../domain/peers-v6';
import { PeerOp, PeerState, planPeers } from '../domain/peers';
import type { PublicInterface } from '../host/public-interface';
import { applyPeerOps } from './peer-entries';
import { OverlayFirewall, type FirewallOptions } from './overlay-firewall';

export const VXLAN6_OVERHEAD = 70;
const ZERO_MAC = '00:00:00:00:00:00';

export class VxlanV6Plane {
  private index = 0;
  private readonly warned = new Set<string>();
  /** FORWARD accepts, masquerade and NOTRACK of IPv6Network (overlay-firewall.ts, `ip6` tables). */
  readonly firewall: OverlayFirewall;

  constructor(
    private readonly kernel: Kernel,
    private readonly log: Logger,
    private readonly config: NetworkConfig & { ipv6: NonNullable<NetworkConfig['ipv6']> },
    private readonly backend: VxlanBackend,
    private readonly pub: PublicInterface,
    firewall: FirewallOptions = { ipMasq: false, notrack: false },
  ) {
    this.firewall = new OverlayFirewall(kernel, log, formatCidr6(config.ipv6.network), firewall);
  }

  /** The v6 rules for our lease's v6 subnet (before it: FORWARD accepts only); vxlan packets arrive on address6. */
  ensureFirewall(own: Lease | null): Promise<void> {
    const vxlan = this.pub.address6 ? { publicIP: this.pub.address6, port: this.backend.port || DEFAULT_VXLAN_PORT } : null;
    return this.firewall.ensure(own?.subnet6 ? formatCidr6(own.subnet6) : null, vxlan);
  }

  get deviceName(): string {
    return vxlanV6DeviceName(this.backend.vni);
  }

  get mtu(): number {
    return (this.backend.mtu ?? this.pub.link.mtu) - VXLAN6_OVERHEAD;
  }

  /** The VtepMAC of flannel-v6.<VNI> (BackendV6Data), null without a v6 public address. */
  vtepMac(): string | null {
    return this.pub.publicIPv6 ? vtepMacFor(this.backend.vni, this.pub.publicIPv6) : null;
  }

  /** The device's ifindex once ensured (0 before). */
  get deviceIndex(): number {
    return this.index;
  }

  /** Create or repair flannel-v6.<VNI> for our lease; nothing when the lease or the host has no v6. */
  async ensureDevice(own: Lease): Promise<void> {
    const mac = this.vtepMac();
    if (!own.subnet6 || !this.pub.address6 || !mac) {
      this.warnOnce('no-v6', { subnet6: own.subnet6 ? formatCidr6(own.subnet6) : null, address6: this.pub.address6 ?? null }, 'no IPv6 subnet or no IPv6 address on the public interface: flannel-v6 not set up');
      return;
    }
    const b = this.backend;
    const dev = await this.kernel.ensureVxlan({ name: this.deviceName, vni: b.vni, parentIndex: this.pub.link.index, local: this.pub.address6, port: b.port, learning: b.learning, gbp: b.gbp, mtu: this.mtu, mac });
    if (this.index !== 0 && dev.index !== this.index) this.log.warn({ device: this.deviceName }, 'the IPv6 vxlan device was recreated; reprogramming its peers');
    if (dev.index !== this.index) await this.disableAcceptRa();
    this.index = dev.index;
    await this.kernel.ensureOnlyAddress(dev.index, `${formatIPv6(own.subnet6.base)}/128`, formatCidr6(this.config.ipv6.network));
  }

  /** Make the device's peer entries those of `leases`; returns the ops applied (0 before the device). */
  async sync(own: Lease, leases: Iterable<Lease>, onOp: (op: PeerOp['op']) => void): Promise<number> {
    if (!this.index) return 0;
    const { state, skipped } = desiredPeersV6({ ownSubnet6: own.subnet6 ?? null, leases: [...leases] });
    for (const s of skipped) this.warnOnce(`${s.subnet}|${s.reason}`, s, 'peer lease not programmed (IPv6)');
    const ops = planPeers(state, await this.observe());
    await applyPeerOps(this.kernel, ops, { vxIndex: this.index, pubIndex: this.pub.link.index }, onOp);
    if (ops.length) this.log.debug({ ops: ops.length, device: this.deviceName }, 'IPv6 peers synced');
    return ops.length;
  }

  /** The device's permanent neighbours, unicast FDB entries and routes with a gateway. */
  async observe(): Promise<PeerState> {
    const state: PeerState = { neighbours: [], fdb: [], routes: [], flood: [] };
    if (!this.index) return state;
    for (const n of await this.kernel.listNeighbours(this.index, 6)) if (n.permanent) state.neighbours.push({ ip: n.ip, mac: n.mac });
    for (const f of await this.kernel.listFdb(this.index)) if (f.permanent && f.dst && f.mac !== ZERO_MAC) state.fdb.push({ mac: f.mac, dst: f.dst });
    for (const r of await this.kernel.listRoutes(this.index, 6)) {
      if (r.gateway && r.oif === this.index) state.routes.push({ dst: r.dst, gateway: r.gateway, dev: 'vxlan', onlink: r.onlink });
    }
    return state;
  }

  /** accept_ra=0 on a new (or recreated) device, as flanneld; a host where it cannot be set is warned once, not refused (the device floods nothing). */
  private async disableAcceptRa(): Promise<void> {
    try {
      await this.kernel.disableAcceptRa(this.deviceName);
    } catch (e) {
      this.warnOnce('accept_ra', { device: this.deviceName, err: (e as Error).message }, 'accept_ra=0 not set on the IPv6 vxlan device');
    }
  }

  private warnOnce(key: string, fields: object, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(fields, msg);
  }
}
