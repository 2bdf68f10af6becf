/**
 * The multicast table `netdev overlay-flannel-mcast` (planned in src/domain/multicast.ts), kept
 * equal to a plan. Each chain of the plan is a base chain on its device's ingress at priority -10
 * (before the fast path's chains), or a regular chain, with the plan's rules:
 *
 *   groups:    meta protocol ip  ip daddr & 240.0.0.0 == 224.0.0.0   dup to "<dev>" … [drop|jump C]
 *   broadcast: meta protocol ip  ip daddr == 255.255.255.255          dup to "<dev>" … [drop|jump C]
 *   not-from:  meta iif != "<veth>"  dup to "<veth>"
 *   any:       drop | jump C
 *
 * (`dup to` = immediate ifindex → reg 2, then nft_dup_netdev with SREG_DEV 2; each dup clones the
 * frame, MAC header included, and transmits it on that device.) A marker chain `plan-<digest>`
 * names the plan: when it is there the table holds the plan; otherwise the table is deleted and
 * written anew in ONE transaction (packets arriving meanwhile see the old table or the new one).
 * Rewrites happen when an endpoint of a multicast network comes or goes, or a device is recreated:
 * the table grows linearly with the local endpoints (~460 bytes each), and a plan that would not
 * fit one netlink message (more than ~430 endpoints of multicast networks on one host) is refused
 * before anything is sent. Only the last message asks for an ACK (NftTransaction's sparseAcks):
 * an ACK per message overflowed the socket at ~85 endpoints, which aborts the process.
 * Measured (scratch netns): rewrites of 10 endpoints 16–28 ms, 100: 100–175 ms, 430: 100–650 ms;
 * a first write of 200: 0.8–1.4 s (test/kernel/nft-multicast.test.ts). Its own queue: Docker never waits.
 * Needs CONFIG_NF_TABLES_NETDEV and CONFIG_NF_DUP_NETDEV; without them the write fails UNSUPPORTED.
 */
import { MULTICAST_PRIORITY, MULTICAST_TABLE, multicastMarker, type MulticastPlan, type MulticastRule } from '../domain/multicast';
import { attr, expr, kernelError, nest, NftTransaction, NLM_F_APPEND, NLM_F_CREATE, str, u32be } from './nft-netlink';
import { NFPROTO_NETDEV, noNetdevFamily, readNetdevChains, u32le } from './nft-fastpath-batch';
import { OverlayError } from '../errors';
import type { MulticastResult } from './types';

const NFT_MSG_NEWTABLE = 0;
const NFT_MSG_DELTABLE = 2;
const NFT_MSG_NEWCHAIN = 3;
const NFT_MSG_NEWRULE = 6;
const NF_NETDEV_INGRESS = 0;
const REG_ADDR = 1;
const REG_DEV = 2;
const NF_DROP = 0;
const NFT_JUMP = -3;
/** Below the netlink socket's default send buffer (212992 bytes, less its overhead). */
const MAX_BATCH_BYTES = 200_000;


/** The chain names of our table, or null when there is none. */
const readChains = (timeoutMs: number): Promise<Set<string> | null> => readNetdevChains(MULTICAST_TABLE, timeoutMs);

/** IPv4, then reg1 = ip daddr (& mask), == value. */
function matchDaddr(mask: number | null, value: number): Buffer[] {
  return [
    expr('meta', attr(2, u32be(1 /* NFT_META_PROTOCOL */)), attr(1, u32be(REG_ADDR))),
    expr('cmp', attr(1, u32be(REG_ADDR)), attr(2, u32be(0 /* EQ */)), nest(3, attr(1, Buffer.from([0x08, 0x00])))),
    expr('payload', attr(1, u32be(REG_ADDR)), attr(2, u32be(1 /* network header */)), attr(3, u32be(16)), attr(4, u32be(4))),
    ...(mask === null ? [] : [expr('bitwise', attr(1, u32be(REG_ADDR)), attr(2, u32be(REG_ADDR)), attr(3, u32be(4)), nest(4, attr(1, u32be(mask))), nest(5, attr(1, Buffer.alloc(4))))]),
    expr('cmp', attr(1, u32be(REG_ADDR)), attr(2, u32be(0)), nest(3, attr(1, u32be(value)))),
  ];
}

/** meta iif != ifindex. */
const notFrom = (ifindex: number): Buffer[] => [
  expr('meta', attr(2, u32be(4 /* NFT_META_IIF */)), attr(1, u32be(REG_ADDR))),
  expr('cmp', attr(1, u32be(REG_ADDR)), attr(2, u32be(1 /* NEQ */)), nest(3, attr(1, u32le(ifindex)))),
];

const verdict = (code: number, chain?: string): Buffer =>
  expr('immediate', attr(1, u32be(0 /* verdict reg */)), nest(2, nest(2, attr(1, u32be(code >>> 0)), ...(chain ? [attr(2, str(chain))] : []))));

function ruleExprs(r: MulticastRule): Buffer[] {
  const match = r.match === 'groups' ? matchDaddr(0xf0000000, 0xe0000000) : r.match === 'broadcast' ? matchDaddr(null, 0xffffffff) : r.match === 'not-from' ? notFrom(r.from.index) : [];
  const out = [...match];
  for (const d of r.dups) {
    out.push(expr('immediate', attr(1, u32be(REG_DEV)), nest(2, attr(1, u32le(d.index)))));
    out.push(expr('dup', attr(2 /* NFTA_DUP_SREG_DEV */, u32be(REG_DEV))));
  }
  if (r.then === 'drop') out.push(verdict(NF_DROP));
  else if (typeof r.then === 'object') out.push(verdict(NFT_JUMP, r.then.jump));
  return out;
}

type Kind = 'table' | 'chain' | 'dup-rule' | 'other';

/** Make the table hold `plan` (an empty plan removes it). */
export async function ensureMulticast(plan: MulticastPlan, timeoutMs = 5000): Promise<MulticastResult> {
  const have = await readChains(timeoutMs);
  const tx = new NftTransaction<{ what: string; kind: Kind }>(NFPROTO_NETDEV, Infinity, { sparseAcks: true }); // one ACK: hundreds of messages
  const table = attr(1, str(MULTICAST_TABLE));
  if (plan.chains.length === 0) {
    if (have === null) return 'absent';
    tx.add(NFT_MSG_DELTABLE, 0, [table], { what: `delete table netdev ${MULTICAST_TABLE}`, kind: 'other' });
    await commit(tx, timeoutMs);
    return 'removed';
  }
  const marker = multicastMarker(plan.digest);
  if (have?.has(marker)) return 'present';
  if (have !== null) tx.add(NFT_MSG_DELTABLE, 0, [table], { what: `delete table netdev ${MULTICAST_TABLE}`, kind: 'other' });
  tx.add(NFT_MSG_NEWTABLE, NLM_F_CREATE, [table], { what: `create table netdev ${MULTICAST_TABLE}`, kind: 'table' });
  tx.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, [table, attr(3, str(marker))], { what: `create chain ${marker}`, kind: 'other' });
  for (const c of plan.chains) {
    if (c.device) {
      const hook = nest(4, attr(1, u32be(NF_NETDEV_INGRESS)), attr(2, u32be(MULTICAST_PRIORITY >>> 0)), attr(3, str(c.device.name)));
      tx.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, [table, attr(3, str(c.name)), hook, attr(5, u32be(1 /* accept */)), attr(7, str('filter'))], { what: `create chain ${c.name} on the ingress of ${c.device.name}`, kind: 'chain' });
    } else {
      tx.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, [table, attr(3, str(c.name))], { what: `create chain ${c.name}`, kind: 'other' });
    }
    for (const r of c.rules) {
      tx.add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, [table, attr(2, str(c.name)), nest(4, ...ruleExprs(r))], { what: `write a ${r.match} rule of ${c.name}`, kind: r.dups.length ? 'dup-rule' : 'other' });
    }
  }
  if (tx.bytes > MAX_BATCH_BYTES) {
    throw new OverlayError('UNSUPPORTED', `nftables: the multicast table for ${plan.chains.length} chains needs ${tx.bytes} bytes in one transaction, more than a netlink message carries (${MAX_BATCH_BYTES}): too many endpoints of multicast networks on this host; multicast stays as it was (turn it off on big networks with -o multicast=false)`);
  }
  await commit(tx, timeoutMs);
  return 'rewritten';
}

export async function removeMulticast(timeoutMs = 5000): Promise<boolean> {
  return (await ensureMulticast({ chains: [], digest: '' }, timeoutMs)) === 'removed';
}

async function commit(tx: NftTransaction<{ what: string; kind: Kind }>, timeoutMs: number): Promise<void> {
  const refused = await tx.commit(timeoutMs);
  if (!refused) return;
  const { what, kind } = refused.tag!;
  const errno = refused.errno;
  if (kind === 'table' && errno === -97) throw noNetdevFamily();
  if (kind === 'dup-rule' && (errno === -2 || errno === -95)) {
    throw new OverlayError('UNSUPPORTED', `nftables: ${what}: this kernel lacks \`dup\` in the netdev family (CONFIG_NF_DUP_NETDEV): multicast and broadcast stay on each host`);
  }
  throw kernelError(`nftables: ${what}${kind === 'chain' && errno === -2 ? ' (device gone?)' : ''}`, errno);
}
