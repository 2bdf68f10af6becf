/**
 * The wireguard backend's kernel side on this host, as flanneld's (docs/wireguard.md): device
 * `flannel-wg` (a named overlay's: `fwg-<name>`, domain/wireguard-config.ts) (through the Kernel door: wireguard-go here) with our private key and ListenPort,
 * MTU = underlay − 80, our subnet's network address as a /32 on it, and one peer per remote lease
 * (domain/wg-peers.ts) with a route for its subnet via the device (link scope). flanneld routes the
 * whole Network via flannel-wg instead; Docker refuses a network whose pool overlaps a host route
 * (libnetwork asks the IPAM driver again and again), and our own subnet is inside the Network, so
 * we route each peer's subnet, as the vxlan backend does. OverlayDataplane drives it: its syncs are serialised on the
 * host's queue and coalesced there, so this class only plans and applies.
 * Every sync lists the device's peers (one UAPI round trip) and applies the difference, so a peer
 * changed or removed behind our back is repaired on the next sync; a full sync also re-ensures the
 * device and its address. Routes on the device are made those of the peers on every sync (extras
 * removed). A device that vanished (wireguard-go killed) is made anew.
 * The private key goes to the kernel layer only; it is never logged.
 * family 6 (a dual-stack overlay, flanneld's Mode "separate"): the same plane for `flannel-wg-v6`
 * (a named overlay's `fw6-<name>`, wireguardV6DeviceName): ListenPortV6, the v6 subnet address as a /128 (the only one
 * inside IPv6Network), v6 peers and routes (domain/wg-peers.ts, family 6); same key, PSK and MTU.
 */
import type { Logger } from 'pino';
import type { Kernel, WireguardInfo } from '../kernel';
import { formatCidr, formatIPv4 } from '../domain/ipv4';
import { formatCidr6, formatIPv6 } from '../domain/ipv6';
import type { Lease } from '../domain/lease';
import type { NetworkConfig } from '../domain/network-config';
import { WG_DEVICE_NAME, type WireguardBackend } from '../domain/wireguard-config';
import { desiredWireguardPeers, peersBySubnet, planWireguardPeers } from '../domain/wg-peers';
import type { PublicInterface } from '../host/public-interface';
import type { WireguardKeyPair } from '../host/wireguard-key';

/** flannel's overhead: IPv4 20 + UDP 8 + WireGuard header 16 + tag 16, rounded up (IPv6 room). */
export const WIREGUARD_OVERHEAD = 80;

export interface WireguardSyncResult {
  readonly ops: number; // peers set + removed + device/route repairs
  readonly peers: number;
}

export class WireguardPlane {
  private info: WireguardInfo | null = null;
  private readonly warned = new Set<string>();
  /** The device's peers by subnet as of the last sync (the status view's "programmed"). */
  private programmed = new Map<string, { publicKey: string; endpoint: string | null }>();

  constructor(
    private readonly kernel: Kernel,
    private readonly log: Logger,
    private readonly config: NetworkConfig,
    private readonly backend: WireguardBackend,
    private readonly pub: PublicInterface,
    private readonly key: WireguardKeyPair,
    /** flannel-wg for the default overlay, fwg-<name> for a named one (wireguardDeviceName). */
    readonly device: string = WG_DEVICE_NAME,
    /** 4: flannel-wg; 6: flannel-wg-v6 (config.ipv6 must be set). */
    readonly family: 4 | 6 = 4,
  ) {}

  /** The UDP port the device listens on (ListenPort, or ListenPortV6 for family 6). */
  get listenPort(): number {
    return this.family === 6 ? this.backend.listenPortV6 : this.backend.listenPort;
  }

  /** This plane's address on the device and the network it is the only one of. */
  private addressOf(own: Lease): { cidr: string; within: string } {
    if (this.family === 4) return { cidr: `${formatIPv4(own.subnet.base)}/32`, within: formatCidr(this.config.network) };
    if (!own.subnet6 || !this.config.ipv6) throw new Error(`${this.device}: the own lease has no IPv6 subnet (EnableIPv6 needs a dual-stack lease)`);
    return { cidr: `${formatIPv6(own.subnet6.base)}/128`, within: formatCidr6(this.config.ipv6.network) };
  }

  get mtu(): number {
    return (this.backend.mtu ?? this.pub.link.mtu) - WIREGUARD_OVERHEAD;
  }

  get publicKey(): string {
    return this.key.publicKey;
  }

  /** Which implementation runs the device and why (null before the first ensure). */
  get implementation(): { implementation: string; reason: string } | null {
    return this.info ? { implementation: this.info.implementation, reason: this.info.reason } : null;
  }

  /** Per peer subnet, the peer the device held for it at the last sync (public key, endpoint; no PSK). */
  programmedPeers(): Map<string, { publicKey: string; endpoint: string | null }> {
    return new Map(this.programmed);
  }

  /** The device, key, port, MTU and address; true when the device had to be made anew. */
  async ensureDevice(own: Lease): Promise<boolean> {
    const info = await this.kernel.ensureWireguard({ name: this.device, privateKey: this.key.privateKey, listenPort: this.listenPort, mtu: this.mtu });
    const fresh = this.info?.index !== info.index;
    if (fresh) {
      const msg = this.info ? 'wireguard device was recreated; reprogramming all peers' : 'wireguard device up';
      this.log[this.info ? 'warn' : 'info']({ device: this.device, implementation: info.implementation, reason: info.reason, listenPort: info.listenPort, publicKey: this.key.publicKey, mtu: info.mtu }, msg);
    }
    this.info = info;
    await this.kernel.setForwarding(info.index, true); // decrypted packets are routed to the local bridges
    const addr = this.addressOf(own);
    await this.kernel.ensureOnlyAddress(info.index, addr.cidr, addr.within);
    return fresh;
  }

  /** Routes via the device exactly for `subnets`: how many were added or removed. */
  private async syncRoutes(subnets: string[]): Promise<number> {
    const index = this.info!.index;
    const have = new Set((await this.kernel.listRoutes(index, this.family)).filter((r) => !r.gateway).map((r) => r.dst));
    const want = new Set(subnets);
    const add = subnets.filter((d) => !have.has(d));
    const del = [...have].filter((d) => !want.has(d));
    for (const dst of del) await this.kernel.deleteRoute(dst);
    for (const dst of add) await this.kernel.replaceRoute({ dst, oif: index, onlink: false });
    return add.length + del.length;
  }

  /** Make the device's peers those of `leases` (null: not known yet, peers left as they are);
   *  `full` re-ensures the device first. */
  async sync(own: Lease, leases: Iterable<Lease> | null, full: boolean): Promise<WireguardSyncResult> {
    let ops = 0;
    if (full || !this.info) ops += (await this.ensureDevice(own)) ? 1 : 0;
    if (!leases) return { ops, peers: 0 };
    const { peers, skipped } = desiredWireguardPeers({ backend: this.backend, ownSubnet: own.subnet, ownSubnet6: own.subnet6 ?? null, family: this.family, ownPublicKey: this.key.publicKey, leases: [...leases] });
    for (const s of skipped) {
      const k = `${s.subnet}|${s.reason}`;
      if (!this.warned.has(k)) this.log.warn({ ...s, device: this.device }, 'peer lease not programmed');
      this.warned.add(k);
    }
    const observed = await this.kernel.listWireguardPeers(this.device);
    this.programmed = peersBySubnet(observed);
    const plan = planWireguardPeers(peers, observed);
    if (plan.set.length || plan.remove.length) {
      await this.kernel.updateWireguardPeers(this.device, plan.set, plan.remove);
      this.log.debug({ set: plan.set.map((p) => p.allowedIPs.join(',')), removed: plan.remove.length }, 'wireguard peers updated');
    }
    ops += await this.syncRoutes(peers.flatMap((p) => [...p.allowedIPs]));
    this.programmed = peersBySubnet(peers);
    return { ops: ops + plan.set.length + plan.remove.length, peers: peers.length };
  }
}
