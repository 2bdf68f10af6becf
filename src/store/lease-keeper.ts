/**
 * This host's subnet lease: acquired, renewed and, when lost, re-acquired, the way flanneld does it
 * (docs/flannel-compat.md §4), with the gaps flanneld leaves closed.
 *
 * Design note.
 * - Acquire = list every lease under `<prefix>/subnets`, `chooseSubnet` (pure, flannel's rules):
 *   reuse the lease carrying our PublicIP (re-put with current attrs and a NEW etcd lease, or with
 *   no lease at all when it is a reservation: lease "0" stays lease-less), delete our stale ones,
 *   or create one with flannel's grant + txn `Version == 0` put: the subnet we held last (or
 *   options.previousSubnet(), flanneld's subnet.env) if free, else a random one of the first 100
 *   free ones. Every write is a
 *   compare-and-swap against what the list showed, so a concurrent writer makes us re-list rather
 *   than overwrite. flanneld exits when it loses a create race; we re-list and retry with jittered,
 *   capped backoff (50 ms → 5 s) until the caller's AbortSignal aborts, and likewise through etcd
 *   outages. A lost race or outage never throws out of acquire().
 * - Renew at expiry − renewMarginSec: a new grant and a put, as flanneld does, but guarded by
 *   `Value == ours`, so we never overwrite a lease another host created after ours vanished.
 *   Failures retry with backoff; failing past the expiry counts as lost.
 * - We watch our own key ({@link ListWatch}): DELETE or expiry → `lost`, then re-acquire
 *   (possibly another subnet) → `acquired` (flanneld exits instead). A PUT with other attributes
 *   and our PublicIP (an operator, a duplicate host) → we re-put ours. A PUT with another host's
 *   PublicIP means our subnet was taken: we give it up (`lost`) instead of fighting over it.
 * - Never deletes its lease on stop(): a restarted host finds it again by PublicIP (flannel).
 * - Writes of one keeper (renew, repair) go through one SerialQueue so they never interleave.
 * - Dual-stack/IPv6-only: one key names both subnets (`10.1.5.0-24&fd00::-64`), written by the
 *   same txn, so the race rules are the v4 ones; we are leaseOwner(attrs) (PublicIP, or PublicIPv6).
 */
import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { Cidr, formatCidr } from '../domain/ipv4';
import { Cidr6, formatCidr6 } from '../domain/ipv6';
import { leaseOwner } from '../domain/lease-v6';
import { decodeLeaseAttrs, encodeLeaseAttrs, Lease } from '../domain/lease';
import type { NetworkConfig } from '../domain/network-config';
import { chooseSubnet, describeExhausted, pickRandom } from '../domain/subnet-choice';
import { conflict, errorText, OverlayError, unavailable } from '../errors';
import { Backoff, sleep } from '../util/backoff';
import { SerialQueue } from '../util/serial-queue';
import { rawEtcdText, toStoreError } from './etcd-client';
import { etcdHealthOf } from './etcd-health';
import { blockingLeaseOf, leasesForAcquire, OverlayKeys } from './keys';
import { createLeaseKey } from './lease-create';
import { KeyValue, ListWatch, toKeyValue } from './list-watch';
import type { KeeperEvent, LeaseKeeper, LeaseKeeperOptions } from './types';

type Attempt = { kind: 'ok'; lease: Lease; key: string; value: string } | { kind: 'retry'; reason: string; quiet: boolean };

export interface EtcdLeaseKeeper {
  on(event: 'event', listener: (e: KeeperEvent) => void): this;
  on(event: 'acquired', listener: (e: Extract<KeeperEvent, { type: 'acquired' }>) => void): this;
  on(event: 'renewed', listener: (e: Extract<KeeperEvent, { type: 'renewed' }>) => void): this;
  on(event: 'lost', listener: (e: Extract<KeeperEvent, { type: 'lost' }>) => void): this;
}

/** Extra knobs, mostly for tests. */
export interface KeeperTuning {
  random?: () => number;
  /** Cap of the acquire/renew backoff in ms. Default 5000. */
  maxBackoffMs?: number;
}

/**
 * @example
 *   const keeper = overlay.keeper({ publicIP, attrsFor, ttlSec: 86400, renewMarginSec: 3600 });
 *   keeper.on('lost', (e) => log.warn(e)).on('acquired', (e) => reprogram(e.lease));
 *   const lease = await keeper.acquire(config, signal);
 */
export class EtcdLeaseKeeper extends EventEmitter implements LeaseKeeper {
  private readonly log: Logger;
  private readonly life = new AbortController();
  private readonly writes = new SerialQueue();
  private config: NetworkConfig | null = null;
  private lease: Lease | null = null;
  private key = '';
  private value = '';
  private maint: { abort: AbortController; watch: ListWatch; timer?: NodeJS.Timeout } | null = null;
  private recovering = false;
  private recovery: AbortController | null = null;
  /** The subnet we held last: after a loss we ask for it again first (flanneld: subnet.env). */
  private lastSubnet: Cidr | null = null;
  private lastSubnet6: Cidr6 | null = null;
  /** leaseOwner() of the attrs we write: who "our" lease belongs to. */
  private owner = '';
  /** Why the current acquire has not succeeded yet (null: not acquiring, or no problem seen). */
  private acquireProblem: string | null = null;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: OverlayKeys,
    logger: Logger,
    private readonly opts: LeaseKeeperOptions,
    private readonly tuning: KeeperTuning = {},
  ) {
    super();
    this.log = logger.child({ publicIP: opts.publicIP, leases: keys.subnetsPrefix });
  }

  current(): Lease | null {
    return this.lease;
  }

  /** Why no lease is held yet, in our words (etcd refused, no free subnet, …); null if none known. */
  problem(): string | null {
    return this.lease ? null : this.acquireProblem;
  }

  /**
   * Acquire (or reuse by PublicIP) a lease for `config`; retries races and outages until `signal`
   * (or stop()) aborts, then rejects with UNAVAILABLE naming the last problem. Calling it again
   * (e.g. with a changed config) re-runs the choice; the current lease is reused when it still fits.
   */
  async acquire(config: NetworkConfig, signal?: AbortSignal): Promise<Lease> {
    if (this.life.signal.aborted) throw unavailable('acquire subnet lease: the keeper was stopped');
    this.config = config;
    this.recovery?.abort(); // an explicit acquire supersedes a background re-acquire
    this.recovery = null;
    this.recovering = false;
    await this.stopMaintenance();
    const lease = await this.acquireLoop(config, signal ? AbortSignal.any([signal, this.life.signal]) : this.life.signal);
    this.fire({ type: 'acquired', lease });
    return lease;
  }

  /** Stop renewing and watching. Never deletes the lease (flanneld doesn't either). */
  async stop(): Promise<void> {
    this.life.abort();
    await this.stopMaintenance();
  }

  private async acquireLoop(config: NetworkConfig, signal: AbortSignal): Promise<Lease> {
    const backoff = new Backoff({ initialMs: 50, maxMs: this.tuning.maxBackoffMs ?? 5000, jitter: 0.5 });
    let last = '';
    for (let attempt = 1; ; attempt++) {
      if (signal.aborted) throw unavailable(`acquire subnet lease in ${formatCidr(config.network)}: aborted${last ? ` (last problem: ${last})` : ''}`);
      let r: Attempt;
      try {
        r = await this.tryAcquire(config);
      } catch (e) {
        const err = toStoreError(e, 'acquire subnet lease');
        r = { kind: 'retry', reason: err.message, quiet: false };
        this.acquireProblem = err.reason;
        this.log.debug({ raw: rawEtcdText(e) }, 'acquire failed: the error as etcd3 gave it');
      }
      if (r.kind === 'ok') {
        this.acquireProblem = null;
        if (signal.aborted) throw unavailable(`acquire subnet lease in ${formatCidr(config.network)}: aborted`);
        this.install(r);
        this.log.info({ subnet: formatCidr(r.lease.subnet), ...(r.lease.subnet6 ? { subnet6: formatCidr6(r.lease.subnet6) } : {}), etcdLease: r.lease.etcdLease, attempts: attempt }, 'subnet lease acquired');
        return r.lease;
      }
      last = r.reason;
      const level = !r.quiet && (attempt === 1 || attempt % 10 === 0) ? 'warn' : 'debug';
      this.log[level]({ attempt, reason: r.reason }, 'could not acquire a subnet lease yet; retrying');
      await sleep(backoff.next(), signal);
    }
  }

  /** One list → choose → write round. Throws on etcd errors; returns 'retry' on races. */
  private async tryAcquire(config: NetworkConfig): Promise<Attempt> {
    const attrs = this.opts.attrsFor(config);
    const value = encodeLeaseAttrs(attrs);
    this.owner = leaseOwner(attrs);
    const res = await this.client.getAll().prefix(this.keys.subnetsPrefix).exec();
    const { leases, kvOf } = leasesForAcquire(this.keys, res.kvs, this.owner);
    // After a loss, try the subnet we had (containers on it keep working); at start, the caller's hint.
    const previous = this.lease?.subnet ?? this.lastSubnet ?? this.opts.previousSubnet?.() ?? null;
    const previous6 = this.lease?.subnet6 ?? this.lastSubnet6 ?? this.opts.previousSubnet6?.() ?? null;
    const choice = chooseSubnet(config, leases, this.owner, previous, previous6);
    for (const stale of choice.stale) {
      const kv = kvOf.get(stale)!;
      this.log.info({ key: kv.key }, 'deleting our lease that no longer fits the network config');
      await this.client.if(kv.key, 'Mod', '==', kv.modRevision.toString()).then(this.client.delete().key(kv.key)).commit();
    }
    if (choice.kind === 'exhausted') {
      const err = conflict(describeExhausted(config, choice.family, leases.length));
      this.acquireProblem = err.message;
      return { kind: 'retry', reason: err.message, quiet: false };
    }
    const started = Date.now();
    if (choice.kind === 'reuse') {
      const kv = kvOf.get(choice.lease)!;
      const reservation = choice.lease.etcdLease === '0';
      const id = reservation ? '0' : await this.grant();
      const put = this.client.put(kv.key).value(value);
      if (!reservation) put.lease(id);
      const r = await this.client.if(kv.key, 'Mod', '==', kv.modRevision.toString()).then(put).commit();
      if (!r.succeeded) {
        this.revokeQuietly(id);
        return { kind: 'retry', reason: `our lease ${kv.key} changed while we re-wrote it`, quiet: true };
      }
      const { subnet, subnet6 } = choice.lease;
      return this.ok(kv.key, value, { subnet, ...(subnet6 ? { subnet6 } : {}), attrs, etcdLease: id, modRevision: BigInt(r.header.revision) }, started);
    }
    const subnet = pickRandom(choice.candidates, this.tuning.random);
    const subnet6 = choice.candidates6 ? pickRandom(choice.candidates6, this.tuning.random) : undefined;
    const both = { subnet, ...(subnet6 ? { subnet6 } : {}) };
    const key = this.keys.leaseKey(subnet, subnet6);
    const id = await this.grant();
    // A key naming a v6 subnet also needs the list to be current (lease-create.ts).
    const r = await createLeaseKey(this.client, this.keys, key, value, id, subnet6 ? BigInt(res.header.revision) : undefined);
    if (r.kind === 'lost') {
      this.revokeQuietly(id);
      // Our own create, retried by the client after a dropped response: it is ours.
      if (r.existing && r.existing.value.toString('utf8') === value) {
        return this.ok(key, value, { ...both, attrs, etcdLease: r.existing.lease, modRevision: r.existing.modRevision }, started);
      }
      return { kind: 'retry', reason: `lost the race for ${key.slice(this.keys.subnetsPrefix.length + 1)}`, quiet: true };
    }
    return this.ok(key, value, { ...both, attrs, etcdLease: id, modRevision: r.revision }, started);
  }

  private ok(key: string, value: string, lease: Lease, started: number): Attempt {
    const expiresAt = lease.etcdLease === '0' ? undefined : started + this.opts.ttlSec * 1000;
    return { kind: 'ok', key, value, lease: { ...lease, ...(expiresAt ? { expiresAt } : {}) } };
  }

  private async grant(): Promise<string> {
    const r = await this.client.leaseClient.leaseGrant({ TTL: this.opts.ttlSec });
    return String(r.ID);
  }

  private revokeQuietly(id: string): void {
    if (id === '0') return;
    this.client.leaseClient.leaseRevoke({ ID: id }).catch(() => undefined);
  }

  /** Make `a` current and start renewing and watching it. */
  private install(a: Extract<Attempt, { kind: 'ok' }>): void {
    this.lease = a.lease;
    this.lastSubnet = a.lease.subnet;
    this.lastSubnet6 = a.lease.subnet6 ?? null;
    this.key = a.key;
    this.value = a.value;
    const abort = new AbortController();
    const watch = new ListWatch({
      client: this.client,
      target: { key: a.key },
      what: `own lease ${a.key}`,
      logger: this.log,
      onSnapshot: (kvs) => this.checkOwn(kvs[0] ?? null, abort.signal),
      onChanges: (changes) => {
        for (const c of changes) this.checkOwn(c.type === 'put' ? c.kv : null, abort.signal);
      },
    });
    this.maint = { abort, watch };
    watch.start();
    this.scheduleRenewal();
  }

  private async stopMaintenance(): Promise<void> {
    const m = this.maint;
    this.maint = null;
    if (!m) return;
    m.abort.abort();
    clearTimeout(m.timer);
    await m.watch.stop();
  }

  private scheduleRenewal(): void {
    const m = this.maint;
    const lease = this.lease;
    if (!m || !lease || lease.expiresAt === undefined) return; // a reservation never expires
    const due = lease.expiresAt - this.opts.renewMarginSec * 1000 - Date.now();
    clearTimeout(m.timer);
    m.timer = setTimeout(() => void this.writes.run(() => this.renew(m.abort.signal)), Math.max(0, due));
  }

  /** Grant a new etcd lease and re-put our value on it; retried until done, lost, or stopped. */
  private async renew(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ initialMs: 200, maxMs: this.tuning.maxBackoffMs ?? 5000 });
    for (let attempt = 1; !signal.aborted; attempt++) {
      const lease = this.lease;
      if (!lease) return;
      try {
        const started = Date.now();
        const id = await this.grant();
        const r = await this.client
          .if(this.key, 'Value', '==', this.value)
          .then(this.client.put(this.key).value(this.value).lease(id))
          .else(this.client.get(this.key))
          .commit();
        if (signal.aborted) return;
        etcdHealthOf(this.client).ok();
        if (r.succeeded) {
          this.lease = { ...lease, etcdLease: id, expiresAt: started + this.opts.ttlSec * 1000, modRevision: BigInt(r.header.revision) };
          this.log.debug({ etcdLease: id, attempts: attempt }, 'subnet lease renewed');
          this.fire({ type: 'renewed', lease: this.lease });
          this.scheduleRenewal();
          return;
        }
        this.revokeQuietly(id);
        const existing = r.responses[0]?.response_range?.kvs[0];
        this.checkOwn(existing ? toKeyValue(existing) : null, signal, true);
        return;
      } catch (e) {
        const err = toStoreError(e, `renew subnet lease ${this.key}`);
        etcdHealthOf(this.client).failed('renew the subnet lease', err);
        if (lease.expiresAt !== undefined && Date.now() > lease.expiresAt) {
          this.lost(`renewal failed past the lease expiry: ${err.message}`);
          return;
        }
        this.log[attempt === 1 ? 'warn' : 'debug']({ err: err.message, attempt }, 'renewal failed; retrying');
        await sleep(backoff.next(), signal);
      }
    }
  }

  /** React to the current content of our key (null = gone). */
  private checkOwn(kv: KeyValue | null, signal: AbortSignal, fromRenew = false): void {
    if (signal.aborted || this.recovering) return;
    if (kv === null) return this.lost('our lease key was deleted or expired');
    const text = kv.value.toString('utf8');
    if (text === this.value) return;
    let owner = '';
    try {
      owner = leaseOwner(decodeLeaseAttrs(text));
    } catch {
      owner = '';
    }
    if (owner !== '' && owner !== this.owner) {
      this.log.error({ key: this.key, value: text }, 'another host wrote its lease over ours; giving the subnet up');
      return this.lost(`our subnet was taken over by ${owner}`);
    }
    this.log.warn({ key: this.key, value: text.slice(0, 200) }, 'someone changed our lease attributes; writing ours back');
    const repair = () => this.repair(kv.modRevision, signal);
    if (fromRenew) void repair();
    else void this.writes.run(repair);
  }

  /** Put our value back over a foreign one (compare on its mod revision), on a new etcd lease. */
  private async repair(modRevision: bigint, signal: AbortSignal): Promise<void> {
    if (signal.aborted || !this.lease) return;
    try {
      const reservation = this.lease.etcdLease === '0';
      const id = reservation ? '0' : await this.grant();
      const put = this.client.put(this.key).value(this.value);
      if (!reservation) put.lease(id);
      const r = await this.client.if(this.key, 'Mod', '==', modRevision.toString()).then(put).commit();
      if (!r.succeeded) return this.revokeQuietly(id); // changed again: the watch will tell us
      if (!reservation && this.lease) {
        this.lease = { ...this.lease, etcdLease: id, expiresAt: Date.now() + this.opts.ttlSec * 1000, modRevision: BigInt(r.header.revision) };
        this.scheduleRenewal();
      }
    } catch (e) {
      this.log.warn({ err: errorText(toStoreError(e, `repair lease ${this.key}`)) }, 'could not write our lease back; the watch will retry');
    }
  }

  /** Emit `lost`, then re-acquire in the background and emit `acquired`. */
  private lost(reason: string): void {
    if (this.recovering || this.life.signal.aborted || !this.lease || !this.config) return;
    this.recovering = true;
    const subnet = this.lease.subnet;
    const config = this.config;
    this.lease = null;
    this.log.warn({ subnet: formatCidr(subnet), reason }, 'subnet lease lost; re-acquiring');
    this.fire({ type: 'lost', subnet, reason });
    const recovery = (this.recovery = new AbortController());
    void (async () => {
      try {
        await this.stopMaintenance();
        const lease = await this.acquireLoop(config, AbortSignal.any([this.life.signal, recovery.signal]));
        this.recovering = false; // before the new watch can report anything
        this.fire({ type: 'acquired', lease });
      } catch (e) {
        const aborted = this.life.signal.aborted || recovery.signal.aborted;
        if (!(e instanceof OverlayError && aborted)) this.log.error({ err: e }, 'could not re-acquire a subnet lease');
      } finally {
        if (this.recovery === recovery) {
          this.recovering = false;
          this.recovery = null;
        }
      }
    })();
  }

  private fire(e: KeeperEvent): void {
    for (const name of [e.type, 'event'] as const) {
      try {
        this.emit(name, e);
      } catch (err) {
        this.log.error({ err }, `a keeper '${name}' listener threw; continuing`);
      }
    }
  }
}
