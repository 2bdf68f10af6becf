/**
 * FakeDriver: a PluginDriver for API tests. It records every call with its (normalised) arguments,
 * answers with canned results (override any of them), and can be told to fail or to hold calls:
 * - fail(method, error, times?) — throw `error` on the next `times` calls (default: every call);
 * - hold(method) — the next call waits until the returned release() runs (concurrency tests);
 * - results — the answers, replaceable per test.
 */
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
} from '../../src/driver/types';
import { parseCidr, parseIPv4 } from '../../src/domain/ipv4';

export type DriverMethod = keyof PluginDriver;

export interface RecordedCall {
  method: DriverMethod;
  args: unknown[];
}

export interface FakeResults {
  defaultAddressSpaces: { local: string; global: string };
  requestPool: RequestPoolResult;
  requestAddress: { address: string; data: Record<string, string> };
  createEndpoint: CreateEndpointResult;
  endpointOperInfo: Record<string, unknown>;
  join: JoinResult;
}

export function defaultResults(): FakeResults {
  return {
    defaultAddressSpaces: { local: 'overlay-local', global: 'overlay-global' },
    requestPool: { poolId: 'pool-10.77.5.0-24', pool: '10.77.5.0/24', data: {} },
    requestAddress: { address: '10.77.5.2/24', data: {} },
    createEndpoint: {},
    endpointOperInfo: {},
    join: { containerVeth: 'tc51776fd', gateway: parseIPv4('10.77.5.1'), routes: [{ destination: parseCidr('10.77.0.0/16'), nextHop: parseIPv4('10.77.5.1') }] },
  };
}

export class FakeDriver implements PluginDriver {
  readonly calls: RecordedCall[] = [];
  results: FakeResults = defaultResults();
  private readonly failures = new Map<DriverMethod, { error: unknown; times: number }>();
  private readonly holds = new Map<DriverMethod, Promise<void>[]>();

  /** Throw `error` from `method`: on every call, or on the next `times` calls. */
  fail(method: DriverMethod, error: unknown, times = Infinity): void {
    this.failures.set(method, { error, times });
  }

  /** The next call of `method` waits (after being recorded) until release() is called. */
  hold(method: DriverMethod): () => void {
    let release!: () => void;
    const p = new Promise<void>((r) => (release = r));
    this.holds.set(method, [...(this.holds.get(method) ?? []), p]);
    return release;
  }

  /** The recorded calls of one method, arguments only. */
  argsOf(method: DriverMethod): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args);
  }

  private record(method: DriverMethod, args: unknown[]): void {
    this.calls.push({ method, args });
    const f = this.failures.get(method);
    if (f && f.times > 0) {
      f.times -= 1;
      throw f.error;
    }
  }

  private async enter(method: DriverMethod, args: unknown[]): Promise<void> {
    this.record(method, args);
    const held = this.holds.get(method);
    const p = held?.shift();
    if (p) await p;
  }

  getDefaultAddressSpaces() {
    this.record('getDefaultAddressSpaces', []);
    return this.results.defaultAddressSpaces;
  }
  async requestPool(a: RequestPoolArgs): Promise<RequestPoolResult> {
    await this.enter('requestPool', [a]);
    return this.results.requestPool;
  }
  async releasePool(poolId: string): Promise<void> {
    await this.enter('releasePool', [poolId]);
  }
  async requestAddress(a: RequestAddressArgs) {
    await this.enter('requestAddress', [a]);
    return this.results.requestAddress;
  }
  async releaseAddress(poolId: string, address: string): Promise<void> {
    await this.enter('releaseAddress', [poolId, address]);
  }
  async createNetwork(a: CreateNetworkArgs): Promise<void> {
    await this.enter('createNetwork', [a]);
  }
  async deleteNetwork(networkId: string): Promise<void> {
    await this.enter('deleteNetwork', [networkId]);
  }
  async createEndpoint(a: CreateEndpointArgs): Promise<CreateEndpointResult> {
    await this.enter('createEndpoint', [a]);
    return this.results.createEndpoint;
  }
  async endpointOperInfo(networkId: string, endpointId: string) {
    await this.enter('endpointOperInfo', [networkId, endpointId]);
    return this.results.endpointOperInfo;
  }
  async deleteEndpoint(networkId: string, endpointId: string): Promise<void> {
    await this.enter('deleteEndpoint', [networkId, endpointId]);
  }
  async join(a: JoinArgs): Promise<JoinResult> {
    await this.enter('join', [a]);
    return this.results.join;
  }
  async leave(networkId: string, endpointId: string): Promise<void> {
    await this.enter('leave', [networkId, endpointId]);
  }
  async programExternalConnectivity(a: ExternalConnectivityArgs): Promise<void> {
    await this.enter('programExternalConnectivity', [a]);
  }
  async revokeExternalConnectivity(networkId: string, endpointId: string): Promise<void> {
    await this.enter('revokeExternalConnectivity', [networkId, endpointId]);
  }
}
