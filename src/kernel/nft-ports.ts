/**
 * Published ports over nftables netlink: DNAT rules in `ip nat` PREROUTING and OUTPUT (the
 * iptables-nft `nat` table dockerd uses), written the way iptables-nft writes
 *   -A PREROUTING -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 8080 -m comment --comment "…" -j DNAT --to-destination 10.5.1.2:80
 * `-m addrtype` and `-j DNAT` are xtables extensions through nft_compat (like Docker's own
 * `-m addrtype --dst-type LOCAL -j DOCKER`, and like our MASQUERADE), protocol and port are
 * native meta/payload/cmp matches. An explicit HostIP becomes `-d HostIP/32` instead of addrtype.
 * Rules are found by comment (src/domain/port-rules.ts): ensure deletes the endpoint's rules that
 * are not wanted and inserts the missing ones at the head of each chain, in one transaction
 * (nft-ruleset.ts, match 'comment', position 'head').
 * Without table `ip nat` nothing is done ('no-chain'); a missing PREROUTING/OUTPUT base chain in it
 * is created as iptables-nft would.
 * IPv6 (issue 21): rules whose `toAddress` is IPv6 go to `ip6 nat` the same way (ip6tables'
 * encoding: the DNAT target's nf_nat_range holds 16-byte addresses, `! -d ::1/128`), and that
 * table is created with its chains when missing, as for the v6 masquerade (nft-masq.ts).
 */
import { attr, counter, expr, matchAddress, matchProtoPort, NFPROTO_IPV4, NFPROTO_IPV6, str, u32be } from './nft-netlink';
import { ip6ToBuf } from './codec6';
import { CommentedRules, type BaseChains } from './nft-ruleset';
import { isPortCommentOf, portConflict, portInUse, type PortChain, type PortRule } from '../domain/port-rules';

const NAT_TABLE = 'nat';
const CHAINS: PortChain[] = ['PREROUTING', 'OUTPUT'];
/** `chain PREROUTING|OUTPUT { type nat hook … priority dstnat (-100); policy accept; }`, as iptables-nft makes it. */
const BASE_CHAINS: BaseChains = { type: 'nat', priority: -100 /* NF_IP_PRI_NAT_DST */, hooks: { PREROUTING: 0 /* NF_INET_PRE_ROUTING */, OUTPUT: 3 /* NF_INET_LOCAL_OUT */ } };
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
  const a = ip.includes(':') ? ip6ToBuf(ip, 'DNAT address') : Buffer.from(ip.split('.').map(Number));
  a.copy(info, 4); // min_addr (union nf_inet_addr: 4 or 16 bytes)
  a.copy(info, 20); // max_addr
  info.writeUInt16BE(port, 36); // min_proto
  info.writeUInt16BE(port, 38); // max_proto
  return expr('target', attr(1 /* NFTA_TARGET_NAME */, str('DNAT')), attr(2 /* REV */, u32be(1)), attr(3 /* INFO */, info));
}
export function portRuleExpressions(r: PortRule): Buffer[] {
  const v6 = r.toAddress.includes(':');
  return [
    ...(r.notLoopback ? matchAddress(v6 ? '::1/128' : '127.0.0.0/8', 'dst', true) : []),
    ...(r.hostIP ? matchAddress(`${r.hostIP}/${v6 ? 128 : 32}`, 'dst') : [addrtypeLocal()]),
    ...matchProtoPort(r.proto, r.hostPort),
    counter(),
    dnatTarget(r.toAddress, r.toPort),
  ];
}

const load = (endpointId: string, timeoutMs: number, family: number): Promise<CommentedRules> =>
  CommentedRules.load(NAT_TABLE, CHAINS, (c) => isPortCommentOf(c, endpointId), timeoutMs, family);
const isV6 = (r: PortRule): boolean => r.toAddress.includes(':');

/** Make endpoint `endpointId`'s DNAT rules exactly `rules` (found by comment), v4 ones in `ip nat`, v6 ones in `ip6 nat`. */
export async function ensurePorts(endpointId: string, rules: PortRule[], timeoutMs = 5000): Promise<PortsResult> {
  const [want4, want6] = [rules.filter((r) => !isV6(r)), rules.filter(isV6)];
  const [have4, have6] = [await load(endpointId, timeoutMs, NFPROTO_IPV4), await load(endpointId, timeoutMs, NFPROTO_IPV6)];
  if (await have4.noTable()) return want4.length === 0 && want6.length === 0 ? 'present' : 'no-chain';
  for (const [have, want] of [[have4, want4], [have6, want6]] as const) {
    const clash = portConflict(endpointId, want, have.rules('PREROUTING').map((r) => r.comment));
    if (clash) throw portInUse(endpointId, clash);
  }
  const what = (t: string): string => `write published-port rules of endpoint ${endpointId.slice(0, 12)} in ${t}`;
  const sync = (have: CommentedRules, want: PortRule[], create: BaseChains, t: string) =>
    have.sync(want.map((r) => ({ chain: r.chain, comment: r.comment, expressions: portRuleExpressions(r) })), { match: 'comment', position: 'head', create, what: what(t) });
  const done4 = await sync(have4, want4, BASE_CHAINS, NAT_TABLE);
  const done6 = want6.length === 0 && (await have6.noTable()) ? 'no-chain' : await sync(have6, want6, { ...BASE_CHAINS, table: true }, `ip6 ${NAT_TABLE}`);
  return [done4, done6].some((d) => d !== 'no-chain' && d.changed) ? 'updated' : 'present';
}

/** Delete endpoint `endpointId`'s DNAT rules (both families): how many there were, or 'no-chain' (no `ip nat`). */
export async function removePorts(endpointId: string, timeoutMs = 5000): Promise<number | 'no-chain'> {
  const have = await load(endpointId, timeoutMs, NFPROTO_IPV4);
  if (await have.noTable()) return 'no-chain';
  const have6 = await load(endpointId, timeoutMs, NFPROTO_IPV6);
  const what = (t: string): string => `delete published-port rules of endpoint ${endpointId.slice(0, 12)} in ${t}`;
  return (await have.remove(what(NAT_TABLE))) + (await have6.remove(what(`ip6 ${NAT_TABLE}`)));
}
