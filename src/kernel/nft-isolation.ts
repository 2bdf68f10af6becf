/**
 * Isolation between overlays, over nftables netlink (nft-netlink.ts): for every ordered pair of
 * overlay Networks (A, B) joined on this host, `ip saddr A ip daddr B counter drop` (iptables-nft's
 * `-s A -d B -j DROP`) at the head of `ip filter FORWARD`, before the accept rules of
 * nft-forward.ts. This is what Docker does between its bridge networks: a container of overlay A
 * cannot reach overlay B through this host, whether B's container is on this host (bridge to
 * bridge) or on another one (bridge to flannel.<VNI of B>); traffic arriving from another host on
 * flannel.<VNI of A> for B's subnet here is dropped the same way, so every host enforces it.
 * Our rules carry the comment `overlay-flannel isolate A B`; rules of ours for pairs no longer
 * wanted (an overlay's Network changed), and second copies of a wanted one, are deleted by handle,
 * missing ones inserted, in one transaction (nft-ruleset.ts, match 'comment-unique'). Like
 * nft-forward.ts we never create tables or chains: without `ip filter FORWARD` (or if it vanishes
 * before the write) it reports 'no-chain'.
 */
import { counter, matchAddress, verdict } from './nft-netlink';
import { CommentedRules, type WantedRule } from './nft-ruleset';

const TABLE = 'filter';
const CHAIN = 'FORWARD';
const NF_DROP = 0;
const PREFIX = 'overlay-flannel isolate ';

export type IsolationResult = { state: 'no-chain' } | { state: 'ok'; added: number; removed: number };

export function isolationComment(from: string, to: string): string {
  return `${PREFIX}${from} ${to}`;
}

/** Every ordered pair of distinct networks (as `a.b.c.d/len`), deduplicated. */
export function isolationPairs(networks: readonly string[]): [string, string][] {
  const uniq = [...new Set(networks)].sort();
  const out: [string, string][] = [];
  for (const a of uniq) for (const b of uniq) if (a !== b) out.push([a, b]);
  return out;
}

/** `ip saddr <from> ip daddr <to> counter drop`, commented. */
function dropRule(from: string, to: string): WantedRule {
  return { chain: CHAIN, comment: isolationComment(from, to), expressions: [...matchAddress(from, 'src'), ...matchAddress(to, 'dst'), counter(), verdict(NF_DROP)] };
}

/** Make `ip filter FORWARD` drop traffic between every two of `networks`, and nothing else of ours. */
export async function ensureOverlayIsolation(networks: readonly string[], timeoutMs = 5000): Promise<IsolationResult> {
  const rules = await CommentedRules.load(TABLE, [CHAIN], (c) => c.startsWith(PREFIX), timeoutMs);
  if (rules.missing.length > 0) return { state: 'no-chain' };
  // Reversed: missing pairs have always been inserted at the head in pair order, so the chain
  // lists them last pair first; 'head' keeps the order given, top to bottom.
  const want = isolationPairs(networks).reverse().map(([a, b]) => dropRule(a, b));
  const done = await rules.sync(want, { match: 'comment-unique', position: 'head', enoent: 'no-chain', what: `isolation rules in ${TABLE} ${CHAIN}` });
  return done === 'no-chain' ? { state: 'no-chain' } : { state: 'ok', added: done.added, removed: done.removed };
}
