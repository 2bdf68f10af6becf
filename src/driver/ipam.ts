/**
 * IpamDriver use cases. A pool is this host's lease of an overlay: every host asks for "a pool"
 * and gets its own subnet of the same overlay, so containers on different hosts never collide.
 * Addresses come from the lease and are recorded in etcd (create-if-absent), so a restarted
 * plugin, or two plugins on one lease, never hand out an address twice; the v6 ones of a
 * `--ipv6` network too (random in the v6 lease, src/store/address6-store.ts). No address state is
 * kept in this process: a release after a restart deletes the record like any other.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { addressWithPrefix, gatewayOf } from '../domain/addresses';
import { cidrEquals, formatCidr, formatIPv4, parseCidr, parseIPv4 } from '../domain/ipv4';
import { conflict, invalid, unsupported } from '../errors';
import type { RequestAddressArgs, RequestPoolArgs, RequestPoolResult } from './types';
import { address6WithPrefix, gateway6Of } from '../domain/addresses-v6';
import { cidr6Equals, formatCidr6, formatIPv6, parseCidr6, parseIPv6 } from '../domain/ipv6';
import { PendingReleases, type RetryOutcome } from './pending-releases';
import { DEFAULT_OVERLAY, isPoolId6, OverlayDirectory, OverlayHandle, parsePoolId, parsePoolId6, poolIdOf, poolIdOf6 } from './overlays';

export const ADDRESS_SPACE_LOCAL = 'overlay-flannel-local';
export const ADDRESS_SPACE_GLOBAL = 'overlay-flannel-global';
export const GATEWAY_REQUEST = 'com.docker.network.gateway';
export const READY_TIMEOUT_MS = 10_000;

export class Ipam {
  /** Releases etcd could not take when Docker asked, retried until it does (pending-releases.ts). */
  readonly pendingReleases: PendingReleases;

  constructor(
    private readonly overlays: OverlayDirectory,
    private readonly log: Logger,
    retry?: { initialMs?: number; maxMs?: number },
  ) {
    this.pendingReleases = new PendingReleases(log, retry);
  }

  getDefaultAddressSpaces() {
    return { local: ADDRESS_SPACE_LOCAL, global: ADDRESS_SPACE_GLOBAL };
  }

  async requestPool(a: RequestPoolArgs): Promise<RequestPoolResult> {
    if (a.v6) return this.requestPool6(a);
    const overlay = await this.overlays.byName(a.options.network);
    await overlay.whenReady(READY_TIMEOUT_MS);
    if (overlay.ipv6Only?.()) throw ipv6OnlyRefusal(overlay);
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

  /**
   * The v6 pool of a `--ipv6` network: this host's v6 lease of the overlay (a dual-stack overlay:
   * `EnableIPv6` and `IPv6Network` in its config). A v4-only overlay is refused, saying how to
   * make it dual-stack.
   */
  private async requestPool6(a: RequestPoolArgs): Promise<RequestPoolResult> {
    const overlay = await this.overlays.byName(a.options.network);
    await overlay.whenReady(READY_TIMEOUT_MS);
    if (overlay.ipv6Only?.()) throw ipv6OnlyRefusal(overlay);
    const lease = overlay.lease();
    if (!lease) throw noLeaseNow(overlay);
    const subnet6 = lease.subnet6;
    if (!subnet6) {
      throw unsupported(
        `--ipv6: overlay "${overlay.name}" has no IPv6 half on this host (its config has no IPv6Network, or this host's lease predates it): ` +
          `make it dual-stack with overlay-flannel config set --ipv6-network CIDR (e.g. --ipv6-network fd00:10::/48, with its --network and --name as before), ` +
          'restart the plugins so they lease v6 subnets, then create the network again; or create it without --ipv6',
      );
    }
    if (a.pool && !cidr6Equals(parseCidr6(a.pool, '--subnet'), subnet6)) {
      throw invalid(`--subnet ${a.pool} is not this host's IPv6 subnet of overlay "${overlay.name}" (${formatCidr6(subnet6)}): create the network without an IPv6 --subnet`);
    }
    if (a.subPool) throw unsupported('--ip-range is not supported: each host already has its own subnet of the overlay');
    return {
      poolId: poolIdOf6(overlay.name, subnet6),
      pool: formatCidr6(subnet6),
      data: { [GATEWAY_REQUEST]: address6WithPrefix(gateway6Of(subnet6), subnet6) },
    };
  }

  async releasePool(poolId: string): Promise<void> {
    if (isPoolId6(poolId)) {
      parsePoolId6(poolId);
      return;
    }
    parsePoolId(poolId); // a malformed id is a clear error; a known one needs no work
  }

  async requestAddress(a: RequestAddressArgs): Promise<{ address: string; data: Record<string, string> }> {
    if (isPoolId6(a.poolId)) return this.requestAddress6(a);
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

  /** A v6 address: `--ip6` if given, else random in the lease; recorded in etcd as a v4 one. */
  private async requestAddress6(a: RequestAddressArgs): Promise<{ address: string; data: Record<string, string> }> {
    const { overlay, subnet6 } = await this.pool6Of(a.poolId);
    const gw = gateway6Of(subnet6);
    if (a.options.RequestAddressType === GATEWAY_REQUEST) {
      if (a.address && parseIPv6(a.address, '--gateway') !== gw) {
        throw invalid(`--gateway ${a.address} is not possible: the IPv6 gateway of ${formatCidr6(subnet6)} is ${formatIPv6(gw)}`);
      }
      return { address: address6WithPrefix(gw, subnet6), data: {} };
    }
    const owner = `docker/${randomBytes(6).toString('hex')}`;
    const ip = await overlay.addresses6.allocate(subnet6, owner, a.address || undefined);
    this.log.debug({ pool: a.poolId, address: formatIPv6(ip) }, 'IPv6 address allocated');
    return { address: address6WithPrefix(ip, subnet6), data: {} };
  }

  async releaseAddress(poolId: string, address: string): Promise<void> {
    if (isPoolId6(poolId)) {
      // As v4: the pool's subnet, whether or not it is still this host's lease (the record is ours to delete).
      const { overlay: name, subnet6 } = parsePoolId6(poolId);
      const ip = parseIPv6(address.split('/')[0], 'address to release');
      if (ip === gateway6Of(subnet6)) return;
      const store = (await this.overlays.byName(name)).addresses6;
      const guarded = store.releaseIfCreatedBefore && ((t: number) => store.releaseIfCreatedBefore!(subnet6, ip, t));
      return this.releaseRecord(`${name} ${formatIPv6(ip)}`, `${formatIPv6(ip)} in ${formatCidr6(subnet6)}`, () => store.release(subnet6, ip), guarded);
    }
    const { overlay, subnet } = await this.poolOf(poolId, false);
    const ip = parseIPv4(address.split('/')[0], 'address to release');
    if (ip === gatewayOf(subnet)) return;
    const store = overlay.addresses;
    const guarded = store.releaseIfCreatedBefore && ((t: number) => store.releaseIfCreatedBefore!(subnet, ip, t));
    return this.releaseRecord(`${overlay.name} ${formatIPv4(ip)}`, `${formatIPv4(ip)} in ${formatCidr(subnet)}`, () => store.release(subnet, ip), guarded);
  }

  /**
   * Docker's release of one address record, v4 or v6: now; if etcd cannot take it, retried by
   * pendingReleases with `guarded`, bound to the time Docker asked (a retry never deletes a newer record).
   */
  private releaseRecord(key: string, what: string, now: () => Promise<unknown>, guarded?: (createdBefore: number) => Promise<RetryOutcome>): Promise<void> {
    const askedAt = Date.now();
    return this.pendingReleases.release(key, what, now, guarded && (() => guarded(askedAt)));
  }

  /** The v6 subnet of a v6 pool, which must still be this host's v6 lease. */
  private async pool6Of(poolId: string): Promise<{ overlay: OverlayHandle; subnet6: ReturnType<typeof parseCidr6> }> {
    const { overlay: name, subnet6 } = parsePoolId6(poolId);
    const overlay = await this.overlays.byName(name);
    await overlay.whenReady(READY_TIMEOUT_MS);
    const lease = overlay.lease();
    if (!lease) throw noLeaseNow(overlay);
    if (!lease.subnet6 || !cidr6Equals(lease.subnet6, subnet6)) {
      throw conflict(
        `this host's IPv6 lease of overlay "${name}" is no longer ${formatCidr6(subnet6)} (now ${lease.subnet6 ? formatCidr6(lease.subnet6) : 'none'}): remove and re-create the Docker network on this host`,
      );
    }
    return { overlay, subnet6 };
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

/**
 * An IPv6-only overlay (EnableIPv4 false) leases no v4 subnets, and Docker 20.10 asks every network
 * for an IPv4 pool first (it has no IPv6-only networks; docs/ipv6.md §8): refused, v4 and v6 alike.
 */
function ipv6OnlyRefusal(overlay: OverlayHandle): Error {
  const named = overlay.name === DEFAULT_OVERLAY ? '' : ` --name ${overlay.name}`;
  return unsupported(
    `overlay "${overlay.name}" is IPv6-only (EnableIPv4 false): it leases no IPv4 subnets, and Docker asks every network for an IPv4 pool ` +
      "(Docker 20.10 has no IPv6-only networks), so no Docker network can use it; it carries only the hosts' own IPv6 (flannel-v6.<VNI>, flanneld peers included). " +
      `For containers make it dual-stack: overlay-flannel config set${named} --network CIDR --ipv6-network CIDR (e.g. --network 10.1.0.0/16), ` +
      'restart the plugins, then create the network (with --ipv6 for v6 addresses)',
  );
}
