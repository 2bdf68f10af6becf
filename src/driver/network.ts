/**
 * NetworkDriver use cases. The kernel is the record: a Docker network is the bridge
 * `ofb-<network id>` whose address is the gateway (.1) of this host's lease, an endpoint is the
 * veth pair `ofh<id>`/`ofc<id>`. Nothing else needs persisting, so a plugin restart loses
 * nothing, and after a reboot (bridges gone, Docker still has the network) the first
 * CreateEndpoint rebuilds the bridge from the endpoint's address.
 * Data paths (src/domain/datapath.ts): routed (default) leaves the bridge without ports — it only
 * records the network and holds its link-local gateway 169.254.1.x, which marks the mode — and
 * gives each endpoint a host route `<address>/32 dev ofh<id>`; bridge enslaves the veths.
 * A `--ipv6` network's v6 half (gateways, /128 routes, Join's GatewayIPv6) is network-v6.ts.
 * All kernel writes go through the host's serial queue, shared with the overlay reconciler.
 */
import type { Logger } from 'pino';
import type { Kernel, LinkInfo } from '../kernel';
import { gatewayOf } from '../domain/addresses';
import { formatCidr6 } from '../domain/ipv6';
import { Cidr, cidr, cidrContains, formatCidr, formatIPv4, parseCidr, parseIPv4 } from '../domain/ipv4';
import { BRIDGE_PREFIX, bridgeName, vethNames } from '../domain/names';
import { datapathOption, isRoutedGateway, joinRoutes, LINK_LOCAL_SCOPE, pickRoutedGateway, ROUTED_GATEWAYS, type Datapath } from '../domain/datapath';
import { conflict, errorText, invalid, notFound, OverlayError, unavailable, unsupported } from '../errors';
import { portRules, portRuleText } from '../domain/port-rules';
import { MULTICAST_OFF_ALIAS, multicastJoinRoutes, multicastOption } from '../domain/multicast';
import { SerialQueue } from '../util/serial-queue';
import { UndoStack } from '../util/undo-stack';
import type { CreateEndpointArgs, CreateEndpointResult, CreateNetworkArgs, ExternalConnectivityArgs, JoinArgs, JoinResult } from './types';
import { ensureBridge6, ensureEndpoint6, join6, networkSubnet6 } from './network-v6';
import { OverlayDirectory, OverlayHandle } from './overlays';

export const MTU_OPTION = 'com.docker.network.driver.mtu';
const RIGHT_COMMAND = 'docker network create -d overlay-flannel --ipam-driver overlay-flannel NAME (or overlay-flannel:latest for both)';

/**
 * Told after a network was created or deleted by Docker (replication). Called before the handler
 * answers: implementations must only schedule work, never call Docker from here.
 */
export interface NetworkEvents {
  networkCreated(networkId: string): void;
  networkDeleted(networkId: string): void;
  /** An endpoint's host route came or went (the fast path follows them). */
  endpointsChanged?(): void;
}

interface BridgeView {
  link: LinkInfo;
  gateway: number;
  subnet: Cidr;
  mode: Datapath;
  /** routed: the network's link-local gateway (169.254.1.x), the containers' default gateway. */
  routedGateway: number | null;
  /** Multicast and broadcast across hosts (the bridge's alias says when it is off). */
  multicast: boolean;
}

const LINK_LOCAL = parseCidr(LINK_LOCAL_SCOPE);
/** The MTU of an overlay whose device is not up yet: vxlan's on a 1500-byte underlay. */
const MTU_UNTIL_READY = 1450;

/** The refusal of a second Docker network on one overlay (CreateNetwork, and RequestPool before it). */
export function overlayHasNetwork(overlay: string, bridge: string): OverlayError {
  return conflict(
    `overlay "${overlay}" already has a Docker network on this host (bridge ${bridge}); ` +
      'use that network, or create another overlay (overlay-flannel config set --name NAME …) and pass --ipam-opt network=NAME',
  );
}

export class NetworkDriver {
  /** endpoint id → container address (plain IP), from CreateEndpoint; for published ports. */
  private readonly addresses = new Map<string, string>();
  /** endpoint id → container IPv6 address (plain), from CreateEndpoint of a --ipv6 network. */
  private readonly addresses6 = new Map<string, string>();
  /** net.ipv6.conf.all.forwarding was seen on (or set) by this process. */
  private ipv6Forwarding = false;
  /** network id → its data path, as last read from or written to the kernel (for a rebuild). */
  private readonly modes = new Map<string, Datapath>();
  /** network id → multicast on, as created (for a rebuild after a reboot; the bridge alias is the record). */
  private readonly multicast = new Map<string, boolean>();
  /** endpoint id → network id, from CreateEndpoint (for the status page). */
  private readonly endpointNetworks = new Map<string, string>();
  /**
   * Container sandbox → the endpoint of ours whose Join handed it the multicast routes. A container
   * on two of our networks gets them once (224.0.0.0/4 and 255.255.255.255 twice collide: Docker's
   * route add fails with EEXIST and so does the connect); its first such network carries its
   * multicast. Known for the Joins of this process only.
   */
  private readonly multicastHolder = new Map<string, string>();
  constructor(
    private readonly kernel: Kernel,
    private readonly queue: SerialQueue,
    private readonly overlays: OverlayDirectory,
    private readonly log: Logger,
    private readonly events?: NetworkEvents,
  ) {}

  async createNetwork(a: CreateNetworkArgs): Promise<void> {
    const data = a.ipv4Data[0];
    if (!data) throw invalid('CreateNetwork without IPv4 data: create the network with overlay-flannel as its IPAM driver: ' + RIGHT_COMMAND);
    const pool = parseCidr(data.pool, 'IPv4Data.Pool');
    const overlay = this.overlays.all().find((o) => {
      const l = o.lease();
      return l !== null && l.subnet.base === pool.base && l.subnet.len === pool.len;
    });
    if (!overlay) {
      throw invalid(
        `the pool ${data.pool} (address space "${data.addressSpace}") does not come from overlay-flannel: an overlay network needs ` +
          `overlay-flannel's IPAM so that every host uses its own subnet of the overlay. Create it with: ${RIGHT_COMMAND}`,
      );
    }
    const subnet6 = networkSubnet6(a.options.enableIPv6, a.ipv6Data, overlay.lease()?.subnet6, overlay.name);
    const mtu = this.mtuFor(overlay, a.options.generic[MTU_OPTION]);
    const mode = datapathOption(a.options.generic);
    const multicast = multicastOption(a.options.generic);
    const name = bridgeName(a.networkId);
    await this.queue.run(async () => {
      const other = (await this.bridges()).find((b) => b.link.name !== name && cidrContains(pool, b.gateway));
      if (other) throw overlayHasNetwork(overlay.name, other.link.name);
      const view = await this.ensureBridge(name, pool, mtu, mode, multicast);
      if (subnet6) await ensureBridge6(this.kernel, view.link.index, mode, subnet6);
      this.modes.set(a.networkId, mode);
      this.multicast.set(a.networkId, multicast);
    });
    this.log.info({ network: a.networkId.slice(0, 12), overlay: overlay.name, subnet: formatCidr(pool), ...(subnet6 ? { subnet6: formatCidr6(subnet6) } : {}), bridge: name, mtu, datapath: mode, multicast }, 'network created');
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
    this.modes.delete(networkId);
    this.multicast.delete(networkId);
    this.events?.networkDeleted(networkId);
  }

  async createEndpoint(a: CreateEndpointArgs): Promise<CreateEndpointResult> {
    const names = vethNames(a.endpointId);
    const bridge = bridgeName(a.networkId);
    const address = a.address ? a.address.split('/')[0]! : undefined;
    const address6 = a.addressIPv6 ? a.addressIPv6.split('/')[0]! : undefined;
    if (address6) await this.ensureIpv6Forwarding();
    await this.queue.run(async () => {
      const view = (await this.bridgeView(bridge)) ?? (await this.rebuildBridge(a));
      this.modes.set(a.networkId, view.mode);
      await this.ensureEndpointLinks(view, names, address, address6);
    });
    if (address) this.addresses.set(a.endpointId, address);
    if (address6) this.addresses6.set(a.endpointId, address6);
    this.endpointNetworks.set(a.endpointId, a.networkId);
    this.events?.endpointsChanged?.();
    return {};
  }

  /**
   * Inside the queue. The veth pair, and in routed mode forwarding and the host route on its host
   * end. A step that fails undoes what this call made (as CNI's bridge plugin does), so a failed
   * CreateEndpoint leaves no veth for the address audit to sweep minutes later. The pair's undo is
   * registered before it is made: a create that fails half-way may leave one end behind. The
   * bridge stays: it is the network's record, not the endpoint's.
   */
  private async ensureEndpointLinks(view: BridgeView, names: { host: string; container: string }, address: string | undefined, address6?: string): Promise<void> {
    const undo = new UndoStack();
    undo.push(`delete veth ${names.host}`, () => this.kernel.deleteLink(names.host)); // its routes go with it
    try {
      if (view.mode === 'bridge') {
        await this.kernel.ensureVethPair(names.host, names.container, view.link.mtu, view.link.name);
      } else {
        const host = await this.kernel.ensureVethPair(names.host, names.container, view.link.mtu);
        await this.kernel.setForwarding(host.index, true);
        if (address) await this.kernel.replaceRoute({ dst: `${address}/32`, oif: host.index, onlink: false });
        if (address6) await ensureEndpoint6(this.kernel, view.mode, view.routedGateway, host.index, address6);
      }
      undo.clear();
    } catch (e) {
      await undo.unwind((what, err) => this.log.warn({ veth: names.host, err: errorText(err), cause: errorText(e) }, `undoing a failed endpoint setup: could not ${what}`));
      throw e;
    }
  }

  async join(a: JoinArgs): Promise<JoinResult> {
    const bridge = bridgeName(a.networkId);
    const names = vethNames(a.endpointId);
    const view = await this.bridgeView(bridge);
    if (!view) throw notFound(`network ${a.networkId.slice(0, 12)} has no bridge ${bridge} on this host: remove and re-create the container`);
    // CreateEndpoint of this process made the links moments ago; after a plugin restart in between, make sure.
    if (!this.endpointNetworks.has(a.endpointId)) await this.queue.run(() => this.ensureEndpointLinks(view, names, this.addresses.get(a.endpointId), this.addresses6.get(a.endpointId)));
    const overlay = this.overlays.all().find((o) => { const n = o.network(); return n !== null && cidrContains(n, view.gateway); });
    const overlayNet = overlay?.network() ?? null;
    const host = view.mode === 'routed' ? await this.kernel.getLink(names.host) : null;
    const v6 = await join6(this.kernel, view.mode, view.link.index, host?.index ?? null, overlay?.lease()?.subnet6, overlay?.network6?.() ?? null);
    return {
      containerVeth: names.container,
      gateway: view.routedGateway ?? view.gateway,
      routes: [...joinRoutes(view.mode, view.subnet, overlayNet, view.gateway, view.routedGateway ?? undefined), ...multicastJoinRoutes(this.takesMulticast(a, view.multicast))],
      ...(v6 ? { gateway6: v6.gateway6, routes6: v6.routes6 } : {}),
    };
  }

  async leave(): Promise<void> {
    // Docker moves the container end back out of the sandbox; DeleteEndpoint removes the pair.
  }

  /** The address of an endpoint created since this process started, by the start of its id. */
  addressOf(endpointIdPrefix: string, family: 4 | 6 = 4): string | undefined {
    for (const [id, ip] of family === 6 ? this.addresses6 : this.addresses) if (id.toLowerCase().startsWith(endpointIdPrefix)) return ip;
    return undefined;
  }

  /** The network of an endpoint created since this process started (routed veths have no master to tell it). */
  networkOf(endpointIdPrefix: string): string | undefined {
    for (const [id, net] of this.endpointNetworks) if (id.toLowerCase().startsWith(endpointIdPrefix)) return net;
    return undefined;
  }

  /** Whether this Join hands the multicast routes: on for the network, and none of ours gave them to this sandbox yet. */
  private takesMulticast(a: JoinArgs, on: boolean): boolean {
    const holder = this.multicastHolder.get(a.sandboxKey);
    if (!on || (holder !== undefined && holder !== a.endpointId)) return false;
    this.multicastHolder.set(a.sandboxKey, a.endpointId);
    return true;
  }

  async deleteEndpoint(endpointId: string): Promise<void> {
    for (const [sandbox, holder] of this.multicastHolder) if (holder === endpointId) this.multicastHolder.delete(sandbox);
    this.addresses.delete(endpointId);
    this.addresses6.delete(endpointId);
    this.endpointNetworks.delete(endpointId);
    await this.queue.run(async () => {
      // Normally gone already (Revoke comes first); a failure here must not keep the veth.
      await this.removePorts(endpointId).catch((e: unknown) => this.log.warn({ endpoint: endpointId.slice(0, 12), err: e }, 'could not remove published-port rules'));
      await this.kernel.deleteLink(vethNames(endpointId).host);
    });
    this.events?.endpointsChanged?.();
  }

  /**
   * Published ports: DNAT rules (nat PREROUTING + OUTPUT) from the host ports to the endpoint's
   * address, which Docker only sent in CreateEndpoint (kept in memory). The rules carry the
   * endpoint id in their comment, so Revoke/DeleteEndpoint find them without that memory.
   * Forwarding to the container is already accepted by the overlay's FORWARD rule (-d Network).
   * An endpoint with a v6 address gets its v6 rules too (domain/port-rules.ts: `ip6 nat`).
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
    const { rules, skipped } = portRules(a.endpointId, address, a.portMap, this.addresses6.get(a.endpointId));
    if (skipped.length > 0) this.log.info({ endpoint: a.endpointId.slice(0, 12), skipped: skipped.map((b) => `[${b.hostIP}]:${b.hostPort}`) }, 'IPv6 port bindings ignored: the endpoint has no IPv6 address (not on a --ipv6 network)');
    const r = await this.queue.run(() => this.kernel.ensurePortMappings(a.endpointId, rules));
    if (r === 'no-chain' && rules.length > 0) {
      throw unavailable(`published ports of endpoint ${a.endpointId.slice(0, 12)}: this host has no nftables "ip nat" table (iptables-legacy?), so nothing was published. Rules wanted:\n` + rules.map((x) => `${x.toAddress.includes(':') ? 'ip6tables' : 'iptables'} -t nat ${portRuleText(x).replace('-A ', '-I ')}`).join('\n'));
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
    const mode = this.modes.get(networkId);
    return { bridge: bridgeName(networkId), hostVeth: vethNames(endpointId).host, ...(mode ? { datapath: mode } : {}) };
  }

  /** Once per process: the host forwards v6 (Linux has no per-device v6 switch; src/kernel/links.ts). */
  private async ensureIpv6Forwarding(): Promise<void> {
    if (this.ipv6Forwarding) return;
    const r = await this.kernel.ensureIpv6Forwarding();
    this.ipv6Forwarding = true;
    this.log.info({ path: r.path }, r.state === 'set' ? 'net.ipv6.conf.all.forwarding set to 1 (an endpoint of a --ipv6 network)' : 'net.ipv6.conf.all.forwarding already 1');
  }

  private mtuFor(overlay: OverlayHandle, option: string | undefined): number {
    const max = overlay.mtu() ?? MTU_UNTIL_READY;
    if (option === undefined || option === '') return max;
    const n = Number(option);
    if (!Number.isInteger(n) || n < 576) throw invalid(`-o ${MTU_OPTION}=${option}: must be a whole number ≥ 576`);
    if (n > max) throw invalid(`-o ${MTU_OPTION}=${option} is larger than the overlay allows (${max}: the underlay MTU minus what the overlay's backend adds to each packet)`);
    return n;
  }

  private async ensureBridge(name: string, subnet: Cidr, mtu: number, mode: Datapath, multicast: boolean): Promise<BridgeView> {
    const existing = await this.bridgeView(name);
    const br = await this.kernel.ensureBridge(name, mtu);
    await this.kernel.setLinkAlias(name, multicast ? '' : MULTICAST_OFF_ALIAS);
    const gateway = gatewayOf(subnet);
    if (mode === 'bridge') {
      await this.kernel.ensureOnlyAddress(br.index, `${formatIPv4(gateway)}/${subnet.len}`);
      await this.kernel.setForwarding(br.index, true);
      return { link: br, gateway, subnet, mode, routedGateway: null, multicast };
    }
    // A bridge that has its link-local gateway keeps it; a new one takes the lowest free one.
    const routedGateway =
      existing?.routedGateway ?? pickRoutedGateway((await this.bridges()).flatMap((b) => (b.link.name !== name && b.routedGateway !== null ? [b.routedGateway] : [])));
    if (routedGateway === null) throw conflict(`no free link-local gateway in ${ROUTED_GATEWAYS} for another routed network on this host (254 in use): remove a network, or use -o datapath=bridge`);
    await this.kernel.ensureOnlyAddress(br.index, `${formatIPv4(gateway)}/${subnet.len}`, formatCidr(subnet));
    await this.kernel.ensureOnlyAddress(br.index, `${formatIPv4(routedGateway)}/32`, LINK_LOCAL_SCOPE);
    return { link: br, gateway, subnet, mode, routedGateway, multicast };
  }

  /** After a reboot Docker still knows the network but the bridge is gone: rebuild it from the address. */
  private async rebuildBridge(a: CreateEndpointArgs): Promise<BridgeView> {
    const ip = a.address ? parseIPv4(a.address.split('/')[0], 'endpoint address') : null;
    const overlay = ip === null ? undefined : this.overlays.all().find((o) => o.lease() && cidrContains(o.lease()!.subnet, ip));
    if (!overlay || ip === null) {
      throw notFound(`network ${a.networkId.slice(0, 12)} is not known to overlay-flannel on this host (no bridge ${bridgeName(a.networkId)}); re-create the network`);
    }
    const subnet = overlay.lease()!.subnet;
    // The mode was only in the lost bridge (Docker does not repeat network options here): the default.
    const mode = this.modes.get(a.networkId) ?? 'routed';
    const multicast = this.multicast.get(a.networkId) ?? true;
    this.log.warn({ network: a.networkId.slice(0, 12), subnet: formatCidr(subnet), datapath: mode }, 'bridge missing (host rebooted?): rebuilding it');
    const view = await this.ensureBridge(bridgeName(a.networkId), subnet, overlay.mtu() ?? MTU_UNTIL_READY, mode, multicast);
    const subnet6 = overlay.lease()!.subnet6;
    if (a.addressIPv6 && subnet6) await ensureBridge6(this.kernel, view.link.index, mode, subnet6);
    return view;
  }

  private async bridgeView(name: string): Promise<BridgeView | null> {
    const link = await this.kernel.getLink(name);
    if (!link) return null;
    const addrs = await this.kernel.listAddresses(link.index);
    const addr = addrs.find((x) => !cidrContains(LINK_LOCAL, parseIPv4(x.address)));
    if (!addr) return null;
    const gateway = parseIPv4(addr.address);
    const routed = addrs.find((x) => x.prefixLen === 32 && isRoutedGateway(parseIPv4(x.address)));
    const routedGateway = routed ? parseIPv4(routed.address) : null;
    return { link, gateway, subnet: cidr(gateway, addr.prefixLen), mode: routedGateway === null ? 'bridge' : 'routed', routedGateway, multicast: link.alias !== MULTICAST_OFF_ALIAS };
  }

  /** Every bridge of ours with its gateway. */
  private async bridges(): Promise<BridgeView[]> {
    const out: BridgeView[] = [];
    for (const l of await this.kernel.listLinks()) {
      if (!l.name.startsWith(BRIDGE_PREFIX)) continue;
      const v = await this.bridgeView(l.name);
      if (v) out.push(v);
    }
    return out;
  }
}
