/**
 * flannel's ip-masq rules (`--ip-masq`, v0.20+ rule set, flannel-compat.md §5), over nftables
 * netlink, in the POSTROUTING chain of table `ip nat` (iptables-nft's `nat` table, which dockerd
 * uses). Per overlay with Network N and this host's subnet S, in this order, at the head of the chain:
 *
 *   -s S -d N -j RETURN                       overlay → overlay: never translated
 *   -s N -d S -j RETURN
 *   ! -s N -d S -j RETURN                     outside → local containers: untouched
 *   -s N ! -d 224.0.0.0/4 -j MASQUERADE --random-fully     containers → outside (multicast excepted)
 *   ! -s N -d N -j MASQUERADE --random-fully  host/outside → remote containers: the host's source
 *
 * Every rule carries the comment "overlay-flannel masq <N>" and is written the way iptables-nft
 * writes it (payload/bitwise/cmp matches, xt MASQUERADE target, comment as rule user data), so
 * `iptables -t nat -S` lists them and dockerd keeps working on that chain. Calling ensure again
 * changes nothing when our rules are there with the right content, in order; otherwise (subnet
 * changed, rule deleted or edited) all of ours for N are deleted and the set is inserted again, in
 * one nftables transaction. No table is ever created: without `ip nat` the result is 'no-chain' and
 * the caller logs the equivalent iptables commands. In an existing `ip nat` without POSTROUTING
 * (dockerd --bridge=none) the base chain is created as iptables-nft would.
 *
 * Position: inserted at the head of POSTROUTING. Docker's own MASQUERADE rules only match its
 * bridges' sources (`-s 172.17.0.0/16 ! -o docker0`), never an overlay address, so a Docker rule
 * inserted above ours later changes nothing for overlay traffic and we don't fight over the order.
 */
import {
  attr,
  attrList,
  commentUdata,
  counter,
  dumpChain,
  masqueradeTarget,
  matchAddress,
  message,
  nest,
  NFPROTO_IPV4,
  NFT_MSG_NEWRULE,
  NFT_RETURN,
  NFTA_RULE_CHAIN,
  NFTA_RULE_EXPRESSIONS,
  NFTA_RULE_TABLE,
  NFTA_RULE_USERDATA,
  nftType,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_REQUEST,
  sequencer,
  str,
  verdict,
  commitBatch,
  delRuleMessage,
  natBaseChain,
  tableExists,
} from './nft-netlink';

const NFT_MSG_NEWCHAIN = 3;
import { masqComment, masqRules, type MasqRule } from '../domain/masq-rules';

export { masqComment, masqRules, masqRuleText, masqCommands, type MasqRule } from '../domain/masq-rules';

export const NAT_TABLE = 'nat';
export const NAT_CHAIN = 'POSTROUTING';
export type MasqResult = 'present' | 'updated' | 'no-chain';

function expressions(r: MasqRule, randomFully: boolean): Buffer[] {
  return [
    ...(r.src ? matchAddress(r.src, 'src', r.srcNeg) : []),
    ...(r.dst ? matchAddress(r.dst, 'dst', r.dstNeg) : []),
    counter(),
    r.action === 'RETURN' ? verdict(NFT_RETURN) : masqueradeTarget(randomFully),
  ];
}

/**
 * What a rule does, from its NFTA_RULE_EXPRESSIONS, ignoring what the kernel adds or changes
 * (counter values, padding): payload offsets, masks, comparisons, verdict, target and its flags.
 */
export function signature(exprList: Buffer): string {
  const out: string[] = [];
  for (const [, elem] of attrList(exprList)) {
    const e = new Map(attrList(elem));
    const name = e.get(1)?.toString('utf8').replace(/\0+$/, '') ?? '?';
    const d = new Map(attrList(e.get(2) ?? Buffer.alloc(0)));
    const value = (t: number): string => new Map(attrList(d.get(t) ?? Buffer.alloc(0))).get(1)?.toString('hex') ?? '';
    if (name === 'payload') out.push(`payload@${d.get(3)?.readUInt32BE(0)}`);
    else if (name === 'bitwise') out.push(`mask=${value(4)}`);
    else if (name === 'cmp') out.push(`cmp${d.get(2)?.readUInt32BE(0)}=${value(3)}`);
    else if (name === 'immediate') {
      const v = new Map(attrList(new Map(attrList(d.get(2) ?? Buffer.alloc(0))).get(2) ?? Buffer.alloc(0))).get(1);
      out.push(`verdict=${v?.readInt32BE(0)}`);
    } else if (name === 'target') {
      const info = d.get(3);
      out.push(`target=${d.get(1)?.toString('utf8').replace(/\0+$/, '')}/${info && info.length >= 8 ? info.readUInt32LE(4) : '?'}`);
    } else if (name !== 'counter') out.push(name);
  }
  return out.join(' ');
}

/**
 * Make the masquerade rules of overlay `network` (this host holding `subnet`) exactly
 * `masqRules(network, subnet)`. 'present': nothing to do; 'updated': rules were (re)written;
 * 'no-chain': no nftables `ip nat` POSTROUTING chain (nothing done).
 */
export async function ensureMasquerade(network: string, subnet: string, opts: { randomFully?: boolean; timeoutMs?: number } = {}): Promise<MasqResult> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const randomFully = opts.randomFully ?? true;
  let rules = await dumpChain(NAT_TABLE, NAT_CHAIN, timeoutMs);
  let createChain = false;
  if (rules === 'no-chain') {
    // dockerd --bridge=none makes `ip nat` (its DOCKER chain, PREROUTING, OUTPUT) but never touches
    // POSTROUTING, and iptables-nft only creates a base chain when a rule goes into it. In Docker's
    // table we create it the way `iptables -t nat -A POSTROUTING` would; without the table, nothing.
    if (!(await tableExists(NAT_TABLE, timeoutMs))) return 'no-chain';
    createChain = true;
    rules = [];
  }
  const comment = masqComment(network);
  const ours = rules.filter((r) => r.comment === comment);
  const want = masqRules(network, subnet).map((r) => expressions(r, randomFully));
  const wantSig = want.map((x) => signature(nest(NFTA_RULE_EXPRESSIONS, ...x).subarray(4)));
  if (ours.length === want.length && ours.every((r, i) => signature(r.expressions) === wantSig[i])) return 'present';
  const seq = sequencer();
  const msgs: Buffer[] = [];
  const acks: number[] = [];
  const base = [attr(NFTA_RULE_TABLE, str(NAT_TABLE)), attr(NFTA_RULE_CHAIN, str(NAT_CHAIN))];
  if (createChain) {
    const s = seq();
    acks.push(s);
    msgs.push(message(nftType(NFT_MSG_NEWCHAIN), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, s, NFPROTO_IPV4, 0, postroutingChain()));
  }
  for (const r of ours) msgs.push(delRuleMessage(base, r.handle, seq, acks));
  // Without NLM_F_APPEND a new rule goes to the head of the chain: insert the last one first.
  for (const x of [...want].reverse()) {
    const s = seq();
    acks.push(s);
    msgs.push(message(nftType(NFT_MSG_NEWRULE), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, s, NFPROTO_IPV4, 0, [...base, nest(NFTA_RULE_EXPRESSIONS, ...x), attr(NFTA_RULE_USERDATA, commentUdata(comment))]));
  }
  await commit(msgs, acks, seq, timeoutMs, `write masquerade rules for ${network}`);
  return 'updated';
}

/** Delete the masquerade rules of overlay `network`; how many there were, or 'no-chain'. */
export async function removeMasquerade(network: string, timeoutMs = 5000): Promise<number | 'no-chain'> {
  const rules = await dumpChain(NAT_TABLE, NAT_CHAIN, timeoutMs);
  if (rules === 'no-chain') return 'no-chain';
  const ours = rules.filter((r) => r.comment === masqComment(network));
  if (ours.length === 0) return 0;
  const seq = sequencer();
  const acks: number[] = [];
  const base = [attr(NFTA_RULE_TABLE, str(NAT_TABLE)), attr(NFTA_RULE_CHAIN, str(NAT_CHAIN))];
  const msgs = ours.map((r) => delRuleMessage(base, r.handle, seq, acks));
  await commit(msgs, acks, seq, timeoutMs, `delete masquerade rules of ${network}`);
  return ours.length;
}

/** `chain POSTROUTING { type nat hook postrouting priority srcnat (100); policy accept; }`, as iptables-nft makes it. */
function postroutingChain(): Buffer[] {
  return natBaseChain(NAT_TABLE, NAT_CHAIN, 4 /* NF_INET_POST_ROUTING */, 100 /* NF_IP_PRI_NAT_SRC */);
}

function commit(msgs: Buffer[], acks: number[], seq: () => number, timeoutMs: number, what: string): Promise<void> {
  return commitBatch(msgs, acks, seq, timeoutMs, `${what} in ${NAT_TABLE} ${NAT_CHAIN}`);
}
