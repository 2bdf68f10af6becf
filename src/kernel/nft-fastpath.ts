/**
 * The fast path's nftables table `netdev overlay-flannel` (planned in src/domain/fastpath.ts;
 * messages and rule expressions in nft-fastpath-batch.ts), kept equal to a plan:
 *
 *   table netdev overlay-flannel {
 *     set peers-<vni>     { type ipv4_addr; elements = { <peer subnet .0>, … } }
 *     map endpoints-<vni> { type ipv4_addr : iface_index; elements = { <address> : "ofh…", … } }
 *     chain to-<vni>   { ip ttl > 1 ip daddr & <subnet mask> == @peers-<vni>
 *                        fwd ip to ip daddr & <subnet mask> device "flannel.<vni>" }
 *     chain from-<vni> { type filter hook ingress device "flannel.<vni>" priority 0;
 *                        ip ttl > 1 fwd ip to ip daddr device ip daddr map @endpoints-<vni> }
 *     chain ofh<id>.<ifindex>.<vni> { type filter hook ingress device "ofh<id>" priority 0; jump to-<vni> }
 *     chain plan-<digest> { }
 *     # a dual-stack overlay's v6 half (domain/fastpath-v6.ts), the same for ip6:
 *     set peers6-<vni>     { type ipv6_addr; … }   map endpoints6-<vni> { type ipv6_addr : iface_index; … }
 *     chain to6-<vni>   { ip6 hoplimit > 1 meta length <= <flannel-v6 MTU> ip6 daddr & <subnet6 mask> == @peers6-<vni>
 *                         fwd ip6 to ip6 daddr & <subnet6 mask> device "flannel-v6.<vni>" }
 *     chain from6-<vni> { type filter hook ingress device "flannel-v6.<vni>" priority 0;
 *                         ip6 hoplimit > 1 fwd ip6 to ip6 daddr device ip6 daddr map @endpoints6-<vni> }
 *     (and each veth's chain of that overlay also does `jump to6-<vni>`)
 *   }
 *
 * We own the whole table. Its overlay-level part (the marker chain names the digest of VNIs,
 * Networks, subnets and vxlan devices) is written anew in ONE transaction when it differs; the
 * rest — endpoints (map elements, a chain per veth) and peers (set elements) — is read back and
 * changed element by element, also in one transaction, so a `docker run` costs one small write
 * and the other veths' hooks are never re-registered. Packets arriving during a rewrite are
 * routed as without the fast path, so there is no window of loss. A write bigger than 256 KiB
 * (above ~12,000 peers) is divided into batches, set elements last (nft-fastpath-batch.ts).
 * Needs CONFIG_NF_TABLES_NETDEV and CONFIG_NFT_FWD_NETDEV (Linux ≥ 4.19 for `fwd ip to`); without
 * them the write fails with an UNSUPPORTED error naming the option and the routed path stays.
 */
import { endpointChains, endpointMap, FASTPATH_TABLE, overlayChains, peerSet, planMarkerChain, planSets, setChanges, type FastpathPlan } from '../domain/fastpath';
import { endpointMap6, peerSet6 } from '../domain/fastpath-v6';
import { attrOffset, attrValueLength } from './codec';
import { attr, exchange, kernelError, message, nftType, NLM_F_DUMP, NLM_F_REQUEST, sequencer, str } from './nft-netlink';
import { FASTPATH_BATCH_BYTES, FastpathBatch, NFPROTO_NETDEV, readNetdevChains } from './nft-fastpath-batch';
import type { FastpathResult } from './types';

const NFT_MSG_GETSETELEM = 13;

interface TableState {
  chains: Set<string>;
  /** Elements of the sets asked for (key → ifindex for a map; a v6 key is a bigint); a set that does not exist is absent. */
  sets: Map<string, Map<number | bigint, number | undefined>>;
}

/** The table as the kernel holds it (chains, and the elements of `sets`), or null without a table. */
async function readTable(sets: string[], timeoutMs: number): Promise<TableState | null> {
  const chains = await readNetdevChains(FASTPATH_TABLE, timeoutMs);
  if (chains === null) return null;
  const seq = sequencer();
  const table = attr(1, str(FASTPATH_TABLE));
  const state: TableState = {
    chains,
    sets: new Map(),
  };
  // One dump per exchange: a netlink socket runs one dump at a time (EBUSY otherwise).
  for (const name of sets) {
    const s = seq();
    const dump = (await exchange(message(nftType(NFT_MSG_GETSETELEM), NLM_F_REQUEST | NLM_F_DUMP, s, NFPROTO_NETDEV, 0, [table, attr(2, str(name))]), [s], timeoutMs)).get(s);
    if (!dump || dump.errno === -2) continue;
    if (dump.errno < 0) throw kernelError(`nftables: list the elements of ${name}`, dump.errno);
    const elems = new Map<number | bigint, number | undefined>();
    for (const m of dump.msgs) readElements(m.payload, elems);
    state.sets.set(name, elems);
  }
  return state;
}

/** NFTA_NESTED_VALUE (1) of the nest whose value starts at `at`: u32 value offset, or -1. */
const valueIn = (p: Buffer, at: number): number => (at < 0 ? -1 : attrOffset(p, at, at + attrValueLength(p, at), 1));

/**
 * The elements of one GETSETELEM reply (nfgenmsg, then ELEMENTS = a list of LIST_ELEM, each with
 * KEY and, in a map, DATA; both nests hold a DATA_VALUE): 4-byte key (a 16-byte v6 key, as a
 * bigint) → u32 data (a map's ifindex) or undefined. Read in place by offsets: a 10,000-peer set is 10,000 elements every
 * few seconds, and three Maps and their subarrays per element were the fast path check's garbage.
 */
function readElements(p: Buffer, into: Map<number | bigint, number | undefined>): void {
  const list = attrOffset(p, 4, p.length, 3 /* ELEMENTS */);
  if (list < 0) return;
  const listEnd = list + attrValueLength(p, list);
  for (let off = list; off + 4 <= listEnd; ) {
    const len = p.readUInt16LE(off);
    if (len < 4 || off + len > listEnd) break;
    const key = valueIn(p, attrOffset(p, off + 4, off + len, 1 /* KEY */));
    const keyLength = key >= 0 ? attrValueLength(p, key) : 0;
    if (keyLength === 4 || keyLength === 16) {
      const data = valueIn(p, attrOffset(p, off + 4, off + len, 2 /* DATA */));
      const k = keyLength === 4 ? p.readUInt32BE(key) : (p.readBigUInt64BE(key) << 64n) | p.readBigUInt64BE(key + 8);
      into.set(k, data >= 0 && attrValueLength(p, data) === 4 ? p.readUInt32LE(data) : undefined);
    }
    off += (len + 3) & ~3;
  }
}

/**
 * Make the table hold `plan`: 'present' (it did), 'updated' (endpoints/peers changed in place),
 * 'rewritten' (the overlay-level part changed: written anew); an empty plan removes the table.
 * `batchBytes`: the size above which the write is divided in batches (nft-fastpath-batch.ts).
 */
export async function ensureFastpath(plan: FastpathPlan, timeoutMs = 5000, batchBytes = FASTPATH_BATCH_BYTES): Promise<FastpathResult> {
  const setNames = planSets(plan);
  const have = await readTable(setNames, timeoutMs);
  const b = new FastpathBatch(batchBytes);
  if (plan.overlays.length === 0) {
    if (have === null) return 'absent';
    b.deleteTable();
    await b.commit(timeoutMs);
    return 'removed';
  }
  const endpoints = endpointChains(plan);
  const rewrite = have === null || !overlayChains(plan).every((c) => have.chains.has(c)) || !setNames.every((s) => have.sets.has(s));
  if (rewrite) {
    if (have !== null) b.deleteTable();
    b.createTable(planMarkerChain(plan.digest), plan.overlays);
    for (const [name, { veth, vni, v6 }] of endpoints) b.addEndpointChain(name, veth, vni, v6);
    await b.commit(timeoutMs);
    return 'rewritten';
  }
  const keep = new Set([...overlayChains(plan), ...endpoints.keys()]);
  for (const chain of have.chains) if (!keep.has(chain)) b.deleteChain(chain);
  for (const [name, { veth, vni, v6 }] of endpoints) if (!have.chains.has(name)) b.addEndpointChain(name, veth, vni, v6);
  for (const o of plan.overlays) {
    const wantEndpoints = new Map<number | bigint, number | undefined>();
    for (const e of o.endpoints) wantEndpoints.set(e.address, e.vethIndex);
    const wantPeers = new Map<number | bigint, number | undefined>();
    for (const p of o.peers) wantPeers.set(p, undefined);
    const sets: [string, Map<number | bigint, number | undefined>][] = [
      [endpointMap(o.vni), wantEndpoints],
      [peerSet(o.vni), wantPeers],
    ];
    if (o.v6) {
      sets.push([endpointMap6(o.vni), new Map(o.v6.endpoints.map((e) => [e.address, e.vethIndex]))]);
      sets.push([peerSet6(o.vni), new Map(o.v6.peers.map((p) => [p, undefined]))]);
    }
    for (const [set, want] of sets) {
      const { remove, add } = setChanges(have.sets.get(set)!, want);
      b.deleteElements(set, remove);
      b.addElements(set, add);
    }
  }
  if (b.size === 0) return 'present';
  await b.commit(timeoutMs);
  return 'updated';
}

/** Delete the table (nothing if absent): true if it was there. */
export async function removeFastpath(timeoutMs = 5000): Promise<boolean> {
  return (await ensureFastpath({ overlays: [], digest: '' }, timeoutMs)) === 'removed';
}
