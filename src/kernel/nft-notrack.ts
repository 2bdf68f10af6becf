/**
 * Connection-tracking bypass for overlay traffic (src/domain/notrack-rules.ts) over nftables
 * netlink, in iptables-nft's `raw` table, written the way `iptables -t raw -A … -j CT --notrack`
 * writes it: address and port matches as payload/cmp, `-j ACCEPT` as an accept verdict, the xtables CT target (revision 2, struct
 * xt_ct_target_info_v1 with XT_CT_NOTRACK) through nft_compat, the comment as rule user data. So
 * `iptables -t raw -S` lists our rules and any raw rules of the host keep working.
 * Unlike nat/filter (made by dockerd), nobody creates `ip raw` on a Docker host: we create the table
 * and its PREROUTING/OUTPUT base chains (priority raw, -300) as iptables-nft would, and never delete
 * them (iptables leaves empty ones too). Our rules are appended and found again by their comment;
 * ensure rewrites them all (one transaction) when they differ from what is wanted in any chain, or
 * a chain is missing (nft-ruleset.ts, match 'content', position 'append').
 * IPv6 (issue 21): the rules of an IPv6Network go to `ip6 raw` the same way (the CT target is the
 * same for ip6tables), made with the same chains when missing.
 */
import { attr, counter, expr, matchAddress, matchProtoPort, NF_ACCEPT, nfFamilyOf, NFPROTO_IPV6, str, u32be, verdict } from './nft-netlink';
import { CommentedRules, type BaseChains } from './nft-ruleset';
import { notrackComment, type NotrackChain, type NotrackRule } from '../domain/notrack-rules';

export const RAW_TABLE = 'raw';
const CHAINS: NotrackChain[] = ['PREROUTING', 'OUTPUT'];
/** `table ip raw` and its `chain PREROUTING|OUTPUT { type filter hook … priority raw (-300); policy accept; }`. */
export const RAW_CHAINS: BaseChains = { type: 'filter', priority: -300 /* NF_IP_PRI_RAW */, hooks: { PREROUTING: 0 /* NF_INET_PRE_ROUTING */, OUTPUT: 3 /* NF_INET_LOCAL_OUT */ }, table: true };

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

const load = (network: string, timeoutMs: number): Promise<CommentedRules> =>
  CommentedRules.load(RAW_TABLE, CHAINS, (c) => c === notrackComment(network), timeoutMs, nfFamilyOf(network));
const tableName = (network: string): string => `${nfFamilyOf(network) === NFPROTO_IPV6 ? 'ip6 ' : ''}${RAW_TABLE}`;

/**
 * Make our rules for `network` in `ip raw` exactly `rules`. 'present': nothing to do; 'updated':
 * rules were (re)written (table and chains created when missing).
 */
export async function ensureNotrack(network: string, rules: NotrackRule[], timeoutMs = 5000): Promise<'present' | 'updated'> {
  const have = await load(network, timeoutMs);
  const want = rules.map((r) => ({ chain: r.chain, comment: notrackComment(network), expressions: expressions(r) }));
  const done = await have.sync(want, { match: 'content', position: 'append', create: RAW_CHAINS, what: `write the conntrack bypass rules of ${network} in ${tableName(network)}` });
  return done !== 'no-chain' && done.changed ? 'updated' : 'present';
}

/** Delete our rules for `network` from `ip raw`; how many there were. */
export async function removeNotrack(network: string, timeoutMs = 5000): Promise<number> {
  return (await load(network, timeoutMs)).remove(`delete the conntrack bypass rules of ${network} in ${tableName(network)}`);
}
