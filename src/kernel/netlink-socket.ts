/**
 * One rtnetlink request socket with a scheduler in front of it.
 *
 * Why a scheduler (docs/library-traps.md §1, traps 1–4):
 * - The package keeps ONE multipart-reassembly buffer per socket. Any reply that arrives between
 *   two parts of a dump (another dump's part, or just the ACK of a concurrent write) flushes it,
 *   and the dump fails with "Multipart message not terminated properly". So a dump runs ALONE:
 *   it waits for in-flight requests to finish and holds back new ones (a reader/writer lock with
 *   the dump as the writer). Plain requests overlap, capped at `maxInFlight` so that replies can
 *   never fill the receive buffer (ENOBUFS aborts the process; rcvbuf is 8 MiB anyway).
 * - No default timeout and no settlement at close: every request gets `timeoutMs`, and we track
 *   our own pending promises so close() can reject them. After a timeout the socket may hold half
 *   a dump, so it is replaced once the requests still in flight have settled.
 * - Dumps carrying NLM_F_DUMP_INTR (the table changed under us) are retried a few times.
 * Order is FIFO: nothing overtakes a waiting dump, so a write issued before a list is seen by it.
 * Writes of the tables that grow with peers (write(): pre-encoded neighbour/FDB/route messages) go
 * through the same scheduler, but leave on a second, raw socket in batches (rtnl-writer.ts).
 */
import { createRtNetlink, rt, type RtNetlinkSocket } from 'netlink';
import { NLM_F_DUMP, NLM_F_DUMP_INTR } from './codec';
import { closedError, toKernelError } from './errno';
import { RtnlWriter } from './rtnl-writer';

const DUMP_RETRIES = 3;

export interface NlSocketOptions {
  timeoutMs?: number; // per request, default 5000
  maxInFlight?: number; // concurrent non-dump requests, default 256
  recvBufferSize?: number; // default 8 MiB (capped by net.core.rmem_max)
}

interface Job {
  exclusive: boolean;
  start: () => void;
  fail: (e: Error) => void;
}

/** A queued write: plain data, no closures (there are tens of thousands of them). Its text for
 *  errors is made only on an error: `describe(subject)`, with a describer shared by every write. */
interface WriteJob {
  exclusive: false;
  describe: (subject: any) => string;
  subject: unknown;
  msg: Buffer;
  resolve: () => void;
  fail: (e: Error) => void;
}

export class NlSocket {
  readonly timeoutMs: number;
  private readonly maxInFlight: number;
  private readonly recvBufferSize: number;
  private sock: RtNetlinkSocket | null = null;
  private readonly queue: (Job | WriteJob)[] = [];
  private active = 0;
  private exclusiveActive = false;
  private stale = false;
  private closed = false;
  private readonly pending = new Set<(e: Error) => void>();
  private readonly writer: RtnlWriter;

  constructor(opts: NlSocketOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.maxInFlight = opts.maxInFlight ?? 256;
    this.recvBufferSize = opts.recvBufferSize ?? 8 << 20;
    this.sock = this.open();
    this.writer = new RtnlWriter(this.timeoutMs, this.recvBufferSize);
  }

  /** Datagrams the batched writes went out in so far. */
  get writeDatagrams(): number {
    return this.writer.datagrams;
  }

  /** A pre-encoded write (rtnl-messages.ts), batched with the writes started beside it; errors
   *  name it as `describe(subject)` (no text is built for a write that succeeds). */
  write<T>(msg: Buffer, describe: (subject: T) => string, subject: T): Promise<void> {
    if (this.closed) return Promise.reject(closedError(describe(subject)));
    return new Promise<void>((resolve, fail) => {
      this.queue.push({ exclusive: false, describe, subject, msg, resolve, fail });
      this.pump();
    });
  }

  private startWrite(job: WriteJob): void {
    this.active++;
    this.writer.send(job.msg, (e) => {
      this.active--;
      if (e) {
        const err = toKernelError(job.describe(job.subject), e, this.timeoutMs);
        if (err.code === 'UNAVAILABLE') this.stale = true;
        job.fail(err);
      } else job.resolve();
      this.pump();
    });
  }

  /** A non-dump request. `fn` must pass `timeout` in its options. Errors come back as OverlayError. */
  call<T>(what: string, fn: (s: RtNetlinkSocket, timeout: number) => Promise<T>): Promise<T> {
    return this.schedule(false, what, (s) => fn(s, this.timeoutMs));
  }

  /** A dump on the raw socket (`msg`: rtnl-messages.ts dumpRequest), each reply decoded as it is
   *  read by `decode` (null: skip); runs exclusively, retried on NLM_F_DUMP_INTR like dump(). */
  dumpDecoded<T>(what: string, msg: Buffer, decode: (b: Buffer, start: number, end: number, type: number) => T | null): Promise<T[]> {
    return this.schedule(true, what, async () => {
      for (let attempt = 1; ; attempt++) {
        const out: T[] = [];
        const interrupted = await this.writer.dump(Buffer.from(msg), (b, start, end, type) => {
          const v = decode(b, start, end, type);
          if (v !== null) out.push(v);
        });
        if (!interrupted || attempt >= DUMP_RETRIES) return out;
      }
    });
  }

  /** A dump: `type` is the GET message type, `payload` its header (+ attributes). Runs exclusively. */
  dump(what: string, type: rt.MessageType, payload: Uint8Array | Uint8Array[]): Promise<rt.Message[]> {
    return this.schedule(true, what, async (s) => {
      for (let attempt = 1; ; attempt++) {
        const [msgs] = await s.socket.request(type, payload, { flags: NLM_F_DUMP, timeout: this.timeoutMs });
        const interrupted = msgs.some((m) => (m.flags & NLM_F_DUMP_INTR) !== 0);
        if (!interrupted || attempt >= DUMP_RETRIES) return msgs.map((m) => rt.parseMessage(m.type, m.data));
      }
    });
  }

  /** Reject everything pending or queued, then close the socket. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = closedError('netlink request');
    for (const job of this.queue.splice(0)) job.fail(err);
    for (const reject of [...this.pending]) reject(err);
    this.pending.clear();
    this.writer.reset('netlink socket is closed');
    this.sock?.socket.close();
    this.sock = null;
  }

  private open(): RtNetlinkSocket {
    // sendBufferSize 0 = leave the default (the package only sets truthy sizes)
    return createRtNetlink({ recvBufferSize: this.recvBufferSize, sendBufferSize: 0, ref: false });
  }

  private schedule<T>(exclusive: boolean, what: string, fn: (s: RtNetlinkSocket) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(closedError(what));
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        this.active++;
        if (exclusive) this.exclusiveActive = true;
        let settled = false;
        const done = () => {
          if (settled) return;
          settled = true;
          this.pending.delete(onClose);
          this.active--;
          if (exclusive) this.exclusiveActive = false;
          this.pump();
        };
        const onClose = (e: Error) => {
          done();
          reject(e);
        };
        this.pending.add(onClose);
        let p: Promise<T>;
        try {
          p = fn(this.sock as RtNetlinkSocket);
        } catch (e) {
          p = Promise.reject(e);
        }
        p.then(
          (v) => {
            if (settled) return;
            done();
            resolve(v);
          },
          (e: unknown) => {
            if (settled) return;
            const err = toKernelError(what, e, this.timeoutMs);
            if (err.code === 'UNAVAILABLE') this.stale = true; // timeout or broken dump: renew socket
            done();
            reject(err);
          },
        );
      };
      this.queue.push({ exclusive, start, fail: reject });
      this.pump();
    });
  }

  private pump(): void {
    while (!this.closed && this.queue.length > 0) {
      if (this.stale) {
        if (this.active > 0) return; // let in-flight requests drain first
        this.sock?.socket.close();
        this.sock = this.open();
        this.writer.reset('socket is closed'); // nothing of it is in flight (active is 0)
        this.stale = false;
      }
      const head = this.queue[0] as Job | WriteJob;
      const canStart = head.exclusive ? this.active === 0 : !this.exclusiveActive && this.active < this.maxInFlight;
      if (!canStart) return;
      this.queue.shift();
      if ('msg' in head) this.startWrite(head);
      else head.start();
    }
  }
}
