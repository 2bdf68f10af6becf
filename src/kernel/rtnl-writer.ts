/**
 * Batched rtnetlink writes: many neighbour/FDB/route requests in one sendmsg on our own raw
 * NETLINK_ROUTE socket, each with NLM_F_ACK, their answers matched back by sequence number; and
 * the dumps of those tables, each reply message decoded as it is read.
 *
 * Why (docs/performance.md §7): through the netlink package each write cost ≈ 9 kB of garbage (its
 * request bookkeeping, a timer and two promise stages per request, a generic message formatter, a
 * `socket.address()` per send) and one syscall; at 10,000 peers programming made ≈ 280 MB of it,
 * which set the daemon's peak RSS. Here a write is one pre-encoded Buffer (rtnl-messages.ts) and a
 * slot in a Map; the writes started in one turn of the event loop leave in one datagram (the
 * kernel's netlink_rcv_skb runs every message of it and acks each, failures included), with one
 * timer per datagram.
 *
 * The caller bounds what is in flight (NlSocket's scheduler: at most `maxInFlight` writes), so the
 * acks (≈ 1 kB of receive buffer each) cannot overflow the 8 MiB receive buffer. Errors come back
 * in the package's words (`Request rejected: EEXIST`, `Timeout has been reached`) so errno.ts maps
 * them the same way as every other request.
 */
import { getSystemErrorName } from 'node:util';
import { RawNetlinkSocket } from 'netlink';
import { NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR } from './codec';

const NETLINK_ROUTE = 0;
/** Flush early above this many queued bytes (the default send buffer is ≥ 208 KiB). */
const MAX_DATAGRAM = 64 << 10;

interface Waiter {
  done: (e: Error | null) => void;
  datagram: Datagram | null; // null while queued
}

interface Datagram {
  unanswered: number;
  timer: NodeJS.Timeout;
}

/** One message of a dump: its type and payload (after the 16-byte header) as `b[start, end)`. */
export type DumpEach = (b: Buffer, start: number, end: number, type: number) => void;

interface Dump {
  seq: number;
  each: DumpEach;
  interrupted: boolean;
  done: (e: Error | null, interrupted: boolean) => void;
  timer: NodeJS.Timeout;
}

export class RtnlWriter {
  private sock: RawNetlinkSocket | null = null;
  private seq = 1;
  private readonly waiting = new Map<number, Waiter>();
  private queued: Buffer[] = [];
  private queuedBytes = 0;
  private queuedSeqs: number[] = [];
  private flushTimer: NodeJS.Immediate | null = null;
  private dumping: Dump | null = null;
  /** Datagrams sent (the scale budget test counts them). */
  datagrams = 0;

  constructor(
    private readonly timeoutMs: number,
    private readonly recvBufferSize: number,
  ) {}

  /** Send one complete netlink message (header included; its seq is filled in here); `done` gets the
   *  ack (null) or the failure, exactly once. A callback, not a promise: one object less per write. */
  send(msg: Buffer, done: (e: Error | null) => void): void {
    const seq = this.nextSeq();
    msg.writeUInt32LE(seq, 8);
    this.waiting.set(seq, { done, datagram: null });
    this.queued.push(msg);
    this.queuedSeqs.push(seq);
    this.queuedBytes += msg.length;
    if (this.queuedBytes >= MAX_DATAGRAM) this.flush();
    else this.flushTimer ??= setImmediate(this.flushNow);
  }

  private readonly flushNow = (): void => this.flush();

  /** A dump (`msg`: a GET request with NLM_F_DUMP), each reply message handed to `each` as it is
   *  read, nothing kept. The caller runs it alone (no write in flight: NlSocket's scheduler).
   *  Resolves with whether the kernel flagged it NLM_F_DUMP_INTR (the table changed meanwhile). */
  dump(msg: Buffer, each: DumpEach): Promise<boolean> {
    if (this.dumping) return Promise.reject(new Error('a dump is already running on this socket'));
    const seq = this.nextSeq();
    msg.writeUInt32LE(seq, 8);
    return new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => this.endDump(new Error('Timeout has been reached')), this.timeoutMs);
      timer.unref();
      this.dumping = { seq, each, interrupted: false, timer, done: (e, intr) => (e ? reject(e) : resolve(intr)) };
      this.sock ??= this.open();
      this.sock.ref();
      this.sock.send(msg, {}, (e) => e && this.endDump(new Error(`netlink send failed: ${e.message}`)));
    });
  }

  private endDump(e: Error | null): void {
    const d = this.dumping;
    if (!d) return;
    this.dumping = null;
    clearTimeout(d.timer);
    if (this.waiting.size === 0) this.sock?.unref();
    d.done(e, d.interrupted);
  }

  /** Fail everything waiting and drop the socket (the next send opens a new one). */
  reset(why: string): void {
    if (this.flushTimer) clearImmediate(this.flushTimer);
    this.flushTimer = null;
    this.queued = [];
    this.queuedSeqs = [];
    this.queuedBytes = 0;
    const err = new Error(why);
    const all = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of all) {
      if (w.datagram) clearTimeout(w.datagram.timer);
      w.done(err);
    }
    this.endDump(err);
    this.sock?.close();
    this.sock = null;
  }

  private nextSeq(): number {
    const s = this.seq;
    this.seq = (this.seq % 0x7fffffff) + 1;
    return s;
  }

  private open(): RawNetlinkSocket {
    const s = new RawNetlinkSocket(NETLINK_ROUTE, { recvBufferSize: this.recvBufferSize, sendBufferSize: 0 });
    s.unref();
    s.on('message', (buf: Buffer) => this.receive(buf));
    s.on('error', (e) => this.reset(`netlink socket error: ${e.message}`));
    return s;
  }

  private flush(): void {
    if (this.flushTimer) clearImmediate(this.flushTimer);
    this.flushTimer = null;
    if (this.queued.length === 0) return;
    const msgs = this.queued;
    const seqs = this.queuedSeqs;
    this.queued = [];
    this.queuedSeqs = [];
    this.queuedBytes = 0;
    this.sock ??= this.open();
    this.sock.ref();
    this.datagrams++;
    const timer = setTimeout(() => this.expire(seqs), this.timeoutMs);
    timer.unref();
    const datagram: Datagram = { unanswered: seqs.length, timer };
    for (const s of seqs) {
      const w = this.waiting.get(s);
      if (w) w.datagram = datagram;
    }
    this.sock.send(msgs.length === 1 ? (msgs[0] as Buffer) : Buffer.concat(msgs), {}, (e) => {
      if (e) for (const s of seqs) this.settle(s, new Error(`netlink send failed: ${e.message}`));
    });
  }

  private expire(seqs: number[]): void {
    for (const s of seqs) this.settle(s, new Error('Timeout has been reached'));
  }

  private receive(buf: Buffer): void {
    for (let off = 0; off + 16 <= buf.length; ) {
      const len = buf.readUInt32LE(off);
      if (len < 16 || off + len > buf.length) break;
      const type = buf.readUInt16LE(off + 4);
      const seq = buf.readUInt32LE(off + 8);
      const d = this.dumping;
      if (d && seq === d.seq) {
        if (buf.readUInt16LE(off + 6) & NLM_F_DUMP_INTR) d.interrupted = true;
        const errno = (type === NLMSG_ERROR || type === NLMSG_DONE) && len >= 20 ? -buf.readInt32LE(off + 16) : 0;
        if (type === NLMSG_ERROR || type === NLMSG_DONE) this.endDump(errno === 0 ? null : new Error(`Request rejected: ${errnoName(errno)}`));
        else d.each(buf, off + 16, off + len, type);
      } else if (type === NLMSG_ERROR && len >= 20) {
        const errno = -buf.readInt32LE(off + 16);
        this.settle(seq, errno === 0 ? null : new Error(`Request rejected: ${errnoName(errno)}`));
      }
      off += (len + 3) & ~3;
    }
  }

  private settle(seq: number, err: Error | null): void {
    const w = this.waiting.get(seq);
    if (!w) return;
    this.waiting.delete(seq);
    if (w.datagram && --w.datagram.unanswered === 0) clearTimeout(w.datagram.timer);
    if (this.waiting.size === 0 && !this.dumping) this.sock?.unref();
    w.done(err);
  }
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return String(errno);
  }
}
