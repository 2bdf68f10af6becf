/**
 * Wire requests (already schema-checked) → the PluginDriver's argument objects.
 * Go marshals nil maps and slices as null and omits empty pointers, so every optional map becomes
 * {}, every list [], every optional string "" here, once; the driver never sees null.
 * Maps are rebuilt with Object.fromEntries (define, not assign: a "__proto__" key stays a key).
 */
import type {
  CreateEndpointArgs,
  CreateNetworkArgs,
  ExternalConnectivityArgs,
  IpamData,
  JoinArgs,
  RequestAddressArgs,
  RequestPoolArgs,
} from '../driver/types';
import type { PortBinding } from '../domain/port-rules';
import type {
  CreateEndpointRequest,
  CreateNetworkRequest,
  IPAMData,
  JoinRequest,
  ProgramExternalConnectivityRequest,
  RequestAddressRequest,
  RequestPoolRequest,
  WirePortBinding,
  WireTransportPort,
} from './wire';

export const PORTMAP_OPTION = 'com.docker.network.portmap';
export const EXPOSED_PORTS_OPTION = 'com.docker.network.endpoint.exposedports';
export const GENERIC_OPTION = 'com.docker.network.generic';
export const ENABLE_IPV6_OPTION = 'com.docker.network.enable_ipv6';
export const INTERNAL_OPTION = 'com.docker.network.internal';

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A string map; null/absent → {}; values that are not strings are dropped (the schema refuses them). */
export function stringMap(v: unknown): Record<string, string> {
  if (!isPlainObject(v)) return {};
  return Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/** Any object map; null/absent → {}. A copy, so the driver cannot alias the request. */
export function objectMap(v: unknown): Record<string, unknown> {
  return isPlainObject(v) ? Object.fromEntries(Object.entries(v)) : {};
}

function text(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function list<T>(v: T[] | null | undefined): T[] {
  return Array.isArray(v) ? v : [];
}

export function requestPoolArgs(b: RequestPoolRequest): RequestPoolArgs {
  return {
    addressSpace: text(b.AddressSpace),
    pool: text(b.Pool),
    subPool: text(b.SubPool),
    options: stringMap(b.Options),
    v6: b.V6 === true,
  };
}

export function requestAddressArgs(b: RequestAddressRequest): RequestAddressArgs {
  return { poolId: b.PoolID, address: text(b.Address), options: stringMap(b.Options) };
}

function ipamData(d: IPAMData): IpamData {
  const out: IpamData = { addressSpace: text(d.AddressSpace), pool: d.Pool };
  if (typeof d.Gateway === 'string' && d.Gateway !== '') out.gateway = d.Gateway;
  if (isPlainObject(d.AuxAddresses)) out.auxAddresses = stringMap(d.AuxAddresses);
  return out;
}

export function createNetworkArgs(b: CreateNetworkRequest): CreateNetworkArgs {
  const o = objectMap(b.Options);
  return {
    networkId: b.NetworkID,
    options: {
      generic: stringMap(o[GENERIC_OPTION]),
      enableIPv6: o[ENABLE_IPV6_OPTION] === true,
      internal: o[INTERNAL_OPTION] === true,
    },
    ipv4Data: list(b.IPv4Data).map(ipamData),
    ipv6Data: list(b.IPv6Data).map(ipamData),
  };
}

export function createEndpointArgs(b: CreateEndpointRequest): CreateEndpointArgs {
  const i = b.Interface ?? {};
  return {
    networkId: b.NetworkID,
    endpointId: b.EndpointID,
    address: text(i.Address),
    addressIPv6: text(i.AddressIPv6),
    macAddress: text(i.MacAddress),
    options: objectMap(b.Options),
  };
}

export function joinArgs(b: JoinRequest): JoinArgs {
  return { networkId: b.NetworkID, endpointId: b.EndpointID, sandboxKey: b.SandboxKey, options: objectMap(b.Options) };
}

function portBinding(p: WirePortBinding): PortBinding {
  const hostPort = p.HostPort ?? 0;
  return {
    proto: p.Proto,
    ip: text(p.IP),
    port: p.Port,
    hostIP: text(p.HostIP),
    hostPort,
    hostPortEnd: p.HostPortEnd ?? hostPort,
  };
}

export function externalConnectivityArgs(b: ProgramExternalConnectivityRequest): ExternalConnectivityArgs {
  const o = objectMap(b.Options);
  return {
    networkId: b.NetworkID,
    endpointId: b.EndpointID,
    portMap: list(o[PORTMAP_OPTION] as WirePortBinding[] | null).map(portBinding),
    exposedPorts: list(o[EXPOSED_PORTS_OPTION] as WireTransportPort[] | null).map((p) => ({ proto: p.Proto, port: p.Port })),
  };
}
