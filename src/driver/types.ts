/**
 * The use cases behind libnetwork's remote NetworkDriver and IpamDriver calls, as the API layer
 * (src/api, fastify) calls them. Arguments are already validated and normalised by the API
 * (null/missing maps and lists become {} / []); results are what the API serialises.
 * Every method throws OverlayError (src/errors.ts); the API maps codes to HTTP status and
 * {"Err": message, "Error": message}.
 * Idempotence (Docker repeats and replays calls): DeleteNetwork, DeleteEndpoint, Leave,
 * ReleasePool, ReleaseAddress and RevokeExternalConnectivity succeed for unknown ids.
 */

export interface PortBinding {
  Proto: number; // 6 tcp, 17 udp, 132 sctp
  IP: string;
  Port: number;
  HostIP: string;
  HostPort: number;
  HostPortEnd: number;
}

export interface IpamData {
  AddressSpace: string;
  Pool: string; // CIDR
  Gateway?: string; // CIDR with prefix
  AuxAddresses?: Record<string, string>;
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
  /** Only fields Docker left empty may be returned (e.g. MacAddress). */
  interface?: { MacAddress?: string };
}

export interface JoinArgs {
  networkId: string;
  endpointId: string;
  sandboxKey: string;
  options: Record<string, unknown>;
}

export interface JoinResult {
  InterfaceName: { SrcName: string; DstPrefix: string };
  Gateway: string; // plain IP
  StaticRoutes: { Destination: string; RouteType: 0 | 1; NextHop?: string }[];
  DisableGatewayService?: boolean;
}

export interface ExternalConnectivityArgs {
  networkId: string;
  endpointId: string;
  portMap: PortBinding[];
  exposedPorts: { Proto: number; Port: number }[];
}

export interface PluginDriver {
  // IpamDriver
  getDefaultAddressSpaces(): { LocalDefaultAddressSpace: string; GlobalDefaultAddressSpace: string };
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
