/**
 * flannel's ip-masq rules (`--ip-masq`, v0.20+ rule set, docs/flannel-compat.md §6), over nftables
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
 * one nftables transaction (nft-ruleset.ts, match 'content', position 'head'). No table is ever
 * created: without `ip nat` the result is 'no-chain' and the caller logs the equivalent iptables
 * commands. In an existing `ip nat` without POSTROUTING (dockerd --bridge=none) the base chain is
 * created as iptables-nft would.
 *
 * IPv6 (issue 21): flannel's ip6 rules (the same five, ff00::/8 as the multicast exception) for an
 * IPv6Network go to `ip6 nat` POSTROUTING the same way, except that a missing `ip6 nat` table is
 * created with its POSTROUTING chain, as `ip6tables -t nat -A POSTROUTING` would: Docker before 27
 * (or without ip6tables) never makes one, so waiting for it would mean never masquerading v6.
 *
 * Position: inserted at the head of POSTROUTING. Docker's own MASQUERADE rules only match its
 * bridges' sources (`-s 172.17.0.0/16 ! -o docker0`), never an overlay address, so a Docker rule
 * inserted above ours later changes nothing for overlay traffic and we don't fight over the order.
 */
import { counter, masqueradeTarget, matchAddress, nfFamilyOf, NFPROTO_IPV6, NFT_RETURN, verdict } from './nft-netlink';
import { CommentedRules, type BaseChains } from './nft-ruleset';
import { masqComment, masqRules, type MasqRule } from '../domain/masq-rules';

export { masqComment, masqRules, masqRuleText, masqCommands, type MasqRule } from '../domain/masq-rules';

export const NAT_TABLE = 'nat';
export const NAT_CHAIN = 'POSTROUTING';
export type MasqResult = 'present' | 'updated' | 'no-chain';
/** `chain POSTROUTING { type nat hook postrouting priority srcnat (100); policy accept; }`, as iptables-nft makes it. */
const POSTROUTING: BaseChains = { type: 'nat', priority: 100 /* NF_IP_PRI_NAT_SRC */, hooks: { [NAT_CHAIN]: 4 /* NF_INET_POST_ROUTING */ } };

function expressions(r: MasqRule, randomFully: boolean, family: number): Buffer[] {
  return [
    ...(r.src ? matchAddress(r.src, 'src', r.srcNeg) : []),
    ...(r.dst ? matchAddress(r.dst, 'dst', r.dstNeg) : []),
    counter(),
    r.action === 'RETURN' ? verdict(NFT_RETURN) : masqueradeTarget(randomFully, family),
  ];
}

const load = (network: string, timeoutMs: number): Promise<CommentedRules> =>
  CommentedRules.load(NAT_TABLE, [NAT_CHAIN], (c) => c === masqComment(network), timeoutMs, nfFamilyOf(network));
const tableName = (network: string): string => `${nfFamilyOf(network) === NFPROTO_IPV6 ? 'ip6 ' : ''}${NAT_TABLE}`;

/**
 * Make the masquerade rules of overlay `network` (this host holding `subnet`) exactly
 * `masqRules(network, subnet)`. 'present': nothing to do; 'updated': rules were (re)written;
 * 'no-chain': no nftables `ip nat` POSTROUTING chain (nothing done).
 */
export async function ensureMasquerade(network: string, subnet: string, opts: { randomFully?: boolean; timeoutMs?: number } = {}): Promise<MasqResult> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const randomFully = opts.randomFully ?? true;
  const family = nfFamilyOf(network);
  const rules = await load(network, timeoutMs);
  // dockerd --bridge=none makes `ip nat` (its DOCKER chain, PREROUTING, OUTPUT) but never touches
  // POSTROUTING, and iptables-nft only creates a base chain when a rule goes into it. In Docker's
  // table we create it the way `iptables -t nat -A POSTROUTING` would; without the table, nothing
  // (IPv6: the table too, see the top).
  if (family !== NFPROTO_IPV6 && (await rules.noTable())) return 'no-chain';
  const want = masqRules(network, subnet).map((r) => ({ chain: NAT_CHAIN, comment: masqComment(network), expressions: expressions(r, randomFully, family) }));
  const create = family === NFPROTO_IPV6 ? { ...POSTROUTING, table: true } : POSTROUTING;
  const done = await rules.sync(want, { match: 'content', position: 'head', create, what: `write masquerade rules for ${network} in ${tableName(network)} ${NAT_CHAIN}` });
  return done !== 'no-chain' && done.changed ? 'updated' : 'present';
}

/** Delete the masquerade rules of overlay `network`; how many there were, or 'no-chain'. */
export async function removeMasquerade(network: string, timeoutMs = 5000): Promise<number | 'no-chain'> {
  const rules = await load(network, timeoutMs);
  if (rules.missing.length > 0) return 'no-chain';
  return rules.remove(`delete masquerade rules of ${network} in ${tableName(network)} ${NAT_CHAIN}`);
}
