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
 * One short-lived NETLINK_NETFILTER socket per exchange (nft-netlink.ts); needs CAP_NET_ADMIN only.
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
  NF_ACCEPT,
  NFPROTO_IPV4,
  NFT_MSG_NEWRULE,
  NFTA_RULE_CHAIN,
  NFTA_RULE_EXPRESSIONS,
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

export const FORWARD_TABLE = 'filter';
export const FORWARD_CHAIN = 'FORWARD';
export type ForwardResult = 'present' | 'added' | 'no-chain';

/** The comment that marks our rule for `network` in direction `dir`. */
export function ruleComment(network: string, dir: 'src' | 'dst'): string {
  return `overlay-flannel ${network} ${dir}`;
}

/** `ip saddr|daddr <network> accept`, commented. `network` is `a.b.c.d/len` (base aligned). */
function ruleBody(network: string, dir: 'src' | 'dst'): Buffer[] {
  const exprs = [...matchAddress(network, dir), counter(), verdict(NF_ACCEPT)];
  return [attr(NFTA_RULE_TABLE, str(FORWARD_TABLE)), attr(NFTA_RULE_CHAIN, str(FORWARD_CHAIN)), nest(NFTA_RULE_EXPRESSIONS, ...exprs), attr(NFTA_RULE_USERDATA, commentUdata(ruleComment(network, dir)))];
}

/**
 * Make sure `ip filter FORWARD` accepts traffic from and to `network` (e.g. "10.1.0.0/16").
 * 'present': both rules were there; 'added': at least one was appended; 'no-chain': there is no
 * nftables `ip filter` / `FORWARD` on this host (nothing done).
 */
export async function ensureForwardAccept(network: string, timeoutMs = 5000): Promise<ForwardResult> {
  const rules = await dumpChain(FORWARD_TABLE, FORWARD_CHAIN, timeoutMs);
  if (rules === 'no-chain') return 'no-chain';
  const comments = new Set(rules.map((r) => r.comment).filter(Boolean));
  const missing = (['src', 'dst'] as const).filter((d) => !comments.has(ruleComment(network, d)));
  if (missing.length === 0) return 'present';
  const seq = sequencer();
  const ruleSeqs = missing.map(() => seq());
  const msgs = missing.map((d, i) => message(nftType(NFT_MSG_NEWRULE), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, ruleSeqs[i]!, NFPROTO_IPV4, 0, ruleBody(network, d)));
  const acks = await exchange(batch(seq, msgs), ruleSeqs, timeoutMs);
  for (const s of ruleSeqs) {
    const errno = acks.get(s)?.errno ?? 0;
    if (errno === -2) return 'no-chain'; // removed between the two exchanges
    if (errno < 0) throw kernelError(`nftables: append accept rule for ${network} to ${FORWARD_TABLE} ${FORWARD_CHAIN}`, errno);
  }
  return 'added';
}
