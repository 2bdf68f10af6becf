/**
 * Replicated Docker networks (`<prefix>/overlay-flannel/networks/<name>`, under the default
 * overlay's prefix): one JSON record per network defined on some host, so every host running the
 * plugin creates it on its own Docker daemon. Records are created if absent (the first host to
 * record a network wins; replicas created from it do not rewrite it), deleted by name, and
 * followed with a {@link ListWatch} (initial snapshot, then changes; survives outages).
 */
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { toStoreError } from './etcd-client';
import type { OverlayKeys } from './keys';
import { ListWatch } from './list-watch';

/** What a host needs to create the same network on its Docker daemon. */
export interface NetworkRecord {
  name: string;
  /** Docker's Driver field as seen on the creating host, e.g. "overlay-flannel:latest". */
  driver: string;
  ipamDriver: string;
  driverOpts: Record<string, string>;
  ipamOpts: Record<string, string>;
  labels: Record<string, string>;
  internal: boolean;
  attachable: boolean;
  /** `docker network create --ipv6` (absent: v4 only; records before issue 21 have none). */
  enableIPv6?: true;
  /** The host that defined it (its public IP), for logs. */
  createdBy: string;
}

const strMap = (v: unknown): Record<string, string> => {
  const out: Record<string, string> = {};
  if (v && typeof v === 'object' && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
};

/** Parse a stored record; null if it is not one of ours (logged by the caller). */
export function parseNetworkRecord(text: string): NetworkRecord | null {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (!v || typeof v !== 'object' || typeof v.name !== 'string' || typeof v.driver !== 'string' || v.name === '' || v.driver === '') return null;
  return {
    name: v.name,
    driver: v.driver,
    ipamDriver: typeof v.ipamDriver === 'string' && v.ipamDriver ? v.ipamDriver : v.driver,
    driverOpts: strMap(v.driverOpts),
    ipamOpts: strMap(v.ipamOpts),
    labels: strMap(v.labels),
    internal: v.internal === true,
    attachable: v.attachable === true,
    ...(v.enableIPv6 === true ? { enableIPv6: true as const } : {}),
    createdBy: typeof v.createdBy === 'string' ? v.createdBy : '',
  };
}

export interface NetworkRecordEvents {
  /** Every record (after the first list and after every re-list). */
  onSnapshot(records: NetworkRecord[]): void;
  onPut(record: NetworkRecord): void;
  /** The record of `name` was deleted (`prev`: its last value, when etcd still had it). */
  onDelete(name: string, prev: NetworkRecord | null): void;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export class NetworkRecordStore {
  constructor(
    private readonly client: Etcd3,
    private readonly keys: OverlayKeys,
    private readonly log: Logger,
    private readonly track: <T extends { stop(): Promise<void> }>(w: T) => T = (w) => w,
  ) {}

  keyOf(name: string): string {
    return `${this.keys.networksRoot}${name}`;
  }

  /** Record `rec` unless a record of that name exists; true if written. */
  async createIfAbsent(rec: NetworkRecord): Promise<boolean> {
    if (!NAME_RE.test(rec.name)) return false;
    const key = this.keyOf(rec.name);
    try {
      const r = await this.client.if(key, 'Version', '==', 0).then(this.client.put(key).value(JSON.stringify(rec))).commit();
      return r.succeeded;
    } catch (e) {
      throw toStoreError(e, `record network ${rec.name}`);
    }
  }

  async remove(name: string): Promise<void> {
    if (!NAME_RE.test(name)) return;
    try {
      await this.client.delete().key(this.keyOf(name)).exec();
    } catch (e) {
      throw toStoreError(e, `delete the record of network ${name}`);
    }
  }

  async list(): Promise<NetworkRecord[]> {
    try {
      const kvs = await this.client.getAll().prefix(this.keys.networksRoot).strings();
      return Object.values(kvs).map(parseNetworkRecord).filter((r): r is NetworkRecord => r !== null);
    } catch (e) {
      throw toStoreError(e, 'list network records');
    }
  }

  /** Follow the records; stop() ends it. */
  watch(ev: NetworkRecordEvents): { ready: Promise<void>; stop(): Promise<void> } {
    const root = this.keys.networksRoot;
    const parse = (key: string, value: Buffer): NetworkRecord | null => {
      const r = parseNetworkRecord(value.toString('utf8'));
      if (!r || `${root}${r.name}` !== key) {
        this.log.warn({ key }, 'ignoring a malformed network record');
        return null;
      }
      return r;
    };
    const lw = new ListWatch({
      client: this.client,
      target: { prefix: root },
      what: `network records ${root}`,
      logger: this.log,
      onSnapshot: (kvs) => ev.onSnapshot(kvs.map((kv) => parse(kv.key, kv.value)).filter((r): r is NetworkRecord => r !== null)),
      onChanges: (changes) => {
        for (const c of changes) {
          if (c.type === 'put') {
            const r = parse(c.kv.key, c.kv.value);
            if (r) ev.onPut(r);
          } else {
            const prev = c.prev ? parseNetworkRecord(c.prev.value.toString('utf8')) : null;
            ev.onDelete(c.key.slice(root.length), prev);
          }
        }
      },
    });
    lw.start();
    return this.track({ ready: lw.ready, stop: () => lw.stop() });
  }
}
