/**
 * The cross-host names resolver (docs/names-design.md §1, §3, §6): Docker's embedded DNS forwards
 * the names it does not know from inside the container's namespace to its upstream; those
 * queries pass this host on their way out, and the kernel hands each one to us (NFQUEUE, before
 * conntrack). We answer only the names of the querying container's own network that live on
 * other hosts, and leave every other packet exactly as it was.
 *
 *   queued packet ── decideQuery (domain/dns-verdict.ts) ── 'answer' → ACCEPT + mark bit
 *                                                       └─ anything else → plain ACCEPT
 *   marked packet ── kernel: ct zone + DNAT → answer socket (NAME_ANSWER_ADDR:53 on lo)
 *   answer socket ── planAnswer → A/AAAA records, NODATA, or SERVFAIL (the name vanished)
 *                    conntrack turns the reply's source back into the upstream's address.
 *
 * Design note.
 * - Fails open: the queue rule carries --queue-bypass and the queue FAIL_OPEN, so with this
 *   process dead, hung or flooded, queries go to the upstream untouched (overlay names then get
 *   the upstream's NXDOMAIN, as before this feature).
 * - The answer address sits on `lo` as a /32: link-local, so never routed off the host, and on a
 *   device that always exists (this kernel has no dummy module; a bridge of ours comes and goes
 *   with its network). The guard chain drops every packet to it that was not DNATed from a
 *   container device: no open resolver towards the host or the LAN.
 * - Start order: address, socket, rules, queue; stop is the reverse (queue unbound first, so the
 *   bypass passes queries before the rules go). Every failure is one log line naming the fix;
 *   the resolver is then off and the daemon goes on (`startNameResolver` returns null).
 * - Answers: TTL 10 s (records follow a NAME_TTL lease), AA, never TC (what does not fit is left
 *   out: nobody retries an overlay name over TCP, where we do not answer).
 */
import { createSocket, type Socket } from 'node:dgram';
import type { Logger } from 'pino';
import type { Kernel, NameInterceptionSpec, PacketQueue } from '../kernel';
import { decideQuery, planAnswer, QueryBudget, type QueryVerdict } from '../domain/dns-verdict';
import { encodeAddressAnswer, encodeServerFailure } from '../domain/dns-message';
import { BRIDGE_PREFIX, HOST_VETH_PREFIX } from '../domain/names';
import type { NameTable } from '../domain/name-table';
import { UndoStack } from '../util/undo-stack';
import { errorText } from '../errors';

export const ANSWER_TTL_SEC = 10;
export const ANSWER_PORT = 53;
const QUEUE_MAXLEN = 64;
const DROP_LOG_EVERY_MS = 60_000;

export interface NameResolverStats {
  /** Packets the kernel queued to us, by verdict. */
  verdicts: Record<QueryVerdict, number>;
  /** Answers sent with addresses (or NODATA), SERVFAILs, datagrams dropped at the answer socket. */
  answered: number;
  servfail: number;
  dropped: number;
  sendErrors: number;
}

export interface NameResolver {
  readonly stats: Readonly<NameResolverStats>;
  readonly queue: PacketQueue;
  readonly spec: NameInterceptionSpec;
  stop(): Promise<void>;
}

export interface NameResolverOptions {
  kernel: Kernel;
  table: NameTable;
  spec: NameInterceptionSpec;
  log: Logger;
  budget?: QueryBudget;
  now?: () => number;
}

/** The kernel hooks for these settings: both data paths' container-side devices. */
export function nameInterceptionSpec(s: { nameQueue: number; nameMarkBit: number; nameCtZone: number; nameAnswerAddr: string }): NameInterceptionSpec {
  return { queue: s.nameQueue, markBit: s.nameMarkBit, zone: s.nameCtZone, answerAddress: s.nameAnswerAddr, answerPort: ANSWER_PORT, interfacePrefixes: [HOST_VETH_PREFIX, BRIDGE_PREFIX] };
}

/** Start answering; null (after one error line naming the fix) when this host cannot. */
export async function startNameResolver(o: NameResolverOptions): Promise<NameResolver | null> {
  const { kernel, table, spec, log } = o;
  const now = o.now ?? Date.now;
  const budget = o.budget ?? new QueryBudget();
  const undo = new UndoStack();
  const stats: NameResolverStats = { verdicts: { answer: 0, 'not-dns': 0, 'not-ours': 0, limited: 0, malformed: 0, 'other-type': 0, miss: 0 }, answered: 0, servfail: 0, dropped: 0, sendErrors: 0 };
  const unwind = () => undo.unwind((what, e) => log.warn({ err: errorText(e) }, `names resolver: ${what} failed`));
  let step = '';
  let started = false;
  try {
    step = `putting ${spec.answerAddress}/32 on lo`;
    const lo = await kernel.getLink('lo');
    if (!lo) throw new Error('this network namespace has no "lo" device');
    const had = (await kernel.listAddresses(lo.index)).some((a) => a.address === spec.answerAddress && a.prefixLen === 32);
    await kernel.ensureOnlyAddress(lo.index, `${spec.answerAddress}/32`, `${spec.answerAddress}/32`);
    // a failed start takes back only what it added; a stop always removes it (a restarted plugin finds its predecessor's)
    undo.push(`removing ${spec.answerAddress}/32 from lo`, () => (had && !started ? undefined : kernel.removeAddress(lo.index, `${spec.answerAddress}/32`)));

    step = `opening the answer socket on ${spec.answerAddress}:${spec.answerPort}`;
    const socket = await bindAnswerSocket(spec);
    undo.push('closing the answer socket', () => new Promise<void>((r) => socket.close(() => r())));
    serveAnswers(socket, table, stats, log);

    step = 'writing the names rules (ip raw PREROUTING queue rule, table ip overlay-flannel-dns)';
    await kernel.ensureNameInterception(spec);
    undo.push('removing the names rules', () => kernel.removeNameInterception());

    step = `binding NFQUEUE ${spec.queue}`;
    const queue = await kernel.openPacketQueue(spec.queue, (p) => {
      const v = decideQuery(table, p.payload, budget, now());
      stats.verdicts[v]++;
      return v === 'answer' ? { mark: (p.mark | spec.markBit) >>> 0 } : undefined;
    }, { maxLen: QUEUE_MAXLEN });
    undo.push(`unbinding NFQUEUE ${spec.queue}`, () => queue.close());

    started = true;
    log.info({ queue: spec.queue, markBit: `0x${spec.markBit.toString(16)}`, zone: spec.zone, answer: `${spec.answerAddress}:${spec.answerPort}` }, 'names resolver: answering cross-host names of each container\'s own network');
    let stopped = false;
    return {
      stats,
      queue,
      spec,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        await unwind();
      },
    };
  } catch (e) {
    log.error({ err: errorText(e) }, `names resolver off: ${step}: ${startFix(step, e)}`);
    await unwind();
    return null;
  }
}

/** What to do about a failed start step, in the operator's terms. */
function startFix(step: string, e: unknown): string {
  const text = errorText(e);
  if (step.startsWith('opening the answer socket')) {
    return /EADDRINUSE/.test(text) ? 'another process already answers there: set NAME_ANSWER_ADDR to a free address in 169.254.0.0/16' : `${text} (set NAME_ANSWER_ADDR to a free address in 169.254.0.0/16)`;
  }
  if (step.startsWith('binding NFQUEUE')) {
    return /EPERM|EBUSY/.test(text) ? 'another program holds that queue (a second overlay-flannel on this host?): set NAME_QUEUE to a free queue number' : `${text} (the kernel needs CONFIG_NETFILTER_NETLINK_QUEUE)`;
  }
  if (step.startsWith('writing the names rules')) {
    return `${text} (the kernel needs the NFQUEUE target — CONFIG_NETFILTER_XT_TARGET_NFQUEUE or CONFIG_NFT_QUEUE —, conntrack zones CONFIG_NF_CONNTRACK_ZONES and NAT; cross-host names stay off, everything else works)`;
  }
  return text;
}

function bindAnswerSocket(spec: NameInterceptionSpec): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket({ type: 'udp4', reuseAddr: false });
    const fail = (e: Error) => {
      s.close();
      reject(e);
    };
    s.once('error', fail);
    s.bind({ address: spec.answerAddress, port: spec.answerPort, exclusive: true }, () => {
      s.off('error', fail);
      resolve(s);
    });
  });
}

/** Answer every datagram the DNAT brings (see the note at the top); drops are counted and logged at most once a minute. */
function serveAnswers(socket: Socket, table: NameTable, stats: NameResolverStats, log: Logger): void {
  let lastDropLog = 0;
  socket.on('error', (e) => log.warn({ err: errorText(e) }, 'names resolver: answer socket error'));
  socket.on('message', (msg, from) => {
    let reply: Uint8Array | null = null;
    try {
      const plan = planAnswer(table, from.address, msg);
      if (plan.kind === 'addresses') {
        const enc = encodeAddressAnswer(plan.query, plan.addresses, { ttlSeconds: ANSWER_TTL_SEC, overflow: 'trim' });
        if (enc.ok) {
          reply = enc.bytes;
          stats.answered++;
        } else {
          reply = encodeServerFailure(plan.query);
          stats.servfail++;
          log.warn({ name: plan.query.name, reason: enc.reason }, 'names resolver: a record could not be encoded; answered SERVFAIL');
        }
      } else if (plan.kind === 'servfail') {
        reply = encodeServerFailure(plan.query);
        stats.servfail++;
      } else {
        stats.dropped++;
        const t = Date.now();
        if (t - lastDropLog >= DROP_LOG_EVERY_MS) {
          lastDropLog = t;
          log.warn({ from: from.address, reason: plan.reason, droppedSoFar: stats.dropped }, 'names resolver: dropped a datagram at the answer socket (logged once a minute)');
        }
      }
    } catch (e) {
      stats.dropped++;
      log.error({ err: errorText(e) }, 'names resolver: answering failed (a bug); nothing sent');
    }
    if (reply) socket.send(reply, from.port, from.address, (e) => e && stats.sendErrors++);
  });
}
