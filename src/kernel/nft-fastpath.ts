/**
 * The fast path's nftables `netdev` table (planned in src/domain/fastpath.ts), written over
 * netlink. We own the whole table `netdev overlay-flannel`, so it is not edited rule by rule:
 * when the plan's digest (carried by an empty marker chain `plan-<digest>`) or the set of chains
 * differs from what the kernel holds, the table is deleted and written again in ONE transaction.
 * Packets arriving meanwhile are routed as without the fast path, so there is no window of loss.
 *
 *   table netdev overlay-flannel {
 *     map endpoints-<vni> { type ipv4_addr : iface_index; elements = { <address> : <ofh…> } }
 *     set peers-<vni> { type ipv4_addr; elements = { <peer subnet>.0, … } }
 *     chain to-<vni> { ip ttl > 1 ip daddr & <subnet mask> @peers-<vni>
 *                      fwd ip to (ip daddr & <subnet mask>) device flannel.<vni> }
 *     chain from-<vni> { type filter hook ingress device flannel.<vni> priority 0;
 *                        ip ttl > 1 fwd ip to ip daddr device (ip daddr map @endpoints-<vni>) }
 *     chain ofh<id> { type filter hook ingress device ofh<id> priority 0; jump to-<vni> }
 *     chain plan-<digest> { }
 *   }
 *
 * Needs CONFIG_NF_TABLES_NETDEV and CONFIG_NFT_FWD_NETDEV (Linux ≥ 4.19 for `fwd ip to`); without
 * them the write fails with an UNSUPPORTED error naming the option and the routed path stays.
 */
import { maskOf, formatCidr } from '../domain/ipv4';
import {
  endpointMap,
  peerSet,
  FASTPATH_TABLE,
  fastpathChains,
  fromOverlayChain,
  planMarkerChain,
  toOverlayChain,
  type FastpathOverlay,
  type FastpathPlan,
} from '../domain/fastpath';
import { attr, attrsOf, batch, exchange, expr, kernelError, message, nest, nftType, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, sequencer, str, u32be } from './nft-netlink';
import { OverlayError } from '../errors';

const NFPROTO_NETDEV = 5;
const NFT_MSG_NEWTABLE = 0;
const NFT_MSG_GETTABLE = 1;
const NFT_MSG_DELTABLE = 2;
const NFT_MSG_NEWCHAIN = 3;
const NFT_MSG_GETCHAIN = 4;
const NFT_MSG_NEWRULE = 6;
const NFT_MSG_NEWSET = 9;
const NFT_MSG_NEWSETELEM = 12;
const NF_NETDEV_INGRESS = 0;
const REG_ADDR = 1; // NFT_REG_1: the IPv4 next hop
const REG_DEV = 2; // NFT_REG_2: the output ifindex
const NFT_JUMP = -3;

const u32le = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
const ipBytes = (n: number): Buffer => u32be(n);
/** libnftnl set user data: key big-endian, data host-endian, so `nft list` shows device names. */
const SET_BYTEORDER_UDATA = Buffer.concat([Buffer.from([0 /* KEYBYTEORDER */, 4]), u32le(2 /* big */), Buffer.from([1 /* DATABYTEORDER */, 4]), u32le(1 /* host */)]);

/**
 * `meta protocol ip ip ttl > 1`: netdev hooks see every frame, so match IPv4 before reading its
 * header; a TTL that expires here is left to routing, which drops it and answers ICMP time
 * exceeded (traceroute keeps seeing both hosts; `fwd` would decrement it to 0 and pass it on).
 */
const matchIPv4 = (): Buffer[] => [
  expr('meta', attr(2 /* KEY */, u32be(1 /* NFT_META_PROTOCOL */)), attr(1 /* DREG */, u32be(REG_ADDR))),
  expr('cmp', attr(1, u32be(REG_ADDR)), attr(2, u32be(0 /* EQ */)), nest(3, attr(1, Buffer.from([0x08, 0x00])))),
  expr('payload', attr(1, u32be(REG_ADDR)), attr(2, u32be(1 /* network header */)), attr(3, u32be(8 /* ttl */)), attr(4, u32be(1))),
  expr('cmp', attr(1, u32be(REG_ADDR)), attr(2, u32be(4 /* GT */)), nest(3, attr(1, Buffer.from([1])))),
];
const loadDaddr = (): Buffer => expr('payload', attr(1, u32be(REG_ADDR)), attr(2, u32be(1 /* network header */)), attr(3, u32be(16)), attr(4, u32be(4)));
/** `fwd ip to <REG_ADDR> device <REG_DEV>`: neighbour output, TTL decremented, as routing would. */
const forward = (): Buffer => expr('fwd', attr(1 /* SREG_DEV */, u32be(REG_DEV)), attr(2 /* SREG_ADDR */, u32be(REG_ADDR)), attr(3 /* NFPROTO */, u32be(2 /* IPv4 */)));

/** to-<vni>: a peer's subnet (its base in peers-<vni>) → that `.0` on flannel.<vni>. */
function toOverlayRule(o: FastpathOverlay, setId: number): Buffer[] {
  return [
    ...matchIPv4(),
    loadDaddr(),
    expr('bitwise', attr(1, u32be(REG_ADDR)), attr(2, u32be(REG_ADDR)), attr(3, u32be(4)), nest(4, attr(1, u32be(maskOf(o.subnet.len)))), nest(5, attr(1, Buffer.alloc(4)))),
    expr('lookup', attr(1 /* SET */, str(peerSet(o.vni))), attr(2 /* SREG */, u32be(REG_ADDR)), attr(4 /* SET_ID */, u32be(setId))),
    expr('immediate', attr(1 /* DREG */, u32be(REG_DEV)), nest(2, attr(1 /* VALUE */, u32le(o.vxlanIndex)))),
    forward(),
  ];
}

/** from-<vni>: a local endpoint's address → its host veth. */
function fromOverlayRule(o: FastpathOverlay, setId: number): Buffer[] {
  return [
    ...matchIPv4(),
    loadDaddr(),
    expr('lookup', attr(1 /* SET */, str(endpointMap(o.vni))), attr(2 /* SREG */, u32be(REG_ADDR)), attr(3 /* DREG */, u32be(REG_DEV)), attr(4 /* SET_ID */, u32be(setId))),
    forward(),
  ];
}

const jumpTo = (chain: string): Buffer =>
  expr('immediate', attr(1, u32be(0 /* verdict */)), nest(2, nest(2 /* VERDICT */, attr(1 /* CODE */, u32be(NFT_JUMP >>> 0)), attr(2 /* CHAIN */, str(chain)))));

/** The chain names of table `netdev overlay-flannel`, or null when there is no such table. */
async function currentChains(timeoutMs: number): Promise<string[] | null> {
  const seq = sequencer();
  const t = seq();
  const c = seq();
  const got = await exchange(
    Buffer.concat([
      message(nftType(NFT_MSG_GETTABLE), NLM_F_REQUEST | NLM_F_ACK, t, NFPROTO_NETDEV, 0, [attr(1, str(FASTPATH_TABLE))]),
      message(nftType(NFT_MSG_GETCHAIN), NLM_F_REQUEST | NLM_F_DUMP, c, NFPROTO_NETDEV, 0, [attr(1, str(FASTPATH_TABLE))]),
    ]),
    [t, c],
    timeoutMs,
  );
  const tableErr = got.get(t)?.errno ?? 0;
  if (tableErr === -2 /* ENOENT */) return null;
  if (tableErr === -97 /* EAFNOSUPPORT */) throw noNetdev();
  if (tableErr < 0) throw kernelError(`nftables: get table netdev ${FASTPATH_TABLE}`, tableErr);
  const chains = got.get(c);
  if (chains && chains.errno < 0 && chains.errno !== -2) throw kernelError(`nftables: list chains of netdev ${FASTPATH_TABLE}`, chains.errno);
  return (chains?.msgs ?? [])
    .map((m) => attrsOf(m.payload))
    .filter((a) => a.get(1)?.toString('utf8').replace(/\0+$/, '') === FASTPATH_TABLE)
    .map((a) => a.get(3)?.toString('utf8').replace(/\0+$/, '') ?? '')
    .sort();
}

const noNetdev = (): OverlayError =>
  new OverlayError('UNSUPPORTED', 'this kernel has no nftables netdev family (CONFIG_NF_TABLES_NETDEV): the fast path is off and containers use the routed path (set FASTPATH=off to silence this)');

export type FastpathResult = 'present' | 'updated' | 'removed' | 'absent';

/** Make the table hold `plan` ('present': it already did); an empty plan removes the table. */
export async function ensureFastpath(plan: FastpathPlan, timeoutMs = 5000): Promise<FastpathResult> {
  const have = await currentChains(timeoutMs);
  if (plan.overlays.length === 0) {
    if (have === null) return 'absent';
    await write([], have !== null, timeoutMs);
    return 'removed';
  }
  const want = fastpathChains(plan);
  if (have !== null && have.length === want.length && have.every((c, i) => c === want[i])) return 'present';
  await write(plan.overlays, have !== null, timeoutMs, plan.digest);
  return 'updated';
}

/** Delete the table (nothing if absent): true if it was there. */
export async function removeFastpath(timeoutMs = 5000): Promise<boolean> {
  return (await ensureFastpath({ overlays: [], digest: '' }, timeoutMs)) === 'removed';
}

async function write(overlays: FastpathOverlay[], exists: boolean, timeoutMs: number, digest?: string): Promise<void> {
  const seq = sequencer();
  const msgs: Buffer[] = [];
  const acks: { seq: number; what: string; kind: 'table' | 'chain' | 'rule' | 'other' }[] = [];
  const send = (type: number, flags: number, body: Buffer[], what: string, kind: 'table' | 'chain' | 'rule' | 'other' = 'other'): void => {
    const s = seq();
    acks.push({ seq: s, what, kind });
    msgs.push(message(nftType(type), NLM_F_REQUEST | NLM_F_ACK | flags, s, NFPROTO_NETDEV, 0, body));
  };
  const table = attr(1, str(FASTPATH_TABLE));
  if (exists) send(NFT_MSG_DELTABLE, 0, [table], `delete table netdev ${FASTPATH_TABLE}`);
  if (digest !== undefined) {
    send(NFT_MSG_NEWTABLE, NLM_F_CREATE, [table], `create table netdev ${FASTPATH_TABLE}`, 'table');
    send(NFT_MSG_NEWCHAIN, NLM_F_CREATE, [table, attr(3, str(planMarkerChain(digest)))], 'create the plan marker chain');
    const regularChain = (name: string): void => send(NFT_MSG_NEWCHAIN, NLM_F_CREATE, [table, attr(3, str(name))], `create chain ${name}`);
    const ingressChain = (name: string, device: string): void =>
      send(
        NFT_MSG_NEWCHAIN,
        NLM_F_CREATE,
        [table, attr(3, str(name)), nest(4, attr(1, u32be(NF_NETDEV_INGRESS)), attr(2, u32be(0)), attr(3, str(device))), attr(5, u32be(1 /* accept */)), attr(7, str('filter'))],
        `create chain ${name} on the ingress of ${device}`,
        'chain',
      );
    const rule = (chain: string, exprs: Buffer[], what: string): void => send(NFT_MSG_NEWRULE, NLM_F_CREATE, [table, attr(2, str(chain)), nest(4, ...exprs)], what, 'rule');
    /** A hash set (map: address → ifindex) with its elements; ids are unique in the batch. */
    const addressSet = (name: string, setId: number, elems: { key: number; ifindex?: number }[], map: boolean): void => {
      const kind = map ? [attr(3, u32be(0x8 /* NFT_SET_MAP */)), attr(4, u32be(7 /* ipv4_addr */)), attr(5, u32be(4)), attr(6, u32be(20 /* iface_index */)), attr(7, u32be(4))] : [attr(4, u32be(7)), attr(5, u32be(4))];
      send(NFT_MSG_NEWSET, NLM_F_CREATE, [table, attr(2, str(name)), ...kind, attr(10, u32be(setId)), attr(13 /* USERDATA */, SET_BYTEORDER_UDATA)], `create ${map ? 'map' : 'set'} ${name}`);
      if (elems.length === 0) return;
      const list = elems.map((e) => nest(1, nest(1 /* KEY */, attr(1, ipBytes(e.key))), ...(e.ifindex === undefined ? [] : [nest(2 /* DATA */, attr(1, u32le(e.ifindex)))])));
      send(NFT_MSG_NEWSETELEM, NLM_F_CREATE, [table, attr(2, str(name)), attr(4, u32be(setId)), nest(3, ...list)], `fill ${name} (${elems.length} elements)`);
    };
    overlays.forEach((o, i) => {
      const mapId = 2 * i + 1;
      const peersId = 2 * i + 2;
      addressSet(peerSet(o.vni), peersId, o.peers.map((key) => ({ key })), false);
      regularChain(toOverlayChain(o.vni));
      rule(toOverlayChain(o.vni), toOverlayRule(o, peersId), `write the rule to flannel.${o.vni} (the peer subnets of ${formatCidr(o.network)})`);
      addressSet(endpointMap(o.vni), mapId, o.endpoints.map((e) => ({ key: e.address, ifindex: e.vethIndex })), true);
      ingressChain(fromOverlayChain(o.vni), o.vxlanDevice);
      rule(fromOverlayChain(o.vni), fromOverlayRule(o, mapId), `write the rule from ${o.vxlanDevice} to the endpoints`);
      for (const e of o.endpoints) {
        ingressChain(e.veth, e.veth);
        rule(e.veth, [jumpTo(toOverlayChain(o.vni))], `write the rule of ${e.veth}`);
      }
    });
  }
  const got = await exchange(batch(seq, msgs), acks.map((a) => a.seq), timeoutMs);
  for (const a of acks) {
    const errno = got.get(a.seq)?.errno ?? 0;
    if (errno === 0) continue;
    if (a.kind === 'table' && errno === -97 /* EAFNOSUPPORT */) throw noNetdev();
    if (a.kind === 'rule' && (errno === -2 || errno === -95) && /to flannel|from/.test(a.what)) {
      throw new OverlayError('UNSUPPORTED', `nftables: ${a.what}: ${errno === -2 ? 'ENOENT' : 'EOPNOTSUPP'}: this kernel lacks \`fwd\` in the netdev family (CONFIG_NFT_FWD_NETDEV); the fast path is off and containers use the routed path`);
    }
    throw kernelError(`nftables: ${a.what}${a.kind === 'chain' && errno === -2 ? ' (device gone?)' : ''}`, errno);
  }
}
