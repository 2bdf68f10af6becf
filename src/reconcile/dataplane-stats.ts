/**
 * OverlayDataplane's counters and its optional metrics hook (the status server sets it), apart from
 * the dataplane itself to keep that file readable; overlay-dataplane.ts re-exports all of it.
 */
export interface DataplaneStats {
  fullSyncs: number;
  fastSyncs: number;
  opsApplied: number;
  errors: number;
  /** Lease states planned from scratch (desiredFor's cache misses): a full sync in step adds none. */
  statesBuilt: number;
  /** Ops the last full sync needed for entries that disagreed with what we had written; a change not
   *  applied yet (pending lease event, new snapshot, flooding, retry) is catch-up, not drift. */
  lastDrift: number;
}

/** Optional metrics hook (the status server sets it); calls must be cheap and must not throw. */
export interface DataplaneObserver {
  onSync(kind: 'fast' | 'full', seconds: number, ok: boolean): void;
  onOp(op: string): void;
}
let observer: DataplaneObserver | null = null;
export function setDataplaneObserver(o: DataplaneObserver | null): void {
  observer = o;
}

/** The hook set by setDataplaneObserver, or null. */
export function dataplaneObserver(): DataplaneObserver | null {
  return observer;
}
