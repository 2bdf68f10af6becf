/**
 * This host's name records from the Docker API (issue 16, docs/names-design.md §8): who runs on
 * our networks here, under which names and aliases, at which addresses. The remote driver API
 * never carries names, so they are read from Docker and written through a {@link NameSink} (the
 * store's NameRegistry, bound to this host's short name lease).
 *
 * Design note.
 * - One long-lived `GET /events` stream (types network and container). A network connect or
 *   disconnect, a container rename, die or destroy re-reads THAT container
 *   (`GET /containers/{id}/json`, 404 = gone) and writes the difference: what Docker holds now is
 *   the truth, as in the address audit, so a late or repeated event cannot resurrect anything.
 * - A full re-list (`replaceAll`) runs after every (re)connect of the stream, so events missed
 *   while it was down (a dockerd restart, this plugin down) are covered, and every
 *   {@link NAME_AUDIT_INTERVAL_MS}: records of this host Docker no longer has are deleted (the
 *   first list also has the registry find those a previous process wrote: it lists etcd, the
 *   later ones do not), missing ones put. The stream is opened
 *   BEFORE the list, and everything runs on one serial queue, so an event during a list is
 *   applied after it.
 * - Which network is ours: the driver name (domain/endpoint-names.ts isOurDriver), or else our
 *   bridge for it in the kernel (a plugin installed under an alias). Decisions are cached per
 *   Docker network id; a "no" from the kernel is asked again (the bridge may come later).
 * - Writes are not awaited here: the registry holds what it was given and retries while etcd is
 *   down, so the Docker side never stalls on etcd. Docker failures are logged once per state.
 */
import type { Logger } from 'pino';
import type { NameRecord } from '../domain/name-record';
import { isOurDriver, nameRecordsOf, sameNameRecord, type InspectedContainer } from '../domain/endpoint-names';
import { errorText } from '../errors';
import { Backoff, sleep } from '../util/backoff';
import { SerialQueue } from '../util/serial-queue';
import { StateChanges } from '../util/state-changes';
import { dockerClient, dockerStatusOf } from './client';

/** How often the full re-list runs besides the stream (the audit of this host's records). */
export const NAME_AUDIT_INTERVAL_MS = 60_000;

/** Where the records go (NameRegistry in production). */
export interface NameSink {
  put(r: NameRecord): Promise<void>;
  remove(networkId: string, endpointId: string): Promise<void>;
  /** `scanStale`: also delete this host's records written by an earlier process (the first list only). */
  replaceAll(rs: readonly NameRecord[], opts?: { scanStale?: boolean }): Promise<void>;
}

/** One event of Docker's stream, the fields read. */
export interface DockerEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

export interface DockerNetworkFacts {
  id: string;
  name: string;
  driver: string;
}

/** What the follower needs of the local Docker daemon (dockerode below; a fake in tests). */
export interface NameDockerPort {
  /** Open the event stream; `onEnd` is called once when it ends or fails. */
  events(onEvent: (e: DockerEvent) => void, onEnd: (why: string) => void): Promise<{ close(): void }>;
  networks(): Promise<DockerNetworkFacts[]>;
  network(id: string): Promise<DockerNetworkFacts | null>;
  /** Running containers and the Docker network ids they are on. */
  running(): Promise<Array<{ id: string; networkIds: string[] }>>;
  /** null: no such container. */
  inspect(id: string): Promise<InspectedContainer | null>;
}

export interface NameEventsOptions {
  /** This host's public IP (every record's `host`). */
  host: string;
  /** Whether our bridge for a Docker network id exists (the kernel); absent: driver names only. */
  hasBridge?: (networkId: string) => Promise<boolean>;
  auditIntervalMs?: number;
  now?: () => Date;
}

export function dockerNamePort(socketPath: string): NameDockerPort {
  const api = dockerClient(socketPath, 30_000);
  const stream = dockerClient(socketPath, 0); // may stay idle for days
  return {
    async events(onEvent, onEnd) {
      const s = (await stream.getEvents({ filters: { type: ['network', 'container'] } })) as NodeJS.ReadableStream & { destroy(): void };
      let buf = '';
      let ended = false;
      const end = (why: string) => {
        if (ended) return;
        ended = true;
        onEnd(why);
      };
      s.on('data', (chunk: Buffer | string) => {
        buf += chunk.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line === '') continue;
          try {
            onEvent(JSON.parse(line) as DockerEvent);
          } catch {
            // not JSON: Docker never sends that; skip the line
          }
        }
        if (buf.length > 1 << 20) buf = ''; // no newline in 1 MiB: not an event stream
      });
      s.on('end', () => end('the stream ended')).on('close', () => end('the stream closed')).on('error', (e) => end(errorText(e)));
      return { close: () => s.destroy() };
    },
    async networks() {
      return (await api.listNetworks()).map((n) => ({ id: n.Id, name: n.Name, driver: n.Driver }));
    },
    async network(id) {
      try {
        const n = await api.getNetwork(id).inspect();
        return { id: n.Id, name: n.Name, driver: n.Driver };
      } catch (e) {
        if (dockerStatusOf(e) === 404) return null;
        throw e;
      }
    },
    async running() {
      return (await api.listContainers()).map((c) => ({
        id: c.Id,
        networkIds: Object.values(c.NetworkSettings?.Networks ?? {}).map((n) => n?.NetworkID ?? '').filter(Boolean),
      }));
    },
    async inspect(id) {
      try {
        return (await api.getContainer(id).inspect()) as unknown as InspectedContainer;
      } catch (e) {
        if (dockerStatusOf(e) === 404) return null;
        throw e;
      }
    },
  };
}

export class NameEvents {
  private readonly queue = new SerialQueue();
  /** Docker network id → name and whether it is ours. */
  private readonly networks = new Map<string, { name: string; ours: boolean }>();
  /** container id → endpoint id → the record this host holds for it. */
  private readonly held = new Map<string, Map<string, NameRecord>>();
  private readonly problems = new StateChanges();
  private readonly abort = new AbortController();
  private loop: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private resyncQueued = false;
  /** The first full list went to the sink (later ones need not scan etcd for an earlier process's records). */
  private listed = false;
  readonly stats = { events: 0, resyncs: 0, failedResyncs: 0, inspects: 0, puts: 0, removes: 0, streams: 0 };

  constructor(
    private readonly docker: NameDockerPort,
    private readonly sink: NameSink,
    private readonly log: Logger,
    private readonly opts: NameEventsOptions,
  ) {}

  /** Records this host holds now (what Docker showed last). */
  get records(): number {
    let n = 0;
    for (const m of this.held.values()) n += m.size;
    return n;
  }

  start(): void {
    this.loop = this.follow();
    this.timer = setInterval(() => this.resyncSoon(), this.opts.auditIntervalMs ?? NAME_AUDIT_INTERVAL_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    clearInterval(this.timer);
    await this.loop;
    await this.queue.run(async () => undefined);
  }

  private async follow(): Promise<void> {
    const backoff = new Backoff({ initialMs: 500, maxMs: 15_000 });
    const signal = this.abort.signal;
    while (!signal.aborted) {
      let ended: Promise<string> | null = null;
      try {
        let endedWith: (why: string) => void = () => undefined;
        ended = new Promise<string>((resolve) => (endedWith = resolve));
        const s = await this.docker.events((e) => this.onEvent(e), endedWith);
        this.stats.streams++;
        const onAbort = () => {
          s.close();
          endedWith('stopped');
        };
        signal.addEventListener('abort', onAbort, { once: true });
        await this.resyncSoon(); // after the stream is open: nothing falls between list and events
        backoff.reset();
        const why = await ended;
        signal.removeEventListener('abort', onAbort);
        s.close();
        if (!signal.aborted) this.log.info({ why }, 'names: the Docker event stream ended; re-listing when it is back');
      } catch (e) {
        if (signal.aborted) break;
        if (this.problems.changed('stream', errorText(e))) this.log.warn({ err: errorText(e) }, 'names: cannot follow Docker events yet; retrying');
      }
      await sleep(backoff.next(), signal);
    }
  }

  private onEvent(e: DockerEvent): void {
    const id = e.Actor?.ID;
    if (!id || this.abort.signal.aborted) return;
    const attrs = e.Actor?.Attributes ?? {};
    let container: string | undefined;
    if (e.Type === 'network' && (e.Action === 'connect' || e.Action === 'disconnect')) {
      container = attrs.container;
      if (attrs.name && attrs.type && isOurDriver(attrs.type)) this.networks.set(id, { name: attrs.name, ours: true });
      if (e.Action === 'disconnect' && container && !this.held.has(container)) return; // nothing of ours to delete
    } else if (e.Type === 'container' && e.Action === 'rename') container = id;
    else if (e.Type === 'container' && (e.Action === 'die' || e.Action === 'destroy')) container = this.held.has(id) ? id : undefined;
    if (!container) return;
    this.stats.events++;
    const c = container;
    void this.queue.run(() => this.syncContainer(c)).catch((err) => {
      this.log.warn({ container: c.slice(0, 12), err: errorText(err) }, 'names: cannot read the container from Docker; the next re-list repairs it');
      this.resyncSoon(5000);
    });
  }

  /** Queue a full re-list unless one is waiting; resolves when it ran. */
  private resyncSoon(delayMs = 0): Promise<void> {
    if (this.resyncQueued) return Promise.resolve();
    this.resyncQueued = true;
    const delayed = delayMs > 0 ? sleep(delayMs, this.abort.signal) : Promise.resolve();
    return delayed
      .then(() =>
        this.queue.run(async () => {
          this.resyncQueued = false;
          if (!this.abort.signal.aborted) await this.resync();
        }),
      )
      .catch((e) => this.log.error({ err: errorText(e) }, 'names: re-list failed (a bug)'));
  }

  /** Whether Docker network `id` (named `name` in the container's inspect) is ours. */
  private async decide(id: string, name?: string): Promise<boolean> {
    const known = this.networks.get(id);
    if (known?.ours) return true;
    if (!known) {
      const n = await this.docker.network(id);
      if (!n) return false;
      if (isOurDriver(n.driver)) {
        this.networks.set(id, { name: n.name, ours: true });
        return true;
      }
      if (!this.opts.hasBridge) this.networks.set(id, { name: n.name, ours: false });
    }
    if (!this.opts.hasBridge) return false;
    const ours = await this.opts.hasBridge(id).catch(() => false);
    this.networks.set(id, { name: name ?? known?.name ?? '', ours });
    return ours;
  }

  private async recordsOf(c: InspectedContainer): Promise<NameRecord[]> {
    const ours = new Set<string>();
    for (const ep of Object.values(c.NetworkSettings?.Networks ?? {})) if (ep?.NetworkID && (await this.decide(ep.NetworkID))) ours.add(ep.NetworkID);
    const m = nameRecordsOf(c, (netId) => ours.has(netId), this.opts.host, (this.opts.now?.() ?? new Date()).toISOString());
    for (const s of m.skipped) {
      if (this.problems.changed(`skip ${c.Id} ${s.network}`, s.reason)) this.log.warn({ container: c.Name, network: s.network, reason: s.reason }, 'names: an endpoint (or alias) gets no name record');
    }
    return m.records;
  }

  /** Re-read one container and write what changed about it. */
  private async syncContainer(id: string): Promise<void> {
    if (this.abort.signal.aborted) return;
    this.stats.inspects++;
    const c = await this.docker.inspect(id);
    const next = c ? await this.recordsOf(c) : [];
    const before = this.held.get(id) ?? new Map<string, NameRecord>();
    const after = new Map<string, NameRecord>();
    for (const r of next) {
      const old = before.get(r.endpointId);
      if (old && sameNameRecord(old, r)) {
        after.set(r.endpointId, old);
        continue;
      }
      after.set(r.endpointId, r);
      this.write('put', r, this.sink.put(r));
    }
    for (const [ep, r] of before) if (!after.has(ep) || after.get(ep)!.networkId !== r.networkId) this.write('remove', r, this.sink.remove(r.networkId, ep));
    if (after.size > 0) this.held.set(id, after);
    else this.held.delete(id);
  }

  /** Every running container's records, as the whole set of this host. */
  private async resync(): Promise<void> {
    this.stats.resyncs++;
    try {
      for (const n of await this.docker.networks()) {
        const prev = this.networks.get(n.id);
        this.networks.set(n.id, { name: n.name, ours: isOurDriver(n.driver) || (prev?.ours === true && prev.name === n.name) });
      }
      const held = new Map<string, Map<string, NameRecord>>();
      const all: NameRecord[] = [];
      for (const c of await this.docker.running()) {
        let any = false;
        for (const net of c.networkIds) if (await this.decide(net)) any = true;
        if (!any) continue;
        this.stats.inspects++;
        const info = await this.docker.inspect(c.id);
        if (!info) continue; // removed since the list
        const recs = await this.recordsOf(info);
        const old = this.held.get(c.id);
        const kept = recs.map((r) => {
          const o = old?.get(r.endpointId);
          return o && sameNameRecord(o, r) ? o : r;
        });
        if (kept.length) held.set(c.id, new Map(kept.map((r) => [r.endpointId, r])));
        all.push(...kept);
      }
      this.held.clear();
      for (const [k, v] of held) this.held.set(k, v);
      this.write('replace', null, this.sink.replaceAll(all, { scanStale: !this.listed }));
      this.listed = true;
      if (this.problems.changed('docker', 'up')) this.log.info({ records: all.length }, 'names: this host\'s records follow Docker');
    } catch (e) {
      this.stats.failedResyncs++;
      if (this.problems.changed('docker', errorText(e))) this.log.warn({ err: errorText(e) }, 'names: cannot list the containers from Docker; trying again soon');
      this.resyncSoon(5000);
    }
  }

  private write(kind: 'put' | 'remove' | 'replace', r: NameRecord | null, p: Promise<void>): void {
    if (kind === 'put') this.stats.puts++;
    if (kind === 'remove') this.stats.removes++;
    if (r) this.log.debug({ kind, container: r.containerName, network: r.networkName, aliases: r.aliases, ipv4: r.ipv4 }, 'names: record');
    p.catch((e) => {
      // The registry keeps it and retries (etcd down); a bad record (INVALID) is a bug of the mapping.
      if (this.problems.changed('write', errorText(e))) this.log.warn({ err: errorText(e) }, 'names: a record write did not go through yet (held and retried by the registry)');
    });
  }
}
