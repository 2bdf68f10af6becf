/**
 * The store's door (see README.md here). The store as the rest of the daemon builds it: one etcd client per process, one OverlayStore per
 * flannel prefix. Everything made through it is stopped by close(), in order: keepers and watchers
 * first (they never delete anything, except that a name registry revokes its short lease, so this host's
 * DNS names go at once on a clean stop), then the client.
 */
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { Settings } from '../config/settings';
import { AddressStore } from './address-store';
import { Address6Store } from './address6-store';
import { ConfigStore } from './config-store';
import { createEtcdClient, EtcdClientOptions } from './etcd-client';
import { EtcdLeaseKeeper, KeeperTuning } from './lease-keeper';
import { LeaseWatcher } from './lease-watcher';
import { overlayKeys, OverlayKeys } from './keys';
import { NetworkRecordStore } from './network-records';
import { listNameRecords, NameRegistry, NameRegistryOptions, NameWatcher } from './name-records';
import type { NameRecord } from '../domain/name-record';
import { etcdHealthOf, EtcdHealthView } from './etcd-health';
import { PathReportPublisher, PathReportWatcher } from './path-reports';
import type { LeaseKeeperOptions } from './types';

export { AddressStore, type DetailedAddressRecord } from './address-store';
export { Address6Store, MAX_PICKS6, type Address6Record, type DetailedAddress6Record } from './address6-store';
export { ConfigStore, configStateOf, type ConfigWatch } from './config-store';
export { createEtcdClient, toStoreError, isUnavailable } from './etcd-client';
export { EtcdLeaseKeeper, type KeeperTuning } from './lease-keeper';
export { LeaseWatcher } from './lease-watcher';
export { NetworkRecordStore, parseNetworkRecord, type NetworkRecord, type NetworkRecordEvents } from './network-records';
export { NameRegistry, NameWatcher, type NameRegistryOptions } from './name-records';
export { NameLease, DEFAULT_NAME_TTL_SEC } from './name-lease';
export { etcdHealthOf, type EtcdHealthView } from './etcd-health';
export { PathReportPublisher, PathReportWatcher, PATH_REPORT_TTL_SEC } from './path-reports';
export { overlayKeys, leaseSubnetOfKey, parseAddressKey, parseAddress6Key, parseNameKey, parsePathKey, type OverlayKeys } from './keys';
export type * from './types';

/** One overlay (one flannel prefix). */
export interface OverlayStore {
  readonly keys: OverlayKeys;
  readonly config: ConfigStore;
  /** A new watcher of all leases (call start()). */
  leases(): LeaseWatcher;
  /** A new keeper of this host's lease (call acquire()). */
  keeper(opts: LeaseKeeperOptions, tuning?: KeeperTuning): EtcdLeaseKeeper;
  readonly addresses: AddressStore;
  /** v6 address records (Docker `--ipv6` networks), apart from the v4 ones. */
  readonly addresses6: Address6Store;
  /** Replicated Docker networks (used under the default overlay's prefix). */
  readonly networks: NetworkRecordStore;
  /** A new registry of this host's DNS name records, on a short lease of its own (stop() revokes it). */
  nameRegistry(opts: NameRegistryOptions): NameRegistry;
  /** A new watcher of every host's DNS name records (call start()). */
  nameWatcher(): NameWatcher;
  /** Every host's DNS name records, read once (records that do not parse are only counted). */
  listNames(): Promise<{ records: NameRecord[]; skipped: number }>;
  /** A new writer of this host's path report, on a short lease of its own (stop() revokes it). */
  pathPublisher(host: string, ttlSec?: number): PathReportPublisher;
  /** A new watcher of every host's path report (call start()). */
  pathWatcher(): PathReportWatcher;
}

export interface Store {
  /** The etcd client (only src/store should call it directly). */
  readonly client: Etcd3;
  /** The overlay under `prefix` (default: settings.etcdPrefix); cached per prefix. */
  overlay(prefix?: string): OverlayStore;
  /** Whether etcd answered the last call or watch (see etcd-health.ts). */
  health(): EtcdHealthView;
  /** Stop every keeper and watcher made here, then close the client. Idempotent. */
  close(): Promise<void>;
}

/**
 * @example
 *   const store = openStore(settings, logger);
 *   const ov = store.overlay();
 *   const cfg = await ov.config.waitForValid(signal);
 *   const lease = await ov.keeper({ publicIP, attrsFor, ttlSec, renewMarginSec }).acquire(cfg.config, signal);
 */
export function openStore(
  settings: Pick<Settings, 'etcdEndpoints' | 'etcdPrefix' | 'etcdCaFile' | 'etcdCertFile' | 'etcdKeyFile' | 'etcdUsername' | 'etcdPassword'>,
  logger: Logger,
  opts: EtcdClientOptions = {},
): Store {
  const client = createEtcdClient(settings, opts);
  const log = logger.child({ component: 'store' });
  const overlays = new Map<string, OverlayStore>();
  const stoppables = new Set<{ stop(): Promise<void> }>();
  let closed: Promise<void> | null = null;

  // Wraps stop() to forget the stopped object; stop's own options (NameRegistry's revoke) pass through.
  const track = <T extends { stop(...args: any[]): Promise<void> }>(x: T): T => {
    stoppables.add(x);
    const stop = x.stop.bind(x) as (...args: unknown[]) => Promise<void>;
    x.stop = ((...args: unknown[]) => {
      stoppables.delete(x);
      return stop(...args);
    }) as T['stop'];
    return x;
  };

  return {
    client,
    overlay(prefix = settings.etcdPrefix) {
      const keys = overlayKeys(prefix);
      let ov = overlays.get(keys.prefix);
      if (!ov) {
        const olog = log.child({ overlay: keys.prefix });
        ov = {
          keys,
          config: new ConfigStore(client, keys, olog, track),
          leases: () => track(new LeaseWatcher(client, keys, olog)),
          keeper: (o, tuning) => track(new EtcdLeaseKeeper(client, keys, olog, o, tuning)),
          addresses: track(new AddressStore(client, keys, olog)),
          addresses6: new Address6Store(client, keys, olog),
          networks: new NetworkRecordStore(client, keys, olog, track),
          nameRegistry: (o) => track(new NameRegistry(client, keys, olog, o)),
          nameWatcher: () => track(new NameWatcher(client, keys, olog)),
          listNames: () => listNameRecords(client, keys),
          pathPublisher: (host, ttlSec) => track(new PathReportPublisher(client, keys, olog, host, ttlSec)),
          pathWatcher: () => track(new PathReportWatcher(client, keys, olog)),
        };
        overlays.set(keys.prefix, ov);
      }
      return ov;
    },
    health: () => etcdHealthOf(client).view(),
    close() {
      closed ??= (async () => {
        await Promise.allSettled([...stoppables].map((s) => s.stop()));
        client.close();
      })();
      return closed;
    },
  };
}
