/**
 * A stack of undo steps run last-first: what a multi-step start or create registers as it goes,
 * so a failure (or a stop) takes back exactly what was made, in reverse, as a CNI plugin's
 * deferred undos do when cmdAdd fails part-way. Used by the daemon's start and stop
 * (daemon/daemon.ts) and by CreateEndpoint (driver/network.ts).
 *
 * Every step runs even when an earlier one failed: each failure goes to `onError` with the step's
 * name, so one stuck part never keeps the others (or the kernel objects behind them) alive.
 */

export type UndoErrorHandler = (what: string, e: unknown) => void;

export class UndoStack {
  private steps: Array<{ what: string; run: () => unknown }> = [];

  /** Register the undo of a step that just succeeded. `what` names it for the error report. */
  push(what: string, run: () => unknown): void {
    this.steps.push({ what, run });
  }

  get size(): number {
    return this.steps.length;
  }

  /** Forget every step (the work succeeded and is kept). */
  clear(): void {
    this.steps = [];
  }

  /** Run every step, last first, each awaited; failures go to `onError`. The stack is empty after. */
  async unwind(onError: UndoErrorHandler): Promise<void> {
    const steps = this.steps.reverse();
    this.steps = [];
    for (const s of steps) {
      try {
        await s.run();
      } catch (e) {
        onError(s.what, e);
      }
    }
  }
}
