/**
 * The libnetwork remote-plugin wire format, one request/response pair per call (after libnetwork
 * drivers/remote/api/api.go and ipams/remote/api/api.go). Types only, no logic: the shapes are what
 * Docker 20.10 sends (see docs/docker-protocol.md §4–§6), with `| null` where Go marshals a nil map or slice.
 * Requests may carry keys not listed here (newer engines add fields); they are ignored.
 */

/** The body of every failed answer: NetworkDriver reads Err, IpamDriver reads Error; we send both. */
export interface ErrorResponse {
  Err: string;
  Error: string;
}

/** An empty success answer; Docker decodes the body, so it is `{}`, never empty. */
export type EmptyResponse = Record<string, never>;

// ---- Plugin ----

/** Plugin.Activate (empty request): the subsystems this plugin serves. */
export interface ActivateResponse {
  Implements: string[];
}

// ---- IpamDriver ----

/** IpamDriver.GetCapabilities (empty request). */
export interface IpamCapabilitiesResponse {
  RequiresMACAddress: boolean;
  RequiresRequestReplay: boolean;
}

/** IpamDriver.GetDefaultAddressSpaces (empty request): names of our local and global address spaces. */
export interface DefaultAddressSpacesResponse {
  LocalDefaultAddressSpace: string;
  GlobalDefaultAddressSpace: string;
}

/** IpamDriver.RequestPool: Pool = --subnet or "", SubPool = --ip-range or "", Options = --ipam-opt. */
export interface RequestPoolRequest {
  AddressSpace?: string;
  Pool?: string | null;
  SubPool?: string | null;
  Options?: Record<string, string> | null;
  V6?: boolean | null;
}
/** The pool granted: opaque PoolID, Pool as CIDR, Data may carry com.docker.network.gateway. */
export interface RequestPoolResponse {
  PoolID: string;
  Pool: string;
  Data: Record<string, string>;
}

/** IpamDriver.ReleasePool. */
export interface ReleasePoolRequest {
  PoolID: string;
}

/** IpamDriver.RequestAddress: Address = preferred IP or ""; Options null except for the gateway. */
export interface RequestAddressRequest {
  PoolID: string;
  Address?: string | null;
  Options?: Record<string, string> | null;
}
/** The address granted, CIDR with the pool's prefix. */
export interface RequestAddressResponse {
  Address: string;
  Data: Record<string, string>;
}

/** IpamDriver.ReleaseAddress: Address is a plain IP (no prefix). */
export interface ReleaseAddressRequest {
  PoolID: string;
  Address: string;
}

// ---- NetworkDriver ----

/** NetworkDriver.GetCapabilities (empty request): data scope and connectivity scope. */
export interface NetworkCapabilitiesResponse {
  Scope: 'local' | 'global';
  ConnectivityScope: 'local' | 'global' | '';
}

/** One IPAM result per subnet, as Docker forwards it to the network driver. */
export interface IPAMData {
  AddressSpace?: string;
  Pool: string;
  Gateway?: string | null;
  AuxAddresses?: Record<string, string> | null;
}

/** NetworkDriver.CreateNetwork. Options: enable_ipv6 (bool), generic (-o map), internal (bool). */
export interface CreateNetworkRequest {
  NetworkID: string;
  Options?: {
    'com.docker.network.enable_ipv6'?: boolean | null;
    'com.docker.network.generic'?: Record<string, string> | null;
    'com.docker.network.internal'?: boolean | null;
    [key: string]: unknown;
  } | null;
  IPv4Data?: IPAMData[] | null;
  IPv6Data?: IPAMData[] | null;
}

/** NetworkDriver.DeleteNetwork and NetworkDriver.FreeNetwork. */
export interface NetworkRequest {
  NetworkID: string;
}

/** NetworkDriver.AllocateNetwork (swarm managers only). */
export interface AllocateNetworkRequest {
  NetworkID: string;
  Options?: Record<string, string> | null;
  IPv4Data?: IPAMData[] | null;
  IPv6Data?: IPAMData[] | null;
}
/** Options to hand to every node's CreateNetwork; we need none. */
export interface AllocateNetworkResponse {
  Options: Record<string, string>;
}

/** The interface Docker already configured for an endpoint; "" for what it left to the driver. */
export interface EndpointInterface {
  Address?: string;
  AddressIPv6?: string;
  MacAddress?: string;
}

/** NetworkDriver.CreateEndpoint. Options: portmap, exposedports, dnsservers, macaddress (base64), --driver-opt. */
export interface CreateEndpointRequest {
  NetworkID: string;
  EndpointID: string;
  Interface?: EndpointInterface | null;
  Options?: Record<string, unknown> | null;
}
/** Only fields Docker left empty; `{"Interface":{}}` when the driver adds nothing. */
export interface CreateEndpointResponse {
  Interface: EndpointInterface;
}

/** NetworkDriver.EndpointOperInfo, DeleteEndpoint, Leave, RevokeExternalConnectivity. */
export interface EndpointRequest {
  NetworkID: string;
  EndpointID: string;
}

/** NetworkDriver.EndpointOperInfo's answer: any string-keyed map, shown by inspect. */
export interface EndpointOperInfoResponse {
  Value: Record<string, unknown>;
}

/** NetworkDriver.Join: SandboxKey = the container's netns path; Options = the sandbox labels. */
export interface JoinRequest {
  NetworkID: string;
  EndpointID: string;
  SandboxKey: string;
  Options?: Record<string, unknown> | null;
}
/** The host-netns interface Docker moves into the sandbox, the gateway (plain IP) and routes. */
export interface JoinResponse {
  InterfaceName: { SrcName: string; DstPrefix: string };
  Gateway: string;
  GatewayIPv6?: string;
  StaticRoutes: { Destination: string; RouteType: 0 | 1; NextHop?: string }[];
  DisableGatewayService?: boolean;
}

/** A published port (Go types.PortBinding): Proto 6 tcp, 17 udp, 132 sctp; HostPort 0 = ephemeral. */
export interface WirePortBinding {
  Proto: number;
  IP?: string;
  Port: number;
  HostIP?: string;
  HostPort?: number;
  HostPortEnd?: number;
}

/** An exposed port (Go types.TransportPort). */
export interface WireTransportPort {
  Proto: number;
  Port: number;
}

/** NetworkDriver.ProgramExternalConnectivity: Options = Join's sandbox labels (lists may be null). */
export interface ProgramExternalConnectivityRequest {
  NetworkID: string;
  EndpointID: string;
  Options?: {
    'com.docker.network.portmap'?: WirePortBinding[] | null;
    'com.docker.network.endpoint.exposedports'?: WireTransportPort[] | null;
    [key: string]: unknown;
  } | null;
}

/** NetworkDriver.DiscoverNew / DiscoverDelete (swarm only): type 1 = node discovery. */
export interface DiscoveryRequest {
  DiscoveryType?: number;
  DiscoveryData?: unknown;
}
