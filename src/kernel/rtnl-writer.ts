/**
 * Batched rtnetlink writes: many neighbour/FDB/route requests in one sendmsg on our own raw
 * NETLINK_ROUTE socket, each with NLM_F_ACK, their answers matched back by sequence number.
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

const NETLINK_ROUTE = 0;
const NLMSG_ERROR = 2;
/** Flush early above this many queued bytes (the default send buffer is ≥ 208 KiB). */
const MAX_DATAGRAM = 64 << 10;

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
  datagram: Datagram | null; // null while queued
}

interface Datagram {
  unanswered: number;
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
  /** Datagrams sent (the scale budget test counts them). */
  datagrams = 0;

  constructor(
    private readonly timeoutMs: number,
    private readonly recvBufferSize: number,
  ) {}

  /** Send one complete netlink message (header included; its seq is filled in here); resolves on the ack. */
  send(msg: Buffer): Promise<void> {
    const seq = this.nextSeq();
    msg.writeUInt32LE(seq, 8);
    return new Promise<void>((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject, datagram: null });
      this.queued.push(msg);
      this.queuedSeqs.push(seq);
      this.queuedBytes += msg.length;
      if (this.queuedBytes >= MAX_DATAGRAM) this.flush();
      else this.flushTimer ??= setImmediate(() => this.flush());
    });
  }

  /** Fail everything waiting and drop the socket (the next send opens a new one). */
  reset(why: string): void {
    if (this.flushTimer) clearImmediate(this.flushTimer);
    this.flushTimer = null;
    this.queued = [];
    this.queuedSeqs = [];
    this.queuedBytes = 0;
    const err = new Error(why);
    for (const w of this.waiting.values()) {
      if (w.datagram) clearTimeout(w.datagram.timer);
      w.reject(err);
    }
    this.waiting.clear();
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
      if (buf.readUInt16LE(off + 4) === NLMSG_ERROR && len >= 20) {
        const errno = -buf.readInt32LE(off + 16);
        const seq = buf.readUInt32LE(off + 8);
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
    if (this.waiting.size === 0) this.sock?.unref();
    if (err) w.reject(err);
    else w.resolve();
  }
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return String(errno);
  }
}
