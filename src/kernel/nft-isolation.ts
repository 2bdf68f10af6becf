/**
 * Isolation between overlays, over nftables netlink (nft-netlink.ts): for every ordered pair of
 * overlay Networks (A, B) joined on this host, `ip saddr A ip daddr B counter drop` (iptables-nft's
 * `-s A -d B -j DROP`) at the head of `ip filter FORWARD`, before the accept rules of
 * nft-forward.ts. This is what Docker does between its bridge networks: a container of overlay A
 * cannot reach overlay B through this host, whether B's container is on this host (bridge to
 * bridge) or on another one (bridge to flannel.<VNI of B>); traffic arriving from another host on
 * flannel.<VNI of A> for B's subnet here is dropped the same way, so every host enforces it.
 * Our rules carry the comment `overlay-flannel isolate A B`; rules of ours for pairs no longer
 * wanted (an overlay's Network changed) are deleted by handle. Like nft-forward.ts we never create
 * tables or chains: without `ip filter FORWARD` it reports 'no-chain'.
 */
import {
  attr,
  batch,
  commentUdata,
  counter,
  dumpChain,
  exchange,
  kernelError,
  matchAddress,
  message,
  NFPROTO_IPV4,
  NFT_MSG_DELRULE,
  NFT_MSG_NEWRULE,
  NFTA_RULE_CHAIN,
  NFTA_RULE_EXPRESSIONS,
  NFTA_RULE_HANDLE,
  NFTA_RULE_TABLE,
  NFTA_RULE_USERDATA,
  nest,
  nftType,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_REQUEST,
  sequencer,
  str,
  verdict,
} from './nft-netlink';

const TABLE = 'filter';
const CHAIN = 'FORWARD';
const NF_DROP = 0;
const PREFIX = 'overlay-flannel isolate ';

export type IsolationResult = { state: 'no-chain' } | { state: 'ok'; added: number; removed: number };

export function isolationComment(from: string, to: string): string {
  return `${PREFIX}${from} ${to}`;
}

/** Every ordered pair of distinct networks (as `a.b.c.d/len`), deduplicated. */
export function isolationPairs(networks: readonly string[]): [string, string][] {
  const uniq = [...new Set(networks)].sort();
  const out: [string, string][] = [];
  for (const a of uniq) for (const b of uniq) if (a !== b) out.push([a, b]);
  return out;
}

function ruleBody(from: string, to: string): Buffer[] {
  const exprs = [...matchAddress(from, 'src'), ...matchAddress(to, 'dst'), counter(), verdict(NF_DROP)];
  return [attr(NFTA_RULE_TABLE, str(TABLE)), attr(NFTA_RULE_CHAIN, str(CHAIN)), nest(NFTA_RULE_EXPRESSIONS, ...exprs), attr(NFTA_RULE_USERDATA, commentUdata(isolationComment(from, to)))];
}

const u64be = (n: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};

/** Make `ip filter FORWARD` drop traffic between every two of `networks`, and nothing else of ours. */
export async function ensureOverlayIsolation(networks: readonly string[], timeoutMs = 5000): Promise<IsolationResult> {
  const rules = await dumpChain(TABLE, CHAIN, timeoutMs);
  if (rules === 'no-chain') return { state: 'no-chain' };
  const wanted = new Map(isolationPairs(networks).map(([a, b]) => [isolationComment(a, b), [a, b] as const]));
  const present = new Set<string>();
  const stale: bigint[] = [];
  for (const r of rules) {
    if (!r.comment?.startsWith(PREFIX)) continue;
    if (wanted.has(r.comment) && !present.has(r.comment)) present.add(r.comment);
    else stale.push(r.handle);
  }
  const add = [...wanted].filter(([c]) => !present.has(c)).map(([, p]) => p);
  if (add.length === 0 && stale.length === 0) return { state: 'ok', added: 0, removed: 0 };
  const seq = sequencer();
  const seqs: number[] = [];
  const msgs: Buffer[] = [];
  for (const h of stale) {
    const s = seq();
    seqs.push(s);
    msgs.push(message(nftType(NFT_MSG_DELRULE), NLM_F_REQUEST | NLM_F_ACK, s, NFPROTO_IPV4, 0, [attr(NFTA_RULE_TABLE, str(TABLE)), attr(NFTA_RULE_CHAIN, str(CHAIN)), attr(NFTA_RULE_HANDLE, u64be(h))]));
  }
  for (const [a, b] of add) {
    const s = seq();
    seqs.push(s);
    // No NLM_F_APPEND and no position: the rule goes to the head of the chain (`nft insert`).
    msgs.push(message(nftType(NFT_MSG_NEWRULE), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, s, NFPROTO_IPV4, 0, ruleBody(a, b)));
  }
  const acks = await exchange(batch(seq, msgs), seqs, timeoutMs);
  for (const s of seqs) {
    const errno = acks.get(s)?.errno ?? 0;
    if (errno === -2) return { state: 'no-chain' };
    if (errno < 0) throw kernelError(`nftables: isolation rules in ${TABLE} ${CHAIN}`, errno);
  }
  return { state: 'ok', added: add.length, removed: stale.length };
}
