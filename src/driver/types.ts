/**
 * The use cases behind libnetwork's remote NetworkDriver and IpamDriver calls, as the API layer
 * (src/api, fastify) calls them. Arguments are already validated and normalised by the API
 * (null/missing maps and lists become {} / []). Arguments and results are domain values (names,
 * CIDRs, addresses, numbers): the wire shapes (SrcName, StaticRoutes, HostPort…) are built and
 * parsed in src/api alone (wire.ts, normalise.ts, routes.ts), as libnetwork keeps its api.go.
 * Every method throws OverlayError (src/errors.ts); the API maps codes to HTTP status and
 * {"Err": message, "Error": message}.
 * Idempotence (Docker repeats and replays calls): DeleteNetwork, DeleteEndpoint, Leave,
 * ReleasePool, ReleaseAddress and RevokeExternalConnectivity succeed for unknown ids.
 */
import type { JoinRoute } from '../domain/datapath';
import type { PortBinding, TransportPort } from '../domain/port-rules';

/** One IPAM result of a network, as Docker forwards it to CreateNetwork. */
export interface IpamData {
  addressSpace: string;
  pool: string; // CIDR
  gateway?: string; // CIDR with prefix
  auxAddresses?: Record<string, string>;
}

export interface RequestPoolArgs {
  addressSpace: string;
  pool: string; // '' = ours to choose
  subPool: string;
  options: Record<string, string>; // --ipam-opt
  v6: boolean;
}

export interface RequestPoolResult {
  poolId: string;
  pool: string; // CIDR
  data: Record<string, string>;
}

export interface RequestAddressArgs {
  poolId: string;
  address: string; // '' = any
  options: Record<string, string>; // RequestAddressType=com.docker.network.gateway for the gateway
}

export interface CreateNetworkArgs {
  networkId: string;
  options: {
    generic: Record<string, string>; // com.docker.network.generic (-o)
    enableIPv6: boolean;
    internal: boolean;
  };
  ipv4Data: IpamData[];
  ipv6Data: IpamData[];
}

export interface CreateEndpointArgs {
  networkId: string;
  endpointId: string;
  address: string; // CIDR as IPAM gave it ('' if none)
  addressIPv6: string;
  macAddress: string;
  options: Record<string, unknown>;
}

export interface CreateEndpointResult {
  /** Only what Docker left empty may be returned (the MAC address here). */
  macAddress?: string;
}

export interface JoinArgs {
  networkId: string;
  endpointId: string;
  sandboxKey: string;
  options: Record<string, unknown>;
}

/** A v6 route Join hands the container (text: CIDR and address); on-link when nextHop is null. */
export interface JoinRoute6 {
  destination: string;
  nextHop: string | null;
}

export interface JoinResult {
  /** The container end of the veth pair, in the host namespace: Docker moves it into the sandbox. */
  containerVeth: string;
  /** The container's default gateway (IPv4 as a number), null for none. */
  gateway: number | null;
  routes: JoinRoute[];
  /** The container's v6 default gateway (text), on a --ipv6 network (network-v6.ts). */
  gateway6?: string;
  routes6?: JoinRoute6[];
  disableGatewayService?: boolean;
}

export interface ExternalConnectivityArgs {
  networkId: string;
  endpointId: string;
  portMap: PortBinding[];
  exposedPorts: TransportPort[];
}

export interface PluginDriver {
  // IpamDriver
  getDefaultAddressSpaces(): { local: string; global: string };
  requestPool(a: RequestPoolArgs): Promise<RequestPoolResult>;
  releasePool(poolId: string): Promise<void>;
  requestAddress(a: RequestAddressArgs): Promise<{ address: string; data: Record<string, string> }>;
  releaseAddress(poolId: string, address: string): Promise<void>;
  // NetworkDriver
  createNetwork(a: CreateNetworkArgs): Promise<void>;
  deleteNetwork(networkId: string): Promise<void>;
  createEndpoint(a: CreateEndpointArgs): Promise<CreateEndpointResult>;
  endpointOperInfo(networkId: string, endpointId: string): Promise<Record<string, unknown>>;
  deleteEndpoint(networkId: string, endpointId: string): Promise<void>;
  join(a: JoinArgs): Promise<JoinResult>;
  leave(networkId: string, endpointId: string): Promise<void>;
  programExternalConnectivity(a: ExternalConnectivityArgs): Promise<void>;
  revokeExternalConnectivity(networkId: string, endpointId: string): Promise<void>;
}
