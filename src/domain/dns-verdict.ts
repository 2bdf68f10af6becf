/**
 * What the names resolver decides for each DNS query the kernel queues to it
 * (docs/names-design.md §6), as pure functions of the packet, the name table and a budget:
 *
 *   IPv4 + UDP, unfragmented, whole          else 'not-dns'     (plain ACCEPT)
 *   source is one of THIS host's endpoints   else 'not-ours'    (the host, the LAN, spoofed)
 *   within the source's budget               else 'limited'     (a flood goes on to the upstream)
 *   a strict DNS query                       else 'malformed'
 *   QTYPE A or AAAA                          else 'other-type'  (Docker forwards MX, TXT … today)
 *   a remote name of the source's network    else 'miss'
 *                                            → 'answer'         (ACCEPT + mark: DNAT to our socket)
 * Every outcome but 'answer' leaves the packet exactly as it was, so "if in doubt, pass" holds by
 * construction. The cheap checks come first: a foreign source costs one Map read and no parse.
 *
 * The budget is a token bucket per source address (default 200 queries/s, burst 400) in a Map
 * bounded in size: when full, the oldest source is forgotten (it starts again with a full bucket),
 * so no stream of sources can grow memory.
 */
import { parseDnsQuery, QTYPE_A, QTYPE_AAAA, type DnsQuery } from './dns-message';
import type { NameTable } from './name-table';

export interface UdpDatagram {
  readonly source: string;
  readonly destPort: number;
  readonly payload: Uint8Array;
}

const IPPROTO_UDP = 17;

/** The UDP datagram inside one IPv4 packet as queued (header included), or null when it is not one. */
export function ipv4UdpDatagram(packet: Uint8Array): UdpDatagram | null {
  if (!(packet instanceof Uint8Array) || packet.length < 28) return null;
  if (packet[0] >> 4 !== 4) return null;
  const ihl = (packet[0] & 0xf) * 4;
  if (ihl < 20 || packet.length < ihl + 8) return null;
  const total = (packet[2] << 8) | packet[3];
  if (total < ihl + 8 || total > packet.length) return null; // cut by the copy range: not whole
  if ((((packet[6] << 8) | packet[7]) & 0x3fff) !== 0) return null; // MF set or an offset: a fragment
  if (packet[9] !== IPPROTO_UDP) return null;
  const udpLength = (packet[ihl + 4] << 8) | packet[ihl + 5];
  if (udpLength < 8 || ihl + udpLength > total) return null;
  return {
    source: `${packet[12]}.${packet[13]}.${packet[14]}.${packet[15]}`,
    destPort: (packet[ihl + 2] << 8) | packet[ihl + 3],
    payload: packet.subarray(ihl + 8, ihl + udpLength),
  };
}

export interface BudgetLimits {
  readonly perSecond: number;
  readonly burst: number;
  readonly maxSources: number;
}
export const DEFAULT_BUDGET: BudgetLimits = { perSecond: 200, burst: 400, maxSources: 4096 };

/** Token buckets per source address, bounded in count (see the note at the top). */
export class QueryBudget {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(readonly limits: BudgetLimits = DEFAULT_BUDGET) {}

  get sources(): number {
    return this.buckets.size;
  }

  /** Spend one query of `source` at `nowMs`: false when its bucket is empty. */
  take(source: string, nowMs: number): boolean {
    let b = this.buckets.get(source);
    if (!b) {
      if (this.buckets.size >= this.limits.maxSources) {
        const oldest = this.buckets.keys().next();
        if (!oldest.done) this.buckets.delete(oldest.value);
      }
      b = { tokens: this.limits.burst, at: nowMs };
      this.buckets.set(source, b);
    } else if (nowMs > b.at) {
      b.tokens = Math.min(this.limits.burst, b.tokens + ((nowMs - b.at) * this.limits.perSecond) / 1000);
      b.at = nowMs;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

export type QueryVerdict = 'answer' | 'not-dns' | 'not-ours' | 'limited' | 'malformed' | 'other-type' | 'miss';

/** The verdict for one queued packet (see the table at the top). Never throws. */
export function decideQuery(table: NameTable, packet: Uint8Array, budget: QueryBudget, nowMs: number): QueryVerdict {
  const d = ipv4UdpDatagram(packet);
  if (!d) return 'not-dns';
  const network = table.networkOfSource(d.source);
  if (network === null) return 'not-ours';
  if (!budget.take(d.source, nowMs)) return 'limited';
  const parsed = parseDnsQuery(d.payload);
  if (!parsed.ok) return 'malformed';
  const q = parsed.query;
  if (q.qtype !== QTYPE_A && q.qtype !== QTYPE_AAAA) return 'other-type';
  return table.holds(network, q.name) ? 'answer' : 'miss';
}

/** What the answer socket sends for a query it received from `source`. */
export type AnswerPlan =
  | { readonly kind: 'addresses'; readonly query: DnsQuery; readonly addresses: readonly string[] }
  | { readonly kind: 'servfail'; readonly query: DnsQuery } // the name vanished since the verdict
  | { readonly kind: 'drop'; readonly reason: string }; // not a query we answer: nothing is sent

/** Plan the answer to one datagram that reached the answer socket (DNAT keeps the source). */
export function planAnswer(table: NameTable, source: string, payload: Uint8Array): AnswerPlan {
  const parsed = parseDnsQuery(payload);
  if (!parsed.ok) return { kind: 'drop', reason: parsed.reason };
  const q = parsed.query;
  if (q.qtype !== QTYPE_A && q.qtype !== QTYPE_AAAA) return { kind: 'drop', reason: `QTYPE ${q.qtype} is never sent here` };
  const network = table.networkOfSource(source);
  if (network === null) return { kind: 'drop', reason: `${source} is no endpoint of this host` };
  // no more than fit in the largest answer (16-byte AAAA records in max(EDNS, 512) bytes)
  const hit = table.lookup(network, q.name, q.qtype === QTYPE_A ? 'ipv4' : 'ipv6', Math.ceil(q.udpSize / 16));
  return hit.found ? { kind: 'addresses', query: q, addresses: hit.addresses } : { kind: 'servfail', query: q };
}
