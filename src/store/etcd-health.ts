/**
 * The store's own view of whether etcd answers: no probe of its own, just the outcome of the calls
 * and watches the daemon makes anyway. A list, a watch that connects, a renewal that commits →
 * up; a list or renewal that fails, a watch stream that drops → down. Watches re-connect with
 * backoff while etcd is away, so a restored etcd is noticed within the watch backoff (≤ 5 s).
 * One tracker per etcd client (WeakMap), read by the status server's `overlay_flannel_etcd_up`.
 */
import type { Etcd3 } from 'etcd3';
import { OverlayError } from '../errors';

export interface EtcdHealthView {
  /** null until the first call or watch has an outcome. */
  readonly up: boolean | null;
  /** Unix ms of the last outcome that said "up". */
  readonly lastOkAt: number | null;
  /** Unix ms of the last change between up and down. */
  readonly since: number | null;
  /** The last failure, "what: problem" (a translated error already starts with its what). */
  readonly lastError: string | null;
}

export class EtcdHealth implements EtcdHealthView {
  up: boolean | null = null;
  lastOkAt: number | null = null;
  since: number | null = null;
  lastError: string | null = null;

  ok(): void {
    const now = Date.now();
    if (this.up !== true) this.since = now;
    this.up = true;
    this.lastOkAt = now;
  }

  failed(what: string, err: unknown): void {
    if (this.up !== false) this.since = Date.now();
    this.up = false;
    this.lastError = err instanceof OverlayError ? err.message : `${what}: ${err instanceof Error ? err.message : String(err)}`;
  }

  view(): EtcdHealthView {
    return { up: this.up, lastOkAt: this.lastOkAt, since: this.since, lastError: this.lastError };
  }
}

const trackers = new WeakMap<Etcd3, EtcdHealth>();

/** The tracker of this client (made on first use). */
export function etcdHealthOf(client: Etcd3): EtcdHealth {
  let h = trackers.get(client);
  if (!h) {
    h = new EtcdHealth();
    trackers.set(client, h);
  }
  return h;
}
