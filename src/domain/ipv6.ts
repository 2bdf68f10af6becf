/**
 * IPv6 values for the overlay's v6 half: addresses as 128-bit bigints, CIDRs as {base, len}, the
 * way flannel holds them (pkg/ip/ip6net.go: a big.Int). Text is validated by the `ip-address`
 * library; arithmetic (subnet walking, alignment) is plain bigint math.
 *
 * formatIPv6 prints exactly what Go's `net.IP.String()` prints, because flanneld writes lease keys
 * (`10.1.5.0-24&fc00:0:0:5::-64`) and PublicIPv6 with it: RFC 5952 (lowercase, no leading zeros,
 * the longest run of two or more zero groups, the first of equal runs, becomes `::`). Go prints
 * IPv4-mapped addresses, and (a flannel quirk: IP6.ToIP trims the big.Int) any value of exactly
 * four significant bytes, as dotted IPv4; formatIPv6 reproduces that too, and the config refuses
 * networks where it would happen (flannel's own key regex would not read such a key back).
 */
import { Address6 } from 'ip-address';
import { invalid } from '../errors';

export interface Cidr6 {
  readonly base: bigint; // network address, host bits cleared
  readonly len: number; // prefix length 0..128
}

const ALL = (1n << 128n) - 1n;

/** Parse an IPv6 address (no prefix, no zone) into a bigint; throws INVALID naming the field. */
export function parseIPv6(text: string, what = 'IPv6 address'): bigint {
  if (!isIPv6(text)) throw invalid(`${what}: "${String(text)}" is not an IPv6 address`);
  return new Address6(text).bigInt();
}

export function isIPv6(text: unknown): text is string {
  return typeof text === 'string' && /^[0-9a-fA-F:.]+$/.test(text) && text.includes(':') && Address6.isValid(text);
}

/** Mask for a prefix length, as a 128-bit bigint. */
export function mask6(len: number): bigint {
  return len === 0 ? 0n : (ALL << BigInt(128 - len)) & ALL;
}

export function cidr6(base: bigint, len: number): Cidr6 {
  return { base: base & mask6(len), len };
}

/** Parse "fc00::/48", masking host bits off as Go's net.ParseCIDR does. */
export function parseCidr6(text: string, what = 'IPv6 CIDR'): Cidr6 {
  const m = typeof text === 'string' ? /^([^/]+)\/(\d{1,3})$/.exec(text) : null;
  const len = m ? Number(m[2]) : NaN;
  if (!m || !isIPv6(m[1]) || !(len <= 128)) throw invalid(`${what}: "${String(text)}" is not an IPv6 CIDR like fd00:10::/48`);
  return cidr6(parseIPv6(m[1]), len);
}

function dotted(n: bigint): string {
  const v = Number(n & 0xffffffffn);
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** Go's net.IP.String() of flannel's IP6 (see the note at the top). */
export function formatIPv6(n: bigint): string {
  if ((n >= 1n << 24n && n < 1n << 32n) || n >> 32n === 0xffffn) return dotted(n);
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  return groupsText(groups);
}

/**
 * Eight 16-bit groups as RFC 5952 text (what Go and `ip -6` print for an ordinary v6 address):
 * lowercase, no leading zeros, the longest run of two or more zero groups (the first of equal
 * runs) as `::`.
 */
export function groupsText(groups: readonly number[]): string {
  let best = -1;
  let bestLen = 1; // a single zero group is never compressed
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (gs: readonly number[]) => gs.map((g) => g.toString(16)).join(':');
  if (best < 0) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

export function formatCidr6(c: Cidr6): string {
  return `${formatIPv6(c.base)}/${c.len}`;
}

export function cidr6Size(c: Cidr6): bigint {
  return 1n << BigInt(128 - c.len);
}

export function cidr6Contains(c: Cidr6, ip: bigint): boolean {
  return (ip & mask6(c.len)) === c.base;
}

/** Go's IP6Net.Overlaps: equal under the shorter of the two masks. */
export function cidr6sOverlap(a: Cidr6, b: Cidr6): boolean {
  const m = mask6(Math.min(a.len, b.len));
  return (a.base & m) === (b.base & m);
}

export function cidr6Equals(a: Cidr6, b: Cidr6): boolean {
  return a.base === b.base && a.len === b.len;
}

/** The first address after the CIDR (Go's IP6Net.Next().IP). */
export function nextNetworkBase6(c: Cidr6): bigint {
  return c.base + cidr6Size(c);
}
