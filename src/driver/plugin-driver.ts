/**
 * The PluginDriver the API serves: IPAM and network use cases side by side. External
 * connectivity (published ports) is DNAT in the network driver (src/kernel/nft-ports.ts).
 */
import type { Logger } from 'pino';
import type { Kernel } from '../kernel';
import { SerialQueue } from '../util/serial-queue';
import { Ipam } from './ipam';
import { NetworkDriver, NetworkEvents, overlayHasNetwork } from './network';
import { DEFAULT_OVERLAY, type OverlayDirectory } from './overlays';
import { parseCidr } from '../domain/ipv4';
import type {
  CreateEndpointArgs,
  CreateEndpointResult,
  CreateNetworkArgs,
  ExternalConnectivityArgs,
  JoinArgs,
  JoinResult,
  PluginDriver,
  RequestAddressArgs,
  RequestPoolArgs,
  RequestPoolResult,
} from './types';

export class OverlayPluginDriver implements PluginDriver {
  private readonly ipam: Ipam;
  private readonly net: NetworkDriver;

  constructor(kernel: Kernel, queue: SerialQueue, overlays: OverlayDirectory, log: Logger, events?: NetworkEvents) {
    this.ipam = new Ipam(overlays, log.child({ component: 'ipam' }));
    this.net = new NetworkDriver(kernel, queue, overlays, log.child({ component: 'network' }), events);
  }

  getDefaultAddressSpaces() {
    return this.ipam.getDefaultAddressSpaces();
  }
  async requestPool(a: RequestPoolArgs): Promise<RequestPoolResult> {
    const r = await this.ipam.requestPool(a);
    if (a.pool === '' && !a.v6) {
      // (the v6 pool of a second network is never asked for: its v4 pool is refused first)
      // Docker retries RequestPool forever while the pool overlaps a host route: say no instead.
      const other = await this.net.bridgeUsing(parseCidr(r.pool, 'pool'));
      if (other) throw overlayHasNetwork(a.options.network || DEFAULT_OVERLAY, other);
    }
    return r;
  }
  releasePool(poolId: string): Promise<void> {
    return this.ipam.releasePool(poolId);
  }
  requestAddress(a: RequestAddressArgs) {
    return this.ipam.requestAddress(a);
  }
  releaseAddress(poolId: string, address: string): Promise<void> {
    return this.ipam.releaseAddress(poolId, address);
  }
  createNetwork(a: CreateNetworkArgs): Promise<void> {
    return this.net.createNetwork(a);
  }
  deleteNetwork(networkId: string): Promise<void> {
    return this.net.deleteNetwork(networkId);
  }
  createEndpoint(a: CreateEndpointArgs): Promise<CreateEndpointResult> {
    return this.net.createEndpoint(a);
  }
  endpointOperInfo(networkId: string, endpointId: string) {
    return this.net.endpointOperInfo(networkId, endpointId);
  }
  /** For the status page: an endpoint's address (IPv4, or its IPv6 one), if created since this process started. */
  endpointAddress(endpointIdPrefix: string, family: 4 | 6 = 4): string | undefined {
    return this.net.addressOf(endpointIdPrefix, family);
  }
  /** For the status page: an endpoint's network id, if created since this process started. */
  endpointNetwork(endpointIdPrefix: string): string | undefined {
    return this.net.networkOf(endpointIdPrefix);
  }
  deleteEndpoint(_networkId: string, endpointId: string): Promise<void> {
    return this.net.deleteEndpoint(endpointId);
  }
  join(a: JoinArgs): Promise<JoinResult> {
    return this.net.join(a);
  }
  leave(): Promise<void> {
    return this.net.leave();
  }
  programExternalConnectivity(a: ExternalConnectivityArgs): Promise<void> {
    return this.net.programExternalConnectivity(a);
  }
  revokeExternalConnectivity(_networkId: string, endpointId: string): Promise<void> {
    return this.net.revokeExternalConnectivity(endpointId);
  }
}
