/**
 * The PluginDriver the API serves: IPAM and network use cases side by side. External
 * connectivity (published ports) is answered here and built out by its own module.
 */
import type { Logger } from 'pino';
import type { Kernel } from '../kernel/types';
import { SerialQueue } from '../util/serial-queue';
import { Ipam } from './ipam';
import { NetworkDriver } from './network';
import type { OverlayDirectory } from './overlays';
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

  constructor(kernel: Kernel, queue: SerialQueue, overlays: OverlayDirectory, log: Logger) {
    this.ipam = new Ipam(overlays, log.child({ component: 'ipam' }));
    this.net = new NetworkDriver(kernel, queue, overlays, log.child({ component: 'network' }));
  }

  getDefaultAddressSpaces() {
    return this.ipam.getDefaultAddressSpaces();
  }
  requestPool(a: RequestPoolArgs): Promise<RequestPoolResult> {
    return this.ipam.requestPool(a);
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
  deleteEndpoint(_networkId: string, endpointId: string): Promise<void> {
    return this.net.deleteEndpoint(endpointId);
  }
  join(a: JoinArgs): Promise<JoinResult> {
    return this.net.join(a);
  }
  leave(): Promise<void> {
    return this.net.leave();
  }
  async programExternalConnectivity(_a: ExternalConnectivityArgs): Promise<void> {
    // Published ports arrive with the outbound-NAT work; until then nothing is exposed.
  }
  async revokeExternalConnectivity(): Promise<void> {}
}
