/**
 * FakePacketQueue: what FakeKernel.openPacketQueue returns, the in-memory stand-in for an
 * nfnetlink_queue binding (src/kernel/nfqueue.ts). A test injects packets with `inject`, which runs
 * the handler as the real queue does (a throw is a plain ACCEPT) and answers the verdict; every
 * verdict is also logged in `verdicts`. After close() `inject` answers 'bypass': the rule's
 * --queue-bypass lets the packet through untouched, as the kernel does without a listener.
 */
import type { PacketHandler, PacketQueue, PacketQueueStats, QueuedPacket } from '../../src/kernel';

export type FakeVerdict = { id: number; verdict: 'accept'; mark?: number } | { id: number; verdict: 'bypass' };

export class FakePacketQueue implements PacketQueue {
  readonly stats: PacketQueueStats = { received: 0, marked: 0, handlerErrors: 0, overruns: 0, sendErrors: 0 };
  readonly verdicts: FakeVerdict[] = [];
  private nextId = 1;
  closed = false;

  constructor(
    readonly queue: number,
    private readonly handler: PacketHandler,
    private readonly onClose: () => void,
  ) {}

  /** Queue one packet (id assigned when not given) and answer its verdict. */
  inject(p: Partial<QueuedPacket> & { payload: Buffer }): FakeVerdict {
    const id = p.id ?? this.nextId++;
    if (this.closed) {
      const v: FakeVerdict = { id, verdict: 'bypass' };
      this.verdicts.push(v);
      return v;
    }
    this.stats.received++;
    let mark: number | undefined;
    try {
      mark = this.handler({ id, mark: p.mark ?? 0, indev: p.indev ?? 0, payload: p.payload })?.mark;
    } catch {
      this.stats.handlerErrors++;
    }
    if (mark !== undefined) this.stats.marked++;
    const v: FakeVerdict = mark === undefined ? { id, verdict: 'accept' } : { id, verdict: 'accept', mark };
    this.verdicts.push(v);
    return v;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
  }
}
