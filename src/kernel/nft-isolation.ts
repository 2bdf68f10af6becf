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
 */
import { forwardHeadRules, headPlacement, isHeadComment, type HeadRule } from '../domain/forward-head';
import { counter, jumpTarget, matchAddress, NF_ACCEPT, verdict } from './nft-netlink';
import { CommentedRules, type WantedRule } from './nft-ruleset';
import type { ForwardHeadResult } from './types';

const TABLE = 'filter';
const CHAIN = 'FORWARD';
const NF_DROP = 0;

/** `ip saddr <src> ip daddr <dst> counter accept|drop`, commented. */
function wantedRule(r: HeadRule): WantedRule {
  return { chain: CHAIN, comment: r.comment, expressions: [...matchAddress(r.src, 'src'), ...matchAddress(r.dst, 'dst'), counter(), verdict(r.verdict === 'accept' ? NF_ACCEPT : NF_DROP)] };
}

/**
 * Make the head of `ip filter FORWARD` hold exactly the block for `networks` (accept within each
 * overlay, drop between every two), in place; nothing else of ours there.
 */
export async function ensureOverlayIsolation(networks: readonly string[], timeoutMs = 5000): Promise<ForwardHeadResult> {
  const have = await CommentedRules.load(TABLE, [CHAIN], isHeadComment, timeoutMs);
  if (have.missing.length > 0) return { state: 'no-chain' };
  const wanted = forwardHeadRules(networks);
  const rules = have.rules(CHAIN).map((r) => ({ handle: r.handle, comment: r.comment, jump: jumpTarget(r.expressions) }));
  const placement = headPlacement(rules, wanted);
  const anchor = rules.find((r) => r.jump === 'DOCKER-USER');
  const done = await have.sync(wanted.map(wantedRule), {
    match: 'content',
    force: !placement.inPlace,
    position: anchor ? { after: anchor.handle } : 'head',
    enoent: 'no-chain',
    what: `overlay rules at the head of ${TABLE} ${CHAIN}`,
  });
  return done === 'no-chain' ? { state: 'no-chain' } : { state: 'ok', added: done.added, removed: done.removed };
}
