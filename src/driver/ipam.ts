/**
 * IpamDriver use cases. A pool is this host's lease of an overlay: every host asks for "a pool"
 * and gets its own subnet of the same overlay, so containers on different hosts never collide.
 * Addresses come from the lease and are recorded in etcd (create-if-absent), so a restarted
 * plugin, or two plugins on one lease, never hand out an address twice.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { addressWithPrefix, gatewayOf } from '../domain/addresses';
import { cidrEquals, formatCidr, formatIPv4, parseCidr, parseIPv4 } from '../domain/ipv4';
import { conflict, invalid, unsupported } from '../errors';
import type { RequestAddressArgs, RequestPoolArgs, RequestPoolResult } from './types';
import { IPV6_DOCKER_REFUSAL } from '../domain/network-config-v6';
import { OverlayDirectory, OverlayHandle, parsePoolId, poolIdOf } from './overlays';

export const ADDRESS_SPACE_LOCAL = 'overlay-flannel-local';
export const ADDRESS_SPACE_GLOBAL = 'overlay-flannel-global';
export const GATEWAY_REQUEST = 'com.docker.network.gateway';
export const READY_TIMEOUT_MS = 10_000;

export class Ipam {
  constructor(
    private readonly overlays: OverlayDirectory,
    private readonly log: Logger,
  ) {}

  getDefaultAddressSpaces() {
    return { local: ADDRESS_SPACE_LOCAL, global: ADDRESS_SPACE_GLOBAL };
  }

  async requestPool(a: RequestPoolArgs): Promise<RequestPoolResult> {
    if (a.v6) throw unsupported(IPV6_DOCKER_REFUSAL);
    const overlay = await this.overlays.byName(a.options.network);
    await overlay.whenReady(READY_TIMEOUT_MS);
    const lease = overlay.lease();
    if (!lease) throw noLeaseNow(overlay);
    const subnet = lease.subnet;
    if (a.pool && !cidrEquals(parseCidr(a.pool, '--subnet'), subnet)) {
      throw invalid(
        `--subnet ${a.pool} is not this host's subnet of overlay "${overlay.name}" (${formatCidr(subnet)}): every host leases its own subnet, ` +
          `so create the network without --subnet (or with --subnet ${formatCidr(subnet)} on this host only)`,
      );
    }
    if (a.subPool) throw unsupported('--ip-range is not supported: each host already has its own subnet of the overlay');
    return {
      poolId: poolIdOf(overlay.name, subnet),
      pool: formatCidr(subnet),
      data: { [GATEWAY_REQUEST]: addressWithPrefix(gatewayOf(subnet), subnet) },
    };
  }

  async releasePool(poolId: string): Promise<void> {
    parsePoolId(poolId); // a malformed id is a clear error; a known one needs no work
  }

  async requestAddress(a: RequestAddressArgs): Promise<{ address: string; data: Record<string, string> }> {
    const { overlay, subnet } = await this.poolOf(a.poolId);
    if (a.options.RequestAddressType === GATEWAY_REQUEST) {
      const gw = gatewayOf(subnet);
      if (a.address && parseIPv4(a.address, '--gateway') !== gw) {
        throw invalid(`--gateway ${a.address} is not possible: the gateway of ${formatCidr(subnet)} is ${formatIPv4(gw)}`);
      }
      return { address: addressWithPrefix(gw, subnet), data: {} };
    }
    const owner = `docker/${randomBytes(6).toString('hex')}`;
    const ip = await overlay.addresses.allocate(subnet, owner, a.address || undefined);
    this.log.debug({ pool: a.poolId, address: formatIPv4(ip) }, 'address allocated');
    return { address: addressWithPrefix(ip, subnet), data: {} };
  }

  async releaseAddress(poolId: string, address: string): Promise<void> {
    const { overlay, subnet } = await this.poolOf(poolId, false);
    const ip = parseIPv4(address.split('/')[0], 'address to release');
    if (ip === gatewayOf(subnet)) return;
    await overlay.addresses.release(subnet, ip);
  }

  /**
   * The overlay and subnet of a pool; with `current`, the subnet must be this host's lease (waiting
   * briefly for the lease, e.g. just after a restart): a pool id naming an overlay without a lease
   * here, or another subnet, never gets an address.
   */
  private async poolOf(poolId: string, current = true): Promise<{ overlay: OverlayHandle; subnet: ReturnType<typeof parseCidr> }> {
    const { overlay: name, subnet } = parsePoolId(poolId);
    const overlay = await this.overlays.byName(name);
    if (!current) return { overlay, subnet };
    await overlay.whenReady(READY_TIMEOUT_MS);
    const lease = overlay.lease();
    if (!lease) throw noLeaseNow(overlay);
    if (!cidrEquals(lease.subnet, subnet)) {
      throw conflict(
        `this host's lease of overlay "${name}" changed from ${formatCidr(subnet)} to ${formatCidr(lease.subnet)} ` +
          '(it expired while the host was away and was taken): remove and re-create the Docker network on this host',
      );
    }
    return { overlay, subnet };
  }
}

/** The lease went away after the overlay was ready (expired, revoked, etcd lost): say why, in the agent's words. */
function noLeaseNow(overlay: OverlayHandle): Error {
  const why = overlay.notReadyReason?.();
  return conflict(`overlay "${overlay.name}" has no lease on this host right now${why ? ` (${why})` : ''}; retry in a few seconds`);
}
