/**
 * The daemon: builds every part in order and stops them in reverse.
 *   settings → kernel → public interface → etcd → overlays (config → lease → device → peers)
 *   → keepers (FORWARD head, fast path) → status server → plugin socket (NetworkDriver +
 *   IpamDriver) → Docker followers (network replication, address audit, plain driver names)
 *   → names (NAMES: this host's name records from Docker, every host's in a NameTable)
 * Each part, once made, pushes its stop onto one undo stack (util/undo-stack.ts); stop() and a
 * failed start unwind it, so the order of the stops is the reverse of the starts by construction.
 * The socket opens as soon as the default overlay is being joined: Docker must not wait on a
 * plugin that waits on etcd (calicoctl#1801); calls that need a lease wait for it briefly and
 * otherwise fail with the reason. Nothing here exits on a transient fault: etcd outages, a
 * missing or broken config are waited out with a log line; only bad settings (exit 2) and an
 * uncaught bug (exit 1) end the process.
 */
import type { Logger } from 'pino';
import { Settings, redactedSettings } from '../config/settings';
import { createNetlinkKernel, type Kernel } from '../kernel';
import { openStore, Store } from '../store';
import { describePublic, PublicInterface, resolvePublicInterface } from '../host/public-interface';
import { SerialQueue } from '../util/serial-queue';
import { Backoff, sleep } from '../util/backoff';
import { UndoStack } from '../util/undo-stack';
import { errorText } from '../errors';
import { formatCidr } from '../domain/ipv4';
import { leaseId } from '../domain/lease-v6';
import { formatCidr6 } from '../domain/ipv6';
import { HOST_VETH_PREFIX } from '../domain/names';
import { DEFAULT_OVERLAY } from '../driver/overlays';
import { OverlayPluginDriver } from '../driver/plugin-driver';
import { servePluginApi } from '../api/server';
import type { StatusMetrics } from '../status/server';
import type { OverlayAgent, OverlayTuning } from '../reconcile/overlay-agent';
import { OverlayIsolation } from '../reconcile/isolation-keeper';
import { FastpathKeeper, gatherFastpath } from '../reconcile/fastpath-keeper';
import { gatherMulticast, MulticastKeeper } from '../reconcile/multicast-keeper';
import { AddressAudit } from '../reconcile/address-audit';
import { PathProber, pathTargets } from '../reconcile/path-prober';
import { startPathReports } from './path-reports-part';
import { dockerSocketUsable } from '../docker/client';
import { dockerPort, NetworkReplicator } from '../docker/network-replicator';
import { dockerEndpointLister, localEndpoints } from '../docker/containers';
import { dockerEndpoints } from '../docker/endpoint-addresses';
import { servePlainNames } from '../docker/plain-names';
import { AgentDirectory } from './overlay-directory';
import { startNames, type NamesPart } from './names-part';

export const RESYNC_INTERVAL_MS = 10_000;
/** How long after an endpoint change the fast path is checked (a burst of `docker run` shares one check). */
const ENDPOINT_CHECK_DELAY_MS = 100;

export interface Daemon {
  readonly agent: OverlayAgent; // the default overlay
  readonly overlays: AgentDirectory;
  /** Cross-host names (NAMES=true and a plugin socket): the NameTable the resolver queries; else null. */
  readonly names: NamesPart | null;
  stop(): Promise<void>;
}

/** What the status page asks of the plugin side, filled in as that side starts. */
interface PluginSide {
  /** null: no plugin socket in this process (api: false). */
  socketServing: boolean | null;
  /** Why the Docker socket cannot be used, null when it can. */
  dockerUnusable: string | null;
  driver: OverlayPluginDriver | null;
  /** The names part, once started (null: off, or not started yet). */
  names: NamesPart | null;
}

/** The tuning every overlay of this host runs with: one frozen object, passed whole. */
export function overlayTuning(settings: Settings): OverlayTuning {
  return Object.freeze({
    ttlSec: settings.leaseTtlSec,
    renewMarginSec: settings.leaseRenewMarginSec,
    resyncIntervalMs: RESYNC_INTERVAL_MS,
    ipMasq: settings.ipMasq,
    notrack: settings.notrack,
    stateDir: settings.stateDir,
  });
}

async function waitForPublicInterface(kernel: Kernel, settings: Settings, log: Logger, signal: AbortSignal): Promise<PublicInterface> {
  const backoff = new Backoff({ initialMs: 500, maxMs: 10_000 });
  for (;;) {
    try {
      return await resolvePublicInterface(kernel, { iface: settings.iface, publicIP: settings.publicIP, publicIPv6: settings.publicIPv6 });
    } catch (e) {
      if (signal.aborted) throw e;
      log.error({ err: errorText(e) }, 'cannot determine the public interface yet; retrying');
      await sleep(backoff.next(), signal);
    }
  }
}

export async function startDaemon(settings: Settings, log: Logger, opts: { api?: boolean } = {}): Promise<Daemon> {
  log.info({ settings: redactedSettings(settings) }, 'overlay-flannel starting');
  const abort = new AbortController();
  const undo = new UndoStack();
  const stop = async () => {
    abort.abort();
    await undo.unwind((what, e) => log.warn({ err: errorText(e) }, what));
    log.info('overlay-flannel stopped');
  };
  try {
    const kernel = createNetlinkKernel({
      wireguard: { privateSocketDir: settings.wireguardPrivateSocket },
      // a managed plugin's /proc/sys is read-only; the host's procfs under host-root is not (links.ts)
      sysctlRoots: settings.dockerSearchRoot === '/' ? ['/proc/sys'] : ['/proc/sys', `${settings.dockerSearchRoot.replace(/\/$/, '')}/proc/sys`],
    });
    undo.push('closing the kernel', () => kernel.close());
    // The status server's modules (prom-client, the page) only with STATUS_ADDR: ~5 MB a daemon without it never uses.
    const statusModule = settings.statusAddr ? await import('../status/server') : null;
    const metrics = statusModule ? new statusModule.StatusMetrics() : null;
    metrics?.install();
    const pub = await waitForPublicInterface(kernel, settings, log, abort.signal);
    log.info({ public: describePublic(pub) }, 'public interface');
    const store = openStore(settings, log);
    undo.push('closing etcd', () => store.close());
    const queue = new SerialQueue();
    const overlays = new AgentDirectory(store, kernel, queue, pub, log, { defaultPrefix: settings.etcdPrefix, tuning: overlayTuning(settings), subnetFile: settings.subnetFile });
    undo.push('stopping the overlays', () => overlays.stop());
    const keepers = await startKeepers(settings, kernel, queue, overlays, log, undo);
    const { agent } = await overlays.join(DEFAULT_OVERLAY);
    const plugin: PluginSide = { socketServing: opts.api === false ? null : false, dockerUnusable: 'not checked yet', driver: null, names: null };
    if (statusModule && metrics) await startStatusServer(statusModule, settings, metrics, { kernel, store, overlays, pub, plugin }, log, undo);
    agent.whenReady().then(() => {
      const lease = agent.lease();
      log.info({ subnet: lease ? leaseId(lease) : null, mtu: agent.dataplane?.mtu }, 'overlay ready');
    });
    if (opts.api !== false) await startPluginSide(settings, { kernel, queue, store, overlays, pub, plugin, keepers, metrics, ready: agent.whenReady() }, log, undo);
    return { agent, overlays, names: plugin.names, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** The FORWARD head block and (FASTPATH) the fast path, re-checked whenever an overlay joins or becomes ready. */
async function startKeepers(settings: Settings, kernel: Kernel, queue: SerialQueue, dir: AgentDirectory, log: Logger, undo: UndoStack): Promise<{ endpointsChanged(): void }> {
  const isolation = new OverlayIsolation(
    // Networks in ip filter, IPv6Networks (dual-stack overlays) in ip6 filter (src/kernel/nft-isolation.ts)
    () =>
      dir.all().flatMap((o) => {
        const [v4, v6] = [o.network(), o.network6?.() ?? null];
        return [...(v4 ? [formatCidr(v4)] : []), ...(v6 ? [formatCidr6(v6)] : [])];
      }),
    (nets) => kernel.ensureForwardHead(nets),
    queue,
    log.child({ component: 'isolation' }),
  );
  isolation.start();
  undo.push('stopping the FORWARD head keeper', () => isolation.stop());
  let fastpath: FastpathKeeper | null = null;
  if (settings.fastpath) {
    // Its own queue (see src/reconcile/fastpath-keeper.ts): endpoint calls never wait behind it.
    const keeper = new FastpathKeeper(() => gatherFastpath(dir.all(), kernel), (plan) => kernel.ensureFastpath(plan), new SerialQueue(), log.child({ component: 'fastpath' }));
    keeper.start();
    undo.push('stopping the fast path keeper', () => keeper.stop());
    fastpath = keeper;
  } else {
    const removed = await kernel.removeFastpath().catch((e) => log.warn({ err: errorText(e) }, 'FASTPATH=false: could not remove the netdev table overlay-flannel of an earlier run'));
    log.info({ removedEarlierTable: removed === true }, 'FASTPATH=false: overlay packets are routed by the host (no netdev table)');
  }
  // Multicast and broadcast across hosts (issue 17): its own queue too; per network, always kept.
  const multicast = new MulticastKeeper(() => gatherMulticast(dir.all(), kernel), (plan) => kernel.ensureMulticast(plan), () => dir.all(), new SerialQueue(), log.child({ component: 'multicast' }));
  multicast.start();
  undo.push('stopping the multicast keeper', () => multicast.stop());
  const kick = () => {
    isolation.kick();
    fastpath?.kick();
    multicast.kick();
  };
  dir.onJoined((_name, joined) => {
    kick();
    void joined.whenReady().then(kick);
  });
  return {
    endpointsChanged: () => {
      fastpath?.kick(ENDPOINT_CHECK_DELAY_MS);
      multicast.kick(ENDPOINT_CHECK_DELAY_MS);
    },
  };
}

interface StatusParts {
  kernel: Kernel;
  store: Store;
  overlays: AgentDirectory;
  pub: PublicInterface;
  plugin: PluginSide;
}

/** STATUS_ADDR: the status server; one that cannot listen is logged and left out (the daemon runs on). */
async function startStatusServer(
  { buildStatusServer, parseHostPort }: typeof import('../status/server'),
  settings: Settings,
  metrics: StatusMetrics,
  p: StatusParts,
  log: Logger,
  undo: UndoStack,
): Promise<void> {
  const addr = parseHostPort(settings.statusAddr)!;
  const listDocker = dockerEndpointLister(settings.dockerSocket);
  // Path probes through the overlay (PROBE_PORT; 0 = none): bounded, see reconcile/path-prober.ts.
  const prober = settings.probePort ? new PathProber(() => pathTargets(p.overlays.agentsByName()), settings.probePort, log.child({ component: 'paths' })) : null;
  if (prober) {
    prober.start();
    undo.push('stopping the path probes', () => prober.stop());
  }
  // Every host's probes in etcd, for the host × host matrix (daemon/path-reports-part.ts).
  const reports = prober ? startPathReports({ store: p.store, publicIP: p.pub.publicIP, paths: () => prober.paths() }, log.child({ component: 'paths' }), undo) : null;
  const status = buildStatusServer(
    {
      defaultOverlay: DEFAULT_OVERLAY,
      overlays: () => [...p.overlays.agentsByName()].map(([name, a]) => ({ name, prefix: p.overlays.all().find((h) => h.name === name)?.prefix ?? '', agent: a })),
      socketServing: () => p.plugin.socketServing,
      publicIP: p.pub.publicIP,
      etcd: () => p.store.health(),
      names: () => p.plugin.names,
      ...(prober ? { paths: () => prober.paths() } : {}),
      ...(reports ? { pathReports: () => reports.reports(), onPathReports: (cb: () => void) => reports.onChange(cb) } : {}),
      ...(p.plugin.socketServing === null
        ? {}
        : {
            containers: () =>
              localEndpoints({
                kernel: p.kernel,
                docker: p.plugin.dockerUnusable === null ? listDocker : null,
                dockerUnusable: p.plugin.dockerUnusable ?? undefined,
                addressOf: (id) => p.plugin.driver?.endpointAddress(id),
                address6Of: (id) => p.plugin.driver?.endpointAddress(id, 6),
                networkOf: (id) => p.plugin.driver?.endpointNetwork(id),
              }),
          }),
    },
    log.child({ component: 'status' }),
    { metrics },
  );
  undo.push('closing the status server', () => status.close());
  try {
    await status.listen({ host: addr.host, port: addr.port });
    log.info({ addr: settings.statusAddr }, 'status server listening (/, /api/v1/…, /metrics, /healthz)');
  } catch (e) {
    log.error({ addr: settings.statusAddr, err: errorText(e) }, 'the status server cannot listen; running without it');
  }
}

interface PluginParts extends StatusParts {
  queue: SerialQueue;
  keepers: { endpointsChanged(): void };
  metrics: StatusMetrics | null;
  /** The default overlay's lease: the address audit waits for it. */
  ready: Promise<unknown>;
}

/** The plugin socket, then what follows Docker through its API (replication, address audit) when the Docker socket is usable. */
async function startPluginSide(settings: Settings, p: PluginParts, log: Logger, undo: UndoStack): Promise<void> {
  const why = await dockerSocketUsable(settings.dockerSocket);
  p.plugin.dockerUnusable = why === null ? null : `the Docker socket (DOCKER_SOCKET) is not usable: ${why}`;
  let replicator: NetworkReplicator | null = null;
  let audit: AddressAudit | null = null;
  if (why === null) {
    // A restarted plugin rejoins the named overlays its Docker networks use (Docker sends no IPAM call for them).
    const rejoin = (names: string[]) => {
      for (const n of names) {
        if (p.overlays.all().some((h) => h.name === n)) continue;
        log.info({ overlay: n }, 'joining a named overlay that a Docker network of ours on this host uses');
        p.overlays.byName(n).catch((e: unknown) => log.warn({ overlay: n, err: errorText(e) }, 'cannot join the named overlay of a Docker network on this host; retried at the next sync'));
      }
    };
    replicator = new NetworkReplicator(dockerPort(settings.dockerSocket), p.store.overlay().networks, log.child({ component: 'replication' }), { host: p.pub.publicIP, onOverlaysInUse: rejoin });
    audit = new AddressAudit(
      () =>
        p.overlays.all().map((h) => ({
          name: h.name,
          subnet: () => h.lease()?.subnet ?? null,
          records: p.store.overlay(h.prefix).addresses,
          subnet6: () => h.lease()?.subnet6 ?? null,
          records6: p.store.overlay(h.prefix).addresses6,
        })),
      dockerEndpoints(settings.dockerSocket),
      log.child({ component: 'address-audit' }),
      {
        intervalMs: settings.addressAuditIntervalSec * 1000,
        ready: p.ready,
        veths: { hostVeths: async () => (await p.kernel.listLinks()).map((l) => l.name).filter((n) => n.startsWith(HOST_VETH_PREFIX)), remove: (n) => p.queue.run(() => p.kernel.deleteLink(n)) },
      },
    );
  } else {
    log.warn(
      { dockerSocket: settings.dockerSocket, err: why },
      'the Docker socket cannot be used: network replication and the address audit are off (create each network on every host yourself)',
    );
  }
  const repl = replicator;
  const events = {
    networkCreated: (id: string) => repl?.networkCreated(id),
    networkDeleted: (id: string) => repl?.networkDeleted(id),
    endpointsChanged: () => p.keepers.endpointsChanged(),
  };
  const driver = new OverlayPluginDriver(p.kernel, p.queue, p.overlays, log.child({ component: 'driver' }), events);
  p.plugin.driver = driver;
  const api = await servePluginApi(driver, log.child({ component: 'api' }), settings.pluginSocket, p.metrics ? { observer: p.metrics.apiObserver } : {});
  undo.push('closing the plugin socket', () => api.close());
  p.plugin.socketServing = true;
  log.info({ socket: settings.pluginSocket }, 'plugin API listening');
  if (replicator) {
    replicator.start(); // after the socket: the networks it creates call back into this plugin
    undo.push('stopping network replication', () => replicator.stop());
  }
  if (audit) {
    audit.start(); // waits for the Docker API itself (dockerd starts a managed plugin before it serves)
    undo.push('stopping the address audit', () => audit.stop());
  }
  if (settings.legacySocketDir) {
    // On top of the plugin socket: the plain driver names (docker/plain-names.ts); stopped first.
    const plainNames = await servePlainNames(settings.legacySocketDir, settings.pluginSocket, why === null ? settings.dockerSocket : null, log);
    undo.push('removing the legacy plugin sockets', () => plainNames.stop());
  }
  p.plugin.names = await startNames(settings, { store: p.store, kernel: p.kernel, publicIP: p.pub.publicIP, dockerUnusable: p.plugin.dockerUnusable }, log, undo);
}
