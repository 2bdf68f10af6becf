/**
 * The Kernel's WireGuard devices (flannel-wg of the wireguard backend), one implementation behind
 * the Kernel door: which one runs is decided once per Kernel by probing rtnetlink for the
 * `wireguard` link kind (a throwaway link created and deleted again).
 * - No such kind (EOPNOTSUPP, as on these machines): wireguard-go, the userspace implementation
 *   (wireguard-userspace.ts), configured over its UAPI socket.
 * - The kind exists: kernel WireGuard is there, but configuring it over generic netlink is not
 *   built yet (docs/wireguard.md), so wireguard-go runs there too, told that this is wanted;
 *   the reason says so and the daemon logs it and shows it on the status page.
 * Neither (no kind, no wireguard-go): UNSUPPORTED naming the package to install.
 * A link with the device's name that is not our running wireguard-go's (a leftover of an earlier
 * run, or another kind) is deleted and made anew, as flanneld does. The private key is checked
 * without ever being quoted in a message.
 */
import { invalid, notFound, OverlayError } from '../errors';
import { isWireguardKey } from '../domain/wireguard-config';
import { checkIfName, ip4ToInt, parseNetworkCidr } from './codec';
import { isOverlayError } from '../errors';
import { createLink, deleteLinkByName, getLinkByName, linkInfoAttr, modifyLink, publicLink } from './links';
import type { NlSocket } from './netlink-socket';
import type { WireguardInfo, WireguardPeer, WireguardSpec } from './types';
import { UserspaceWireguard } from './wireguard-userspace';

export interface WireguardOptions {
  /** Give each wireguard-go its own mount namespace for its UAPI socket (several simulated hosts on one machine). */
  readonly privateSocketDir?: boolean;
  /** The wireguard-go program (default: on PATH). */
  readonly command?: string;
  readonly timeoutMs?: number;
}

const NO_KIND = 'this kernel has no wireguard link kind: using wireguard-go (userspace, over its UAPI socket)';
const KIND_BUT_NO_GENL = 'kernel WireGuard is present, but its configuration over generic netlink is not built yet: using wireguard-go (userspace)';

interface Running {
  readonly wg: UserspaceWireguard;
  readonly index: number;
}

export class WireguardDevices {
  private readonly devices = new Map<string, Running>();
  private kernelKind: boolean | null = null;

  constructor(
    private readonly ns: NlSocket,
    private readonly opts: WireguardOptions = {},
  ) {}

  /** Whether rtnetlink knows the `wireguard` link kind (asked once). */
  private async probeKernelKind(name: string): Promise<boolean> {
    if (this.kernelKind !== null) return this.kernelKind;
    const probe = `${name.slice(0, 11)}-prb`;
    try {
      await createLink(this.ns, 'wireguard', probe, { linkinfo: linkInfoAttr('wireguard') });
      await deleteLinkByName(this.ns, probe);
      this.kernelKind = true;
    } catch (e) {
      if (!isOverlayError(e, 'UNSUPPORTED')) throw e;
      this.kernelKind = false;
    }
    return this.kernelKind;
  }

  async ensure(spec: WireguardSpec): Promise<WireguardInfo> {
    const { name } = spec;
    checkIfName(name, 'wireguard device name');
    if (!isWireguardKey(spec.privateKey)) throw invalid(`wireguard device "${name}": the private key is not base64 of 32 bytes (as \`wg genkey\` prints)`);
    if (!Number.isInteger(spec.listenPort) || spec.listenPort < 1 || spec.listenPort > 65535) throw invalid(`wireguard device "${name}": listen port ${spec.listenPort} is not in 1..65535`);
    if (!Number.isInteger(spec.mtu) || spec.mtu < 576) throw invalid(`wireguard device "${name}": bad MTU ${spec.mtu}`);
    let link = await getLinkByName(this.ns, name);
    let dev = this.devices.get(name);
    if (dev && (!dev.wg.running || !link || link.index !== dev.index)) {
      await dev.wg.close();
      this.devices.delete(name);
      dev = undefined;
    }
    if (!dev) {
      if (link) await deleteLinkByName(this.ns, name); // a leftover: its wireguard-go exits with its TUN
      const kernelHasWireguard = await this.probeKernelKind(name);
      const wg = new UserspaceWireguard({ name, privateSocketDir: this.opts.privateSocketDir, command: this.opts.command, timeoutMs: this.opts.timeoutMs, kernelHasWireguard });
      await wg.ensureDevice();
      link = await getLinkByName(this.ns, name);
      if (!link) {
        await wg.close();
        throw new OverlayError('KERNEL', `wireguard-go ${name}: its UAPI socket is up but there is no link "${name}"`);
      }
      dev = { wg, index: link.index };
      this.devices.set(name, dev);
    }
    const cur = await dev.wg.get();
    if (cur.privateKey !== spec.privateKey || cur.listenPort !== spec.listenPort) await dev.wg.configure({ privateKey: spec.privateKey, listenPort: spec.listenPort });
    if (!link) throw notFound(`wireguard device "${name}": no such link`);
    await modifyLink(this.ns, `set wireguard "${name}" mtu ${spec.mtu} up`, link.index, link.mtu !== spec.mtu ? { mtu: spec.mtu } : {}, link.up ? undefined : true);
    const now = await getLinkByName(this.ns, name);
    if (!now || now.index !== dev.index) throw new OverlayError('KERNEL', `ensure wireguard "${name}": link vanished while being set up`);
    return { ...publicLink(now), implementation: 'userspace', reason: this.kernelKind ? KIND_BUT_NO_GENL : NO_KIND, listenPort: spec.listenPort };
  }

  /** Our running device of that name, NOT_FOUND otherwise. */
  private async running(name: string, what: string): Promise<UserspaceWireguard> {
    checkIfName(name, 'wireguard device name');
    const dev = this.devices.get(name);
    const link = dev && dev.wg.running ? await getLinkByName(this.ns, name) : null;
    if (!dev || !link || link.index !== dev.index) throw notFound(`${what} of "${name}": it is not a running WireGuard device of this daemon`);
    return dev.wg;
  }

  async listPeers(name: string): Promise<WireguardPeer[]> {
    const wg = await this.running(name, 'list the wireguard peers');
    return (await wg.get()).peers.map((p) => ({ ...p, allowedIPs: [...p.allowedIPs] }));
  }

  async updatePeers(name: string, peers: readonly WireguardPeer[], remove: readonly string[]): Promise<void> {
    for (const p of peers) {
      p.allowedIPs.forEach((a) => parseNetworkCidr(a, `wireguard peer allowed IP`));
      const m = p.endpoint === undefined ? null : /^(\d+\.\d+\.\d+\.\d+):(\d{1,5})$/.exec(p.endpoint);
      if (p.endpoint !== undefined && (!m || Number(m[2]) < 1 || Number(m[2]) > 65535)) throw invalid(`wireguard peer endpoint ${JSON.stringify(p.endpoint)}: not IPv4:port`);
      if (m) ip4ToInt(m[1], 'wireguard peer endpoint');
    }
    const wg = await this.running(name, 'update the wireguard peers');
    if (peers.length || remove.length) await wg.setPeers(peers, remove);
  }

  /** Stop every wireguard-go we started (their devices go with them). */
  async close(): Promise<void> {
    const all = [...this.devices.values()];
    this.devices.clear();
    await Promise.all(all.map((d) => d.wg.close()));
  }
}
