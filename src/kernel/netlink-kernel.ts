/**
 * NetlinkKernel: the real Kernel, composing the per-object modules over one scheduled rtnetlink
 * socket (netlink-socket.ts). Validation of names/addresses happens in the modules (INVALID);
 * kernel refusals come back as KernelError ('KERNEL', errno kept), timeouts as 'UNAVAILABLE'.
 * No method dumps a table unless its job is to list or compare, so programming thousands of
 * neighbour/FDB/route entries costs one request each.
 */
import * as addresses from './addresses';
import * as ensure from './link-ensure';
import * as links from './links';
import * as neigh from './neighbours';
import { ensureForwardAccept, type ForwardResult } from './nft-forward';
import { ensureFastpath, removeFastpath } from './nft-fastpath';
import { ensureMulticast, removeMulticast } from './nft-multicast';
import { ensureOverlayIsolation } from './nft-isolation';
import { ensureMasquerade, removeMasquerade, type MasqResult } from './nft-masq';
import { ensurePorts, removePorts, type PortsResult } from './nft-ports';
import { ensureNotrack, removeNotrack } from './nft-notrack';
import { ensureNameInterception, removeNameInterception } from './nft-names';
import { openPacketQueue } from './nfqueue';
import type { NotrackRule } from '../domain/notrack-rules';
import type { PortRule } from '../domain/port-rules';
import type { FastpathPlan } from '../domain/fastpath';
import type { MulticastPlan } from '../domain/multicast';
import { NlSocket, type NlSocketOptions } from './netlink-socket';
import { parseNetworkCidr } from './codec';
import { familyOf, parseNetworkCidr6 } from './codec6';
import * as routes from './routes';
import { WireguardDevices, type WireguardOptions } from './kernel-wireguard';
import type {
  AddressEntry,
  FastpathResult,
  FdbEntry,
  ForwardHeadResult,
  IpFamily,
  Kernel,
  LinkInfo,
  MulticastResult,
  NameInterceptionSpec,
  PacketHandler,
  PacketQueue,
  PacketQueueOptions,
  NeighbourEntry,
  RouteEntry,
  VxlanInfo,
  VxlanSpec,
  WireguardInfo,
  WireguardPeer,
  WireguardSpec,
} from './types';

function publicVxlan(d: links.VxlanDetails): VxlanInfo {
  const { index, name, kind, mtu, mac, up, master, vni, local, port, learning, parentIndex } = d;
  return { index, name, kind, mtu, mac, up, master, vni, local, port, learning, parentIndex };
}

export class NetlinkKernel implements Kernel {
  private readonly ns: NlSocket;
  private readonly wg: WireguardDevices;
  private readonly sysctlRoots: readonly string[];

  constructor(opts: NlSocketOptions & { wireguard?: WireguardOptions; sysctlRoots?: readonly string[] } = {}) {
    this.ns = new NlSocket(opts);
    this.sysctlRoots = opts.sysctlRoots ?? ['/proc/sys'];
    this.wg = new WireguardDevices(this.ns, { timeoutMs: opts.timeoutMs, ...opts.wireguard });
  }

  /** Datagrams the neighbour/FDB/route writes left in so far (batched: rtnl-writer.ts). */
  get writeDatagrams(): number {
    return this.ns.writeDatagrams;
  }

  // links
  async getLink(name: string): Promise<LinkInfo | null> {
    const l = await links.getLinkByName(this.ns, name);
    return l ? links.publicLink(l) : null;
  }
  async listLinks(): Promise<LinkInfo[]> {
    return (await links.listLinks(this.ns)).map(links.publicLink);
  }
  async ensureVxlan(spec: VxlanSpec): Promise<VxlanInfo> {
    return publicVxlan(await ensure.ensureVxlan(this.ns, spec));
  }
  /** null if absent or not a vxlan. */
  async getVxlan(name: string): Promise<VxlanInfo | null> {
    const l = await links.getLinkByName(this.ns, name);
    const v = l ? links.vxlanFromLink(l) : null;
    return v ? publicVxlan(v) : null;
  }
  ensureBridge(name: string, mtu: number): Promise<LinkInfo> {
    return ensure.ensureBridge(this.ns, name, mtu);
  }
  ensureVethPair(hostName: string, peerName: string, mtu: number, bridgeName?: string): Promise<LinkInfo> {
    return ensure.ensureVethPair(this.ns, hostName, peerName, mtu, bridgeName);
  }
  deleteLink(name: string): Promise<void> {
    return links.deleteLinkByName(this.ns, name);
  }
  setForwarding(ifindex: number, on: boolean): Promise<void> {
    return links.setIpv4Forwarding(this.ns, ifindex, on);
  }
  ensureIpv6Forwarding(): Promise<{ state: 'already' | 'set'; path: string }> {
    return links.ensureIpv6Forwarding(this.sysctlRoots);
  }
  disableAcceptRa(name: string): Promise<{ state: 'already' | 'set'; path: string }> {
    return links.disableAcceptRa(this.sysctlRoots, name);
  }
  setLinkUp(name: string): Promise<void> {
    return links.setLinkUpByName(this.ns, name);
  }
  setLinkAlias(name: string, alias: string): Promise<void> {
    return links.setLinkAliasByName(this.ns, name, alias);
  }

  // wireguard
  ensureWireguard(spec: WireguardSpec): Promise<WireguardInfo> {
    return this.wg.ensure(spec);
  }
  listWireguardPeers(name: string): Promise<WireguardPeer[]> {
    return this.wg.listPeers(name);
  }
  updateWireguardPeers(name: string, peers: readonly WireguardPeer[], remove: readonly string[]): Promise<void> {
    return this.wg.updatePeers(name, peers, remove);
  }

  // addresses
  listAddresses(ifindex: number, family?: IpFamily): Promise<AddressEntry[]> {
    return addresses.listAddresses(this.ns, ifindex, family);
  }
  ensureOnlyAddress(ifindex: number, cidr: string, within?: string): Promise<void> {
    return addresses.ensureOnlyAddress(this.ns, ifindex, cidr, within);
  }
  removeAddress(ifindex: number, cidr: string): Promise<boolean> {
    return addresses.removeAddress(this.ns, ifindex, cidr);
  }

  // routes
  listRoutes(oif?: number, family?: IpFamily): Promise<RouteEntry[]> {
    return routes.listRoutes(this.ns, oif, family);
  }
  replaceRoute(r: RouteEntry): Promise<void> {
    return routes.replaceRoute(this.ns, r);
  }
  deleteRoute(dst: string): Promise<void> {
    return routes.deleteRoute(this.ns, dst);
  }
  defaultRouteInterface(): Promise<LinkInfo | null> {
    return routes.defaultRouteInterface(this.ns);
  }

  // neighbours and FDB
  listNeighbours(ifindex: number, family?: IpFamily): Promise<NeighbourEntry[]> {
    return neigh.listNeighbours(this.ns, ifindex, family);
  }
  replaceNeighbour(n: NeighbourEntry): Promise<void> {
    return neigh.replaceNeighbour(this.ns, n);
  }
  deleteNeighbour(ifindex: number, ip: string): Promise<void> {
    return neigh.deleteNeighbour(this.ns, ifindex, ip);
  }
  listFdb(ifindex: number): Promise<FdbEntry[]> {
    return neigh.listFdb(this.ns, ifindex);
  }
  replaceFdb(f: FdbEntry): Promise<void> {
    return neigh.replaceFdb(this.ns, f);
  }
  deleteFdb(ifindex: number, mac: string, dst?: string): Promise<void> {
    return neigh.deleteFdb(this.ns, ifindex, mac, dst);
  }

  // firewall (its own short-lived NETLINK_NETFILTER socket per call)
  ensureForwardAccept(network: string): Promise<ForwardResult> {
    return ensureForwardAccept(network, this.ns.timeoutMs);
  }
  ensureMasquerade(network: string, subnet: string): Promise<MasqResult> {
    return ensureMasquerade(network, subnet, { timeoutMs: this.ns.timeoutMs });
  }
  removeMasquerade(network: string): Promise<number | 'no-chain'> {
    return removeMasquerade(network, this.ns.timeoutMs);
  }
  ensureNotrack(network: string, rules: NotrackRule[]): Promise<'present' | 'updated'> {
    return ensureNotrack(network, rules, this.ns.timeoutMs);
  }
  removeNotrack(network: string): Promise<number> {
    return removeNotrack(network, this.ns.timeoutMs);
  }
  ensurePortMappings(endpointId: string, rules: PortRule[]): Promise<PortsResult> {
    return ensurePorts(endpointId, rules, this.ns.timeoutMs);
  }
  removePortMappings(endpointId: string): Promise<number | 'no-chain'> {
    return removePorts(endpointId, this.ns.timeoutMs);
  }
  async ensureForwardHead(networks: readonly string[]): Promise<ForwardHeadResult> {
    for (const n of networks) (familyOf(n) === 6 ? parseNetworkCidr6 : parseNetworkCidr)(n, 'overlay Network'); // INVALID before any rule is read or written
    return ensureOverlayIsolation(networks, this.ns.timeoutMs);
  }
  ensureFastpath(plan: FastpathPlan): Promise<FastpathResult> {
    return ensureFastpath(plan, this.ns.timeoutMs);
  }
  removeFastpath(): Promise<boolean> {
    return removeFastpath(this.ns.timeoutMs);
  }
  ensureMulticast(plan: MulticastPlan): Promise<MulticastResult> {
    return ensureMulticast(plan, this.ns.timeoutMs);
  }
  removeMulticast(): Promise<boolean> {
    return removeMulticast(this.ns.timeoutMs);
  }

  // cross-host names
  openPacketQueue(queue: number, handler: PacketHandler, opts?: PacketQueueOptions): Promise<PacketQueue> {
    return openPacketQueue(queue, handler, opts, this.ns.timeoutMs);
  }
  ensureNameInterception(spec: NameInterceptionSpec): Promise<'present' | 'updated'> {
    return ensureNameInterception(spec, this.ns.timeoutMs);
  }
  removeNameInterception(): Promise<boolean> {
    return removeNameInterception(this.ns.timeoutMs);
  }

  /** Pending and queued calls are rejected with 'UNAVAILABLE'; later calls fail the same way.
   *  The wireguard-go processes we started are stopped and our kernel WireGuard devices deleted
   *  (the devices go, as flanneld's do). */
  async close(): Promise<void> {
    await this.wg.close();
    return this.ns.close();
  }
}

export interface NetlinkKernelOptions {
  /** Per-request timeout in ms (default 5000). */
  timeoutMs?: number;
  /** Concurrent non-dump requests on the socket (default 32). */
  maxInFlight?: number;
  /** The WireGuard devices (kernel-wireguard.ts). */
  wireguard?: WireguardOptions;
  /** Where net/ipv6/conf/all/forwarding is tried, in order (links.ts); default ['/proc/sys']. */
  sysctlRoots?: readonly string[];
}

export function createNetlinkKernel(opts: NetlinkKernelOptions = {}): Kernel {
  return new NetlinkKernel(opts);
}
