/**
 * The daemon's names part (issue 16, NAMES=true): this host's name records written from Docker,
 * every host's records kept in memory for the resolver.
 *   NameRegistry (this host's writer, on its own NAME_TTL lease)  ← NameEvents (Docker API)
 *   NameWatcher (every host's records, list + watch)             → NameTable (what the resolver asks)
 * All under the default overlay's prefix, beside the replicated network records: a record's
 * network id is the network's name, the same on every host (domain/endpoint-names.ts).
 *
 * Design note.
 * - The watcher is started without waiting for its first list: with etcd down the daemon starts
 *   anyway, the table fills when etcd answers, and while it is down it keeps what it had (the
 *   watcher never drops records on an outage; only etcd's deletes and lease expiries remove them).
 * - Lease lost (etcd partitioned longer than NAME_TTL): the registry grants a new lease and
 *   re-puts everything it holds, so this host's names come back on their own.
 * - Without a usable Docker socket this host writes no records (a warning says so) but still
 *   knows every other host's names.
 * - Stop order (undo stack): the Docker follower, then the registry, then the watcher. The
 *   registry's lease is released, not revoked: this host's names stay until NAME_TTL runs out,
 *   so a plugin restart, disable/enable or upgrade shows no gap to other hosts; the new process's
 *   replaceAll rewrites them under its lease and deletes what went meanwhile.
 * - The resolver (reconcile/name-resolver.ts) answers from `table`; it starts last and stops first.
 *   When it cannot start (no NFQUEUE in the kernel …) the records go on: the status says why.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { upstreamProblem } from '../domain/dns-upstream';
import type { Settings } from '../config/settings';
import type { Kernel } from '../kernel';
import type { Store } from '../store';
import type { NameRecord } from '../domain/name-record';
import { NameTable } from '../domain/name-table';
import { bridgeName } from '../domain/names';
import { dockerNamePort, NameEvents } from '../docker/name-events';
import { errorText } from '../errors';
import { nameInterceptionSpec, startNameResolver, type NameResolver } from '../reconcile/name-resolver';
import type { UndoStack } from '../util/undo-stack';

export interface NamesState {
  /** Records known, every host's (the table's size). */
  records: number;
  /** Records of this host, as Docker showed them last (null: no Docker follower). */
  localRecords: number | null;
  /** True while the watch cannot reach etcd: the table is what was known before. */
  etcdStale: boolean;
  /** Why the watch waits (etcd down …), or null. */
  problem: string | null;
  /** Why this host writes no records (null: it does). */
  notWriting: string | null;
  /** This host's name lease (null while none is held). */
  lease: string | null;
  /** Whether this host answers cross-host names (false: see the log for why). */
  resolving: boolean;
  /** Docker's upstream DNS is on the host's loopback (names of other hosts cannot resolve), with the fix; else null. */
  upstreamProblem: string | null;
}

export interface NamesPart {
  /** The in-memory index the resolver queries (localHost = this host's public IP). */
  readonly table: NameTable;
  /** Every known record (all hosts), for the status API and its metric. */
  records(): NameRecord[];
  state(): NamesState;
  /** The resolver, when it runs (its counters for /metrics). */
  resolver(): NameResolver | null;
}

const LINKS_FRESH_MS = 1000;

export async function startNames(
  settings: Pick<Settings, 'names' | 'nameTtlSec' | 'dockerSocket' | 'nameQueue' | 'nameMarkBit' | 'nameCtZone' | 'nameAnswerAddr' | 'dockerSearchRoot'>,
  p: { store: Store; kernel: Kernel; publicIP: string; dockerUnusable: string | null },
  log: Logger,
  undo: UndoStack,
): Promise<NamesPart | null> {
  if (!settings.names) {
    log.info('NAMES=false: no name records for this host, no cross-host names');
    return null;
  }
  const ov = p.store.overlay();
  const table = new NameTable(p.publicIP);
  const watcher = ov.nameWatcher();
  watcher.on('upsert', (r) => table.upsert(r)).on('remove', (r) => table.remove(r.endpointId));
  watcher.start().then(
    () => log.info({ records: watcher.size }, 'names: every host\'s records listed'),
    (e) => log.warn({ err: errorText(e) }, 'names: the name watch did not start'),
  );
  undo.push('stopping the name watch', () => watcher.stop());

  const registry = ov.nameRegistry({ host: p.publicIP, ttlSec: settings.nameTtlSec });
  // Not revoked: a restart or upgrade within NAME_TTL takes the names over with no gap; a host
  // that stays down loses them within NAME_TTL.
  undo.push('releasing this host\'s name lease', () => registry.stop({ revoke: false }));

  let follower: NameEvents | null = null;
  const notWriting = p.dockerUnusable;
  if (notWriting === null) {
    let links: { at: number; names: Promise<Set<string>> } | null = null;
    const bridges = (): Promise<Set<string>> => {
      if (!links || Date.now() - links.at > LINKS_FRESH_MS) {
        links = { at: Date.now(), names: p.kernel.listLinks().then((ls) => new Set(ls.map((l) => l.name))) };
        links.names.catch(() => (links = null));
      }
      return links.names;
    };
    follower = new NameEvents(dockerNamePort(settings.dockerSocket), registry, log.child({ component: 'names' }), {
      host: p.publicIP,
      hasBridge: async (id) => (await bridges()).has(bridgeName(id)),
    });
    follower.start();
    undo.push('stopping the Docker name follower', () => follower!.stop());
  } else {
    log.warn({ err: notWriting }, 'names: without the Docker API this host writes no name records (its containers are not found by name from other hosts)');
  }
  log.info({ ttlSec: settings.nameTtlSec, host: p.publicIP, keys: ov.keys.namesRoot }, 'names: records on');
  const resolver = await startNameResolver({ kernel: p.kernel, table, spec: nameInterceptionSpec(settings), log: log.child({ component: 'names' }) });
  if (resolver) undo.push('stopping the names resolver', () => resolver.stop());
  const upstream = upstreamProblem(dnsConfigFiles(settings.dockerSearchRoot));
  if (upstream) log.warn({ fix: 'daemon.json "dns"' }, `names: ${upstream}`);
  return {
    table,
    records: () => watcher.records(),
    state: () => ({
      records: table.size,
      localRecords: follower ? follower.records : null,
      etcdStale: watcher.problem !== null,
      problem: watcher.problem ? errorText(watcher.problem) : null,
      notWriting,
      lease: registry.lease.id,
      resolving: resolver !== null,
      upstreamProblem: upstream,
    }),
    resolver: () => resolver,
  };
}

/** What dockerd reads for its upstream DNS, seen through the host's root (null: unreadable). */
function dnsConfigFiles(root: string) {
  const read = (p: string): string | null => {
    try {
      return readFileSync(join(root, p), 'utf8');
    } catch {
      return null;
    }
  };
  return { daemonJson: read('etc/docker/daemon.json'), resolvConf: read('etc/resolv.conf'), systemdResolvConf: read('run/systemd/resolve/resolv.conf') };
}
