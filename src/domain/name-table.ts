/**
 * The in-memory index of cross-host name records (docs/names-design.md §6–7): what the resolver
 * asks on every queued query, so lookups are a few Map reads and never allocate much.
 *
 * - A record is one endpoint: its Docker network (replicated id + name), container name,
 *   aliases (Docker adds the short container id as one), addresses, the host that owns it.
 *   Records are keyed by endpoint id: an upsert replaces everything about that endpoint (the
 *   writers always put current state), a remove forgets it.
 * - Source → network: the query's source address must be an endpoint on THIS host (records with
 *   host == localHost); anything else (the host, the LAN, spoofed or ambiguous sources) is no
 *   network, and the query passes untouched.
 * - Isolation: a name is looked up only in the source's network, as Docker's ResolveName does,
 *   in the forms `name` and `name.<network name>`, case-insensitively, trailing dot ignored.
 * - Answers come from remote records only: Docker has answered local names before forwarding.
 *   Container names win over aliases (Docker tries names first). Several endpoints holding a
 *   name (an alias on three hosts) give all their addresses, rotated round-robin per
 *   (network, name) so clients spread over them.
 * Records are the validated values of name-record.ts (parseNameRecord); this index trusts them.
 * Memory: one record object, one array per name; ~10,000 records measured in
 * test/unit/name-table.test.ts (bound asserted there).
 */
import type { NameRecord } from './name-record';

export type Family = 'ipv4' | 'ipv6';

/** A hit (addresses may be empty: the name exists, no address of that family) or a miss. */
export type NameLookup = { readonly found: true; readonly addresses: readonly string[] } | { readonly found: false };

interface NetworkIndex {
  name: string;
  records: number;
  /** lowercased name → endpoints holding it as container name / as alias */
  byName: Map<string, NameHolders>;
}
interface NameHolders {
  containers: NameRecord[];
  aliases: NameRecord[];
  next: number; // rotation counter
  /** deduplicated addresses of the winning holders, per family; null = recompute */
  ipv4: string[] | null;
  ipv6: string[] | null;
}

export class NameTable {
  private readonly records = new Map<string, NameRecord>();
  private readonly networks = new Map<string, NetworkIndex>();
  /** local endpoint address → endpoint ids (normally one) */
  private readonly sources = new Map<string, string[]>();

  constructor(private readonly localHost: string) {}

  get size(): number {
    return this.records.size;
  }

  /** Index (or replace) one endpoint's record, as parseNameRecord (name-record.ts) validated it. */
  upsert(record: NameRecord): void {
    this.remove(record.endpointId);
    this.records.set(record.endpointId, record);
    let net = this.networks.get(record.networkId);
    if (!net) this.networks.set(record.networkId, (net = { name: '', records: 0, byName: new Map() }));
    net.records++;
    net.name = record.networkName.toLowerCase();
    if (record.host !== this.localHost) {
      this.hold(net, record.containerName, record, 'containers');
      for (const a of aliasesOf(record)) this.hold(net, a, record, 'aliases');
    } else {
      for (const a of [...record.ipv4, ...record.ipv6]) {
        const ids = this.sources.get(a);
        if (ids) ids.push(record.endpointId);
        else this.sources.set(a, [record.endpointId]);
      }
    }
  }

  /** Forget one endpoint; true when it was known. */
  remove(endpointId: string): boolean {
    const r = this.records.get(endpointId);
    if (!r) return false;
    this.records.delete(endpointId);
    const net = this.networks.get(r.networkId);
    if (net && r.host !== this.localHost) {
      for (const n of [r.containerName, ...aliasesOf(r)]) {
        const key = n.toLowerCase(), h = net.byName.get(key);
        if (!h) continue;
        h.containers = h.containers.filter((x) => x !== r);
        h.aliases = h.aliases.filter((x) => x !== r);
        h.ipv4 = h.ipv6 = null;
        if (h.containers.length === 0 && h.aliases.length === 0) net.byName.delete(key);
      }
    }
    if (r.host === this.localHost) {
      for (const a of [...r.ipv4, ...r.ipv6]) {
        const ids = this.sources.get(a)?.filter((id) => id !== endpointId);
        if (ids && ids.length > 0) this.sources.set(a, ids);
        else this.sources.delete(a);
      }
    }
    if (net && --net.records === 0) this.networks.delete(r.networkId);
    return true;
  }

  /** The Docker network of a query's source: only endpoints of this host, unambiguous; else null. */
  networkOfSource(address: string): string | null {
    const ids = this.sources.get(address);
    if (!ids) return null;
    let network: string | null = null;
    for (const id of ids) {
      const n = this.records.get(id)?.networkId ?? null;
      if (network !== null && n !== network) return null;
      network = n;
    }
    return network;
  }

  /** Whether `qname` asked from `networkId` is a remote name of that network (no rotation: the verdict's question). */
  holds(networkId: string, qname: string): boolean {
    const net = this.networks.get(networkId);
    return net !== undefined && typeof qname === 'string' && this.holdersOf(net, qname) !== undefined;
  }

  /**
   * The addresses for `qname` asked from `networkId`: `name` or `name.<network name>`, only in
   * that network. A hit advances the name's rotation; at most `limit` addresses come back (what
   * fits in an answer), starting at the rotation point.
   */
  lookup(networkId: string, qname: string, family: Family, limit = Number.POSITIVE_INFINITY): NameLookup {
    const net = this.networks.get(networkId);
    if (!net || typeof qname !== 'string') return { found: false };
    const h = this.holdersOf(net, qname);
    if (!h) return { found: false };
    const all = (h[family] ??= addressesOf(h.containers.length > 0 ? h.containers : h.aliases, family));
    if (all.length <= 1) return { found: true, addresses: all.slice(0, limit) };
    const start = h.next++ % all.length;
    if (h.next >= 0x40000000) h.next = 0;
    const count = Math.min(limit, all.length);
    const out = new Array<string>(count);
    for (let i = 0; i < count; i++) out[i] = all[(start + i) % all.length];
    return { found: true, addresses: out };
  }

  /** `name`, else `name` minus `.<network name>` (Docker's split), case-insensitive, trailing dot ignored. */
  private holdersOf(net: NetworkIndex, qname: string): NameHolders | undefined {
    let name = qname.toLowerCase();
    if (name.endsWith('.')) name = name.slice(0, -1);
    const h = net.byName.get(name);
    if (h) return h;
    const suffix = `.${net.name}`;
    return name.length > suffix.length && name.endsWith(suffix) ? net.byName.get(name.slice(0, -suffix.length)) : undefined;
  }

  private hold(net: NetworkIndex, name: string, r: NameRecord, kind: 'containers' | 'aliases'): void {
    const key = name.toLowerCase();
    let h = net.byName.get(key);
    if (!h) net.byName.set(key, (h = { containers: [], aliases: [], next: 0, ipv4: null, ipv6: null }));
    if (!h[kind].includes(r)) h[kind].push(r);
    h.ipv4 = h.ipv6 = null;
  }
}

/** The record's aliases plus the short container id (12 characters), which Docker answers too. */
function aliasesOf(r: NameRecord): readonly string[] {
  return r.containerId && r.containerId.length > 12 ? [...r.aliases, r.containerId.slice(0, 12)] : r.aliases;
}

function addressesOf(holders: readonly NameRecord[], family: Family): string[] {
  const seen = new Set<string>();
  for (const r of holders) for (const a of r[family]) seen.add(a);
  return [...seen];
}
