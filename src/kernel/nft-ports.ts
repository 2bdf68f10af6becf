/**
 * Published ports over nftables netlink: DNAT rules in `ip nat` PREROUTING and OUTPUT (the
 * iptables-nft `nat` table dockerd uses), written the way iptables-nft writes
 *   -A PREROUTING -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 8080 -m comment --comment "…" -j DNAT --to-destination 10.5.1.2:80
 * `-m addrtype` and `-j DNAT` are xtables extensions through nft_compat (like Docker's own
 * `-m addrtype --dst-type LOCAL -j DOCKER`, and like our MASQUERADE), protocol and port are
 * native meta/payload/cmp matches. An explicit HostIP becomes `-d HostIP/32` instead of addrtype.
 * Rules are found by comment (src/domain/port-rules.ts): ensure deletes the endpoint's rules that
 * are not wanted and inserts the missing ones at the head of each chain, in one transaction.
 * Without table `ip nat` nothing is done ('no-chain'); a missing PREROUTING/OUTPUT base chain in it
 * is created as iptables-nft would.
 */
import {
  attr,
  commentUdata,
  counter,
  dataValue,
  dumpChain,
  expr,
  matchAddress,
  message,
  nest,
  NFPROTO_IPV4,
  NFTA_RULE_CHAIN,
  NFTA_RULE_EXPRESSIONS,
  NFTA_RULE_TABLE,
  NFTA_RULE_USERDATA,
  NFT_MSG_NEWRULE,
  nftType,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_REQUEST,
  sequencer,
  str,
  u32be,
  type DumpedRule,
  commitBatch,
  delRuleMessage,
  natBaseChain,
  tableExists,
  matchProtoPort,
} from './nft-netlink';
import { isPortCommentOf, portConflict, portInUse, type PortChain, type PortRule } from '../domain/port-rules';

const NAT_TABLE = 'nat';
const NFT_MSG_NEWCHAIN = 3;
const CHAINS: Record<PortChain, number> = { PREROUTING: 0 /* NF_INET_PRE_ROUTING */, OUTPUT: 3 /* NF_INET_LOCAL_OUT */ };
export type PortsResult = 'present' | 'updated' | 'no-chain';

/** `-m addrtype --dst-type LOCAL` (xt_addrtype revision 1: u16 source, u16 dest, u32 flags). */
function addrtypeLocal(): Buffer {
  const info = Buffer.alloc(8);
  info.writeUInt16LE(4 /* XT_ADDRTYPE_LOCAL = 1 << RTN_LOCAL */, 2);
  return expr('match', attr(1 /* NFTA_MATCH_NAME */, str('addrtype')), attr(2 /* REV */, u32be(1)), attr(3 /* INFO */, info));
}
/** `-j DNAT --to-destination ip:port` (revision 1: struct nf_nat_range — flags, min/max nf_inet_addr, min/max proto). */
export function dnatTarget(ip: string, port: number): Buffer {
  const info = Buffer.alloc(40);
  info.writeUInt32LE(0x1 | 0x2, 0); // NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED (host order)
  const a = Buffer.from(ip.split('.').map(Number));
  a.copy(info, 4); // min_addr
  a.copy(info, 20); // max_addr
  info.writeUInt16BE(port, 36); // min_proto
  info.writeUInt16BE(port, 38); // max_proto
  return expr('target', attr(1 /* NFTA_TARGET_NAME */, str('DNAT')), attr(2 /* REV */, u32be(1)), attr(3 /* INFO */, info));
}
export function portRuleExpressions(r: PortRule): Buffer[] {
  return [
    ...(r.notLoopback ? matchAddress('127.0.0.0/8', 'dst', true) : []),
    ...(r.hostIP ? matchAddress(`${r.hostIP}/32`, 'dst') : [addrtypeLocal()]),
    ...matchProtoPort(r.proto, r.hostPort),
    counter(),
    dnatTarget(r.toAddress, r.toPort),
  ];
}

/** Make endpoint `endpointId`'s DNAT rules exactly `rules` (found by comment). */
export async function ensurePorts(endpointId: string, rules: PortRule[], timeoutMs = 5000): Promise<PortsResult> {
  const have = await dumpBoth(timeoutMs);
  if (have === 'no-chain') return rules.length === 0 ? 'present' : 'no-chain';
  const pre = have.PREROUTING;
  const clash = portConflict(endpointId, rules, pre === 'no-chain' ? [] : pre.map((r) => r.comment));
  if (clash) throw portInUse(endpointId, clash);
  const seq = sequencer();
  const msgs: Buffer[] = [];
  const acks: number[] = [];
  for (const chain of Object.keys(CHAINS) as PortChain[]) {
    const cur = have[chain];
    const want = rules.filter((r) => r.chain === chain);
    const wantComments = new Set(want.map((r) => r.comment));
    const ours = (cur === 'no-chain' ? [] : cur).filter((r) => isPortCommentOf(r.comment, endpointId));
    const stale = ours.filter((r) => !wantComments.has(r.comment!));
    const missing = want.filter((w) => !ours.some((r) => r.comment === w.comment));
    if (stale.length === 0 && missing.length === 0) continue;
    if (cur === 'no-chain') {
      const s = seq();
      acks.push(s);
      msgs.push(message(nftType(NFT_MSG_NEWCHAIN), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, s, NFPROTO_IPV4, 0, baseChain(chain)));
    }
    for (const r of stale) msgs.push(delRule(chain, r.handle, seq, acks));
    for (const r of [...missing].reverse()) {
      const s = seq();
      acks.push(s);
      msgs.push(
        message(nftType(NFT_MSG_NEWRULE), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, s, NFPROTO_IPV4, 0, [
          ...ruleBase(chain),
          nest(NFTA_RULE_EXPRESSIONS, ...portRuleExpressions(r)),
          attr(NFTA_RULE_USERDATA, commentUdata(r.comment)),
        ]),
      );
    }
  }
  if (msgs.length === 0) return 'present';
  await commit(msgs, acks, seq, timeoutMs, `write published-port rules of endpoint ${endpointId.slice(0, 12)}`);
  return 'updated';
}

/** Delete endpoint `endpointId`'s DNAT rules: how many there were, or 'no-chain' (no `ip nat`). */
export async function removePorts(endpointId: string, timeoutMs = 5000): Promise<number | 'no-chain'> {
  const have = await dumpBoth(timeoutMs);
  if (have === 'no-chain') return 'no-chain';
  const seq = sequencer();
  const msgs: Buffer[] = [];
  const acks: number[] = [];
  for (const chain of Object.keys(CHAINS) as PortChain[]) {
    const cur = have[chain];
    if (cur === 'no-chain') continue;
    for (const r of cur.filter((x) => isPortCommentOf(x.comment, endpointId))) msgs.push(delRule(chain, r.handle, seq, acks));
  }
  if (msgs.length === 0) return 0;
  await commit(msgs, acks, seq, timeoutMs, `delete published-port rules of endpoint ${endpointId.slice(0, 12)}`);
  return msgs.length;
}

async function dumpBoth(timeoutMs: number): Promise<Record<PortChain, DumpedRule[] | 'no-chain'> | 'no-chain'> {
  const pre = await dumpChain(NAT_TABLE, 'PREROUTING', timeoutMs);
  const out = await dumpChain(NAT_TABLE, 'OUTPUT', timeoutMs);
  if (pre === 'no-chain' && out === 'no-chain' && !(await tableExists(NAT_TABLE, timeoutMs))) return 'no-chain';
  return { PREROUTING: pre, OUTPUT: out };
}

const ruleBase = (chain: PortChain): Buffer[] => [attr(NFTA_RULE_TABLE, str(NAT_TABLE)), attr(NFTA_RULE_CHAIN, str(chain))];

/** `chain PREROUTING|OUTPUT { type nat hook … priority dstnat (-100); policy accept; }`, as iptables-nft makes it. */
function baseChain(chain: PortChain): Buffer[] {
  return natBaseChain(NAT_TABLE, chain, CHAINS[chain], -100 /* NF_IP_PRI_NAT_DST */);
}

function delRule(chain: PortChain, handle: bigint, seq: () => number, acks: number[]): Buffer {
  return delRuleMessage(ruleBase(chain), handle, seq, acks);
}

function commit(msgs: Buffer[], acks: number[], seq: () => number, timeoutMs: number, what: string): Promise<void> {
  return commitBatch(msgs, acks, seq, timeoutMs, `${what} in ${NAT_TABLE}`);
}
