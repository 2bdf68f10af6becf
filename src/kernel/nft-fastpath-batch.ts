/**
 * The messages of one nftables transaction on the fast path's table `netdev overlay-flannel`
 * (nft-fastpath.ts decides what goes in): the table, its chains, sets and rules, set elements
 * added or deleted, chains deleted; then one exchange whose first refusal becomes an error naming
 * the object (and, for a kernel without the netdev family or `fwd`, the missing option).
 * Fleet size (issue 23): set elements go ≤ ELEMENTS_PER_MESSAGE to a message (an attribute's
 * length is 16 bits: 10,000 peers in one message would need 160 kB), and after every other
 * message, so the table, chains and rules come first. A transaction above `divisibleAbove` bytes
 * (or above what the socket's send buffer takes) goes as several batches (NftTransaction): the
 * elements of a big set may then land one batch after another. That is harmless on this table —
 * an address not yet in a set or map takes the routed path — and the next write adds what a
 * failed later batch left out.
 * Rule expressions (netdev hooks see every frame, so each rule first checks for IPv4):
 *  - to-<vni>:   meta protocol ip, ip ttl > 1, reg1 = ip daddr & subnet mask, reg1 in @peers-<vni>,
 *                reg2 = ifindex of flannel.<vni>, fwd ip to reg1 device reg2;
 *  - from-<vni>: meta protocol ip, ip ttl > 1, reg1 = ip daddr, reg2 = @endpoints-<vni>[reg1],
 *                fwd ip to reg1 device reg2;
 *  - a veth's:   jump to-<vni> (and jump to6-<vni> on a dual-stack overlay);
 *  - to6-<vni>/from6-<vni> (the v6 half): the same with meta protocol ip6, ip6 hoplimit > 1 (byte
 *                7), the 16-byte ip6 daddr (byte 24) in the 128-bit reg1, a 16-byte mask, sets of
 *                ipv6_addr, and fwd's NFPROTO 10 (`nft --debug=netlink` writes exactly these); a
 *                `counter` before the fwd shows what the v6 half carried (`nft list chain … to6-<vni>`);
 *                to6- also checks `meta length <= <flannel-v6 MTU>` (fastpath-v6.ts says why).
 * `fwd ip to` (nft_fwd_netdev) decrements the TTL and fills the Ethernet header from the
 * neighbour table, as routing does (`fwd ip6 to`: the hop limit, and the NDP table). A TTL
 * that would expire is left to routing (ICMP time exceeded; `fwd` would pass it on with TTL 0).
 */
import { maskOf } from '../domain/ipv4';
import { mask6 } from '../domain/ipv6';
import { endpointMap, FASTPATH_TABLE, peerSet, toOverlayChain, type FastpathOverlay } from '../domain/fastpath';
import { endpointMap6, fromOverlayChain6, peerSet6, toOverlayChain6, type FastpathV6 } from '../domain/fastpath-v6';
import { attr, attrsOf, attrText, counter, exchange, expr, kernelError, message, nest, NftTransaction, nftType, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, sequencer, str, u32be } from './nft-netlink';
import { OverlayError } from '../errors';

export const NFPROTO_NETDEV = 5;
const NFT_MSG_NEWTABLE = 0;
const NFT_MSG_DELTABLE = 2;
const NFT_MSG_NEWCHAIN = 3;
const NFT_MSG_DELCHAIN = 5;
const NFT_MSG_NEWRULE = 6;
const NFT_MSG_DELRULE = 8;
const NFT_MSG_NEWSET = 9;
const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_DELSETELEM = 14;
const NF_NETDEV_INGRESS = 0;
const REG_ADDR = 1; // NFT_REG_1: the IPv4 next hop
const REG_DEV = 2; // NFT_REG_2: the output ifindex
const NFT_JUMP = -3;

export const u32le = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
/** libnftnl set user data: key big-endian, data host-endian, so `nft list` shows device names. */
const SET_BYTEORDER_UDATA = Buffer.concat([Buffer.from([0 /* KEYBYTEORDER */, 4]), u32le(2 /* big */), Buffer.from([1 /* DATABYTEORDER */, 4]), u32le(1 /* host */)]);

const ipv4TtlAbove1 = (): Buffer[] => [
  expr('meta', attr(2 /* KEY */, u32be(1 /* NFT_META_PROTOCOL */)), attr(1 /* DREG */, u32be(REG_ADDR))),
  expr('cmp', attr(1, u32be(REG_ADDR)), attr(2, u32be(0 /* EQ */)), nest(3, attr(1, Buffer.from([0x08, 0x00])))),
  expr('payload', attr(1, u32be(REG_ADDR)), attr(2, u32be(1 /* network header */)), attr(3, u32be(8 /* ttl */)), attr(4, u32be(1))),
  expr('cmp', attr(1, u32be(REG_ADDR)), attr(2, u32be(4 /* GT */)), nest(3, attr(1, Buffer.from([1])))),
];
const ipv6HopLimitAbove1 = (): Buffer[] => [
  expr('meta', attr(2 /* KEY */, u32be(1 /* NFT_META_PROTOCOL */)), attr(1 /* DREG */, u32be(REG_ADDR))),
  expr('cmp', attr(1, u32be(REG_ADDR)), attr(2, u32be(0 /* EQ */)), nest(3, attr(1, Buffer.from([0x86, 0xdd])))),
  expr('payload', attr(1, u32be(REG_ADDR)), attr(2, u32be(1 /* network header */)), attr(3, u32be(7 /* hop limit */)), attr(4, u32be(1))),
  expr('cmp', attr(1, u32be(REG_ADDR)), attr(2, u32be(4 /* GT */)), nest(3, attr(1, Buffer.from([1])))),
];
const loadDaddr = (): Buffer => expr('payload', attr(1, u32be(REG_ADDR)), attr(2, u32be(1 /* network header */)), attr(3, u32be(16)), attr(4, u32be(4)));
/** The 16-byte ip6 daddr into the 128-bit NFT_REG_1. */
const loadDaddr6 = (): Buffer => expr('payload', attr(1, u32be(REG_ADDR)), attr(2, u32be(1 /* network header */)), attr(3, u32be(24)), attr(4, u32be(16)));
const forward = (nfproto = 2 /* IPv4 */): Buffer => expr('fwd', attr(1 /* SREG_DEV */, u32be(REG_DEV)), attr(2 /* SREG_ADDR */, u32be(REG_ADDR)), attr(3 /* NFPROTO */, u32be(nfproto)));
const NFPROTO_IPV6 = 10;
/** A v6 address as 16 network-order bytes. */
export const bytes16 = (n: bigint): Buffer => {
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(n >> 64n, 0);
  b.writeBigUInt64BE(n & 0xffffffffffffffffn, 8);
  return b;
};
const lookup = (set: string, setId: number, dreg?: number): Buffer =>
  expr('lookup', attr(1 /* SET */, str(set)), attr(2 /* SREG */, u32be(REG_ADDR)), ...(dreg === undefined ? [] : [attr(3 /* DREG */, u32be(dreg))]), attr(4 /* SET_ID */, u32be(setId)));

function toOverlayRule(o: FastpathOverlay, peersId: number): Buffer[] {
  return [
    ...ipv4TtlAbove1(),
    loadDaddr(),
    expr('bitwise', attr(1, u32be(REG_ADDR)), attr(2, u32be(REG_ADDR)), attr(3, u32be(4)), nest(4, attr(1, u32be(maskOf(o.subnet.len)))), nest(5, attr(1, Buffer.alloc(4)))),
    lookup(peerSet(o.vni), peersId),
    expr('immediate', attr(1 /* DREG */, u32be(REG_DEV)), nest(2, attr(1 /* VALUE */, u32le(o.vxlanIndex)))),
    forward(),
  ];
}
const fromOverlayRule = (o: FastpathOverlay, mapId: number): Buffer[] => [...ipv4TtlAbove1(), loadDaddr(), lookup(endpointMap(o.vni), mapId, REG_DEV), forward()];
/** `meta length <= max` (skb length, host order, swapped to compare big-endian, as nft writes it). */
const lengthAtMost = (max: number): Buffer[] => [
  expr('meta', attr(2 /* KEY */, u32be(0 /* NFT_META_LEN */)), attr(1 /* DREG */, u32be(REG_ADDR))),
  expr('byteorder', attr(1 /* SREG */, u32be(REG_ADDR)), attr(2 /* DREG */, u32be(REG_ADDR)), attr(3 /* OP */, u32be(1 /* HTON */)), attr(4 /* LEN */, u32be(4)), attr(5 /* SIZE */, u32be(4))),
  expr('cmp', attr(1, u32be(REG_ADDR)), attr(2, u32be(3 /* LTE */)), nest(3, attr(1, u32be(max)))),
];
const toOverlayRule6 = (vni: number, v6: FastpathV6, peersId: number): Buffer[] => [
  ...ipv6HopLimitAbove1(),
  ...lengthAtMost(v6.mtu),
  loadDaddr6(),
  expr('bitwise', attr(1, u32be(REG_ADDR)), attr(2, u32be(REG_ADDR)), attr(3, u32be(16)), nest(4, attr(1, bytes16(mask6(v6.subnet.len)))), nest(5, attr(1, Buffer.alloc(16)))),
  lookup(peerSet6(vni), peersId),
  expr('immediate', attr(1 /* DREG */, u32be(REG_DEV)), nest(2, attr(1 /* VALUE */, u32le(v6.index)))),
  counter(),
  forward(NFPROTO_IPV6),
];
const fromOverlayRule6 = (vni: number, mapId: number): Buffer[] => [...ipv6HopLimitAbove1(), loadDaddr6(), lookup(endpointMap6(vni), mapId, REG_DEV), counter(), forward(NFPROTO_IPV6)];
const jumpTo = (chain: string): Buffer =>
  expr('immediate', attr(1, u32be(0 /* verdict */)), nest(2, nest(2 /* VERDICT */, attr(1 /* CODE */, u32be(NFT_JUMP >>> 0)), attr(2 /* CHAIN */, str(chain)))));

/** An address-set element: the key (a v6 key is a bigint) and, in a map, the ifindex. */
export type SetElement = [key: number | bigint, ifindex: number | undefined];

type Kind = 'table' | 'chain' | 'rule' | 'fwd-rule' | 'other';

/** Elements per NEWSETELEM/DELSETELEM message: ≤ 28 kB for a map, as nft itself splits them. */
export const ELEMENTS_PER_MESSAGE = 1000;
/** Bytes of one batch before the transaction is divided (the elements of ~12,000 peers fit). */
export const FASTPATH_BATCH_BYTES = 256 << 10;

export class FastpathBatch {
  private readonly tx: NftTransaction<{ what: string; kind: Kind }>;
  private readonly table = attr(1, str(FASTPATH_TABLE));
  private nextSetId = 1;
  /** Element messages, sent after the rest. */
  private readonly elementMsgs: { type: number; flags: number; body: Buffer[]; what: string }[] = [];

  constructor(divisibleAbove = FASTPATH_BATCH_BYTES) {
    // Sparse ACKs: a whole-table rewrite of a few hundred endpoints acked message by message
    // overflows the socket's receive buffer, and that aborts the process (docs/library-traps.md).
    this.tx = new NftTransaction(NFPROTO_NETDEV, divisibleAbove, { sparseAcks: true });
  }

  get size(): number {
    return this.tx.size + this.elementMsgs.length;
  }

  private send(type: number, flags: number, body: Buffer[], what: string, kind: Kind = 'other'): void {
    this.tx.add(type, flags, body, { what, kind });
  }

  deleteTable(): void {
    this.send(NFT_MSG_DELTABLE, 0, [this.table], `delete table netdev ${FASTPATH_TABLE}`);
  }

  /** The table with its marker chain and, per overlay, its sets and its to-/from- chains. */
  createTable(marker: string, overlays: FastpathOverlay[]): void {
    this.send(NFT_MSG_NEWTABLE, NLM_F_CREATE, [this.table], `create table netdev ${FASTPATH_TABLE}`, 'table');
    this.send(NFT_MSG_NEWCHAIN, NLM_F_CREATE, [this.table, attr(3, str(marker))], `create chain ${marker}`);
    for (const o of overlays) {
      const peersId = this.createSet(peerSet(o.vni), o.peers.map((k) => [k, undefined]), false);
      this.send(NFT_MSG_NEWCHAIN, NLM_F_CREATE, [this.table, attr(3, str(toOverlayChain(o.vni)))], `create chain ${toOverlayChain(o.vni)}`);
      this.rule(toOverlayChain(o.vni), toOverlayRule(o, peersId), `write the rule to ${o.vxlanDevice} (the peer subnets)`, 'fwd-rule');
      const mapId = this.createSet(endpointMap(o.vni), o.endpoints.map((e) => [e.address, e.vethIndex]), true);
      this.ingressChain(`from-${o.vni}`, o.vxlanDevice);
      this.rule(`from-${o.vni}`, fromOverlayRule(o, mapId), `write the rule from ${o.vxlanDevice} to the endpoints`, 'fwd-rule');
      if (o.v6) this.createV6Half(o.vni, o.v6);
    }
  }

  /** The v6 half of an overlay: peers6-/endpoints6- and the to6-/from6- chains (fastpath-v6.ts). */
  private createV6Half(vni: number, v6: FastpathV6): void {
    const peersId = this.createSet(peerSet6(vni), v6.peers.map((k) => [k, undefined]), false, true);
    this.send(NFT_MSG_NEWCHAIN, NLM_F_CREATE, [this.table, attr(3, str(toOverlayChain6(vni)))], `create chain ${toOverlayChain6(vni)}`);
    this.rule(toOverlayChain6(vni), toOverlayRule6(vni, v6, peersId), `write the rule to ${v6.device} (the IPv6 peer subnets)`, 'fwd-rule');
    const mapId = this.createSet(endpointMap6(vni), v6.endpoints.map((e) => [e.address, e.vethIndex]), true, true);
    this.ingressChain(fromOverlayChain6(vni), v6.device);
    this.rule(fromOverlayChain6(vni), fromOverlayRule6(vni, mapId), `write the rule from ${v6.device} to the IPv6 endpoints`, 'fwd-rule');
  }

  /** A chain on the ingress of `veth` that jumps to to-<vni> (and to to6-<vni> when `v6`). */
  addEndpointChain(name: string, veth: string, vni: number, v6 = false): void {
    this.ingressChain(name, veth);
    this.rule(name, [jumpTo(toOverlayChain(vni))], `write the rule of ${veth}`);
    if (v6) this.rule(name, [jumpTo(toOverlayChain6(vni))], `write the IPv6 rule of ${veth}`);
  }

  /** Flush, then delete, a chain (older kernels refuse to delete a chain that has rules). */
  deleteChain(name: string): void {
    this.send(NFT_MSG_DELRULE, 0, [this.table, attr(2, str(name))], `flush chain ${name}`);
    this.send(NFT_MSG_DELCHAIN, 0, [this.table, attr(3, str(name))], `delete chain ${name}`);
  }

  addElements(set: string, elems: SetElement[]): void {
    this.elements(NFT_MSG_NEWSETELEM, NLM_F_CREATE, set, elems, 'add', 'to');
  }

  deleteElements(set: string, keys: (number | bigint)[]): void {
    this.elements(NFT_MSG_DELSETELEM, 0, set, keys.map((k) => [k, undefined]), 'delete', 'of');
  }

  private elements(type: number, flags: number, set: string, elems: SetElement[], verb: string, prep: string): void {
    for (let i = 0; i < elems.length; i += ELEMENTS_PER_MESSAGE) {
      const part = elems.slice(i, i + ELEMENTS_PER_MESSAGE);
      const what = elems.length > ELEMENTS_PER_MESSAGE ? `${verb} elements ${i + 1}–${i + part.length} of ${elems.length} ${prep} ${set}` : `${verb} ${part.length} element(s) ${prep} ${set}`;
      this.elementMsgs.push({ type, flags, body: [this.table, attr(2, str(set)), nest(3, ...part.map(element))], what });
    }
  }

  /** Send it all (one transaction unless divided, see above); the first refused message fails it. */
  async commit(timeoutMs: number): Promise<void> {
    for (const m of this.elementMsgs.splice(0)) this.send(m.type, m.flags, m.body, m.what);
    const refused = await this.tx.commit(timeoutMs);
    if (!refused) return;
    const { tag, errno } = refused;
    const { what, kind } = tag!;
    if (kind === 'table' && errno === -97 /* EAFNOSUPPORT */) throw noNetdevFamily();
    if (kind === 'fwd-rule' && (errno === -2 || errno === -95)) {
      throw new OverlayError('UNSUPPORTED', `nftables: ${what}: ${errno === -2 ? 'ENOENT' : 'EOPNOTSUPP'}: this kernel lacks \`fwd\` in the netdev family (CONFIG_NFT_FWD_NETDEV); the fast path is off and containers use the routed path`);
    }
    throw kernelError(`nftables: ${what}${kind === 'chain' && errno === -2 ? ' (device gone?)' : ''}`, errno);
  }

  private ingressChain(name: string, device: string): void {
    const hook = nest(4, attr(1, u32be(NF_NETDEV_INGRESS)), attr(2, u32be(0)), attr(3, str(device)));
    this.send(NFT_MSG_NEWCHAIN, NLM_F_CREATE, [this.table, attr(3, str(name)), hook, attr(5, u32be(1 /* accept */)), attr(7, str('filter'))], `create chain ${name} on the ingress of ${device}`, 'chain');
  }

  private rule(chain: string, exprs: Buffer[], what: string, kind: Kind = 'rule'): void {
    this.send(NFT_MSG_NEWRULE, NLM_F_CREATE, [this.table, attr(2, str(chain)), nest(4, ...exprs)], what, kind);
  }

  /** A hash set of addresses (a map address → ifindex when `map`; ipv6_addr keys when `v6`) and its elements; its batch id. */
  private createSet(name: string, elems: SetElement[], map: boolean, v6 = false): number {
    const id = this.nextSetId++;
    const key = v6 ? [attr(4, u32be(8 /* ipv6_addr */)), attr(5, u32be(16))] : [attr(4, u32be(7 /* ipv4_addr */)), attr(5, u32be(4))];
    const types = map ? [attr(3, u32be(0x8 /* NFT_SET_MAP */)), ...key, attr(6, u32be(20 /* iface_index */)), attr(7, u32be(4))] : key;
    this.send(NFT_MSG_NEWSET, NLM_F_CREATE, [this.table, attr(2, str(name)), ...types, attr(10, u32be(id)), attr(13 /* USERDATA */, SET_BYTEORDER_UDATA)], `create ${map ? 'map' : 'set'} ${name}`);
    this.addElements(name, elems);
    return id;
  }
}

function element([key, ifindex]: SetElement): Buffer {
  return nest(1, nest(1 /* KEY */, attr(1, typeof key === 'bigint' ? bytes16(key) : u32be(key))), ...(ifindex === undefined ? [] : [nest(2 /* DATA */, attr(1, u32le(ifindex)))]));
}

export const noNetdevFamily = (): OverlayError =>
  new OverlayError('UNSUPPORTED', 'this kernel has no nftables netdev family (CONFIG_NF_TABLES_NETDEV): the fast path is off and containers use the routed path (set FASTPATH=false to silence this)');

/**
 * The chain names of the netdev table `name` in one exchange (get table + dump its chains), or
 * null when the table does not exist. Shared by the fast path and the multicast table.
 */
export async function readNetdevChains(name: string, timeoutMs: number): Promise<Set<string> | null> {
  const seq = sequencer();
  const t = seq();
  const c = seq();
  const table = attr(1, str(name));
  const got = await exchange(
    Buffer.concat([
      message(nftType(1 /* NFT_MSG_GETTABLE */), NLM_F_REQUEST | NLM_F_ACK, t, NFPROTO_NETDEV, 0, [table]),
      message(nftType(4 /* NFT_MSG_GETCHAIN */), NLM_F_REQUEST | NLM_F_DUMP, c, NFPROTO_NETDEV, 0, [table]),
    ]),
    [t, c],
    timeoutMs,
  );
  const tableErr = got.get(t)?.errno ?? 0;
  if (tableErr === -2 /* ENOENT */) return null;
  if (tableErr === -97 /* EAFNOSUPPORT */) throw noNetdevFamily();
  if (tableErr < 0) throw kernelError(`nftables: get table netdev ${name}`, tableErr);
  const chains = got.get(c);
  if (chains && chains.errno < 0 && chains.errno !== -2) throw kernelError(`nftables: list chains of netdev ${name}`, chains.errno);
  return new Set((chains?.msgs ?? []).map((m) => attrsOf(m.payload)).filter((a) => attrText(a.get(1)) === name).map((a) => attrText(a.get(3)) ?? ''));
}
