/**
 * "Our rules, found by their comment": the one shape every nftables writer here shares
 * (nft-forward, nft-isolation, nft-masq, nft-ports, nft-notrack). `CommentedRules.load` dumps some
 * chains of one `ip` table (or `ip6`: the family is a parameter, IPv4 by default) and picks out our rules by their comment; `sync` compares them with the
 * wanted rules and, in ONE nftables transaction, deletes ours that are not wanted and inserts the
 * missing ones; `remove` deletes all of ours. What differs between the writers is a parameter:
 *  - match 'comment': a rule of ours stays while its comment is wanted, only missing comments are
 *    inserted (extra copies of a wanted comment stay); 'comment-unique': the same, but extra copies
 *    are deleted; 'content': ours must be exactly the wanted rules (expressions and order, in every
 *    chain, every chain present), otherwise all of ours are deleted and the whole set is inserted.
 *  - position 'head': the inserted rules end up at the top of the chain in the order given (they
 *    are inserted last first); 'append': at its end, in the order given; { after: handle }: right
 *    after that rule, in the order given (inserted last first, each right after it).
 *  - force: treat every rule of ours as stale and insert the whole wanted set (a writer that keeps
 *    its rules in a particular place decides itself that they are not there).
 *  - create: how a missing base chain (and, with `table`, the table) is made, as iptables-nft
 *    would. When a missing chain or table means 'no-chain' instead is the writer's call, made
 *    before sync with `missing` / `noTable()`.
 *  - enoent 'no-chain': a chain that vanished between the dump and the write gives 'no-chain'
 *    instead of an error.
 * The transaction is [NEWTABLE] [NEWCHAIN…] DELRULE… NEWRULE…, every message acked; the first
 * refused message fails it with "nftables: <what>: <errno>".
 */
import {
  attr,
  attrList,
  attrText,
  baseChain,
  commentUdata,
  dumpChain,
  immediateVerdict,
  kernelError,
  nest,
  NFPROTO_IPV4,
  NFT_MSG_DELRULE,
  NFT_MSG_NEWRULE,
  NFTA_RULE_CHAIN,
  NFTA_RULE_EXPRESSIONS,
  NFTA_RULE_HANDLE,
  NFTA_RULE_POSITION,
  NFTA_RULE_TABLE,
  NFTA_RULE_USERDATA,
  NftTransaction,
  NLM_F_APPEND,
  NLM_F_CREATE,
  str,
  tableExists,
  type DumpedRule,
} from './nft-netlink';

const NFT_MSG_NEWTABLE = 0;
const u64be = (n: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};
const NFT_MSG_NEWCHAIN = 3;

/** One rule we want: its chain, its comment (how we find it again) and its expressions. */
export interface WantedRule {
  chain: string;
  comment: string;
  expressions: Buffer[];
}

/** How missing base chains are made: chain type, priority, hook per chain; `table`: the table too. */
export interface BaseChains {
  type: 'nat' | 'filter';
  priority: number;
  hooks: Record<string, number>;
  table?: boolean;
}

export interface SyncOptions {
  match: 'comment' | 'comment-unique' | 'content';
  position: 'head' | 'append' | { after: bigint };
  force?: boolean;
  create?: BaseChains;
  enoent?: 'no-chain' | 'error';
  /** What the transaction does, for its error ("write … rules of … in <table>"). */
  what: string;
}

/** 'no-chain' (only with enoent 'no-chain'), or what was written (`changed` false: nothing). */
export type SyncResult = 'no-chain' | { changed: boolean; added: number; removed: number };

/**
 * What a rule does, from its NFTA_RULE_EXPRESSIONS, ignoring what the kernel adds or changes
 * (counter values, padding): payload offsets, masks, comparisons, verdict, target and its flags.
 */
export function signature(exprList: Buffer): string {
  const out: string[] = [];
  for (const [, elem] of attrList(exprList)) {
    const e = new Map(attrList(elem));
    const name = attrText(e.get(1)) ?? '?';
    const d = new Map(attrList(e.get(2) ?? Buffer.alloc(0)));
    const value = (t: number): string => new Map(attrList(d.get(t) ?? Buffer.alloc(0))).get(1)?.toString('hex') ?? '';
    if (name === 'payload') out.push(`payload@${d.get(3)?.readUInt32BE(0)}`);
    else if (name === 'bitwise') out.push(`mask=${value(4)}`);
    else if (name === 'cmp') out.push(`cmp${d.get(2)?.readUInt32BE(0)}=${value(3)}`);
    else if (name === 'immediate') out.push(`verdict=${immediateVerdict(e.get(2))?.code}`);
    else if (name === 'target') {
      const info = d.get(3);
      out.push(`target=${attrText(d.get(1))}/${info && info.length >= 8 ? info.readUInt32LE(4) : '?'}`);
    } else if (name !== 'counter') out.push(name);
  }
  return out.join(' ');
}

/** Whether `ours` are exactly `want`, same expressions in the same order. */
function sameContent(ours: DumpedRule[], want: WantedRule[]): boolean {
  return ours.length === want.length && ours.every((r, i) => signature(r.expressions) === signature(Buffer.concat(want[i]!.expressions)));
}

/** Our rules (by comment) in some chains of table `ip <table>`, as dumped by `load`. */
export class CommentedRules {
  /** Dump `chains` of `ip <table>` (`family` NFPROTO_IPV6: `ip6 <table>`) one after the other; `isOurs` tells our rules by their comment. */
  static async load(table: string, chains: readonly string[], isOurs: (comment: string) => boolean, timeoutMs: number, family = NFPROTO_IPV4): Promise<CommentedRules> {
    const dumped = new Map<string, DumpedRule[] | 'no-chain'>();
    for (const chain of chains) dumped.set(chain, await dumpChain(table, chain, timeoutMs, family));
    return new CommentedRules(table, dumped, isOurs, timeoutMs, family);
  }

  private constructor(
    readonly table: string,
    private readonly dumped: Map<string, DumpedRule[] | 'no-chain'>,
    private readonly isOurs: (comment: string) => boolean,
    private readonly timeoutMs: number,
    private readonly family: number,
  ) {}

  /** The chains that do not exist. */
  get missing(): string[] {
    return [...this.dumped].filter(([, rules]) => rules === 'no-chain').map(([chain]) => chain);
  }

  /** True when none of the chains exists and neither does the table (asked only then). */
  async noTable(): Promise<boolean> {
    return this.missing.length === this.dumped.size && !(await tableExists(this.table, this.timeoutMs, this.family));
  }

  /** Every rule of `chain`, ours or not ([] when it is missing). */
  rules(chain: string): DumpedRule[] {
    const rules = this.dumped.get(chain);
    return rules === undefined || rules === 'no-chain' ? [] : rules;
  }

  /** Our rules of `chain`, in chain order. */
  ours(chain: string): DumpedRule[] {
    return this.rules(chain).filter((r) => r.comment !== undefined && this.isOurs(r.comment));
  }

  /** Make our rules the `want`ed ones (see the top of this file), in one transaction. */
  async sync(want: WantedRule[], opts: SyncOptions): Promise<SyncResult> {
    const chains = [...this.dumped.keys()];
    let create: string[];
    let stale: { chain: string; handle: bigint }[];
    let add: WantedRule[];
    if (opts.match === 'content' || opts.force) {
      const same = !opts.force && this.missing.length === 0 && chains.every((c) => sameContent(this.ours(c), want.filter((w) => w.chain === c)));
      if (same) return { changed: false, added: 0, removed: 0 };
      create = this.missing;
      stale = chains.flatMap((chain) => this.ours(chain).map((r) => ({ chain, handle: r.handle })));
      add = want;
    } else {
      const key = (chain: string, comment: string): string => `${chain}\n${comment}`;
      const wanted = new Set(want.map((w) => key(w.chain, w.comment)));
      const kept = new Set<string>();
      stale = [];
      for (const chain of chains) {
        for (const r of this.ours(chain)) {
          const k = key(chain, r.comment!);
          if (wanted.has(k) && (opts.match === 'comment' || !kept.has(k))) kept.add(k);
          else stale.push({ chain, handle: r.handle });
        }
      }
      add = want.filter((w) => !kept.has(key(w.chain, w.comment)));
      create = this.missing.filter((c) => add.some((w) => w.chain === c));
    }
    const tx = new NftTransaction(this.family);
    const send = (type: number, flags: number, body: Buffer[]): void => tx.add(type, flags, body);
    const base = (chain: string): Buffer[] => [attr(NFTA_RULE_TABLE, str(this.table)), attr(NFTA_RULE_CHAIN, str(chain))];
    const how = opts.create;
    if (how && create.length > 0) {
      if (how.table) send(NFT_MSG_NEWTABLE, NLM_F_CREATE, [attr(1 /* NFTA_TABLE_NAME */, str(this.table))]);
      for (const c of create) send(NFT_MSG_NEWCHAIN, NLM_F_CREATE, baseChain(this.table, c, how.hooks[c]!, how.priority, how.type));
    }
    for (const r of stale) {
      send(NFT_MSG_DELRULE, 0, [...base(r.chain), attr(NFTA_RULE_HANDLE, u64be(r.handle))]);
    }
    // Without NLM_F_APPEND a new rule goes to the head of its chain, with it and a position right
    // after that rule: for 'head' and 'after', the last one first.
    const append = opts.position === 'append';
    const after = typeof opts.position === 'object' ? [attr(NFTA_RULE_POSITION, u64be(opts.position.after))] : [];
    for (const w of append ? add : [...add].reverse()) {
      send(NFT_MSG_NEWRULE, NLM_F_CREATE | (append || after.length ? NLM_F_APPEND : 0), [...base(w.chain), ...after, nest(NFTA_RULE_EXPRESSIONS, ...w.expressions), attr(NFTA_RULE_USERDATA, commentUdata(w.comment))]);
    }
    if (tx.size === 0) return { changed: false, added: 0, removed: 0 };
    const refused = await tx.commit(this.timeoutMs);
    if (refused?.errno === -2 /* ENOENT */ && opts.enoent === 'no-chain') return 'no-chain';
    if (refused) throw kernelError(`nftables: ${opts.what}`, refused.errno);
    return { changed: true, added: add.length, removed: stale.length };
  }

  /** Delete all of our rules, in one transaction; how many there were. */
  async remove(what: string): Promise<number> {
    const done = await this.sync([], { match: 'comment', position: 'append', what });
    return done === 'no-chain' ? 0 : done.removed;
  }
}
