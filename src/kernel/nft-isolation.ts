/**
 * The head block of `ip filter FORWARD` (src/domain/forward-head.ts) over nftables netlink
 * (nft-netlink.ts, nft-ruleset.ts): intra-overlay accepts and the isolation drops between
 * overlays, in iptables-nft's encoding (`-s N -d N -j ACCEPT`, `-s A -d B -j DROP`, comments as
 * rule user data), right after Docker's `-j DOCKER-USER` jump (or at the head without one).
 * Isolation is what Docker does between its bridge networks: a container of overlay A cannot reach
 * overlay B through this host, whether B's container is on this host or on another one; traffic
 * arriving from another host for B's subnet here is dropped the same way, so every host enforces it.
 * When the block is not exactly as wanted (expressions, order) or not in place, all of it is
 * rewritten in ONE transaction (delete ours, insert the wanted rules after the anchor), so no packet
 * sees the chain without it. Like nft-forward.ts we never create tables or chains: without
 * `ip filter FORWARD` (or if it vanishes before the write) it reports 'no-chain'.
 * IPv6 (issue 21): the IPv6Networks' block goes to `ip6 filter FORWARD` the same way, with one
 * difference: when that chain is missing and there is something to write, the table and the base
 * chain are created as `ip6tables -A FORWARD` would (policy accept). Docker before 27 (or without
 * ip6tables) never makes them, and without them two v6 overlays would never be isolated; Docker
 * ≥ 27 later finds the chain, sets its policy and puts its jumps in, and ours move after them.
 */
import { familyOfCidr, forwardHeadRules, headPlacement, isHeadComment, type HeadRule } from '../domain/forward-head';
import { counter, jumpTarget, matchAddress, NF_ACCEPT, NFPROTO_IPV4, NFPROTO_IPV6, verdict } from './nft-netlink';
import { CommentedRules, type BaseChains, type WantedRule } from './nft-ruleset';
import type { ForwardHeadResult } from './types';

const TABLE = 'filter';
const CHAIN = 'FORWARD';
const NF_DROP = 0;
/** `table ip6 filter { chain FORWARD { type filter hook forward priority filter (0); policy accept; } }`. */
const FORWARD6: BaseChains = { type: 'filter', priority: 0, hooks: { [CHAIN]: 2 /* NF_INET_FORWARD */ }, table: true };

/** `ip saddr <src> ip daddr <dst> counter accept|drop`, commented. */
function wantedRule(r: HeadRule): WantedRule {
  return { chain: CHAIN, comment: r.comment, expressions: [...matchAddress(r.src, 'src'), ...matchAddress(r.dst, 'dst'), counter(), verdict(r.verdict === 'accept' ? NF_ACCEPT : NF_DROP)] };
}

/**
 * Make the head of `ip filter FORWARD` hold exactly the block for the IPv4 `networks` (accept
 * within each overlay, drop between every two), in place, nothing else of ours there; and the head
 * of `ip6 filter FORWARD` the block of the IPv6 ones. 'no-chain' speaks of the IPv4 chain (the v6
 * one is still written); added/removed count both.
 */
export async function ensureOverlayIsolation(networks: readonly string[], timeoutMs = 5000): Promise<ForwardHeadResult> {
  const wanted = forwardHeadRules(networks);
  const v6 = await ensureBlock(wanted.filter((r) => familyOfCidr(r.src) === 6), NFPROTO_IPV6, timeoutMs);
  const v4 = await ensureBlock(wanted.filter((r) => familyOfCidr(r.src) === 4), NFPROTO_IPV4, timeoutMs);
  if (v4.state === 'no-chain') return v4;
  return { state: 'ok', added: v4.added + (v6.state === 'ok' ? v6.added : 0), removed: v4.removed + (v6.state === 'ok' ? v6.removed : 0) };
}

/** One family's block (`wanted`, in chain order) in its FORWARD chain. */
async function ensureBlock(wanted: HeadRule[], family: number, timeoutMs: number): Promise<ForwardHeadResult> {
  const have = await CommentedRules.load(TABLE, [CHAIN], isHeadComment, timeoutMs, family);
  if (have.missing.length > 0 && (family === NFPROTO_IPV4 || wanted.length === 0)) return family === NFPROTO_IPV4 ? { state: 'no-chain' } : { state: 'ok', added: 0, removed: 0 };
  const rules = have.rules(CHAIN).map((r) => ({ handle: r.handle, comment: r.comment, jump: jumpTarget(r.expressions) }));
  const placement = headPlacement(rules, wanted);
  const anchor = rules.find((r) => r.jump === 'DOCKER-USER');
  const done = await have.sync(wanted.map(wantedRule), {
    match: 'content',
    force: !placement.inPlace,
    position: anchor ? { after: anchor.handle } : 'head',
    enoent: 'no-chain',
    ...(family === NFPROTO_IPV6 ? { create: FORWARD6 } : {}),
    what: `overlay rules at the head of ${family === NFPROTO_IPV6 ? 'ip6 ' : ''}${TABLE} ${CHAIN}`,
  });
  return done === 'no-chain' ? { state: 'no-chain' } : { state: 'ok', added: done.added, removed: done.removed };
}
