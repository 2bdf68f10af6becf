/**
 * The address audit: releases address records in etcd that no Docker endpoint on this host holds
 * (orphans), so addresses do not leak after a crash, a reboot or a plugin that was down while
 * Docker cleaned up. Runs once as soon as the Docker API answers after start, then every
 * ADDRESS_AUDIT_INTERVAL.
 *
 * Design note: for each joined overlay with a lease, read the lease's records (etcd), then the
 * addresses Docker's endpoints hold on networks of that subnet (dockerode, src/docker); the pure
 * rule (src/domain/orphan-addresses.ts) picks the orphans older than the grace period, and each
 * is deleted only if unchanged since it was read (RELEASE_CONCURRENCY deletes at a time). A lease
 * is read with one range and compared in memory (Docker's addresses as u32): 4,000 records of a
 * /20 lease take one round of ~0.1 s (docs/performance.md). Records are read BEFORE Docker is asked: a
 * record created after the read is not judged at all, and one created just before is inside the
 * grace period, so an address an in-flight RequestAddress just recorded is never released. Any
 * failure skips that overlay for this round (never a decision on a partial picture); it runs
 * beside the request handlers, never inside one.
 * Docker is read once per round, after every overlay's records: the addresses of the endpoints on
 * each network by its IPAM subnet, and the id of every endpoint of every network. With those ids
 * the same round removes host veths (`ofh…`) that no Docker endpoint owns (the plugin died inside
 * CreateEndpoint, so Docker never asks to delete them), after the same grace counted from the
 * first round that saw them alone (domain rule orphanVeths). Every network counts, not only those
 * of a current lease, so a network left on an older subnet keeps its containers' veths.
 * IPv6 (issue 21): an overlay whose lease has a v6 subnet also has its v6 records audited, as a
 * second "half" judged apart against the v6 addresses Docker's endpoints hold on the network of
 * that v6 subnet (same grace, same guarded delete, its own first-seen map and `where`, e.g.
 * `default/fd00:10:0:5::/64`). The v4 half is read and judged exactly as before.
 */
import type { Logger } from 'pino';
import type { Cidr } from '../domain/ipv4';
import { formatCidr, formatIPv4, isIPv4, parseIPv4 } from '../domain/ipv4';
import { Cidr6, formatCidr6, formatIPv6, isIPv6, parseIPv6 } from '../domain/ipv6';
import { orphanAddresses, orphanVeths } from '../domain/orphan-addresses';
import type { DockerEndpoints, EndpointsPort } from '../docker/endpoint-addresses';
import type { DetailedAddress6Record, DetailedAddressRecord } from '../store';
import { errorText } from '../errors';
import { Backoff, sleep } from '../util/backoff';
import { CoalescedTicker } from '../util/coalesced-ticker';
import { SerialQueue } from '../util/serial-queue';

/** The default audit period (ADDRESS_AUDIT_INTERVAL). */
export const DEFAULT_AUDIT_INTERVAL_SEC = 300;
/** Guarded deletes of orphan records in flight at once, per lease. */
export const RELEASE_CONCURRENCY = 8;
/** A record younger than this is never released (Docker creates the endpoint right after RequestAddress). */
export const AUDIT_GRACE_MS = 120_000;

/** The address records of one overlay, as the audit needs them (AddressStore in production). */
export interface AuditRecordsPort {
  listDetailed(subnet: Cidr): Promise<DetailedAddressRecord[]>;
  releaseIfUnchanged(subnet: Cidr, ip: number, modRevision: bigint): Promise<boolean>;
}

/** The v6 address records of one overlay (Address6Store in production). */
export interface AuditRecords6Port {
  listDetailed(subnet6: Cidr6): Promise<DetailedAddress6Record[]>;
  releaseIfUnchanged(subnet6: Cidr6, ip: bigint, modRevision: bigint): Promise<boolean>;
}

/** One joined overlay: its name, this host's lease subnet (null without a lease), its records. */
export interface AuditTarget {
  name: string;
  subnet(): Cidr | null;
  records: AuditRecordsPort;
  /** This host's v6 lease subnet (null or absent: no v6 half to audit). */
  subnet6?(): Cidr6 | null;
  records6?: AuditRecords6Port;
}

/** The records of one family of one lease, read, with what judging them needs. */
interface Half<I extends number | bigint> {
  t: AuditTarget;
  where: string;
  subnetText: string;
  records: Array<{ ip: I; owner: string; createdAt: number | null; modRevision: bigint }>;
  release(ip: I, modRevision: bigint): Promise<boolean>;
  format(ip: I): string;
  held(texts: ReadonlySet<string> | undefined): Set<I>;
}

/** The host ends of this plugin's veth pairs (the kernel in production). */
export interface AuditVethsPort {
  /** Names of the links named `ofh…`. */
  hostVeths(): Promise<string[]>;
  /** Delete a link (both ends of the pair); absent is fine. */
  remove(name: string): Promise<void>;
}

export interface AddressAuditOptions {
  /** Period between audits, ms (0: only the one after start). */
  intervalMs: number;
  /** Grace period, ms. Default {@link AUDIT_GRACE_MS}. */
  graceMs?: number;
  now?: () => number;
  /** The first audit waits for this too (the default overlay's lease: before it there is nothing to audit). */
  ready?: Promise<unknown>;
  /** Also remove host veths no Docker endpoint owns. */
  veths?: AuditVethsPort;
}

/** What one audit released, per overlay. */
export interface AuditResult {
  released: Array<{ overlay: string; subnet: string; address: string; owner: string; createdAt: string | null }>;
  /** Host veths removed (no endpoint owned them for the grace period). */
  removedVeths: string[];
  waiting: number;
  skipped: string[];
}

export class AddressAudit {
  private readonly abort = new AbortController();
  private readonly firstSeen = new Map<string, Map<number | bigint, number>>(); // overlay/subnet → ip → ms
  private vethsFirstSeen = new Map<string, number>(); // veth name → ms
  /** One round at a time; the periodic rounds after the first are this ticker's. */
  private readonly rounds = new SerialQueue();
  private ticker: CoalescedTicker | null = null;
  private running: Promise<unknown> = Promise.resolve();
  readonly stats = { runs: 0, released: 0 };

  constructor(
    private readonly targets: () => AuditTarget[],
    private readonly docker: EndpointsPort,
    private readonly log: Logger,
    private readonly opts: AddressAuditOptions,
  ) {}

  /** Wait for the Docker API (quietly, with backoff) and `ready`, audit once, then every intervalMs. */
  start(): void {
    this.running = (async () => {
      const backoff = new Backoff({ initialMs: 500, maxMs: 10_000 });
      for (let logged = false; !this.abort.signal.aborted; ) {
        try {
          await this.docker.ping();
          break;
        } catch (e) {
          if (!logged) this.log.info({ err: errorText(e) }, 'address audit: waiting for the Docker API');
          logged = true;
          await sleep(backoff.next(), this.abort.signal);
        }
      }
      if (this.opts.ready) await Promise.race([this.opts.ready, new Promise((r) => this.abort.signal.addEventListener('abort', r, { once: true }))]);
      if (this.abort.signal.aborted) return;
      await this.rounds.run(() => this.runOnce());
      if (this.opts.intervalMs > 0 && !this.abort.signal.aborted) {
        this.ticker = new CoalescedTicker(async () => void (await this.runOnce()), this.rounds, (e) => this.log.error({ err: errorText(e) }, 'address audit failed (a bug)'), this.opts.intervalMs);
        this.ticker.start(false);
      }
    })().catch((e) => this.log.error({ err: errorText(e) }, 'address audit failed (a bug)'));
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.ticker?.stop();
    await this.running.catch(() => undefined);
    await this.rounds.run(async () => undefined).catch(() => undefined); // a round already under way
  }

  /** One audit of every overlay with a lease. Never throws: failures skip the overlay and are logged. */
  async runOnce(): Promise<AuditResult> {
    const result: AuditResult = { released: [], removedVeths: [], waiting: 0, skipped: [] };
    this.stats.runs++;
    // Every overlay's records first (see the note at the top), then ONE picture of Docker for all.
    const read: Array<Half<number> | Half<bigint>> = [];
    const skip = (t: AuditTarget, subnetText: string, where: string, e: unknown): void => {
      result.skipped.push(where);
      this.log.warn({ overlay: t.name, subnet: subnetText, err: errorText(e) }, 'address audit: skipped this round');
    };
    for (const t of this.targets()) {
      if (this.abort.signal.aborted) break;
      const subnet = t.subnet();
      if (subnet) {
        const subnetText = formatCidr(subnet);
        const where = `${t.name}/${subnetText}`;
        try {
          const records = await t.records.listDetailed(subnet);
          const half: Half<number> = { t, where, subnetText, records, release: (ip, rev) => t.records.releaseIfUnchanged(subnet, ip, rev), format: formatIPv4, held: heldAddresses };
          read.push(half);
        } catch (e) {
          skip(t, subnetText, where, e);
        }
      }
      const subnet6 = t.subnet6?.();
      const port6 = t.records6;
      if (subnet6 && port6 && !this.abort.signal.aborted) {
        const subnetText = formatCidr6(subnet6);
        const where = `${t.name}/${subnetText}`;
        try {
          const records = await port6.listDetailed(subnet6);
          const half: Half<bigint> = { t, where, subnetText, records, release: (ip, rev) => port6.releaseIfUnchanged(subnet6, ip, rev), format: formatIPv6, held: heldAddresses6 };
          read.push(half);
        } catch (e) {
          skip(t, subnetText, where, e);
        }
      }
    }
    let docker: DockerEndpoints | null = null;
    try {
      if (!this.abort.signal.aborted) docker = await this.docker.endpoints();
    } catch (e) {
      for (const { t, subnetText, where } of read) skip(t, subnetText, where, e);
      if (read.length === 0) this.log.warn({ err: errorText(e) }, 'address audit: skipped this round');
    }
    for (const half of docker ? read : []) {
      try {
        await this.judge(half as Half<number | bigint>, docker!, result);
      } catch (e) {
        skip(half.t, half.subnetText, half.where, e);
      }
    }
    if (docker && this.opts.veths && !this.abort.signal.aborted) await this.auditVeths(this.opts.veths, docker.endpointIds, result);
    this.log.debug({ released: result.released.length, removedVeths: result.removedVeths.length, waiting: result.waiting, skipped: result.skipped }, 'address audit done');
    return result;
  }

  /** Release the orphans of one half (one family of one lease); throws the first failed delete. */
  private async judge<I extends number | bigint>(half: Half<I>, docker: DockerEndpoints, result: AuditResult): Promise<void> {
    const { t, where, subnetText, records } = half;
    const held = half.held(docker.addressesBySubnet.get(subnetText));
    const now = (this.opts.now ?? Date.now)();
    const d = orphanAddresses<I>(records, held, now, this.opts.graceMs ?? AUDIT_GRACE_MS, this.firstSeen.get(where) as Map<I, number> | undefined);
    this.firstSeen.set(where, d.firstSeen);
    result.waiting += d.waiting.length;
    const byIp = new Map(records.map((r) => [r.ip, r]));
    const { released, failure } = await releaseAll(half.release, d.release.map((o) => byIp.get(o.ip)!));
    for (const r of released) {
      const entry = { overlay: t.name, subnet: subnetText, address: half.format(r.ip), owner: r.owner, createdAt: r.createdAt === null ? null : new Date(r.createdAt).toISOString() };
      result.released.push(entry);
      d.firstSeen.delete(r.ip);
      this.stats.released++;
      this.log.warn(entry, 'address audit: released an address record no Docker endpoint holds');
    }
    if (failure !== null) throw failure.err;
  }

  /** Remove host veths whose endpoint id no network of the local Docker has (its complete picture of this round). */
  private async auditVeths(port: AuditVethsPort, endpointIds: Set<string>, result: AuditResult): Promise<void> {
    try {
      const now = (this.opts.now ?? Date.now)();
      const d = orphanVeths(await port.hostVeths(), endpointIds, now, this.opts.graceMs ?? AUDIT_GRACE_MS, this.vethsFirstSeen);
      this.vethsFirstSeen = d.firstSeen;
      for (const v of d.remove) {
        await port.remove(v);
        this.vethsFirstSeen.delete(v);
        result.removedVeths.push(v);
        this.log.warn({ veth: v }, 'address audit: removed a veth no Docker endpoint owns');
      }
    } catch (e) {
      result.skipped.push('veths');
      this.log.warn({ err: errorText(e) }, 'address audit: veths skipped this round');
    }
  }
}

/** Docker's addresses of one subnet as u32 (text that is not an IPv4 address holds nothing). */
function heldAddresses(addresses: ReadonlySet<string> | undefined): Set<number> {
  const held = new Set<number>();
  for (const a of addresses ?? []) if (isIPv4(a)) held.add(parseIPv4(a));
  return held;
}

/** Docker's v6 addresses of one v6 subnet as bigint (any spelling; text that is not IPv6 holds nothing). */
function heldAddresses6(addresses: ReadonlySet<string> | undefined): Set<bigint> {
  const held = new Set<bigint>();
  for (const a of addresses ?? []) if (isIPv6(a)) held.add(parseIPv6(a));
  return held;
}

/**
 * The guarded deletes of one lease's orphans, RELEASE_CONCURRENCY at a time (100 orphans one by
 * one were 100 round trips). Returns the released records in the order given; the first failure
 * stops the ones not yet started and is returned once those under way have settled.
 */
async function releaseAll<I, R extends { ip: I; modRevision: bigint; owner: string; createdAt: number | null }>(release: (ip: I, modRevision: bigint) => Promise<boolean>, rs: R[]): Promise<{ released: R[]; failure: { err: unknown } | null }> {
  const ok = new Array<boolean>(rs.length).fill(false);
  let failure: { err: unknown } | null = null;
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(RELEASE_CONCURRENCY, rs.length) }, async () => {
      while (failure === null && next < rs.length) {
        const i = next++;
        try {
          ok[i] = await release(rs[i]!.ip, rs[i]!.modRevision);
        } catch (err) {
          failure ??= { err };
        }
      }
    }),
  );
  return { released: rs.filter((_, i) => ok[i]), failure };
}
