/**
 * One queue for every kernel write of the host: tasks run one at a time, in order, so a route is
 * never written before its neighbour entry and two handlers never race on the same device.
 * A failing task rejects its own promise only; the queue goes on.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private depth = 0;

  run<T>(task: () => Promise<T>): Promise<T> {
    this.depth++;
    const result = this.tail.then(task, task);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    ).finally(() => this.depth--);
    return result;
  }

  /** Tasks queued or running. */
  get pending(): number {
    return this.depth;
  }
}
