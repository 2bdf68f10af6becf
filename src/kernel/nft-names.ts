/**
 * The kernel half of cross-host names (docs/names-design.md §3), written over nftables netlink:
 *
 *   ip raw PREROUTING (iptables-nft's table, shared; comment "overlay-flannel names queue"):
 *     -i <prefix>+ -p udp --dport 53 -j NFQUEUE --queue-num <queue> --queue-bypass   (one per prefix)
 *   table ip overlay-flannel-dns {                       (ours alone)
 *     chain names-zone       { filter prerouting raw+5:  iifname "<p>*" mark&bit==bit udp dport 53 ct zone set <zone> }
 *     chain names-reply-zone { filter output raw-5:      ip saddr <answer> udp sport <port> ct zone set <zone> }
 *     chain names-dnat       { nat prerouting dstnat-1:  iifname "<p>*" mark&bit==bit udp dport 53 dnat to <answer>:<port> }
 *     chain names-guard      { filter input filter-1:    ip daddr <answer> ct status dnat iifname "<p>*" accept; ip daddr <answer> drop }
 *     chain spec-<digest>    { }                        (marker: which spec the table was written for)
 *   }
 *
 * The NFQUEUE target is the xtables one (revision 3, struct xt_NFQ_info_v3) through nft_compat,
 * as iptables-nft writes it: this kernel has CONFIG_NETFILTER_XT_TARGET_NFQUEUE but not
 * CONFIG_NFT_QUEUE, and `iptables -t raw -S` keeps reading the chain. The table is compared by its
 * marker chain (a digest of the spec), its chains and their rule counts; when anything differs it
 * is written anew in ONE transaction (delete + create), like the fast path's table. The queue rule
 * lives in a shared table, so it goes through CommentedRules (a second transaction): after the
 * table on ensure, before it on remove. In between, a marked packet without the table is harmless:
 * it goes on to its upstream like an unmarked one.
 */
import { createHash } from 'node:crypto';
import { attr, attrsOf, attrText, counter, dataValue, exchange, expr, kernelError, matchAddress, matchProtoPort, message, NF_ACCEPT, NFPROTO_IPV4, NftTransaction, nftType, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, sequencer, str, u32be, verdict, baseChain, NLM_F_CREATE, NFT_MSG_NEWRULE, NLM_F_APPEND } from './nft-netlink';
import { CommentedRules } from './nft-ruleset';
import { RAW_CHAINS, RAW_TABLE } from './nft-notrack';
import { parseIPv4 } from '../domain/ipv4';
import { invalid } from '../errors';
import type { NameInterceptionSpec } from './types';

export const NAMES_TABLE = 'overlay-flannel-dns';
export const QUEUE_COMMENT = 'overlay-flannel names queue';
const CHAINS = ['names-zone', 'names-reply-zone', 'names-dnat', 'names-guard'] as const;
const NFT_MSG_NEWTABLE = 0;
const NFT_MSG_GETTABLE = 1;
const NFT_MSG_DELTABLE = 2;
const NFT_MSG_NEWCHAIN = 3;
const NFT_MSG_GETCHAIN = 4;
const NFT_MSG_GETRULE = 7;
const NF_DROP = 0;
const REG1 = 1;
const REG2 = 2;

const u16be = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const u32le = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};

export function checkNameSpec(s: NameInterceptionSpec): void {
  const fix = 'fix the names settings';
  if (!Number.isInteger(s.queue) || s.queue < 0 || s.queue > 65535) throw invalid(`names: queue number ${s.queue} must be 0–65535; ${fix}`);
  if (!Number.isInteger(s.markBit) || s.markBit <= 0 || s.markBit > 0x80000000 || (s.markBit & (s.markBit - 1)) !== 0) throw invalid(`names: mark bit 0x${s.markBit.toString(16)} must be exactly one bit of 32; ${fix}`);
  if (!Number.isInteger(s.zone) || s.zone < 1 || s.zone > 65535) throw invalid(`names: conntrack zone ${s.zone} must be 1–65535; ${fix}`);
  if (!Number.isInteger(s.answerPort) || s.answerPort < 1 || s.answerPort > 65535) throw invalid(`names: answer port ${s.answerPort} must be 1–65535; ${fix}`);
  parseIPv4(s.answerAddress);
  if (s.interfacePrefixes.length === 0) throw invalid(`names: no interface prefixes; ${fix}`);
  for (const p of s.interfacePrefixes) if (!/^[A-Za-z0-9_.-]{1,15}$/.test(p)) throw invalid(`names: interface prefix "${p}" must be 1–15 letters, digits, "_", "." or "-"; ${fix}`);
}

/** `iifname "<prefix>*"` (`-i <prefix>+`): meta iifname, compare the first bytes only. */
const iifPrefix = (prefix: string): Buffer[] => [
  expr('meta', attr(2 /* KEY */, u32be(6 /* NFT_META_IIFNAME */)), attr(1 /* DREG */, u32be(REG1))),
  expr('cmp', attr(1, u32be(REG1)), attr(2, u32be(0)), dataValue(3, Buffer.from(prefix, 'utf8'))),
];
/** `meta mark & bit == bit` (mark is host order). */
const markHas = (bit: number): Buffer[] => [
  expr('meta', attr(2, u32be(3 /* NFT_META_MARK */)), attr(1, u32be(REG1))),
  expr('bitwise', attr(1, u32be(REG1)), attr(2, u32be(REG1)), attr(3, u32be(4)), dataValue(4, u32le(bit)), dataValue(5, Buffer.alloc(4))),
  expr('cmp', attr(1, u32be(REG1)), attr(2, u32be(0)), dataValue(3, u32le(bit))),
];
const udpSport = (port: number): Buffer[] => [
  expr('meta', attr(2, u32be(16 /* NFT_META_L4PROTO */)), attr(1, u32be(REG1))),
  expr('cmp', attr(1, u32be(REG1)), attr(2, u32be(0)), dataValue(3, Buffer.from([17]))),
  expr('payload', attr(1, u32be(REG1)), attr(2, u32be(2) /* transport */), attr(3, u32be(0)), attr(4, u32be(2))),
  expr('cmp', attr(1, u32be(REG1)), attr(2, u32be(0)), dataValue(3, u16be(port))),
];
const immediate = (reg: number, v: Buffer): Buffer => expr('immediate', attr(1, u32be(reg)), dataValue(2, v));
/** `ct zone set <zone>`: the zone (u16, host order) into reg1, ct set zone from reg1. */
const zoneSet = (zone: number): Buffer[] => [immediate(REG1, Buffer.from([zone & 0xff, zone >> 8])), expr('ct', attr(2 /* KEY */, u32be(17 /* NFT_CT_ZONE */)), attr(4 /* SREG */, u32be(REG1)))];
/** `dnat to a.b.c.d:port`. */
const dnatTo = (address: string, port: number): Buffer[] => [
  immediate(REG1, Buffer.from(address.split('.').map(Number))),
  immediate(REG2, u16be(port)),
  expr('nat', attr(1 /* TYPE */, u32be(1 /* NFT_NAT_DNAT */)), attr(2 /* FAMILY */, u32be(NFPROTO_IPV4)), attr(3 /* REG_ADDR_MIN */, u32be(REG1)), attr(5 /* REG_PROTO_MIN */, u32be(REG2))),
];
/** `ct status dnat`: ct status & IPS_DST_NAT != 0. */
const ctStatusDnat = (): Buffer[] => [
  expr('ct', attr(2, u32be(2 /* NFT_CT_STATUS */)), attr(1 /* DREG */, u32be(REG1))),
  expr('bitwise', attr(1, u32be(REG1)), attr(2, u32be(REG1)), attr(3, u32be(4)), dataValue(4, u32le(0x20)), dataValue(5, Buffer.alloc(4))),
  expr('cmp', attr(1, u32be(REG1)), attr(2, u32be(1 /* NEQ */)), dataValue(3, Buffer.alloc(4))),
];
/** `-j NFQUEUE --queue-num N --queue-bypass`: xt_NFQ_info_v3 {queuenum, queues_total, flags} (u16 host order), aligned to 8. */
export function nfqueueTarget(queue: number): Buffer {
  const info = Buffer.alloc(8);
  info.writeUInt16LE(queue, 0);
  info.writeUInt16LE(1, 2);
  info.writeUInt16LE(0x01 /* NFQ_FLAG_BYPASS */, 4);
  return expr('target', attr(1, str('NFQUEUE')), attr(2, u32be(3)), attr(3, info));
}

/** The rules of our table, chain → rules. */
function tableRules(s: NameInterceptionSpec): [string, Buffer[]][] {
  const answer = `${s.answerAddress}/32`;
  const rules: [string, Buffer[]][] = [];
  for (const p of s.interfacePrefixes) rules.push(['names-zone', [...iifPrefix(p), ...markHas(s.markBit), ...matchProtoPort(17, 53), counter(), ...zoneSet(s.zone)]]);
  rules.push(['names-reply-zone', [...matchAddress(answer, 'src'), ...udpSport(s.answerPort), counter(), ...zoneSet(s.zone)]]);
  for (const p of s.interfacePrefixes) rules.push(['names-dnat', [...iifPrefix(p), ...markHas(s.markBit), ...matchProtoPort(17, 53), counter(), ...dnatTo(s.answerAddress, s.answerPort)]]);
  for (const p of s.interfacePrefixes) rules.push(['names-guard', [...matchAddress(answer, 'dst'), ...ctStatusDnat(), ...iifPrefix(p), counter(), verdict(NF_ACCEPT)]]);
  rules.push(['names-guard', [...matchAddress(answer, 'dst'), counter(), verdict(NF_DROP)]]);
  return rules;
}
const HOOKS: Record<(typeof CHAINS)[number], [number, number, 'nat' | 'filter']> = {
  'names-zone': [0 /* PRE_ROUTING */, -300 + 5, 'filter'],
  'names-reply-zone': [3 /* LOCAL_OUT */, -300 - 5, 'filter'],
  'names-dnat': [0, -100 - 1, 'nat'],
  'names-guard': [1 /* LOCAL_IN */, 0 - 1, 'filter'],
};
export const specMarker = (s: NameInterceptionSpec): string => `spec-${createHash('sha256').update(JSON.stringify([s.queue, s.markBit, s.zone, s.answerAddress, s.answerPort, s.interfacePrefixes])).digest('hex').slice(0, 16)}`;

/** Our table's chains with their rule counts, or null without the table. */
async function tableChains(timeoutMs: number): Promise<Map<string, number> | null> {
  const seq = sequencer();
  const t = seq();
  const c = seq();
  const table = attr(1, str(NAMES_TABLE));
  const got = await exchange(
    Buffer.concat([message(nftType(NFT_MSG_GETTABLE), NLM_F_REQUEST | NLM_F_ACK, t, NFPROTO_IPV4, 0, [table]), message(nftType(NFT_MSG_GETCHAIN), NLM_F_REQUEST | NLM_F_DUMP, c, NFPROTO_IPV4, 0, [table])]),
    [t, c],
    timeoutMs,
  );
  const tableErr = got.get(t)?.errno ?? 0;
  if (tableErr === -2) return null;
  if (tableErr < 0) throw kernelError(`nftables: get table ip ${NAMES_TABLE}`, tableErr);
  const chains = got.get(c);
  if (chains && chains.errno < 0 && chains.errno !== -2) throw kernelError(`nftables: list chains of ip ${NAMES_TABLE}`, chains.errno);
  const names = (chains?.msgs ?? []).map((m) => attrsOf(m.payload)).filter((a) => attrText(a.get(1)) === NAMES_TABLE).map((a) => attrText(a.get(3)) ?? '');
  // rules per chain, in a second exchange (one dump at a time per socket)
  const r = seq();
  const rules = (await exchange(message(nftType(NFT_MSG_GETRULE), NLM_F_REQUEST | NLM_F_DUMP, r, NFPROTO_IPV4, 0, [table]), [r], timeoutMs)).get(r);
  if (rules && rules.errno < 0 && rules.errno !== -2) throw kernelError(`nftables: list rules of ip ${NAMES_TABLE}`, rules.errno);
  const count = new Map<string, number>(names.map((n) => [n, 0]));
  for (const m of rules?.msgs ?? []) {
    const chain = attrText(attrsOf(m.payload).get(2 /* NFTA_RULE_CHAIN */)) ?? '';
    count.set(chain, (count.get(chain) ?? 0) + 1);
  }
  return count;
}
/** How many rules each chain of our table holds for `spec`, the marker chain with none. */
function wantedCounts(s: NameInterceptionSpec): Map<string, number> {
  const count = new Map<string, number>([...CHAINS.map((c): [string, number] => [c, 0]), [specMarker(s), 0]]);
  for (const [chain] of tableRules(s)) count.set(chain, (count.get(chain) ?? 0) + 1);
  return count;
}

async function writeTable(s: NameInterceptionSpec, exists: boolean, timeoutMs: number): Promise<void> {
  const tx = new NftTransaction<string>(NFPROTO_IPV4);
  const table = attr(1, str(NAMES_TABLE));
  if (exists) tx.add(NFT_MSG_DELTABLE, 0, [table], 'delete the old table');
  tx.add(NFT_MSG_NEWTABLE, NLM_F_CREATE, [table], 'create the table');
  for (const name of CHAINS) {
    const [hook, prio, type] = HOOKS[name];
    tx.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, baseChain(NAMES_TABLE, name, hook, prio, type), `create chain ${name}`);
  }
  tx.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, [table, attr(3, str(specMarker(s)))], 'create the marker chain');
  for (const [chain, exprs] of tableRules(s)) tx.add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, [attr(1, str(NAMES_TABLE)), attr(2, str(chain)), attr(4 | 0x8000, Buffer.concat(exprs))], `a rule in ${chain}`);
  const refused = await tx.commit(timeoutMs);
  if (refused) throw kernelError(`nftables: write table ip ${NAMES_TABLE} (${refused.tag ?? '?'}; needs nf_tables with ct, nat and conntrack zones)`, refused.errno);
}

const loadQueueRules = (timeoutMs: number): Promise<CommentedRules> => CommentedRules.load(RAW_TABLE, ['PREROUTING'], (c) => c === QUEUE_COMMENT, timeoutMs);

/** Make the queue rule and our table exactly as `spec` says: 'present' when they were. */
export async function ensureNameInterception(spec: NameInterceptionSpec, timeoutMs = 5000): Promise<'present' | 'updated'> {
  checkNameSpec(spec);
  const chains = await tableChains(timeoutMs);
  const want = wantedCounts(spec);
  const tableOk = chains !== null && chains.size === want.size && [...want].every(([c, n]) => chains.get(c) === n);
  if (!tableOk) await writeTable(spec, chains !== null, timeoutMs);
  const queueRules = spec.interfacePrefixes.map((p) => ({ chain: 'PREROUTING', comment: QUEUE_COMMENT, expressions: [...iifPrefix(p), ...matchProtoPort(17, 53), counter(), nfqueueTarget(spec.queue)] }));
  const done = await (await loadQueueRules(timeoutMs)).sync(queueRules, { match: 'content', position: 'append', create: RAW_CHAINS, what: `write the names queue rule in ${RAW_TABLE} (needs CONFIG_NETFILTER_XT_TARGET_NFQUEUE)` });
  return !tableOk || (done !== 'no-chain' && done.changed) ? 'updated' : 'present';
}

/** Delete the queue rule, then our table: true if anything was there. */
export async function removeNameInterception(timeoutMs = 5000): Promise<boolean> {
  const rules = await (await loadQueueRules(timeoutMs)).remove(`delete the names queue rule in ${RAW_TABLE}`);
  const chains = await tableChains(timeoutMs);
  if (chains !== null) {
    const tx = new NftTransaction<string>(NFPROTO_IPV4);
    tx.add(NFT_MSG_DELTABLE, 0, [attr(1, str(NAMES_TABLE))], 'delete the table');
    const refused = await tx.commit(timeoutMs);
    if (refused && refused.errno !== -2) throw kernelError(`nftables: delete table ip ${NAMES_TABLE}`, refused.errno);
  }
  return rules > 0 || chains !== null;
}
