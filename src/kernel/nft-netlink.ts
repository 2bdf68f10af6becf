/**
 * The small nftables-over-netlink toolkit under our nftables writers (nft-forward, nft-isolation,
 * nft-masq, nft-ports, nft-notrack, whose common dump/compare/write shape is nft-ruleset.ts):
 * message and attribute encoding, rule expressions in the shapes iptables-nft writes (so
 * `iptables -S` can still read a chain we touched, and dockerd's iptables calls keep working), the
 * reply decoder, one request/reply exchange over a short-lived NETLINK_NETFILTER socket
 * (CAP_NET_ADMIN only), and built on it the chain dump, the table lookup and one transaction
 * (NftTransaction: a batch of acked messages, answering the first refusal; also used by the
 * fast path's netdev table, nft-fastpath-batch.ts).
 */
import { getSystemErrorName } from 'node:util';
import { RawNetlinkSocket } from 'netlink';
import { attr, attrList, attrsOf, attrText, nest, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, str } from './codec';
import { KernelError } from './errno';
import { ip6ToBuf } from './codec6';

export { attr, attrList, attrsOf, attrText, nest, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, str };
import { OverlayError } from '../errors';

const NETLINK_NETFILTER = 12;
export const NFNL_SUBSYS_NFTABLES = 10;
export const NFNL_MSG_BATCH_BEGIN = 0x10;
export const NFNL_MSG_BATCH_END = 0x11;
export const NFT_MSG_GETCHAIN = 4;
export const NFT_MSG_NEWRULE = 6;
export const NFT_MSG_GETRULE = 7;
export const NFT_MSG_DELRULE = 8;
export const NFPROTO_IPV4 = 2;
export const NFPROTO_IPV6 = 10;
/** The nftables family of a rule about `cidr`: `ip6` when it has a ':' (as src/kernel/codec6.ts), else `ip`. */
export const nfFamilyOf = (cidr: string): number => (cidr.includes(':') ? NFPROTO_IPV6 : NFPROTO_IPV4);
export const NFTA_RULE_TABLE = 1;
export const NFTA_RULE_CHAIN = 2;
export const NFTA_RULE_HANDLE = 3;
export const NFTA_RULE_EXPRESSIONS = 4;
export const NFTA_RULE_POSITION = 6;
export const NFTA_RULE_USERDATA = 7;
export const NFTA_CHAIN_TABLE = 1;
export const NFTA_CHAIN_NAME = 3;
export const NF_ACCEPT = 1;
export const NFT_RETURN = -5;

// ---- encoding ----
export const u32be = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
export function expr(name: string, ...data: Buffer[]): Buffer {
  return nest(1 /* NFTA_LIST_ELEM */, attr(1 /* NFTA_EXPR_NAME */, str(name)), nest(2 /* NFTA_EXPR_DATA */, ...data));
}
export const dataValue = (type: number, v: Buffer): Buffer => nest(type, attr(1 /* NFTA_DATA_VALUE */, v));
export function message(type: number, flags: number, seq: number, family: number, resId: number, body: Buffer[]): Buffer {
  const payload = Buffer.concat([Buffer.from([family, 0, resId >> 8, resId & 0xff]), ...body]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + payload.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  return Buffer.concat([h, payload]);
}
export const nftType = (msg: number): number => (NFNL_SUBSYS_NFTABLES << 8) | msg;
/** The BATCH_BEGIN and BATCH_END messages around a batch. */
const BATCH_FRAME = 2 * 20;
export const batch = (seq: () => number, msgs: Buffer[]): Buffer =>
  Buffer.concat([
    message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq(), 0, NFNL_SUBSYS_NFTABLES, []),
    ...msgs,
    message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq(), 0, NFNL_SUBSYS_NFTABLES, []),
  ]);

/**
 * `ip saddr|daddr [!=] a.b.c.d/len` as iptables-nft writes `[!] -s|-d`: load 4 bytes, mask, compare;
 * for an IPv6 CIDR (`ip6 saddr|daddr`, ip6tables) the 16 bytes at offset 8|24 of the IPv6 header.
 */
export function matchAddress(cidr: string, dir: 'src' | 'dst', negate = false): Buffer[] {
  const [base = '', lenText = ''] = cidr.split('/');
  const len = Number(lenText);
  const v6 = base.includes(':');
  const size = v6 ? 16 : 4;
  const addr = v6 ? ip6ToBuf(base, 'nftables address match') : Buffer.from(base.split('.').map(Number));
  const mask = Buffer.alloc(size);
  for (let i = 0; i < size; i++) mask[i] = (0xff << (8 - Math.max(0, Math.min(8, len - 8 * i)))) & 0xff;
  const offset = v6 ? (dir === 'src' ? 8 : 24) : dir === 'src' ? 12 : 16;
  return [
    expr('payload', attr(1, u32be(1)) /* DREG reg1 */, attr(2, u32be(1)) /* BASE network header */, attr(3, u32be(offset)), attr(4, u32be(size))),
    ...(len < size * 8 ? [expr('bitwise', attr(1, u32be(1)), attr(2, u32be(1)), attr(3, u32be(size)), dataValue(4, mask), dataValue(5, Buffer.alloc(size)))] : []),
    expr('cmp', attr(1, u32be(1)) /* SREG */, attr(2, u32be(negate ? 1 : 0)) /* EQ | NEQ */, dataValue(3, addr)),
  ];
}
/** `-p tcp|udp --dport N`: meta l4proto, transport header bytes 2–3. */
export function matchProtoPort(proto: number, port: number): Buffer[] {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return [
    expr('meta', attr(2 /* NFTA_META_KEY */, u32be(16 /* NFT_META_L4PROTO */)), attr(1 /* DREG */, u32be(1))),
    expr('cmp', attr(1, u32be(1)), attr(2, u32be(0)), dataValue(3, Buffer.from([proto]))),
    expr('payload', attr(1, u32be(1)), attr(2, u32be(2)) /* transport header */, attr(3, u32be(2)), attr(4, u32be(2))),
    expr('cmp', attr(1, u32be(1)), attr(2, u32be(0)), dataValue(3, p)),
  ];
}
export const counter = (): Buffer => expr('counter');
/** An accept/return verdict (`-j ACCEPT`, `-j RETURN`). */
export const verdict = (code: number): Buffer =>
  expr('immediate', attr(1, u32be(0)) /* DREG verdict */, nest(2, nest(2 /* NFTA_DATA_VERDICT */, attr(1 /* CODE */, u32be(code)))));
/**
 * `-j MASQUERADE [--random-fully]` the way iptables-nft writes it: the xtables target through
 * nft_compat (IPv4: struct nf_nat_ipv4_multi_range_compat, rangesize 1, padded to 8 bytes; IPv6,
 * ip6tables: struct nf_nat_range, 40 bytes, flags first). nft's native `masq` expression would make
 * the chain unreadable to iptables 1.8 ("incompatible, use nft") and break dockerd's own iptables
 * calls on that chain.
 */
export function masqueradeTarget(randomFully: boolean, family = NFPROTO_IPV4): Buffer {
  const v6 = family === NFPROTO_IPV6;
  const info = Buffer.alloc(v6 ? 40 : 24);
  if (!v6) info.writeUInt32LE(1, 0); // rangesize (host order; little-endian hosts only, like the rest of this adapter)
  info.writeUInt32LE(randomFully ? 0x10 /* NF_NAT_RANGE_PROTO_RANDOM_FULLY */ : 0, v6 ? 0 : 4);
  return expr('target', attr(1 /* NFTA_TARGET_NAME */, str('MASQUERADE')), attr(2 /* REV */, u32be(0)), attr(3 /* INFO */, info));
}
/** A rule comment (`-m comment --comment`), as libnftnl user data. */
export function commentUdata(comment: string): Buffer {
  const c = str(comment);
  return Buffer.concat([Buffer.from([0 /* NFTNL_UDATA_RULE_COMMENT */, c.length]), c]);
}

// ---- decoding ----
export interface Reply {
  type: number;
  flags: number;
  seq: number;
  payload: Buffer;
}
function splitMessages(buf: Buffer): Reply[] {
  const out: Reply[] = [];
  for (let off = 0; off + 16 <= buf.length; ) {
    const len = buf.readUInt32LE(off);
    if (len < 16 || off + len > buf.length) break;
    out.push({ type: buf.readUInt16LE(off + 4), flags: buf.readUInt16LE(off + 6), seq: buf.readUInt32LE(off + 8), payload: buf.subarray(off + 16, off + len) });
    off += (len + 3) & ~3;
  }
  return out;
}
/** The verdict an `immediate` expression's NFTA_EXPR_DATA carries: its code and, for a jump/goto, the chain. */
export function immediateVerdict(exprData: Buffer | undefined): { code: number; chain?: string } | undefined {
  const data = attrsOf(exprData ?? Buffer.alloc(0), 0).get(2 /* NFTA_IMMEDIATE_DATA */);
  const v = attrsOf(attrsOf(data ?? Buffer.alloc(0), 0).get(2 /* NFTA_DATA_VERDICT */) ?? Buffer.alloc(0), 0);
  const code = v.get(1 /* NFTA_VERDICT_CODE */);
  if (!code || code.length < 4) return undefined;
  const chain = attrText(v.get(2 /* NFTA_VERDICT_CHAIN */));
  return chain === undefined ? { code: code.readInt32BE(0) } : { code: code.readInt32BE(0), chain };
}
/** The chain a rule jumps or goes to (`-j CHAIN`: an immediate verdict NFT_JUMP/NFT_GOTO), if it does. */
export function jumpTarget(expressions: Buffer): string | undefined {
  for (const [, elem] of attrList(expressions)) {
    const e = attrsOf(elem, 0);
    if (attrText(e.get(1 /* NFTA_EXPR_NAME */)) !== 'immediate') continue;
    const v = immediateVerdict(e.get(2 /* NFTA_EXPR_DATA */));
    if (v?.chain && (v.code === -3 /* NFT_JUMP */ || v.code === -4) /* NFT_GOTO */) return v.chain;
  }
  return undefined;
}
/** The comment in a rule's user data (libnftnl TLVs), if any. */
export function commentOf(udata: Buffer | undefined): string | undefined {
  for (let off = 0; udata && off + 2 <= udata.length; off += 2 + udata[off + 1]!) {
    if (udata[off] === 0) return attrText(udata.subarray(off + 2, off + 2 + udata[off + 1]!));
  }
  return undefined;
}

export interface ExchangeResult {
  errno: number;
  msgs: Reply[];
  doneErrno?: number;
}

/**
 * Send `msgs` and collect replies until every seq in `waitSeqs` got its ACK/error (or DONE for
 * dumps); replies to the seqs of `alsoRecord` that come meanwhile are kept too. `sendBufferSize`:
 * SO_SNDBUF for a big batch (the kernel refuses, EMSGSIZE, one sendmsg longer than the send
 * buffer; it caps the size at 2 × net.core.wmem_max). `protocol`: NETLINK_NETFILTER unless given
 * (wireguard-genl.ts speaks NETLINK_GENERIC through it). A dump's NLMSG_DONE carries the dump's
 * own error code: it is kept as `doneErrno` (errno stays the NLMSG_ERROR's).
 */
export function exchange(msgs: Buffer, waitSeqs: number[], timeoutMs: number, sendBufferSize?: number, alsoRecord?: ReadonlySet<number>, protocol = NETLINK_NETFILTER): Promise<Map<number, ExchangeResult>> {
  const what = protocol === NETLINK_NETFILTER ? 'nftables' : `netlink protocol ${protocol}`;
  return new Promise((resolve, reject) => {
    const sock = new RawNetlinkSocket(protocol, sendBufferSize ? { sendBufferSize, recvBufferSize: 0 /* 0: the default */ } : undefined);
    const results = new Map<number, ExchangeResult>();
    const open = new Set(waitSeqs);
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(results);
    };
    const timer = setTimeout(() => finish(new OverlayError('UNAVAILABLE', `${what}: no answer from the kernel within ${timeoutMs} ms`)), timeoutMs);
    sock.on('error', (e) => finish(e));
    sock.on('message', (buf: Buffer) => {
      for (const r of splitMessages(buf)) {
        if (!open.has(r.seq) && !alsoRecord?.has(r.seq)) continue;
        const entry = results.get(r.seq) ?? { errno: 0, msgs: [] as Reply[] };
        results.set(r.seq, entry);
        if (r.type === NLMSG_ERROR) {
          entry.errno = r.payload.readInt32LE(0);
          open.delete(r.seq);
        } else if (r.type === NLMSG_DONE) {
          entry.doneErrno = r.payload.length >= 4 ? r.payload.readInt32LE(0) : 0;
          open.delete(r.seq);
        }
        else entry.msgs.push(r);
      }
      if (open.size === 0) finish();
    });
    sock.send(msgs, {}, (e) => e && finish(e));
  });
}

export function kernelError(what: string, errno: number): KernelError {
  const name = getSystemErrorName(errno);
  return new KernelError(`${what}: ${name}${name === 'EPERM' ? ' (needs CAP_NET_ADMIN)' : ''}`, name);
}

/** A sequence counter for one call. */
export function sequencer(): () => number {
  let seq = (Date.now() & 0x7fffffff) >>> 0;
  return () => ++seq;
}

/** Bytes a batch may have before we ask for a larger send buffer (the default is ≥ 208 KiB). */
const PLAIN_SEND_BYTES = 64 << 10;
/** The most one sendmsg on a NETLINK_NETFILTER socket may carry when we ask for `bytes` of send buffer. */
export function sendLimit(bytes: number): number {
  const sock = new RawNetlinkSocket(NETLINK_NETFILTER, { sendBufferSize: bytes, recvBufferSize: 0 });
  try {
    return sock.getSendBufferSize() - 64; // netlink_sendmsg: EMSGSIZE above sk_sndbuf − 32
  } finally {
    sock.close();
  }
}

/**
 * One nftables transaction of `family`: messages added in order (each acked), sent as one batch
 * that the kernel applies whole or not at all. `commit` answers the first refused message — the
 * tag it was added with and its (negative) errno — or null when every message was accepted.
 * A batch above 64 KiB gets a send buffer of its size. `divisibleAbove` (bytes, default: never)
 * lets a larger transaction — or one that the send buffer cannot hold — go as several batches at
 * message boundaries, in order, each applied whole; after a refusal the later ones are not sent.
 * Only for writers whose partial state is harmless and repaired by the next write (the fast path).
 */
export class NftTransaction<Tag = undefined> {
  private readonly seq = sequencer();
  private readonly msgs: Buffer[] = [];
  private readonly sent: { seq: number; tag: Tag | undefined }[] = [];

  /**
   * `sparseAcks`: only the last message (of each batch) asks for an ACK. The kernel reports every
   * refused message anyway and goes on through the batch, so the last ACK (or refusal) marks the
   * end. For big batches: each ACK costs ~1 KiB of the socket's receive buffer, and an overflow
   * (ENOBUFS) aborts the process (docs/library-traps.md).
   */
  constructor(
    private readonly family: number,
    private readonly divisibleAbove = Infinity,
    private readonly opts: { sparseAcks?: boolean } = {},
  ) {}

  get size(): number {
    return this.msgs.length;
  }

  /** Bytes of the messages so far (the batch adds two small headers). */
  get bytes(): number {
    return this.msgs.reduce((n, m) => n + m.length, 0);
  }

  /** Add NFT_MSG_<type> with `flags` (besides REQUEST|ACK) and its attributes. */
  add(type: number, flags: number, body: Buffer[], tag?: Tag): void {
    const s = this.seq();
    this.sent.push({ seq: s, tag });
    this.msgs.push(message(nftType(type), NLM_F_REQUEST | (this.opts.sparseAcks ? 0 : NLM_F_ACK) | flags, s, this.family, 0, body));
  }

  async commit(timeoutMs: number): Promise<{ tag: Tag | undefined; errno: number } | null> {
    if (this.msgs.length === 0) return null;
    const total = this.msgs.reduce((n, m) => n + m.length, BATCH_FRAME);
    const limit = total <= PLAIN_SEND_BYTES ? Infinity : sendLimit(total + 4096);
    const most = Math.min(limit, this.divisibleAbove);
    if (total > limit && !Number.isFinite(this.divisibleAbove)) {
      throw new OverlayError('UNAVAILABLE', `nftables: a transaction of ${total} bytes exceeds the socket's send buffer (${limit}); raise net.core.wmem_max`);
    }
    for (const [from, to] of total <= most ? [[0, this.msgs.length]] : this.parts(most)) {
      const part = this.msgs.slice(from, to);
      const seqs = this.sent.slice(from, to).map((m) => m.seq);
      if (this.opts.sparseAcks) {
        const last = part[part.length - 1]!;
        last.writeUInt16LE(last.readUInt16LE(6) | NLM_F_ACK, 6); // nlmsg_flags
      }
      const bytes = part.reduce((n, m) => n + m.length, BATCH_FRAME);
      const got = await exchange(batch(this.seq, part), this.opts.sparseAcks ? seqs.slice(-1) : seqs, timeoutMs, bytes > PLAIN_SEND_BYTES ? bytes + 4096 : undefined, new Set(seqs));
      for (const m of this.sent.slice(from, to)) {
        const errno = got.get(m.seq)?.errno ?? 0;
        if (errno < 0) return { tag: m.tag, errno };
      }
    }
    return null;
  }

  /** [from, to) ranges of messages whose batches stay within `most` bytes (a bigger message goes alone). */
  private parts(most: number): [number, number][] {
    const out: [number, number][] = [];
    let from = 0;
    let bytes = BATCH_FRAME;
    this.msgs.forEach((m, i) => {
      if (i > from && bytes + m.length > most) {
        out.push([from, i]);
        from = i;
        bytes = BATCH_FRAME;
      }
      bytes += m.length;
    });
    out.push([from, this.msgs.length]);
    return out;
  }
}

export interface DumpedRule {
  handle: bigint;
  comment: string | undefined;
  expressions: Buffer;
}

/**
 * The rules of `table`/`chain` (family ip, or `family`), or 'no-chain' if that chain does not exist.
 */
export async function dumpChain(table: string, chain: string, timeoutMs: number, family = NFPROTO_IPV4): Promise<DumpedRule[] | 'no-chain'> {
  const seq = sequencer();
  const chainSeq = seq();
  const dumpSeq = seq();
  const query = Buffer.concat([
    message(nftType(NFT_MSG_GETCHAIN), NLM_F_REQUEST | NLM_F_ACK, chainSeq, family, 0, [attr(NFTA_CHAIN_TABLE, str(table)), attr(NFTA_CHAIN_NAME, str(chain))]),
    message(nftType(NFT_MSG_GETRULE), NLM_F_REQUEST | NLM_F_DUMP, dumpSeq, family, 0, [attr(NFTA_RULE_TABLE, str(table)), attr(NFTA_RULE_CHAIN, str(chain))]),
  ]);
  const got = await exchange(query, [chainSeq, dumpSeq], timeoutMs);
  const chainErr = got.get(chainSeq)?.errno ?? 0;
  if (chainErr === -2 /* ENOENT */) return 'no-chain';
  if (chainErr < 0) throw kernelError(`nftables: get chain ${table} ${chain}`, chainErr);
  const dump = got.get(dumpSeq);
  if (dump && dump.errno < 0) {
    if (dump.errno === -2) return 'no-chain';
    throw kernelError(`nftables: list rules of ${table} ${chain}`, dump.errno);
  }
  return (dump?.msgs ?? []).map((m) => {
    const a = attrsOf(m.payload);
    const h = a.get(NFTA_RULE_HANDLE);
    return { handle: h && h.length >= 8 ? h.readBigUInt64BE(0) : 0n, comment: commentOf(a.get(NFTA_RULE_USERDATA)), expressions: a.get(NFTA_RULE_EXPRESSIONS) ?? Buffer.alloc(0) };
  });
}

const NFT_MSG_GETTABLE_ = 1;

/** Whether nftables table `ip <table>` (or of `family`) exists. */
export async function tableExists(table: string, timeoutMs: number, family = NFPROTO_IPV4): Promise<boolean> {
  const seq = sequencer();
  const s = seq();
  const got = await exchange(message(nftType(NFT_MSG_GETTABLE_), NLM_F_REQUEST | NLM_F_ACK, s, family, 0, [attr(1 /* NFTA_TABLE_NAME */, str(table))]), [s], timeoutMs);
  const errno = got.get(s)?.errno ?? 0;
  if (errno === -2) return false;
  if (errno < 0) throw kernelError(`nftables: get table ${table}`, errno);
  return true;
}

/** A base chain as iptables-nft makes it (policy accept), of chain type `type` (nat, filter). */
export function baseChain(table: string, name: string, hooknum: number, priority: number, type: 'nat' | 'filter'): Buffer[] {
  return [
    attr(1 /* NFTA_CHAIN_TABLE */, str(table)),
    attr(3 /* NFTA_CHAIN_NAME */, str(name)),
    nest(4 /* NFTA_CHAIN_HOOK */, attr(1 /* HOOKNUM */, u32be(hooknum)), attr(2 /* PRIORITY */, u32be(priority))),
    attr(5 /* NFTA_CHAIN_POLICY */, u32be(1 /* NF_ACCEPT */)),
    attr(7 /* NFTA_CHAIN_TYPE */, str(type)),
  ];
}
