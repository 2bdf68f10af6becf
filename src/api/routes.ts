/**
 * The route table: one entry per libnetwork call, each a schema plus a handler that normalises the
 * request (normalise.ts), calls one PluginDriver method and shapes the exact answer Docker decodes.
 * server.ts registers them all as POST /<call>; errors thrown here are mapped there.
 */
import type { JoinResult, PluginDriver } from '../driver/types';
import { formatCidr, formatIPv4 } from '../domain/ipv4';
import * as s from './schemas';
import * as n from './normalise';
import type * as w from './wire';

export interface Route {
  /** "NetworkDriver.Join"; the path is "/" + call. */
  readonly call: string;
  readonly schema: { body: Record<string, unknown> };
  handle(driver: PluginDriver, body: unknown): Promise<object> | object;
}

function route<B>(call: string, schema: { body: Record<string, unknown> }, handle: (d: PluginDriver, b: B) => Promise<object> | object): Route {
  return { call, schema, handle: handle as Route['handle'] };
}

export const ACTIVATE: w.ActivateResponse = { Implements: ['NetworkDriver', 'IpamDriver'] };
/** Data in the local store; connectivity across hosts (works without swarm, docs/docker-protocol.md §3). */
export const NETWORK_CAPABILITIES: w.NetworkCapabilitiesResponse = { Scope: 'local', ConnectivityScope: 'global' };
/** No replay: pools and leases are persisted in etcd, not rebuilt from Docker's calls. */
export const IPAM_CAPABILITIES: w.IpamCapabilitiesResponse = { RequiresMACAddress: false, RequiresRequestReplay: false };

const EMPTY: w.EmptyResponse = {};

/** The prefix Docker renames the moved interface with (eth0, eth1…). */
export const CONTAINER_IFACE_PREFIX = 'eth';

/** The fields the driver filled in, only non-empty strings: `{}` when it adds nothing. */
function endpointInterface(macAddress: unknown): w.EndpointInterface {
  return typeof macAddress === 'string' && macAddress !== '' ? { MacAddress: macAddress } : {};
}

/** Join's domain answer as the wire's: route type 0 = via NextHop, 1 = connected; "" = no gateway. */
export function joinResponse(r: JoinResult): w.JoinResponse {
  return {
    InterfaceName: { SrcName: r.containerVeth, DstPrefix: CONTAINER_IFACE_PREFIX },
    Gateway: r.gateway === null ? '' : formatIPv4(r.gateway),
    ...(r.gateway6 ? { GatewayIPv6: r.gateway6 } : {}),
    StaticRoutes: [
      ...r.routes.map((x) =>
        x.nextHop === null ? { Destination: formatCidr(x.destination), RouteType: 1 as const } : { Destination: formatCidr(x.destination), RouteType: 0 as const, NextHop: formatIPv4(x.nextHop) },
      ),
      ...(r.routes6 ?? []).map((x) => (x.nextHop === null ? { Destination: x.destination, RouteType: 1 as const } : { Destination: x.destination, RouteType: 0 as const, NextHop: x.nextHop })),
    ],
    ...(r.disableGatewayService ? { DisableGatewayService: true } : {}),
  };
}

export const ROUTES: readonly Route[] = [
  route('Plugin.Activate', s.anyBody, () => ACTIVATE),

  // ---- IpamDriver ----
  route('IpamDriver.GetCapabilities', s.anyBody, () => IPAM_CAPABILITIES),
  route('IpamDriver.GetDefaultAddressSpaces', s.anyBody, (d): w.DefaultAddressSpacesResponse => {
    const r = d.getDefaultAddressSpaces();
    return { LocalDefaultAddressSpace: r.local, GlobalDefaultAddressSpace: r.global };
  }),
  route('IpamDriver.RequestPool', s.requestPoolBody, async (d, b: w.RequestPoolRequest): Promise<w.RequestPoolResponse> => {
    const r = await d.requestPool(n.requestPoolArgs(b));
    return { PoolID: r.poolId, Pool: r.pool, Data: r.data ?? {} };
  }),
  route('IpamDriver.ReleasePool', s.releasePoolBody, async (d, b: w.ReleasePoolRequest) => {
    await d.releasePool(b.PoolID);
    return EMPTY;
  }),
  route('IpamDriver.RequestAddress', s.requestAddressBody, async (d, b: w.RequestAddressRequest): Promise<w.RequestAddressResponse> => {
    const r = await d.requestAddress(n.requestAddressArgs(b));
    return { Address: r.address, Data: r.data ?? {} };
  }),
  route('IpamDriver.ReleaseAddress', s.releaseAddressBody, async (d, b: w.ReleaseAddressRequest) => {
    await d.releaseAddress(b.PoolID, b.Address);
    return EMPTY;
  }),

  // ---- NetworkDriver ----
  route('NetworkDriver.GetCapabilities', s.anyBody, () => NETWORK_CAPABILITIES),
  route('NetworkDriver.CreateNetwork', s.createNetworkBody, async (d, b: w.CreateNetworkRequest) => {
    await d.createNetwork(n.createNetworkArgs(b));
    return EMPTY;
  }),
  route('NetworkDriver.DeleteNetwork', s.networkBody, async (d, b: w.NetworkRequest) => {
    await d.deleteNetwork(b.NetworkID);
    return EMPTY;
  }),
  route('NetworkDriver.CreateEndpoint', s.createEndpointBody, async (d, b: w.CreateEndpointRequest): Promise<w.CreateEndpointResponse> => {
    const r = await d.createEndpoint(n.createEndpointArgs(b));
    return { Interface: endpointInterface(r?.macAddress) };
  }),
  route('NetworkDriver.EndpointOperInfo', s.endpointBody, async (d, b: w.EndpointRequest): Promise<w.EndpointOperInfoResponse> => {
    const r = await d.endpointOperInfo(b.NetworkID, b.EndpointID);
    return { Value: r ?? {} };
  }),
  route('NetworkDriver.DeleteEndpoint', s.endpointBody, async (d, b: w.EndpointRequest) => {
    await d.deleteEndpoint(b.NetworkID, b.EndpointID);
    return EMPTY;
  }),
  route('NetworkDriver.Join', s.joinBody, async (d, b: w.JoinRequest): Promise<w.JoinResponse> => {
    const r = await d.join(n.joinArgs(b));
    return r && joinResponse(r); // no answer at all is the server's INTERNAL "returned no answer"
  }),
  route('NetworkDriver.Leave', s.endpointBody, async (d, b: w.EndpointRequest) => {
    await d.leave(b.NetworkID, b.EndpointID);
    return EMPTY;
  }),
  route('NetworkDriver.ProgramExternalConnectivity', s.programExternalConnectivityBody, async (d, b: w.ProgramExternalConnectivityRequest) => {
    await d.programExternalConnectivity(n.externalConnectivityArgs(b));
    return EMPTY;
  }),
  route('NetworkDriver.RevokeExternalConnectivity', s.endpointBody, async (d, b: w.EndpointRequest) => {
    await d.revokeExternalConnectivity(b.NetworkID, b.EndpointID);
    return EMPTY;
  }),
  // Swarm-only calls: nothing to do for a local-scope network, but answer so Docker is content.
  route('NetworkDriver.AllocateNetwork', s.allocateNetworkBody, (): w.AllocateNetworkResponse => ({ Options: {} })),
  route('NetworkDriver.FreeNetwork', s.networkBody, () => EMPTY),
  route('NetworkDriver.DiscoverNew', s.anyBody, () => EMPTY),
  route('NetworkDriver.DiscoverDelete', s.anyBody, () => EMPTY),
];
