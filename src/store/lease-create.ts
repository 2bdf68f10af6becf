/**
 * Creating a new lease key, as flanneld's createSubnet does (docs/flannel-compat.md §4): the
 * caller grants the etcd lease, then one txn `Version(key) == 0` → put the value on it, else read
 * the key back (so a create of ours that the client retried after a lost response is recognised).
 *
 * Design note: for v4 that compare is the whole race rule, because the key *is* the v4 subnet: two
 * hosts that picked the same subnet write the same key and one of them loses. A dual-stack or
 * IPv6-only key names two subnets (`10.1.5.0-24&fd00:10:0:7::-64`), so two hosts that picked
 * different v4 subnets but the same v6 one write different keys and both would win: measured, 12
 * concurrent acquirers got 11 distinct v6 subnets (flanneld has this race too). For such keys the
 * txn also compares every key under `<prefix>/subnets` (etcd's range compare): none may have been
 * written after the list the choice was made from (`mod_revision < list revision + 1`). Any new or
 * changed lease meanwhile fails the create, and the keeper re-lists and chooses again, the same
 * retry as a lost v4 race. Deleted keys cannot make a choice wrong, so they need no compare.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import type { OverlayKeys } from './keys';
import { KeyValue, toKeyValue } from './list-watch';

export type CreateOutcome =
  | { kind: 'created'; revision: bigint }
  /** Not written: the key exists (`existing`, maybe our own earlier try), or another lease was written since the list. */
  | { kind: 'lost'; existing?: KeyValue };

/** The end of the etcd range of every key starting with `prefix` (etcd's "prefix + 1"). */
export function prefixRangeEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix, 'utf8');
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff: every key after it
}

/**
 * Create `key` with `value` on etcd lease `leaseId`. With `listRevision` (the header revision of
 * the list the subnets were chosen from) the create also requires that no key under
 * `<prefix>/subnets` was written after that list: the v6 race rule above.
 */
export async function createLeaseKey(client: Etcd3, keys: OverlayKeys, key: string, value: string, leaseId: string, listRevision?: bigint): Promise<CreateOutcome> {
  const k = Buffer.from(key, 'utf8');
  const compare: NonNullable<Parameters<Etcd3['kv']['txn']>[0]['compare']> = [{ key: k, target: 'Version', result: 'Equal', version: 0 }];
  if (listRevision !== undefined) {
    compare.push({
      key: Buffer.from(keys.subnetsPrefix, 'utf8'),
      range_end: prefixRangeEnd(keys.subnetsPrefix),
      target: 'Mod',
      result: 'Less',
      mod_revision: (listRevision + 1n).toString(),
    });
  }
  const r = await client.kv.txn({
    compare,
    success: [{ request_put: { key: k, value: Buffer.from(value, 'utf8'), lease: leaseId } }],
    failure: [{ request_range: { key: k } }],
  });
  if (r.succeeded) return { kind: 'created', revision: BigInt(r.header.revision) };
  const existing: IKeyValue | undefined = r.responses[0]?.response_range?.kvs[0];
  return existing ? { kind: 'lost', existing: toKeyValue(existing) } : { kind: 'lost' };
}
