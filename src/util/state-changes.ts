/**
 * "Log once per state": the last state seen per key, so a loop that runs every few seconds (a
 * keeper, a sync, a retry) writes a log line when something changes, not on every round. One
 * helper for the keepers (reconcile/isolation-keeper.ts, fastpath-keeper.ts), the overlay
 * firewall, network replication and the lease watcher, which each kept their own "last…" fields.
 *
 *   const seen = new StateChanges();
 *   if (seen.changed('forward', 'no-chain')) log.warn(…);   // once, until the state changes
 *
 * States are strings (an error's text works: a new error is a new state). A key never recorded
 * has the state undefined, so the first state recorded always counts as a change.
 */
export class StateChanges<K = string> {
  private readonly last = new Map<K, string>();

  /** Record `state` for `key`: true when it differs from the one recorded before. */
  changed(key: K, state: string): boolean {
    if (this.last.get(key) === state) return false;
    this.last.set(key, state);
    return true;
  }

  /** The state last recorded for `key` (undefined: none yet, or forgotten). */
  get(key: K): string | undefined {
    return this.last.get(key);
  }

  /** Forget `key`: its next state counts as a change. */
  forget(key: K): void {
    this.last.delete(key);
  }

  /** Forget every key not in `keep` (what went away). */
  retain(keep: ReadonlySet<K>): void {
    for (const k of [...this.last.keys()]) if (!keep.has(k)) this.last.delete(k);
  }
}
