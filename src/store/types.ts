/**
 * The control plane as the rest of the daemon sees it. Only src/store imports `etcd3`.
 * Everything keyed by overlay: one `OverlayStore` per flannel prefix (e.g. /coreos.com/network).
 */
import type { EventEmitter } from 'node:events';
import type { Cidr } from '../domain/ipv4';
import type { Cidr6 } from '../domain/ipv6';
import type { Lease, LeaseAttrs } from '../domain/lease';
import type { NetworkConfig } from '../domain/network-config';

export type LeaseEvent =
  | { type: 'snapshot'; leases: Lease[] } // the full set: after start, reconnect gaps, compaction
  | { type: 'added'; lease: Lease } // new or changed (a PUT)
  | { type: 'removed'; lease: Lease }; // deleted or expired, with the value it had

/** Config of one overlay: present and valid, absent, or present but broken. */
export type ConfigState =
  | { state: 'ok'; config: NetworkConfig; raw: string }
  | { state: 'missing' }
  | { state: 'invalid'; error: string; raw: string };

export interface AddressRecord {
  subnet: Cidr;
  ip: number;
  owner: string; // who holds it: an endpoint id, "gateway", or a Docker pool id
}

/** Events of a LeaseKeeper (typed by the `on` overloads of the implementation). */
export type KeeperEvent =
  | { type: 'acquired'; lease: Lease } // first time, or re-acquired after a loss (subnet may differ)
  | { type: 'renewed'; lease: Lease }
  | { type: 'lost'; subnet: Cidr; reason: string }; // our key vanished or renewal failed past expiry

export interface LeaseKeeperOptions {
  publicIP: string;
  /** attrs to publish (VtepMAC etc.), computed from the config once it is known */
  attrsFor(config: NetworkConfig): LeaseAttrs;
  ttlSec: number;
  renewMarginSec: number;
  /** The subnet this host had before, if known (flanneld: subnet.env); taken again if still free. */
  previousSubnet?(): Cidr | null;
  /** The v6 subnet this host had before (flanneld: subnet.env's FLANNEL_IPV6_SUBNET), likewise. */
  previousSubnet6?(): Cidr6 | null;
}

export interface LeaseKeeper extends EventEmitter {
  /** Acquire (or reuse by PublicIP) a lease; retries races and outages until `signal` aborts. */
  acquire(config: NetworkConfig, signal?: AbortSignal): Promise<Lease>;
  current(): Lease | null;
  /** Why no lease is held yet, in our words (etcd refused, no free subnet, …); null if none known. */
  problem?(): string | null;
  stop(): Promise<void>; // stops renewing; never deletes the lease (as flanneld)
}
