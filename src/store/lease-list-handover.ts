/**
 * One list of `<prefix>/subnets`, shared by the lease keeper and the lease watcher of one overlay
 * (issue 23): at start the keeper lists every lease to choose its subnet, and the watcher's first
 * snapshot used to list them all again a moment later. At 10,000 leases each list is ≈ 28 MB of
 * garbage in the etcd3 client alone (protobuf decoding, long.js turning int64 revisions into
 * strings), and that garbage sets the daemon's peak RSS while it programs its peers.
 *
 * Design note: the keeper hands over the raw range response of the acquire that succeeded (its
 * kvs and header revision); the watcher's first list takes it instead of asking etcd, delivers it
 * as its snapshot and watches from `revision + 1`. That is the same history a list of its own
 * would give: everything written since the keeper's list — our own create or re-put, a stale
 * lease of ours the keeper deleted, other hosts' changes — arrives as watch events. If the
 * revision was compacted meanwhile the watch is cancelled and ListWatch re-lists, as it does for
 * any compaction. Only the first list of a watcher takes it, once; a hand-over nobody takes within
 * {@link HOLD_MS} (a re-acquire after a loss, with the watcher already running) is dropped, so its
 * memory is not kept. The keeper's race rules do not depend on it: it only keeps what it read.
 */
import type { IKeyValue } from 'etcd3';

/** How long a hand-over waits for the watcher's first list (the agent starts it right after attach). */
export const HOLD_MS = 30_000;

export interface LeaseListing {
  readonly kvs: IKeyValue[];
  /** The range response's header revision: the watch resumes after it. */
  readonly revision: bigint;
}

export class LeaseListHandOver {
  private held: LeaseListing | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Lists handed over and taken (tests and the benchmark count them). */
  taken = 0;

  /** Keep `listing` for the next take() (replacing one not taken yet), for at most HOLD_MS. */
  put(listing: LeaseListing): void {
    this.held = listing;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.drop(), HOLD_MS);
    this.timer.unref();
  }

  /** The listing held, once (null if none or it was dropped). */
  take(): LeaseListing | null {
    const l = this.held;
    this.drop();
    if (l) this.taken++;
    return l;
  }

  drop(): void {
    this.held = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
