/**
 * JSON schemas for the request bodies (fastify validates them with ajv before a handler runs).
 *
 * Permissive where Docker varies, strict where a handler relies on a type:
 * - unknown keys are allowed everywhere (newer engines add fields; additionalProperties is never false);
 * - `null` is accepted wherever Go may marshal a nil map, slice or pointer;
 * - ids the driver keys on are non-empty strings; nothing is coerced (ajv runs with coerceTypes off,
 *   so `"NetworkID": 5` is refused rather than turned into "5").
 * The handlers (routes.ts) turn null/missing into {} / [] / "" afterwards.
 */

type Schema = Record<string, unknown>;

const id: Schema = { type: 'string', minLength: 1 };
const str: Schema = { type: 'string' };
const strOrNull: Schema = { type: ['string', 'null'] };
const boolOrNull: Schema = { type: ['boolean', 'null'] };
const anyObjectOrNull: Schema = { type: ['object', 'null'] };
const stringMapOrNull: Schema = { type: ['object', 'null'], additionalProperties: { type: 'string' } };
const port: Schema = { type: 'integer', minimum: 0, maximum: 65535 };

function body(required: string[], properties: Record<string, Schema>): { body: Schema } {
  return { body: { type: 'object', required, properties } };
}

const ipamData: Schema = {
  type: 'object',
  required: ['Pool'],
  properties: {
    AddressSpace: str,
    Pool: str,
    Gateway: strOrNull,
    AuxAddresses: stringMapOrNull,
  },
};
const ipamDataList: Schema = { type: ['array', 'null'], items: ipamData };

const portBinding: Schema = {
  type: 'object',
  required: ['Proto', 'Port'],
  properties: {
    Proto: { type: 'integer', minimum: 0, maximum: 255 },
    IP: strOrNull,
    Port: port,
    HostIP: strOrNull,
    HostPort: port,
    HostPortEnd: port,
  },
};
const transportPort: Schema = {
  type: 'object',
  required: ['Proto', 'Port'],
  properties: { Proto: { type: 'integer', minimum: 0, maximum: 255 }, Port: port },
};

/** A body that must be a JSON object (or empty), with no required field. */
export const anyBody = { body: anyObjectOrNull };

/** DeleteNetwork, FreeNetwork. */
export const networkBody = body(['NetworkID'], { NetworkID: id });

/** EndpointOperInfo, DeleteEndpoint, Leave, RevokeExternalConnectivity. */
export const endpointBody = body(['NetworkID', 'EndpointID'], { NetworkID: id, EndpointID: id });

export const requestPoolBody = body([], {
  AddressSpace: strOrNull,
  Pool: strOrNull,
  SubPool: strOrNull,
  Options: stringMapOrNull,
  V6: boolOrNull,
});

export const releasePoolBody = body(['PoolID'], { PoolID: id });

export const requestAddressBody = body(['PoolID'], { PoolID: id, Address: strOrNull, Options: stringMapOrNull });

export const releaseAddressBody = body(['PoolID', 'Address'], { PoolID: id, Address: id });

export const createNetworkBody = body(['NetworkID'], {
  NetworkID: id,
  Options: {
    type: ['object', 'null'],
    properties: {
      'com.docker.network.enable_ipv6': boolOrNull,
      'com.docker.network.generic': stringMapOrNull,
      'com.docker.network.internal': boolOrNull,
    },
  },
  IPv4Data: ipamDataList,
  IPv6Data: ipamDataList,
});

export const allocateNetworkBody = body(['NetworkID'], {
  NetworkID: id,
  Options: anyObjectOrNull,
  IPv4Data: ipamDataList,
  IPv6Data: ipamDataList,
});

export const createEndpointBody = body(['NetworkID', 'EndpointID'], {
  NetworkID: id,
  EndpointID: id,
  Interface: {
    type: ['object', 'null'],
    properties: { Address: strOrNull, AddressIPv6: strOrNull, MacAddress: strOrNull },
  },
  Options: anyObjectOrNull,
});

export const joinBody = body(['NetworkID', 'EndpointID', 'SandboxKey'], {
  NetworkID: id,
  EndpointID: id,
  SandboxKey: str,
  Options: anyObjectOrNull,
});

export const programExternalConnectivityBody = body(['NetworkID', 'EndpointID'], {
  NetworkID: id,
  EndpointID: id,
  Options: {
    type: ['object', 'null'],
    properties: {
      'com.docker.network.portmap': { type: ['array', 'null'], items: portBinding },
      'com.docker.network.endpoint.exposedports': { type: ['array', 'null'], items: transportPort },
    },
  },
});
