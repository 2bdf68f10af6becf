/**
 * flannel's forward rules (`--iptables-forward-rules`, on by default), over nftables netlink:
 * `ip saddr N accept` and `ip daddr N accept` appended to the chain FORWARD of table `ip filter`.
 *
 * Why: dockerd sets the FORWARD policy to DROP when it turns on ip_forward (every fresh Docker
 * host), and overlay traffic is routed (bridge → flannel.<VNI> and back), so without these two
 * rules no packet crosses hosts. flanneld adds the same rules (flannel-compat.md §5).
 * How: Docker 20.10 on Debian 12 drives iptables-nft, whose `filter`/`FORWARD` are the nftables
 * table `ip filter` and its base chain FORWARD. We only ever append to that chain when it exists
 * (never create tables or chains, never touch the policy), and find our rules again by their
 * comment (nft's rule user data, `comment "overlay-flannel …"`), so calling this again — every full
 * sync, after a plugin restart — adds nothing twice. With no such chain (no Docker rules yet, or
 * iptables-legacy) it reports 'no-chain' and the caller warns; the next sync tries again.
 * One short-lived NETLINK_NETFILTER socket per call; needs CAP_NET_ADMIN only.
 */
import { getSystemErrorName } from 'node:util';
import { RawNetlinkSocket } from 'netlink';
import { KernelError } from './errno';
import { OverlayError } from '../errors';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFT_MSG_GETCHAIN = 4;
const NFT_MSG_NEWRULE = 6;
const NFT_MSG_GETRULE = 7;
const NFPROTO_IPV4 = 2;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_DUMP = 0x300;
const NLM_F_CREATE = 0x400;
const NLM_F_APPEND = 0x800;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLA_F_NESTED = 0x8000;
const NFTA_RULE_TABLE = 1;
const NFTA_RULE_CHAIN = 2;
const NFTA_RULE_EXPRESSIONS = 4;
const NFTA_RULE_USERDATA = 7;
const NFTA_CHAIN_TABLE = 1;
const NFTA_CHAIN_NAME = 3;
const NF_ACCEPT = 1;

export const FORWARD_TABLE = 'filter';
export const FORWARD_CHAIN = 'FORWARD';
export type ForwardResult = 'present' | 'added' | 'no-chain';

// ---- encoding ----
const u32be = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const str = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');
function attr(type: number, value: Buffer): Buffer {
  const len = 4 + value.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  value.copy(b, 4);
  return b;
}
const nest = (type: number, ...attrs: Buffer[]): Buffer => attr(type | NLA_F_NESTED, Buffer.concat(attrs));
function expr(name: string, ...data: Buffer[]): Buffer {
  return nest(1 /* NFTA_LIST_ELEM */, attr(1 /* NFTA_EXPR_NAME */, str(name)), nest(2 /* NFTA_EXPR_DATA */, ...data));
}
const dataValue = (type: number, v: Buffer): Buffer => nest(type, attr(1 /* NFTA_DATA_VALUE */, v));
function message(type: number, flags: number, seq: number, family: number, resId: number, body: Buffer[]): Buffer {
  const payload = Buffer.concat([Buffer.from([family, 0, resId >> 8, resId & 0xff]), ...body]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + payload.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  return Buffer.concat([h, payload]);
}
const nftType = (msg: number): number => (NFNL_SUBSYS_NFTABLES << 8) | msg;

/** The comment that marks our rule for `network` in direction `dir`. */
export function ruleComment(network: string, dir: 'src' | 'dst'): string {
  return `overlay-flannel ${network} ${dir}`;
}

/** `ip saddr|daddr <network> accept`, commented. `network` is `a.b.c.d/len` (base aligned). */
function ruleBody(network: string, dir: 'src' | 'dst'): Buffer[] {
  const [base = '', lenText = ''] = network.split('/');
  const len = Number(lenText);
  const addr = Buffer.from(base.split('.').map(Number));
  const mask = u32be(len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);
  const exprs = [
    expr('payload', attr(1, u32be(1)) /* DREG reg1 */, attr(2, u32be(1)) /* BASE network header */, attr(3, u32be(dir === 'src' ? 12 : 16)), attr(4, u32be(4))),
    ...(len < 32 ? [expr('bitwise', attr(1, u32be(1)), attr(2, u32be(1)), attr(3, u32be(4)), dataValue(4, mask), dataValue(5, Buffer.alloc(4)))] : []),
    expr('cmp', attr(1, u32be(1)) /* SREG */, attr(2, u32be(0)) /* EQ */, dataValue(3, addr)),
    expr('counter'),
    expr('immediate', attr(1, u32be(0)) /* DREG verdict */, nest(2, nest(2 /* NFTA_DATA_VERDICT */, attr(1 /* CODE */, u32be(NF_ACCEPT))))),
  ];
  const comment = str(ruleComment(network, dir));
  const udata = Buffer.concat([Buffer.from([0 /* NFTNL_UDATA_RULE_COMMENT */, comment.length]), comment]);
  return [attr(NFTA_RULE_TABLE, str(FORWARD_TABLE)), attr(NFTA_RULE_CHAIN, str(FORWARD_CHAIN)), nest(NFTA_RULE_EXPRESSIONS, ...exprs), attr(NFTA_RULE_USERDATA, udata)];
}

// ---- decoding ----
interface Reply {
  type: number;
  seq: number;
  payload: Buffer;
}
function splitMessages(buf: Buffer): Reply[] {
  const out: Reply[] = [];
  for (let off = 0; off + 16 <= buf.length; ) {
    const len = buf.readUInt32LE(off);
    if (len < 16 || off + len > buf.length) break;
    out.push({ type: buf.readUInt16LE(off + 4), seq: buf.readUInt32LE(off + 8), payload: buf.subarray(off + 16, off + len) });
    off += (len + 3) & ~3;
  }
  return out;
}
/** Top-level attributes of an nfnetlink payload (after the 4-byte nfgenmsg). */
function attrsOf(payload: Buffer): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (let off = 4; off + 4 <= payload.length; ) {
    const len = payload.readUInt16LE(off);
    if (len < 4) break;
    m.set(payload.readUInt16LE(off + 2) & 0x3fff, payload.subarray(off + 4, off + len));
    off += (len + 3) & ~3;
  }
  return m;
}
/** The comment in a rule's user data (libnftnl TLVs), if any. */
function commentOf(udata: Buffer | undefined): string | undefined {
  for (let off = 0; udata && off + 2 <= udata.length; off += 2 + udata[off + 1]!) {
    if (udata[off] === 0) return udata.subarray(off + 2, off + 2 + udata[off + 1]!).toString('utf8').replace(/\0+$/, '');
  }
  return undefined;
}

/** Send `msgs` and collect replies until every seq in `waitSeqs` got its ACK/error (or DONE for dumps). */
function exchange(msgs: Buffer, waitSeqs: number[], timeoutMs: number): Promise<Map<number, { errno: number; msgs: Reply[] }>> {
  return new Promise((resolve, reject) => {
    const sock = new RawNetlinkSocket(NETLINK_NETFILTER);
    const results = new Map<number, { errno: number; msgs: Reply[] }>();
    const open = new Set(waitSeqs);
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(results);
    };
    const timer = setTimeout(() => finish(new OverlayError('UNAVAILABLE', `nftables: no answer from the kernel within ${timeoutMs} ms`)), timeoutMs);
    sock.on('error', (e) => finish(e));
    sock.on('message', (buf: Buffer) => {
      for (const r of splitMessages(buf)) {
        if (!open.has(r.seq)) continue;
        const entry = results.get(r.seq) ?? { errno: 0, msgs: [] };
        results.set(r.seq, entry);
        if (r.type === NLMSG_ERROR) {
          entry.errno = r.payload.readInt32LE(0);
          open.delete(r.seq);
        } else if (r.type === NLMSG_DONE) open.delete(r.seq);
        else entry.msgs.push(r);
      }
      if (open.size === 0) finish();
    });
    sock.send(msgs, {}, (e) => e && finish(e));
  });
}

function kernelError(what: string, errno: number): KernelError {
  const name = getSystemErrorName(errno);
  return new KernelError(`${what}: ${name}${name === 'EPERM' ? ' (needs CAP_NET_ADMIN)' : ''}`, name);
}

/**
 * Make sure `ip filter FORWARD` accepts traffic from and to `network` (e.g. "10.1.0.0/16").
 * 'present': both rules were there; 'added': at least one was appended; 'no-chain': there is no
 * nftables `ip filter` / `FORWARD` on this host (nothing done).
 */
export async function ensureForwardAccept(network: string, timeoutMs = 5000): Promise<ForwardResult> {
  let seq = (Date.now() & 0x7fffffff) >>> 0;
  const chainSeq = ++seq;
  const dumpSeq = ++seq;
  const query = Buffer.concat([
    message(nftType(NFT_MSG_GETCHAIN), NLM_F_REQUEST | NLM_F_ACK, chainSeq, NFPROTO_IPV4, 0, [attr(NFTA_CHAIN_TABLE, str(FORWARD_TABLE)), attr(NFTA_CHAIN_NAME, str(FORWARD_CHAIN))]),
    message(nftType(NFT_MSG_GETRULE), NLM_F_REQUEST | NLM_F_DUMP, dumpSeq, NFPROTO_IPV4, 0, [attr(NFTA_RULE_TABLE, str(FORWARD_TABLE)), attr(NFTA_RULE_CHAIN, str(FORWARD_CHAIN))]),
  ]);
  const got = await exchange(query, [chainSeq, dumpSeq], timeoutMs);
  const chainErr = got.get(chainSeq)?.errno ?? 0;
  if (chainErr === -2 /* ENOENT */) return 'no-chain';
  if (chainErr < 0) throw kernelError(`nftables: get chain ${FORWARD_TABLE} ${FORWARD_CHAIN}`, chainErr);
  const dump = got.get(dumpSeq);
  if (dump && dump.errno < 0) {
    if (dump.errno === -2) return 'no-chain';
    throw kernelError(`nftables: list rules of ${FORWARD_TABLE} ${FORWARD_CHAIN}`, dump.errno);
  }
  const comments = new Set((dump?.msgs ?? []).map((m) => commentOf(attrsOf(m.payload).get(NFTA_RULE_USERDATA))).filter(Boolean));
  const missing = (['src', 'dst'] as const).filter((d) => !comments.has(ruleComment(network, d)));
  if (missing.length === 0) return 'present';
  const ruleSeqs = missing.map(() => ++seq);
  const batch = Buffer.concat([
    message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, ++seq, 0, NFNL_SUBSYS_NFTABLES, []),
    ...missing.map((d, i) => message(nftType(NFT_MSG_NEWRULE), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, ruleSeqs[i]!, NFPROTO_IPV4, 0, ruleBody(network, d))),
    message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, ++seq, 0, NFNL_SUBSYS_NFTABLES, []),
  ]);
  const acks = await exchange(batch, ruleSeqs, timeoutMs);
  for (const s of ruleSeqs) {
    const errno = acks.get(s)?.errno ?? 0;
    if (errno === -2) return 'no-chain'; // removed between the two exchanges
    if (errno < 0) throw kernelError(`nftables: append accept rule for ${network} to ${FORWARD_TABLE} ${FORWARD_CHAIN}`, errno);
  }
  return 'added';
}
