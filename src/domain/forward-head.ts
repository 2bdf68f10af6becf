/**
 * The head of `filter FORWARD` that overlay traffic needs, as data: which rules of ours go there,
 * in what order, and whether the chain as it stands has them in the right place.
 * (src/kernel/nft-isolation.ts writes them; the flannel-style src/dst accepts for traffic to and
 * from outside the overlay stay appended at the chain's end, src/kernel/nft-forward.ts.)
 *
 * Why a head block: every rule before the one that accepts a packet is evaluated for that packet,
 * on both hosts. Appended at the end, overlay ↔ overlay packets walked all of Docker's FORWARD
 * rules (its jumps, four rules per bridge network) and every isolation drop first, and measured
 * slower for it (README "Benchmarks"). So the head block is, in order:
 *   1. `-s N -d N -j ACCEPT` for every overlay Network N that overlaps no other one (intra-overlay
 *      traffic, the hot path, decided in one rule per overlay);
 *   2. `-s A -d B -j DROP` for every ordered pair of distinct Networks (isolation, as Docker isolates
 *      its bridge networks);
 *   3. the intra-overlay ACCEPT of Networks that overlap another one, after the drops, so that a
 *      Network nested in another stays isolated from the rest of the outer one.
 * Where: right after Docker's `-j DOCKER-USER` jump, so the user's own rules still see every packet
 * first (Docker re-inserts that jump at the top when it starts or creates a network); with no such
 * jump, at the head of the chain. Docker's jumps to its DOCKER-ISOLATION-STAGE chains may sit
 * between the DOCKER-USER jump and our block (Docker moves them up the same way); any other rule
 * there means the block has drifted (Docker inserted rules for a new bridge network above it) and it
 * is rewritten in place in one nftables transaction, so no packet ever sees the chain without it.
 * IPv6 (issue 21): the same block for the overlays' IPv6Networks, in `ip6 filter FORWARD`; drops
 * pair Networks of one family only (a rule cannot match a v4 source and a v6 destination).
 */
import { cidrsOverlap, parseCidr } from './ipv4';
import { cidr6sOverlap, parseCidr6 } from './ipv6';

const ISOLATE = 'overlay-flannel isolate ';
const INTRA = 'overlay-flannel intra ';

export interface HeadRule {
  src: string;
  dst: string;
  verdict: 'accept' | 'drop';
  comment: string;
}

export function isolationComment(from: string, to: string): string {
  return `${ISOLATE}${from} ${to}`;
}
export function intraComment(network: string): string {
  return `${INTRA}${network}`;
}
/** Whether a rule comment marks a rule of our head block. */
export const isHeadComment = (comment: string | undefined): boolean => !!comment && (comment.startsWith(ISOLATE) || comment.startsWith(INTRA));

/** 4 or 6: the family of a CIDR's text (a ':' means IPv6, as in src/kernel). */
export const familyOfCidr = (cidr: string): 4 | 6 => (cidr.includes(':') ? 6 : 4);

function overlap(a: string, b: string): boolean {
  if (familyOfCidr(a) !== familyOfCidr(b)) return false;
  return familyOfCidr(a) === 6 ? cidr6sOverlap(parseCidr6(a), parseCidr6(b)) : cidrsOverlap(parseCidr(a), parseCidr(b));
}

/** Every ordered pair of distinct networks of the same family (as `a.b.c.d/len`, `fd00::/48`), deduplicated and sorted. */
export function isolationPairs(networks: readonly string[]): [string, string][] {
  const uniq = [...new Set(networks)].sort();
  const out: [string, string][] = [];
  for (const a of uniq) for (const b of uniq) if (a !== b && familyOfCidr(a) === familyOfCidr(b)) out.push([a, b]);
  return out;
}

/** The head block for the overlay Networks joined on this host, in chain order (v4 and v6 ones
 *  interleaved: each family's chain takes its own, `familyOfCidr(rule.src)`, in this order). */
export function forwardHeadRules(networks: readonly string[]): HeadRule[] {
  const uniq = [...new Set(networks)].sort();
  const nested = new Set(uniq.filter((n) => uniq.some((m) => m !== n && overlap(n, m))));
  const intra = (n: string): HeadRule => ({ src: n, dst: n, verdict: 'accept', comment: intraComment(n) });
  return [
    ...uniq.filter((n) => !nested.has(n)).map(intra),
    ...isolationPairs(uniq).map(([a, b]): HeadRule => ({ src: a, dst: b, verdict: 'drop', comment: isolationComment(a, b) })),
    ...uniq.filter((n) => nested.has(n)).map(intra),
  ];
}

/** A rule of the FORWARD chain as the placement check sees it. */
export interface ChainRule {
  comment?: string;
  /** Target chain of a jump/goto verdict. */
  jump?: string;
}

export type Placement = { inPlace: true } | { inPlace: false; anchor: 'after-docker-user' | 'head' };

/** Whether `chain` holds exactly `wanted` (by comment, in order, contiguous) in the place described above. */
export function headPlacement(chain: readonly ChainRule[], wanted: readonly HeadRule[]): Placement {
  const user = chain.findIndex((r) => r.jump === 'DOCKER-USER');
  const anchor = user >= 0 ? 'after-docker-user' : 'head';
  const ours = chain.map((r, i) => [r, i] as const).filter(([r]) => isHeadComment(r.comment));
  if (ours.length === 0) return wanted.length === 0 ? { inPlace: true } : { inPlace: false, anchor };
  const first = ours[0]![1];
  const sameRules = ours.length === wanted.length && ours.every(([r], k) => r.comment === wanted[k]!.comment);
  const contiguous = ours[ours.length - 1]![1] - first + 1 === ours.length;
  const between = chain.slice(user + 1, first);
  const placed = first > user && between.every((r) => r.jump?.startsWith('DOCKER-ISOLATION-STAGE') === true);
  return sameRules && contiguous && placed ? { inPlace: true } : { inPlace: false, anchor };
}
