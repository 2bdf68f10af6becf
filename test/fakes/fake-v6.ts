/**
 * The IPv6 half of FakeNetlink's address handling (issue 21), kept apart so fake-netlink.ts stays
 * readable: each helper takes text of either family (a ':' means IPv6, as in the real adapter,
 * src/kernel/codec6.ts) and answers in the canonical RFC 5952 form the real kernel's dumps read
 * back, with the same INVALID errors. The v4 branch of each is the codec's, unchanged.
 */
import { cidrContains, intToIp4, ip4ToInt, parseCidr, parseNetworkCidr } from '../../src/kernel/codec';
import { canonicalIp6, cidr6ContainsText, familyOf, ip6At, maskBytes6, parseCidr6, parseNetworkCidr6 } from '../../src/kernel/codec6';

export { familyOf };

/** An address of either family, validated, in the form dumps print. */
export function anyIp(text: string, what: string): string {
  if (familyOf(text) === 6) return canonicalIp6(text, what);
  ip4ToInt(text, what);
  return text;
}

export interface AnyCidr {
  ip: string; // canonical
  len: number;
  family: 4 | 6;
  /** The network of it, "net/len" as a route dump prints it. */
  network: string;
}

export function anyCidr(text: string, what: string): AnyCidr {
  if (familyOf(text) === 6) {
    const c = parseCidr6(text, what);
    return { ip: c.ip, len: c.len, family: 6, network: `${ip6At(maskBytes6(c.bytes, c.len), 0)}/${c.len}` };
  }
  const c = parseCidr(text, what);
  return { ip: c.ip, len: c.len, family: 4, network: `${intToIp4(c.net)}/${c.len}` };
}

/** A route destination (host bits refused), as a dump prints it. */
export function anyNetwork(text: string, what?: string): string {
  if (familyOf(text) === 6) {
    const c = parseNetworkCidr6(text, what);
    return `${c.ip}/${c.len}`;
  }
  const d = parseNetworkCidr(text, what);
  return `${intToIp4(d.net)}/${d.len}`;
}

/** Whether `ip` is inside `cidr` (false across families). */
export function anyContains(cidr: string, ip: string): boolean {
  if (familyOf(cidr) !== familyOf(ip)) return false;
  return familyOf(cidr) === 6 ? cidr6ContainsText(parseCidr6(cidr), ip) : cidrContains(parseCidr(cidr), ip);
}

/** The prefix route an address on an UP link brings, or null (a v4 /32 brings none; a v6 /128 does). */
export function connectedRouteOf(address: string, prefixLen: number): string | null {
  if (familyOf(address) === 4 && prefixLen >= 32) return null;
  return anyCidr(`${address}/${prefixLen}`, 'address').network;
}
