/**
 * An nfnetlink_queue client (NFQUEUE): the packets a rule hands to queue N come to `handler`, and
 * every one gets its verdict at once — ACCEPT, with a new mark when the handler returns one.
 *
 * Design note:
 * - One NETLINK_NETFILTER socket per queue. Opening binds the queue (NFQNL_CFG_CMD_BIND), sets copy
 *   mode PACKET with a copy range sized for a DNS datagram, the queue length, and
 *   NFQA_CFG_F_FAIL_OPEN: when the queue is full the kernel accepts packets untouched instead of
 *   dropping them. Both config messages are acked; a refusal (EPERM: the queue belongs to another
 *   socket) rejects the open.
 * - The handler is synchronous and must not block; whatever it throws counts as a plain ACCEPT
 *   ("if in doubt, pass"). Verdicts are fire-and-forget (no ACK), as libnetfilter_queue does.
 * - Overruns: when packets arrive faster than we read them the kernel reports ENOBUFS on the
 *   socket. The netlink package delivers that as an 'error' event and keeps reading; we count it
 *   (`overruns`) and go on. The lost messages were never delivered; with FAIL_OPEN the kernel
 *   accepted them itself.
 * - close() unbinds and closes the socket. If the process dies the kernel releases the queue with
 *   the socket; the rule's bypass flag then accepts every packet (fail-open).
 */
import { RawNetlinkSocket } from 'netlink';
import { NLM_F_ACK, NLM_F_REQUEST } from './codec';
import { attr, attrsOf, kernelError, message, u32be } from './nft-netlink';
import { invalid } from '../errors';
import type { PacketHandler, PacketQueue, PacketQueueOptions, PacketQueueStats } from './types';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_QUEUE = 3;
const NFQNL_MSG_PACKET = 0;
const NFQNL_MSG_VERDICT = 1;
const NFQNL_MSG_CONFIG = 2;
const AF_INET = 2;
const CMD_BIND = 1;
const CMD_UNBIND = 2;
const COPY_PACKET = 2;
const FAIL_OPEN = 1;
const NF_ACCEPT = 1;
const A_PACKET_HDR = 1;
const A_VERDICT_HDR = 2;
const A_MARK = 3;
const A_IFINDEX_INDEV = 5;
const A_PAYLOAD = 10;

const type = (msg: number): number => (NFNL_SUBSYS_QUEUE << 8) | msg;
const cmd = (c: number): Buffer => attr(1 /* NFQA_CFG_CMD */, Buffer.from([c, 0, 0, AF_INET])); // cmd u8, pad, pf be16

class NfQueue implements PacketQueue {
  readonly stats: PacketQueueStats = { received: 0, marked: 0, handlerErrors: 0, overruns: 0, sendErrors: 0 };
  private seq = (Date.now() & 0x7fffffff) >>> 0;
  private closed = false;

  constructor(
    readonly queue: number,
    private readonly sock: RawNetlinkSocket,
    private readonly handler: PacketHandler,
  ) {
    sock.on('message', (buf: Buffer) => this.receive(buf));
    sock.on('error', (e: { code?: string }) => {
      if (e.code === 'ENOBUFS') this.stats.overruns++;
      else this.stats.sendErrors++;
    });
  }

  private receive(buf: Buffer): void {
    for (let off = 0; off + 16 <= buf.length; ) {
      const len = buf.readUInt32LE(off);
      if (len < 16 || off + len > buf.length) break;
      const t = buf.readUInt16LE(off + 4);
      if (t === type(NFQNL_MSG_PACKET)) this.packet(buf.subarray(off + 16, off + len));
      else if (t === 2 /* NLMSG_ERROR: a refused verdict (the kernel answers those even without ACK) */ && len >= 20 && buf.readInt32LE(off + 16) < 0) this.stats.sendErrors++;
      off += (len + 3) & ~3;
    }
  }

  private packet(body: Buffer): void {
    const a = attrsOf(body);
    const hdr = a.get(A_PACKET_HDR);
    if (!hdr || hdr.length < 4) return;
    const id = hdr.readUInt32BE(0);
    const mark = a.get(A_MARK)?.readUInt32BE(0) ?? 0;
    const indev = a.get(A_IFINDEX_INDEV)?.readUInt32BE(0) ?? 0;
    this.stats.received++;
    let newMark: number | undefined;
    try {
      newMark = this.handler({ id, mark, indev, payload: a.get(A_PAYLOAD) ?? Buffer.alloc(0) })?.mark;
    } catch {
      this.stats.handlerErrors++;
      newMark = undefined;
    }
    if (newMark !== undefined) this.stats.marked++;
    this.verdict(id, newMark);
  }

  private verdict(id: number, mark?: number): void {
    if (this.closed) return;
    const body = [attr(A_VERDICT_HDR, Buffer.concat([u32be(NF_ACCEPT), u32be(id)]))];
    if (mark !== undefined) body.push(attr(A_MARK, u32be(mark)));
    this.sock.send(message(type(NFQNL_MSG_VERDICT), NLM_F_REQUEST, ++this.seq, 0, this.queue, body), {}, (e) => {
      if (e) this.stats.sendErrors++;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => this.sock.send(message(type(NFQNL_MSG_CONFIG), NLM_F_REQUEST, ++this.seq, 0, this.queue, [cmd(CMD_UNBIND)]), {}, () => resolve()));
    this.sock.close();
  }
}

/** Bind queue `queue` and hand its packets to `handler` (see the note at the top). */
export async function openPacketQueue(queue: number, handler: PacketHandler, opts: PacketQueueOptions = {}, timeoutMs = 5000): Promise<PacketQueue> {
  if (!Number.isInteger(queue) || queue < 0 || queue > 65535) throw invalid(`packet queue number ${queue}: must be an integer 0–65535; choose another queue number`);
  const copyRange = opts.copyRange ?? 1500;
  const maxLen = opts.maxLen ?? 64;
  const sock = new RawNetlinkSocket(NETLINK_NETFILTER, { recvBufferSize: opts.recvBufferSize ?? 1 << 20, sendBufferSize: 0 });
  const q = new NfQueue(queue, sock, handler);
  const params = Buffer.concat([u32be(copyRange), Buffer.from([COPY_PACKET])]);
  // The bind must come from the socket that receives, so the config goes over `sock` itself.
  try {
    await configure(sock, queue, [[cmd(CMD_BIND)], [attr(2 /* PARAMS */, params), attr(3 /* QUEUE_MAXLEN */, u32be(maxLen)), attr(4 /* MASK */, u32be(FAIL_OPEN)), attr(5 /* FLAGS */, u32be(FAIL_OPEN))]], timeoutMs);
  } catch (e) {
    sock.close();
    throw e;
  }
  return q;
}

function configure(sock: RawNetlinkSocket, queue: number, bodies: Buffer[][], timeoutMs: number): Promise<void> {
  const seqs = bodies.map((_, i) => ((Date.now() & 0x3fffffff) + i + 1) >>> 0);
  return new Promise<void>((resolve, reject) => {
    const open = new Set(seqs);
    const done = (e?: Error): void => {
      clearTimeout(timer);
      sock.off('message', onMessage);
      if (e) reject(e);
      else resolve();
    };
    const timer = setTimeout(() => done(kernelError(`nfqueue: bind queue ${queue} (no answer within ${timeoutMs} ms)`, -110 /* ETIMEDOUT */)), timeoutMs);
    const onMessage = (buf: Buffer): void => {
      for (let off = 0; off + 16 <= buf.length; ) {
        const len = buf.readUInt32LE(off);
        if (len < 16 || off + len > buf.length) break;
        const seq = buf.readUInt32LE(off + 8);
        if (buf.readUInt16LE(off + 4) === 2 /* NLMSG_ERROR */ && open.has(seq)) {
          const errno = buf.readInt32LE(off + 16);
          if (errno < 0) return done(kernelError(`nfqueue: bind queue ${queue}`, errno));
          open.delete(seq);
        }
        off += (len + 3) & ~3;
      }
      if (open.size === 0) done();
    };
    sock.on('message', onMessage);
    sock.send(Buffer.concat(bodies.map((b, i) => message(type(NFQNL_MSG_CONFIG), NLM_F_REQUEST | NLM_F_ACK, seqs[i]!, 0, queue, b))), {}, (e) => e && done(e));
  });
}

