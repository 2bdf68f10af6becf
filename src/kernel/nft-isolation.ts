/**
 * The head block of `ip filter FORWARD` (src/domain/forward-head.ts) over nftables netlink
 * (nft-netlink.ts): intra-overlay accepts and the isolation drops between overlays, in
 * iptables-nft's encoding (`-s N -d N -j ACCEPT`, `-s A -d B -j DROP`, comments as rule user data),
 * right after Docker's `-j DOCKER-USER` jump (or at the head without one).
 * Isolation is what Docker does between its bridge networks: a container of overlay A cannot reach
 * overlay B through this host, whether B's container is on this host or on another one; traffic
 * arriving from another host for B's subnet here is dropped the same way, so every host enforces it.
 * When the block is not exactly as wanted and in place, it is rewritten in ONE transaction (delete
 * ours, insert the wanted rules at the anchor in reverse order), so no packet sees the chain
 * without it. Like nft-forward.ts we never create tables or chains: without `ip filter FORWARD`
 * it reports 'no-chain'.
 */
import { forwardHeadRules, headPlacement, isHeadComment, type HeadRule } from '../domain/forward-head';
import {
  attr,
  commentUdata,
  commitBatch,
  counter,
  delRuleMessage,
  dumpChain,
  jumpTarget,
  matchAddress,
  message,
  NF_ACCEPT,
  NFPROTO_IPV4,
  NFT_MSG_NEWRULE,
  NFTA_RULE_CHAIN,
  NFTA_RULE_EXPRESSIONS,
  NFTA_RULE_POSITION,
  NFTA_RULE_TABLE,
  NFTA_RULE_USERDATA,
  nest,
  nftType,
  NLM_F_ACK,
  NLM_F_APPEND,
  NLM_F_CREATE,
  NLM_F_REQUEST,
  sequencer,
  str,
  verdict,
} from './nft-netlink';

const TABLE = 'filter';
const CHAIN = 'FORWARD';
const NF_DROP = 0;

export type IsolationResult = { state: 'no-chain' } | { state: 'ok'; added: number; removed: number };

const base = (): Buffer[] => [attr(NFTA_RULE_TABLE, str(TABLE)), attr(NFTA_RULE_CHAIN, str(CHAIN))];

function ruleBody(r: HeadRule): Buffer[] {
  const exprs = [...matchAddress(r.src, 'src'), ...matchAddress(r.dst, 'dst'), counter(), verdict(r.verdict === 'accept' ? NF_ACCEPT : NF_DROP)];
  return [nest(NFTA_RULE_EXPRESSIONS, ...exprs), attr(NFTA_RULE_USERDATA, commentUdata(r.comment))];
}

const u64be = (n: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};

/**
 * Make the head of `ip filter FORWARD` hold exactly the block for `networks` (accept within each
 * overlay, drop between every two), in place; nothing else of ours there.
 */
export async function ensureOverlayIsolation(networks: readonly string[], timeoutMs = 5000): Promise<IsolationResult> {
  const rules = await dumpChain(TABLE, CHAIN, timeoutMs);
  if (rules === 'no-chain') return { state: 'no-chain' };
  const wanted = forwardHeadRules(networks);
  const placement = headPlacement(
    rules.map((r) => ({ comment: r.comment, jump: jumpTarget(r.expressions) })),
    wanted,
  );
  if (placement.inPlace) return { state: 'ok', added: 0, removed: 0 };
  const seq = sequencer();
  const acks: number[] = [];
  const ours = rules.filter((r) => isHeadComment(r.comment));
  const msgs = ours.map((r) => delRuleMessage(base(), r.handle, seq, acks));
  const anchor = placement.anchor === 'after-docker-user' ? rules.find((r) => jumpTarget(r.expressions) === 'DOCKER-USER') : undefined;
  // Each rule goes right after the anchor (NLM_F_APPEND + position) or to the head (neither):
  // inserting the wanted rules last to first leaves them in order.
  for (const r of [...wanted].reverse()) {
    const s = seq();
    acks.push(s);
    const where = anchor ? [attr(NFTA_RULE_POSITION, u64be(anchor.handle))] : [];
    msgs.push(message(nftType(NFT_MSG_NEWRULE), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK | (anchor ? NLM_F_APPEND : 0), s, NFPROTO_IPV4, 0, [...base(), ...where, ...ruleBody(r)]));
  }
  await commitBatch(msgs, acks, seq, timeoutMs, `overlay rules at the head of ${TABLE} ${CHAIN}`);
  return { state: 'ok', added: wanted.length, removed: ours.length };
}
