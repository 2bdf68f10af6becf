/**
 * How the driver sees the overlays this host has joined: by name (`--ipam-opt network=NAME`,
 * "default" without it), by pool id, and by address. Pool ids name the overlay and the subnet
 * ("overlay-flannel/default/10.1.15.0/24"), so every IPAM call after RequestPool is stateless.
 */
import type { RetryOutcome } from './pending-releases';
import type { Cidr } from '../domain/ipv4';
import { formatCidr, parseCidr } from '../domain/ipv4';
import { Cidr6, formatCidr6, parseCidr6 } from '../domain/ipv6';
import type { Lease } from '../domain/lease';
import { invalid } from '../errors';

export const DEFAULT_OVERLAY = 'default';

export interface AddressAllocator {
  allocate(subnet: Cidr, owner: string, requested?: string): Promise<number>;
  release(subnet: Cidr, ip: number | string): Promise<boolean>;
  /** A retried release (pending-releases.ts): delete the record only if created before `before` (ms). */
  releaseIfCreatedBefore?(subnet: Cidr, ip: number, before: number): Promise<RetryOutcome>;
}

/** v6 addresses of a `--ipv6` network, recorded in etcd (src/store/address6-store.ts). */
export interface Address6Allocator {
  allocate(subnet6: Cidr6, owner: string, requested?: string): Promise<bigint>;
  release(subnet6: Cidr6, ip: bigint | string): Promise<boolean>;
  releaseIfCreatedBefore?(subnet6: Cidr6, ip: bigint, before: number): Promise<RetryOutcome>;
}

/** One joined overlay, as the driver needs it. */
export interface OverlayHandle {
  readonly name: string;
  readonly prefix: string;
  /** This host's lease, once held (null on an IPv6-only overlay: it has no v4 subnet). */
  lease(): Lease | null;
  /** Whether the overlay is IPv6-only (`EnableIPv4: false`): Docker 20.10 networks cannot use it (absent in fakes). */
  ipv6Only?(): boolean;
  /** The overlay's whole Network, once its config is loaded. */
  network(): Cidr | null;
  /** The overlay's IPv6Network, on a dual-stack overlay (absent in fakes). */
  network6?(): Cidr6 | null;
  /** MTU for bridges and veths (vxlan: parent − 50). */
  mtu(): number | null;
  /** Its vxlan device, once the dataplane exists (null for host-gw). */
  vxlan(): { vni: number; device: string; directRouting: boolean } | null;
  /** Flood entries for this overlay's overlay-flannel peers on or off (multicast; absent in fakes). */
  setFlooding?(on: boolean): void;
  /** Resolves when the lease is held and the device is up; rejects after `timeoutMs` with the reason. */
  whenReady(timeoutMs: number): Promise<void>;
  /** Why it holds no lease right now (the agent's words, e.g. what etcd said); absent in fakes. */
  notReadyReason?(): string;
  readonly addresses: AddressAllocator;
  readonly addresses6: Address6Allocator;
}

export interface OverlayDirectory {
  /** The overlay for `--ipam-opt network=NAME` (undefined/'' = default); NOT_FOUND/INVALID if unknown. */
  byName(name: string | undefined): Promise<OverlayHandle>;
  /** Every overlay joined so far. */
  all(): OverlayHandle[];
}

const POOL_PREFIX = 'overlay-flannel/';

export function poolIdOf(overlay: string, subnet: Cidr): string {
  return `${POOL_PREFIX}${overlay}/${formatCidr(subnet)}`;
}

export function parsePoolId(poolId: string): { overlay: string; subnet: Cidr } {
  const m = /^overlay-flannel\/([^/]+)\/(\d+\.\d+\.\d+\.\d+\/\d+)$/.exec(poolId);
  if (!m) throw invalid(`pool "${poolId}" was not made by overlay-flannel (expected ${POOL_PREFIX}<overlay>/<subnet>)`);
  return { overlay: m[1], subnet: parseCidr(m[2], 'pool subnet') };
}

/** The v6 pool of a `--ipv6` network: "overlay-flannel/default/fd00:10:0:5::/64". */
export function poolIdOf6(overlay: string, subnet6: Cidr6): string {
  return `${POOL_PREFIX}${overlay}/${formatCidr6(subnet6)}`;
}

export function isPoolId6(poolId: string): boolean {
  return /^overlay-flannel\/[^/]+\/[0-9a-f:]+\/\d+$/.test(poolId) && poolId.includes(':');
}

export function parsePoolId6(poolId: string): { overlay: string; subnet6: Cidr6 } {
  const m = /^overlay-flannel\/([^/]+)\/([0-9a-f:]+\/\d+)$/.exec(poolId);
  if (!m) throw invalid(`pool "${poolId}" was not made by overlay-flannel (expected ${POOL_PREFIX}<overlay>/<IPv6 subnet>)`);
  return { overlay: m[1], subnet6: parseCidr6(m[2], 'pool subnet') };
}
