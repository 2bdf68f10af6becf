/**
 * The Kernel's WireGuard devices (flannel-wg of the wireguard backend), one implementation behind
 * the Kernel door, decided once per Kernel (chooseWireguard) from two probes: rtnetlink's
 * `wireguard` link kind (a throwaway link created and deleted again) and nlctrl's answer for the
 * generic netlink family "wireguard".
 * - Both there: kernel WireGuard. The link is made over rtnetlink and configured over generic
 *   netlink (wireguard-genl.ts, messages of wg-genetlink.ts). Not run against a live kernel here:
 *   these machines' kernel has no WireGuard (docs/wireguard.md, "Tested where").
 * - No such kind (EOPNOTSUPP, as on these machines), or a kind without the family: wireguard-go,
 *   the userspace implementation (wireguard-userspace.ts), configured over its UAPI socket.
 * The reason names which runs; the daemon logs it and shows it on the status page.
 * Userspace and no wireguard-go: UNSUPPORTED naming the package to install.
 * A link with the device's name that is not our running device (a leftover of an earlier run, or
 * another kind) is deleted and made anew, as flanneld does. The private key is checked without
 * ever being quoted in a message.
 */
import { invalid, notFound, OverlayError } from '../errors';
import { isWireguardKey } from '../domain/wireguard-config';
import { checkIfName, ip4ToInt, parseNetworkCidr } from './codec';
import { ip6ToBuf, parseNetworkCidr6 } from './codec6';
import { isOverlayError } from '../errors';
import { createLink, deleteLinkByName, getLinkByName, linkInfoAttr, modifyLink, publicLink } from './links';
import type { NlSocket } from './netlink-socket';
import type { WireguardInfo, WireguardPeer, WireguardSpec } from './types';
import { UserspaceWireguard } from './wireguard-userspace';
import { KernelWireguardDevice, resolveGenlFamily } from './wireguard-genl';
import { type GenlFamily, WG_GENL_NAME } from './wg-genetlink';

export interface WireguardOptions {
  /** Give each wireguard-go its own mount namespace for its UAPI socket (several simulated hosts on one machine). */
  readonly privateSocketDir?: boolean;
  /** The wireguard-go program (default: on PATH). */
  readonly command?: string;
  readonly timeoutMs?: number;
  /** Use kernel WireGuard where the kernel has it (default true); false: wireguard-go always
   *  (tests that read wireguard-go's socket, a host with "neither" simulated). */
  readonly kernelWireguard?: boolean;
}

export const NO_KIND = 'this kernel has no wireguard link kind: using wireguard-go (userspace, over its UAPI socket)';
export const KIND_NO_FAMILY = 'this kernel has the wireguard link kind but no "wireguard" generic netlink family: using wireguard-go (userspace, over its UAPI socket)';
export const KERNEL_GENL = 'kernel WireGuard (link kind wireguard, generic netlink family "wireguard"): configured over generic netlink';
export const KERNEL_OFF = 'kernel WireGuard is present but turned off for this daemon: using wireguard-go (userspace, over its UAPI socket)';

export interface WireguardChoice {
  readonly implementation: 'kernel' | 'userspace';
  readonly reason: string;
}

/** Which implementation runs, from the two probes (the family as nlctrl resolved it, or null). */
export function chooseWireguard(kernelKind: boolean, family: GenlFamily | null, allowKernel = true): WireguardChoice {
  if (kernelKind && family) return allowKernel ? { implementation: 'kernel', reason: KERNEL_GENL } : { implementation: 'userspace', reason: KERNEL_OFF };
  return { implementation: 'userspace', reason: kernelKind ? KIND_NO_FAMILY : NO_KIND };
}

interface Running {
  readonly wg: UserspaceWireguard | KernelWireguardDevice;
  readonly index: number;
}

export class WireguardDevices {
  private readonly devices = new Map<string, Running>();
  private kernelKind: boolean | null = null;
  private choice: (WireguardChoice & { family: GenlFamily | null }) | null = null;

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

  /** The implementation for this Kernel, probed once: the link kind, then (only where the kind
   *  exists, so the userspace path gains no new way to fail) the generic netlink family. */
  async probe(name: string): Promise<WireguardChoice & { family: GenlFamily | null }> {
    if (this.choice) return this.choice;
    const kind = await this.probeKernelKind(name);
    const family = kind ? await resolveGenlFamily(WG_GENL_NAME, this.opts.timeoutMs) : null;
    this.choice = { ...chooseWireguard(kind, family, this.opts.kernelWireguard !== false), family };
    return this.choice;
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
      const choice = await this.probe(name);
      if (choice.implementation === 'kernel' && choice.family) {
        await createLink(this.ns, 'wireguard', name, { linkinfo: linkInfoAttr('wireguard') });
        link = await getLinkByName(this.ns, name);
        if (!link) throw new OverlayError('KERNEL', `create wireguard "${name}": made, but there is no such link`);
        const index = link.index;
        const ours = async () => {
          const l = await getLinkByName(this.ns, name);
          if (l && l.index === index) await deleteLinkByName(this.ns, name);
        };
        dev = { wg: new KernelWireguardDevice(choice.family, name, this.opts.timeoutMs ?? 5000, ours), index };
      } else {
        const wg = new UserspaceWireguard({ name, privateSocketDir: this.opts.privateSocketDir, command: this.opts.command, timeoutMs: this.opts.timeoutMs, kernelHasWireguard: this.kernelKind === true });
        await wg.ensureDevice();
        link = await getLinkByName(this.ns, name);
        if (!link) {
          await wg.close();
          throw new OverlayError('KERNEL', `wireguard-go ${name}: its UAPI socket is up but there is no link "${name}"`);
        }
        dev = { wg, index: link.index };
      }
      this.devices.set(name, dev);
    }
    const cur = await dev.wg.get();
    if (cur.privateKey !== spec.privateKey || cur.listenPort !== spec.listenPort) await dev.wg.configure({ privateKey: spec.privateKey, listenPort: spec.listenPort });
    if (!link) throw notFound(`wireguard device "${name}": no such link`);
    await modifyLink(this.ns, `set wireguard "${name}" mtu ${spec.mtu} up`, link.index, link.mtu !== spec.mtu ? { mtu: spec.mtu } : {}, link.up ? undefined : true);
    const now = await getLinkByName(this.ns, name);
    if (!now || now.index !== dev.index) throw new OverlayError('KERNEL', `ensure wireguard "${name}": link vanished while being set up`);
    const choice = this.choice ?? chooseWireguard(false, null);
    return { ...publicLink(now), implementation: dev.wg instanceof KernelWireguardDevice ? 'kernel' : 'userspace', reason: choice.reason, listenPort: spec.listenPort };
  }

  /** Our running device of that name, NOT_FOUND otherwise. */
  private async running(name: string, what: string): Promise<UserspaceWireguard | KernelWireguardDevice> {
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
      checkWireguardPeerAddresses(p);
    }
    const wg = await this.running(name, 'update the wireguard peers');
    if (peers.length || remove.length) await wg.setPeers(peers, remove);
  }

  /** Stop every wireguard-go we started (their devices go with them), delete our kernel devices. */
  async close(): Promise<void> {
    const all = [...this.devices.values()];
    this.devices.clear();
    await Promise.allSettled(all.map((d) => d.wg.close())); // a kernel device's delete may fail: close anyway
  }
}

/** A peer's allowed IPs (IPv4 or IPv6 network CIDRs) and endpoint (`a.b.c.d:port` or `[v6]:port`), or INVALID naming what is wrong. */
export function checkWireguardPeerAddresses(p: WireguardPeer): void {
  p.allowedIPs.forEach((a) => (a.includes(':') ? parseNetworkCidr6(a, 'wireguard peer allowed IP') : parseNetworkCidr(a, 'wireguard peer allowed IP')));
  if (p.endpoint === undefined) return;
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d{1,5})$/.exec(p.endpoint) ?? /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(p.endpoint);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw invalid(`wireguard peer endpoint ${JSON.stringify(p.endpoint)}: not IPv4:port or [IPv6]:port`);
  if (m[1].includes(':')) ip6ToBuf(m[1], 'wireguard peer endpoint');
  else ip4ToInt(m[1], 'wireguard peer endpoint');
}
