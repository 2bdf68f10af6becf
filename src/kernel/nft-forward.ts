/**
 * flannel's forward rules (`--iptables-forward-rules`, on by default), over nftables netlink:
 * `ip saddr N accept` and `ip daddr N accept` appended to the chain FORWARD of table `ip filter`.
 *
 * Why: dockerd sets the FORWARD policy to DROP when it turns on ip_forward (every fresh Docker
 * host), and overlay traffic is routed (bridge → flannel.<VNI> and back), so without these two
 * rules no packet crosses hosts. flanneld adds the same rules (docs/flannel-compat.md §6).
 * How: Docker 20.10 on Debian 12 drives iptables-nft, whose `filter`/`FORWARD` are the nftables
 * table `ip filter` and its base chain FORWARD. We only ever append to that chain when it exists
 * (never create tables or chains, never touch the policy), and find our rules again by their
 * comment (nft's rule user data, `comment "overlay-flannel …"`), so calling this again — every full
 * sync, after a plugin restart — adds nothing twice. With no such chain (no Docker rules yet, or
 * iptables-legacy) it reports 'no-chain' and the caller warns; the next sync tries again.
 * The dump/compare/write shape is nft-ruleset.ts's, matching by comment only: a rule of ours is
 * never rewritten or deleted here (not even a second copy), missing ones are appended in one
 * transaction (the src rule before the dst rule); if the chain vanishes between the dump and the
 * write the result is 'no-chain' too.
 * IPv6 (issue 21): for an IPv6Network the same two rules go to `ip6 filter FORWARD` (ip6tables, as
 * flanneld's ip6 forward rules), under the same conditions: a host whose ip6 FORWARD policy is DROP
 * (Docker ≥ 27 with ip6tables) has that chain; without it nothing drops forwarded v6 packets.
 * One short-lived NETLINK_NETFILTER socket per exchange (nft-netlink.ts); needs CAP_NET_ADMIN only.
 */
import { counter, matchAddress, NF_ACCEPT, nfFamilyOf, NFPROTO_IPV6, verdict } from './nft-netlink';
import { CommentedRules, type WantedRule } from './nft-ruleset';

export const FORWARD_TABLE = 'filter';
export const FORWARD_CHAIN = 'FORWARD';
export type ForwardResult = 'present' | 'added' | 'no-chain';

/** The comment that marks our rule for `network` in direction `dir`. */
export function ruleComment(network: string, dir: 'src' | 'dst'): string {
  return `overlay-flannel ${network} ${dir}`;
}

/** `ip saddr|daddr <network> accept`, commented. `network` is `a.b.c.d/len` (base aligned). */
function acceptRule(network: string, dir: 'src' | 'dst'): WantedRule {
  return { chain: FORWARD_CHAIN, comment: ruleComment(network, dir), expressions: [...matchAddress(network, dir), counter(), verdict(NF_ACCEPT)] };
}

/**
 * Make sure `ip filter FORWARD` accepts traffic from and to `network` (e.g. "10.1.0.0/16"; an IPv6
 * `network`, "fd00:10::/48": `ip6 filter FORWARD`).
 * 'present': both rules were there; 'added': at least one was appended; 'no-chain': there is no
 * nftables `ip filter` / `FORWARD` on this host (nothing done).
 */
export async function ensureForwardAccept(network: string, timeoutMs = 5000): Promise<ForwardResult> {
  const want = [acceptRule(network, 'src'), acceptRule(network, 'dst')];
  const comments = new Set(want.map((r) => r.comment));
  const family = nfFamilyOf(network);
  const rules = await CommentedRules.load(FORWARD_TABLE, [FORWARD_CHAIN], (c) => comments.has(c), timeoutMs, family);
  if (rules.missing.length > 0) return 'no-chain';
  const what = `append accept rule for ${network} to ${family === NFPROTO_IPV6 ? 'ip6 ' : ''}${FORWARD_TABLE} ${FORWARD_CHAIN}`;
  const done = await rules.sync(want, { match: 'comment', position: 'append', enoent: 'no-chain', what });
  return done === 'no-chain' ? 'no-chain' : done.changed ? 'added' : 'present';
}
