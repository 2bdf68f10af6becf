/**
 * Connection-tracking bypass for overlay traffic (src/domain/notrack-rules.ts) over nftables
 * netlink, in iptables-nft's `raw` table, written the way `iptables -t raw -A … -j CT --notrack`
 * writes it: address and port matches as payload/cmp, `-j ACCEPT` as an accept verdict, the xtables CT target (revision 2, struct
 * xt_ct_target_info_v1 with XT_CT_NOTRACK) through nft_compat, the comment as rule user data. So
 * `iptables -t raw -S` lists our rules and any raw rules of the host keep working.
 * Unlike nat/filter (made by dockerd), nobody creates `ip raw` on a Docker host: we create the table
 * and its PREROUTING/OUTPUT base chains (priority raw, -300) as iptables-nft would, and never delete
 * them (iptables leaves empty ones too). Our rules are appended and found again by their comment;
 * ensure rewrites them (one transaction) when they differ from what is wanted.
 */
import {
  attr,
  baseChain,
  commentUdata,
  commitBatch,
  counter,
  delRuleMessage,
  dumpChain,
  expr,
  matchAddress,
  matchProtoPort,
  message,
  NF_ACCEPT,
  nest,
  NFPROTO_IPV4,
  NFT_MSG_NEWRULE,
  NFTA_RULE_CHAIN,
  NFTA_RULE_EXPRESSIONS,
  NFTA_RULE_TABLE,
  NFTA_RULE_USERDATA,
  nftType,
  NLM_F_ACK,
  NLM_F_APPEND,
  NLM_F_CREATE,
  NLM_F_REQUEST,
  sequencer,
  str,
  u32be,
  verdict,
  type DumpedRule,
} from './nft-netlink';
import { signature } from './nft-masq';
import { notrackComment, type NotrackChain, type NotrackRule } from '../domain/notrack-rules';

export const RAW_TABLE = 'raw';
const NFT_MSG_NEWTABLE = 0;
const NFT_MSG_NEWCHAIN = 3;
const HOOKS: Record<NotrackChain, number> = { PREROUTING: 0 /* NF_INET_PRE_ROUTING */, OUTPUT: 3 /* NF_INET_LOCAL_OUT */ };
const NF_IP_PRI_RAW = -300;
const CHAINS: NotrackChain[] = ['PREROUTING', 'OUTPUT'];

/** `-j CT --notrack`: xt_ct_target_info_v1 (72 bytes: flags u16 = XT_CT_NOTRACK, the rest zero). */
export function notrackTarget(): Buffer {
  const info = Buffer.alloc(72);
  info.writeUInt16LE(1 /* XT_CT_NOTRACK */, 0);
  return expr('target', attr(1 /* NFTA_TARGET_NAME */, str('CT')), attr(2 /* REV */, u32be(2)), attr(3 /* INFO */, info));
}

function expressions(r: NotrackRule): Buffer[] {
  return [
    ...(r.src ? matchAddress(r.src, 'src') : []),
    ...(r.dst ? matchAddress(r.dst, 'dst') : []),
    ...(r.udpDport !== undefined ? matchProtoPort(17 /* IPPROTO_UDP */, r.udpDport) : []),
    counter(),
    r.verdict === 'accept' ? verdict(NF_ACCEPT) : notrackTarget(),
  ];
}

const ruleBase = (chain: NotrackChain): Buffer[] => [attr(NFTA_RULE_TABLE, str(RAW_TABLE)), attr(NFTA_RULE_CHAIN, str(chain))];

/**
 * Make our rules for `network` in `ip raw` exactly `rules`. 'present': nothing to do; 'updated':
 * rules were (re)written (table and chains created when missing).
 */
export async function ensureNotrack(network: string, rules: NotrackRule[], timeoutMs = 5000): Promise<'present' | 'updated'> {
  const comment = notrackComment(network);
  const current: Record<NotrackChain, DumpedRule[] | 'no-chain'> = { PREROUTING: await dumpChain(RAW_TABLE, 'PREROUTING', timeoutMs), OUTPUT: await dumpChain(RAW_TABLE, 'OUTPUT', timeoutMs) };
  const same = CHAINS.every((c) => {
    const have = current[c] === 'no-chain' ? [] : (current[c] as DumpedRule[]).filter((r) => r.comment === comment).map((r) => signature(r.expressions));
    const want = rules.filter((r) => r.chain === c).map((r) => signature(nest(NFTA_RULE_EXPRESSIONS, ...expressions(r)).subarray(4)));
    return current[c] !== 'no-chain' && have.length === want.length && have.every((h, i) => h === want[i]);
  });
  if (same) return 'present';
  const seq = sequencer();
  const msgs: Buffer[] = [];
  const acks: number[] = [];
  const send = (type: number, flags: number, body: Buffer[]): void => {
    const s = seq();
    acks.push(s);
    msgs.push(message(nftType(type), NLM_F_REQUEST | NLM_F_ACK | flags, s, NFPROTO_IPV4, 0, body));
  };
  if (CHAINS.some((c) => current[c] === 'no-chain')) {
    send(NFT_MSG_NEWTABLE, NLM_F_CREATE, [attr(1 /* NFTA_TABLE_NAME */, str(RAW_TABLE))]);
    for (const c of CHAINS) if (current[c] === 'no-chain') send(NFT_MSG_NEWCHAIN, NLM_F_CREATE, baseChain(RAW_TABLE, c, HOOKS[c], NF_IP_PRI_RAW, 'filter'));
  }
  for (const c of CHAINS) {
    const have = current[c];
    if (have !== 'no-chain') for (const r of have.filter((x) => x.comment === comment)) msgs.push(delRuleMessage(ruleBase(c), r.handle, seq, acks));
  }
  for (const r of rules) {
    send(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, [...ruleBase(r.chain), nest(NFTA_RULE_EXPRESSIONS, ...expressions(r)), attr(NFTA_RULE_USERDATA, commentUdata(comment))]);
  }
  await commitBatch(msgs, acks, seq, timeoutMs, `write the conntrack bypass rules of ${network} in ${RAW_TABLE}`);
  return 'updated';
}

/** Delete our rules for `network` from `ip raw`; how many there were. */
export async function removeNotrack(network: string, timeoutMs = 5000): Promise<number> {
  const comment = notrackComment(network);
  const seq = sequencer();
  const msgs: Buffer[] = [];
  const acks: number[] = [];
  for (const c of CHAINS) {
    const have = await dumpChain(RAW_TABLE, c, timeoutMs);
    if (have !== 'no-chain') for (const r of have.filter((x) => x.comment === comment)) msgs.push(delRuleMessage(ruleBase(c), r.handle, seq, acks));
  }
  if (msgs.length === 0) return 0;
  await commitBatch(msgs, acks, seq, timeoutMs, `delete the conntrack bypass rules of ${network} in ${RAW_TABLE}`);
  return msgs.length;
}
