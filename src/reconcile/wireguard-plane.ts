/**
 * The wireguard backend's kernel side on this host, as flanneld's (docs/wireguard.md): device
 * `flannel-wg` (through the Kernel door: wireguard-go here) with our private key and ListenPort,
 * MTU = underlay − 80, our subnet's network address as a /32 on it, one route for the whole overlay
 * Network via it (link scope; the local subnet's bridge route is more specific), and one peer per
 * remote lease (domain/wg-peers.ts). OverlayDataplane drives it: its syncs are serialised on the
 * host's queue and coalesced there, so this class only plans and applies.
 * Every sync lists the device's peers (one UAPI round trip) and applies the difference, so a peer
 * changed or removed behind our back is repaired on the next sync; a full sync also re-ensures the
 * device, its address and the route. A device that vanished (wireguard-go killed) is made anew.
 * The private key goes to the kernel layer only; it is never logged.
 */
import type { Logger } from 'pino';
import type { Kernel, WireguardInfo } from '../kernel';
import { formatCidr, formatIPv4 } from '../domain/ipv4';
import type { Lease } from '../domain/lease';
import type { NetworkConfig } from '../domain/network-config';
import { WG_DEVICE_NAME, type WireguardBackend } from '../domain/wireguard-config';
import { desiredWireguardPeers, planWireguardPeers } from '../domain/wg-peers';
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

  constructor(
    private readonly kernel: Kernel,
    private readonly log: Logger,
    private readonly config: NetworkConfig,
    private readonly backend: WireguardBackend,
    private readonly pub: PublicInterface,
    private readonly key: WireguardKeyPair,
  ) {}

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

  /** The device, key, port, MTU, address and overlay route; true when something had to be made or repaired. */
  async ensureDevice(own: Lease): Promise<boolean> {
    const info = await this.kernel.ensureWireguard({ name: WG_DEVICE_NAME, privateKey: this.key.privateKey, listenPort: this.backend.listenPort, mtu: this.mtu });
    const fresh = this.info?.index !== info.index;
    if (fresh) {
      const msg = this.info ? 'wireguard device was recreated; reprogramming all peers' : 'wireguard device up';
      this.log[this.info ? 'warn' : 'info']({ device: WG_DEVICE_NAME, implementation: info.implementation, reason: info.reason, listenPort: info.listenPort, publicKey: this.key.publicKey, mtu: info.mtu }, msg);
    }
    this.info = info;
    await this.kernel.setForwarding(info.index, true); // decrypted packets are routed to the local bridges
    const network = formatCidr(this.config.network);
    await this.kernel.ensureOnlyAddress(info.index, `${formatIPv4(own.subnet.base)}/32`, network);
    const routes = await this.kernel.listRoutes(info.index);
    if (routes.some((r) => r.dst === network && !r.gateway)) return fresh;
    await this.kernel.replaceRoute({ dst: network, oif: info.index, onlink: false });
    return true;
  }

  /** Make the device's peers those of `leases` (null: not known yet, peers left as they are);
   *  `full` re-ensures the device first. */
  async sync(own: Lease, leases: Iterable<Lease> | null, full: boolean): Promise<WireguardSyncResult> {
    let ops = 0;
    if (full || !this.info) ops += (await this.ensureDevice(own)) ? 1 : 0;
    if (!leases) return { ops, peers: 0 };
    const { peers, skipped } = desiredWireguardPeers({ backend: this.backend, ownSubnet: own.subnet, ownPublicKey: this.key.publicKey, leases: [...leases] });
    for (const s of skipped) {
      const k = `${s.subnet}|${s.reason}`;
      if (!this.warned.has(k)) this.log.warn(s, 'peer lease not programmed');
      this.warned.add(k);
    }
    const observed = await this.kernel.listWireguardPeers(WG_DEVICE_NAME);
    const plan = planWireguardPeers(peers, observed);
    if (plan.set.length || plan.remove.length) {
      await this.kernel.updateWireguardPeers(WG_DEVICE_NAME, plan.set, plan.remove);
      this.log.debug({ set: plan.set.map((p) => p.allowedIPs.join(',')), removed: plan.remove.length }, 'wireguard peers updated');
    }
    return { ops: ops + plan.set.length + plan.remove.length, peers: peers.length };
  }
}
