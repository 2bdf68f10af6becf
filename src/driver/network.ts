/**
 * NetworkDriver use cases. The kernel is the record: a Docker network is the bridge
 * `ofb-<network id>` whose address is the gateway (.1) of this host's lease, an endpoint is the
 * veth pair `ofh<id>`/`ofc<id>` on it. Nothing else needs persisting, so a plugin restart loses
 * nothing, and after a reboot (bridges gone, Docker still has the network) the first
 * CreateEndpoint rebuilds the bridge from the endpoint's address.
 * All kernel writes go through the host's serial queue, shared with the overlay reconciler.
 */
import type { Logger } from 'pino';
import type { Kernel, LinkInfo } from '../kernel/types';
import { gatewayOf } from '../domain/addresses';
import { Cidr, cidr, cidrContains, formatCidr, formatIPv4, parseCidr, parseIPv4 } from '../domain/ipv4';
import { bridgeName, vethNames } from '../domain/names';
import { conflict, invalid, notFound, unavailable, unsupported } from '../errors';
import { portRules, portRuleText } from '../domain/port-rules';
import { SerialQueue } from '../util/serial-queue';
import type { CreateEndpointArgs, CreateEndpointResult, CreateNetworkArgs, ExternalConnectivityArgs, JoinArgs, JoinResult } from './types';
import { OverlayDirectory, OverlayHandle } from './overlays';

export const MTU_OPTION = 'com.docker.network.driver.mtu';
const RIGHT_COMMAND = 'docker network create -d overlay-flannel:latest --ipam-driver overlay-flannel:latest NAME';

/**
 * Told after a network was created or deleted by Docker (replication). Called before the handler
 * answers: implementations must only schedule work, never call Docker from here.
 */
export interface NetworkEvents {
  networkCreated(networkId: string): void;
  networkDeleted(networkId: string): void;
}

interface BridgeView {
  link: LinkInfo;
  gateway: number;
  subnet: Cidr;
}

export class NetworkDriver {
  /** endpoint id → container address (plain IP), from CreateEndpoint; for published ports. */
  private readonly addresses = new Map<string, string>();
  constructor(
    private readonly kernel: Kernel,
    private readonly queue: SerialQueue,
    private readonly overlays: OverlayDirectory,
    private readonly log: Logger,
    private readonly events?: NetworkEvents,
  ) {}

  async createNetwork(a: CreateNetworkArgs): Promise<void> {
    if (a.ipv6Data.length > 0 || a.options.enableIPv6) throw unsupported('IPv6 is not supported by overlay-flannel yet: create the network without --ipv6');
    const data = a.ipv4Data[0];
    if (!data) throw invalid('CreateNetwork without IPv4 data: create the network with overlay-flannel as its IPAM driver: ' + RIGHT_COMMAND);
    const pool = parseCidr(data.Pool, 'IPv4Data.Pool');
    const overlay = this.overlays.all().find((o) => {
      const l = o.lease();
      return l !== null && l.subnet.base === pool.base && l.subnet.len === pool.len;
    });
    if (!overlay) {
      throw invalid(
        `the pool ${data.Pool} (address space "${data.AddressSpace}") does not come from overlay-flannel: an overlay network needs ` +
          `overlay-flannel's IPAM so that every host uses its own subnet of the overlay. Create it with: ${RIGHT_COMMAND}`,
      );
    }
    const mtu = this.mtuFor(overlay, a.options.generic[MTU_OPTION]);
    const name = bridgeName(a.networkId);
    await this.queue.run(async () => {
      const other = (await this.bridges()).find((b) => b.link.name !== name && cidrContains(pool, b.gateway));
      if (other) {
        throw conflict(
          `overlay "${overlay.name}" already has a Docker network on this host (bridge ${other.link.name}); ` +
            'use that network, or create another overlay (overlay-flannel config set --name NAME …) and pass --ipam-opt network=NAME',
        );
      }
      await this.ensureBridge(name, pool, mtu);
    });
    this.log.info({ network: a.networkId.slice(0, 12), overlay: overlay.name, subnet: formatCidr(pool), bridge: name, mtu }, 'network created');
    this.events?.networkCreated(a.networkId);
  }

  /**
   * The bridge of ours already using `subnet`'s gateway, if any. RequestPool asks: libnetwork
   * requests a pool again and again while the one it got overlaps a route of the host (our other
   * bridge), so without this check a second network on an overlay hangs `docker network create`.
   */
  async bridgeUsing(subnet: Cidr): Promise<string | null> {
    return (await this.bridges()).find((b) => cidrContains(subnet, b.gateway))?.link.name ?? null;
  }

  async deleteNetwork(networkId: string): Promise<void> {
    await this.queue.run(() => this.kernel.deleteLink(bridgeName(networkId)));
    this.events?.networkDeleted(networkId);
  }

  async createEndpoint(a: CreateEndpointArgs): Promise<CreateEndpointResult> {
    if (a.addressIPv6) throw unsupported('IPv6 endpoints are not supported by overlay-flannel yet');
    const names = vethNames(a.endpointId);
    const bridge = bridgeName(a.networkId);
    await this.queue.run(async () => {
      let br = await this.kernel.getLink(bridge);
      if (!br) br = await this.rebuildBridge(a);
      await this.kernel.ensureVethPair(names.host, names.container, br.mtu, bridge);
    });
    if (a.address) this.addresses.set(a.endpointId, a.address.split('/')[0]!);
    return {};
  }

  async join(a: JoinArgs): Promise<JoinResult> {
    const bridge = bridgeName(a.networkId);
    const names = vethNames(a.endpointId);
    const view = await this.bridgeView(bridge);
    if (!view) throw notFound(`network ${a.networkId.slice(0, 12)} has no bridge ${bridge} on this host: remove and re-create the container`);
    await this.queue.run(() => this.kernel.ensureVethPair(names.host, names.container, view.link.mtu, bridge));
    const gw = formatIPv4(view.gateway);
    const overlayNet = this.overlays.all().map((o) => o.network()).find((n) => n && cidrContains(n, view.gateway));
    return {
      InterfaceName: { SrcName: names.container, DstPrefix: 'eth' },
      Gateway: gw,
      StaticRoutes: overlayNet ? [{ Destination: formatCidr(overlayNet), RouteType: 0, NextHop: gw }] : [],
    };
  }

  async leave(): Promise<void> {
    // Docker moves the container end back out of the sandbox; DeleteEndpoint removes the pair.
  }

  /** The address of an endpoint created since this process started, by the start of its id. */
  addressOf(endpointIdPrefix: string): string | undefined {
    for (const [id, ip] of this.addresses) if (id.toLowerCase().startsWith(endpointIdPrefix)) return ip;
    return undefined;
  }

  async deleteEndpoint(endpointId: string): Promise<void> {
    this.addresses.delete(endpointId);
    await this.queue.run(async () => {
      // Normally gone already (Revoke comes first); a failure here must not keep the veth.
      await this.removePorts(endpointId).catch((e: unknown) => this.log.warn({ endpoint: endpointId.slice(0, 12), err: e }, 'could not remove published-port rules'));
      await this.kernel.deleteLink(vethNames(endpointId).host);
    });
  }

  /**
   * Published ports: DNAT rules (nat PREROUTING + OUTPUT) from the host ports to the endpoint's
   * address, which Docker only sent in CreateEndpoint (kept in memory). The rules carry the
   * endpoint id in their comment, so Revoke/DeleteEndpoint find them without that memory.
   * Forwarding to the container is already accepted by the overlay's FORWARD rule (-d Network).
   */
  async programExternalConnectivity(a: ExternalConnectivityArgs): Promise<void> {
    const address = this.addresses.get(a.endpointId);
    const wanted = a.portMap.length > 0;
    if (!address) {
      if (!wanted) return;
      throw notFound(
        `endpoint ${a.endpointId.slice(0, 12)}: its address is not known to this plugin (restarted since the container was created?), ` +
          'so its published ports cannot be set up: restart the container',
      );
    }
    const { rules, skipped } = portRules(a.endpointId, address, a.portMap);
    if (skipped.length > 0) this.log.info({ endpoint: a.endpointId.slice(0, 12), skipped: skipped.map((b) => `[${b.HostIP}]:${b.HostPort}`) }, 'IPv6 port bindings ignored (IPv6 is not supported)');
    const r = await this.queue.run(() => this.kernel.ensurePortMappings(a.endpointId, rules));
    if (r === 'no-chain' && rules.length > 0) {
      throw unavailable(`published ports of endpoint ${a.endpointId.slice(0, 12)}: this host has no nftables "ip nat" table (iptables-legacy?), so nothing was published. Rules wanted:\n` + rules.map((x) => `iptables -t nat ${portRuleText(x).replace('-A ', '-I ')}`).join('\n'));
    }
    if (r === 'updated') this.log.info({ endpoint: a.endpointId.slice(0, 12), ports: rules.filter((x) => x.chain === 'PREROUTING').map((x) => x.comment.split(' ').slice(3).join(' ')) }, 'published ports programmed');
  }

  async revokeExternalConnectivity(endpointId: string): Promise<void> {
    await this.queue.run(() => this.removePorts(endpointId));
  }

  /** Inside the queue. */
  private async removePorts(endpointId: string): Promise<void> {
    const n = await this.kernel.removePortMappings(endpointId);
    if (typeof n === 'number' && n > 0) this.log.info({ endpoint: endpointId.slice(0, 12), rules: n }, 'published ports removed');
  }

  async endpointOperInfo(networkId: string, endpointId: string): Promise<Record<string, unknown>> {
    return { bridge: bridgeName(networkId), hostVeth: vethNames(endpointId).host };
  }

  private mtuFor(overlay: OverlayHandle, option: string | undefined): number {
    const max = overlay.mtu() ?? 1450;
    if (option === undefined || option === '') return max;
    const n = Number(option);
    if (!Number.isInteger(n) || n < 576) throw invalid(`-o ${MTU_OPTION}=${option}: must be a whole number ≥ 576`);
    if (n > max) throw invalid(`-o ${MTU_OPTION}=${option} is larger than the overlay allows (${max}: the underlay MTU minus vxlan's 50 bytes)`);
    return n;
  }

  private async ensureBridge(name: string, subnet: Cidr, mtu: number): Promise<LinkInfo> {
    const br = await this.kernel.ensureBridge(name, mtu);
    await this.kernel.ensureOnlyAddress(br.index, `${formatIPv4(gatewayOf(subnet))}/${subnet.len}`);
    await this.kernel.setForwarding(br.index, true);
    return br;
  }

  /** After a reboot Docker still knows the network but the bridge is gone: rebuild it from the address. */
  private async rebuildBridge(a: CreateEndpointArgs): Promise<LinkInfo> {
    const ip = a.address ? parseIPv4(a.address.split('/')[0], 'endpoint address') : null;
    const overlay = ip === null ? undefined : this.overlays.all().find((o) => o.lease() && cidrContains(o.lease()!.subnet, ip));
    if (!overlay || ip === null) {
      throw notFound(`network ${a.networkId.slice(0, 12)} is not known to overlay-flannel on this host (no bridge ${bridgeName(a.networkId)}); re-create the network`);
    }
    const subnet = overlay.lease()!.subnet;
    this.log.warn({ network: a.networkId.slice(0, 12), subnet: formatCidr(subnet) }, 'bridge missing (host rebooted?): rebuilding it');
    return this.ensureBridge(bridgeName(a.networkId), subnet, overlay.mtu() ?? 1450);
  }

  private async bridgeView(name: string): Promise<BridgeView | null> {
    const link = await this.kernel.getLink(name);
    if (!link) return null;
    const addr = (await this.kernel.listAddresses(link.index))[0];
    if (!addr) return null;
    const gateway = parseIPv4(addr.address);
    return { link, gateway, subnet: cidr(gateway, addr.prefixLen) };
  }

  /** Every bridge of ours with its gateway. */
  private async bridges(): Promise<BridgeView[]> {
    const out: BridgeView[] = [];
    for (const l of await this.kernel.listLinks()) {
      if (!l.name.startsWith('ofb-')) continue;
      const v = await this.bridgeView(l.name);
      if (v) out.push(v);
    }
    return out;
  }
}
