/**
 * Network replication ("define once, present everywhere"): a network a user creates with
 * overlay-flannel on one host is recorded in etcd and created by every other host's plugin on its
 * own Docker daemon (same name, driver/IPAM options and labels; each host's network gets that
 * host's lease). Removing it on one host deletes the record; every host then removes its copy
 * where no container uses it. Hosts that start later create the recorded networks from the first
 * snapshot of the watch.
 *
 * Docker waits on the plugin while it handles a request, so nothing here runs inside a request
 * handler: the driver only tells us a network id was created or deleted, and the Docker API calls
 * (dockerode, the only user of it) happen later on our own serial queue, with retries.
 * Without access to the Docker socket the feature is off, with one log line.
 */
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import type { NetworkRecord, NetworkRecordEvents } from '../store/network-records';
import { errorText } from '../errors';
import { SerialQueue } from '../util/serial-queue';
import { CoalescedTicker } from '../util/coalesced-ticker';
import { StateChanges } from '../util/state-changes';
import { dockerClient, dockerStatusOf } from './client';
import { createRequestOf, isReplica, LocalNetwork, localNetworkOf, networksToCreate, overlaysInUse, recordOf, removalOf } from './replication';

/** What the replicator needs of the local Docker daemon (dockerode in production, a fake in tests). */
export interface DockerPort {
  ping(): Promise<void>;
  /** Every network, without container counts. */
  list(): Promise<LocalNetwork[]>;
  /** One network by id or name, with its containers; null if Docker does not know it. */
  inspect(idOrName: string): Promise<LocalNetwork | null>;
  create(r: NetworkRecord): Promise<void>;
  remove(id: string): Promise<void>;
}

/** What it needs of etcd. */
export interface RecordsPort {
  createIfAbsent(r: NetworkRecord): Promise<boolean>;
  remove(name: string): Promise<void>;
  watch(ev: NetworkRecordEvents): { ready: Promise<void>; stop(): Promise<void> };
}

export interface ReplicatorOptions {
  /** For the records' createdBy (this host's public IP). */
  host: string;
  /** Full re-sync period (creates what is missing). */
  resyncMs?: number;
  /** Told at every sync the named overlays this host's networks of ours use (see overlaysInUse). */
  onOverlaysInUse?: (names: string[]) => void;
}

export function dockerPort(socketPath: string): DockerPort {
  const docker = dockerClient(socketPath, 60_000);
  return {
    async ping() {
      await docker.ping();
    },
    async list() {
      return (await docker.listNetworks()).map((n) => localNetworkOf(n, false));
    },
    async inspect(idOrName) {
      try {
        return localNetworkOf((await docker.getNetwork(idOrName).inspect()) as Docker.NetworkInspectInfo, true);
      } catch (e) {
        if (dockerStatusOf(e) === 404) return null;
        throw e;
      }
    },
    async create(r) {
      await docker.createNetwork(createRequestOf(r) as unknown as Docker.NetworkCreateOptions);
    },
    async remove(id) {
      try {
        await docker.getNetwork(id).remove();
      } catch (e) {
        if (dockerStatusOf(e) !== 404) throw e;
      }
    },
  };
}

/** How soon a failed sync is tried again. */
const RETRY_MS = 3000;

export class NetworkReplicator {
  private readonly queue = new SerialQueue();
  private readonly records = new Map<string, NetworkRecord>();
  /** Network id → name, of networks of ours seen on this host (DeleteNetwork only gives the id). */
  private readonly names = new Map<string, string>();
  /**
   * Names of the replicas this process created (until they are deleted here): their CreateNetwork
   * must not record them, even when their record is gone by the time it is handled (removed on the
   * defining host right after the replica was made: recording it then resurrected the network on
   * every host; found by the soak, issue 24).
   */
  private readonly replicas = new Set<string>();
  /** Names we are removing because their record went: their DeleteNetwork must not delete a record. */
  private readonly removing = new Set<string>();
  /** Last failure logged per network name (each distinct failure is logged once). */
  private readonly failures = new StateChanges();
  private watch: { ready: Promise<void>; stop(): Promise<void> } | null = null;
  /** Syncs: on record changes, every resyncMs, and RETRY_MS after a failure (coalesced). */
  private readonly ticker: CoalescedTicker;
  private stopped = false;
  /** 'api': whether the Docker API answered the last sync ('up' | 'down'), logged once per change. */
  private readonly dockerApi = new StateChanges();
  readonly stats = { created: 0, removed: 0, recorded: 0, unrecorded: 0, syncs: 0 };

  constructor(
    private readonly docker: DockerPort,
    private readonly store: RecordsPort,
    private readonly log: Logger,
    private readonly opts: ReplicatorOptions,
  ) {
    this.ticker = new CoalescedTicker(() => this.sync(), this.queue, (e) => this.log.error({ err: errorText(e) }, 'replication: sync failed (a bug)'), opts.resyncMs ?? 30_000);
  }

  start(): void {
    this.watch = this.store.watch({
      onSnapshot: (recs) => {
        this.records.clear();
        for (const r of recs) this.records.set(r.name, r);
        this.kick();
      },
      onPut: (r) => {
        this.records.set(r.name, r);
        this.kick();
      },
      onDelete: (name, prev) => {
        this.records.delete(name);
        void this.queue.run(() => this.removeLocal(name, prev)).catch((e) => this.log.warn({ err: errorText(e), network: name }, 'replication: removing the network failed'));
      },
    });
    this.ticker.start(false); // the watch's snapshot kicks the first sync
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.ticker.stop();
    await this.watch?.stop();
    await this.queue.run(async () => undefined).catch(() => undefined);
  }

  /** Our driver created network `id` (called from the request handler: only schedules). */
  networkCreated(id: string): void {
    setTimeout(() => void this.queue.run(() => this.record(id)).catch((e) => this.log.warn({ err: errorText(e), id: id.slice(0, 12) }, 'replication: recording the network failed')), 0);
  }

  /** Our driver deleted network `id` (called from the request handler: only schedules). */
  networkDeleted(id: string): void {
    setTimeout(() => void this.queue.run(() => this.unrecord(id)).catch((e) => this.log.warn({ err: errorText(e), id: id.slice(0, 12) }, 'replication: deleting the record failed')), 0);
  }

  /** Schedule a sync (create what the records have and Docker lacks). */
  kick(): void {
    this.ticker.kick();
  }

  private async sync(): Promise<void> {
    if (this.stopped) return;
    this.stats.syncs++;
    let local: LocalNetwork[];
    try {
      local = await this.docker.list();
      if (this.dockerApi.get('api') === 'down' && this.dockerApi.changed('api', 'up')) this.log.info('replication: the Docker API answers again');
    } catch (e) {
      if (this.dockerApi.changed('api', 'down')) this.log.warn({ err: errorText(e) }, 'replication: the Docker API does not answer yet; retrying');
      this.retryLater();
      return;
    }
    const drivers = new Set([...this.records.values()].map((r) => r.driver));
    for (const n of local) if (drivers.has(n.driver)) this.names.set(n.id, n.name);
    const inUse = overlaysInUse(local, drivers);
    if (inUse.length) this.opts.onOverlaysInUse?.(inUse);
    let failed = false;
    for (const r of networksToCreate(this.records.values(), local)) {
      if (this.stopped) return;
      try {
        this.replicas.add(r.name);
        await this.docker.create(r);
        this.stats.created++;
        this.failures.forget(r.name);
        this.log.info({ network: r.name, driver: r.driver, ipamOpts: r.ipamOpts, from: r.createdBy }, 'replication: created the network defined on another host');
      } catch (e) {
        this.replicas.delete(r.name);
        if (dockerStatusOf(e) === 409) continue; // created meanwhile (by a user, or a replay)
        failed = true;
        const why = errorText(e);
        if (this.failures.changed(r.name, why)) this.log.warn({ network: r.name, err: why }, 'replication: cannot create the network here; retrying');
      }
    }
    if (failed) this.retryLater();
  }

  private retryLater(): void {
    this.ticker.kick(RETRY_MS);
  }

  private async record(id: string): Promise<void> {
    let n: LocalNetwork | null = null;
    for (let i = 0; i < 20 && !this.stopped; i++) {
      // Docker stores the network after our CreateNetwork answered: it may not be visible at once.
      n = await this.docker.inspect(id).catch(() => null);
      if (n) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    if (!n) {
      this.log.warn({ id: id.slice(0, 12) }, 'replication: the new network is not visible in the Docker API; not replicated');
      return;
    }
    this.names.set(id, n.name);
    // A replica (made by this process, or by an earlier one: its label), or already recorded.
    if (this.records.has(n.name) || this.replicas.has(n.name) || isReplica(n)) return;
    const rec = recordOf(n, this.opts.host);
    if (await this.store.createIfAbsent(rec)) {
      this.stats.recorded++;
      this.records.set(rec.name, rec);
      this.log.info({ network: n.name, driver: n.driver, ipamOpts: n.ipamOpts }, 'replication: network recorded; every host running the plugin creates it');
    }
  }

  private async unrecord(id: string): Promise<void> {
    const name = this.names.get(id);
    this.names.delete(id);
    if (name === undefined) return;
    this.replicas.delete(name);
    if (this.removing.delete(name)) return; // our own removal: its record is already gone
    this.stats.unrecorded++;
    this.records.delete(name);
    await this.store.remove(name);
    this.log.info({ network: name }, 'replication: network removed here; its record is deleted, other hosts remove it where unused');
  }

  private async removeLocal(name: string, prev: NetworkRecord | null): Promise<void> {
    if (this.stopped) return;
    const local = await this.docker.inspect(name);
    const d = removalOf(name, local, prev);
    if (d.action === 'none') return;
    if (d.action === 'keep') {
      this.log.warn({ network: name, reason: d.reason }, 'replication: the network was removed on another host; keeping it here');
      return;
    }
    this.removing.add(name);
    try {
      await this.docker.remove(d.id);
      this.replicas.delete(name);
      this.stats.removed++;
      this.log.info({ network: name }, 'replication: removed the network (removed on another host)');
    } catch (e) {
      this.removing.delete(name);
      throw e;
    }
  }
}
