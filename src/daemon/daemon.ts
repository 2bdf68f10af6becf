/**
 * The daemon: builds every part in order and stops them in reverse.
 *   settings → kernel → public interface → etcd → overlays (config → lease → device → peers)
 *   → plugin socket (Docker's NetworkDriver + IpamDriver)
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
import { errorText } from '../errors';
import { formatCidr } from '../domain/ipv4';
import { DEFAULT_OVERLAY } from '../driver/overlays';
import { OverlayPluginDriver } from '../driver/plugin-driver';
import { buildApi, closeApi, listenOnSocket } from '../api/server';
import { buildStatusServer, parseHostPort, StatusMetrics } from '../status/server';
import type { FastifyInstance } from 'fastify';
import { AgentDirectory } from './overlay-directory';
import type { OverlayAgent } from '../reconcile/overlay-agent';
import { OverlayIsolation } from '../reconcile/isolation-keeper';
import { FastpathKeeper, gatherFastpath } from '../reconcile/fastpath-keeper';
import { dockerSocketUsable } from '../docker/client';
import { dockerPort, NetworkReplicator } from '../docker/network-replicator';
import { dockerEndpointLister, localEndpoints } from '../docker/containers';
import { dockerEndpoints } from '../docker/endpoint-addresses';
import { AddressAudit } from '../reconcile/address-audit';
import { HOST_VETH_PREFIX } from '../domain/names';

export const RESYNC_INTERVAL_MS = 10_000;

export interface Daemon {
  readonly agent: OverlayAgent; // the default overlay
  readonly overlays: AgentDirectory;
  stop(): Promise<void>;
}

async function waitForPublicInterface(kernel: Kernel, settings: Settings, log: Logger, signal: AbortSignal): Promise<PublicInterface> {
  const backoff = new Backoff({ initialMs: 500, maxMs: 10_000 });
  for (;;) {
    try {
      return await resolvePublicInterface(kernel, { iface: settings.iface, publicIP: settings.publicIP });
    } catch (e) {
      if (signal.aborted) throw e;
      log.error({ err: errorText(e) }, 'cannot determine the public interface yet; retrying');
      await sleep(backoff.next(), signal);
    }
  }
}

/** How long after an endpoint change the fast path is checked (a burst of `docker run` shares one check). */
const ENDPOINT_CHECK_DELAY_MS = 100;

export async function startDaemon(settings: Settings, log: Logger, opts: { api?: boolean } = {}): Promise<Daemon> {
  log.info({ settings: redactedSettings(settings) }, 'overlay-flannel starting');
  const abort = new AbortController();
  const kernel = createNetlinkKernel();
  let store: Store | null = null;
  let overlays: AgentDirectory | null = null;
  let api: ReturnType<typeof buildApi> | null = null;
  let isolation: OverlayIsolation | null = null;
  let fastpath: FastpathKeeper | null = null;
  let replicator: NetworkReplicator | null = null;
  let audit: AddressAudit | null = null;
  let status: FastifyInstance | null = null;
  let socketServing: boolean | null = opts.api === false ? null : false;
  let driver: OverlayPluginDriver | null = null;
  let dockerUnusable: string | null = 'not checked yet';
  const metrics = settings.statusAddr ? new StatusMetrics() : null;
  metrics?.install();
  const stop = async () => {
    abort.abort();
    await status?.close().catch((e) => log.warn({ err: errorText(e) }, 'closing the status server'));
    isolation?.stop();
    fastpath?.stop();
    await audit?.stop().catch((e) => log.warn({ err: errorText(e) }, 'stopping the address audit'));
    await replicator?.stop().catch((e) => log.warn({ err: errorText(e) }, 'stopping network replication'));
    if (api) await closeApi(api, settings.pluginSocket).catch((e) => log.warn({ err: errorText(e) }, 'closing the plugin socket'));
    await overlays?.stop().catch((e) => log.warn({ err: errorText(e) }, 'stopping the overlays'));
    await store?.close().catch((e) => log.warn({ err: errorText(e) }, 'closing etcd'));
    await kernel.close();
    log.info('overlay-flannel stopped');
  };
  try {
    const pub = await waitForPublicInterface(kernel, settings, log, abort.signal);
    log.info({ public: describePublic(pub) }, 'public interface');
    store = openStore(settings, log);
    const queue = new SerialQueue();
    overlays = new AgentDirectory(store, kernel, queue, pub, log, {
      defaultPrefix: settings.etcdPrefix,
      ttlSec: settings.leaseTtlSec,
      renewMarginSec: settings.leaseRenewMarginSec,
      resyncIntervalMs: RESYNC_INTERVAL_MS,
      ipMasq: settings.ipMasq,
      notrack: settings.notrack,
      subnetFile: settings.subnetFile,
      onJoined: (_name, joined) => {
        isolation?.kick();
        fastpath?.kick();
        void joined.whenReady().then(() => {
          isolation?.kick();
          fastpath?.kick();
        });
      },
    });
    const dir = overlays;
    isolation = new OverlayIsolation(
      () => dir.all().map((o) => o.network()).filter((n): n is NonNullable<typeof n> => n !== null).map(formatCidr),
      (nets) => kernel.ensureForwardHead(nets),
      queue,
      log.child({ component: 'isolation' }),
    );
    isolation.start();
    if (settings.fastpath) {
      // Its own queue (see src/reconcile/fastpath-keeper.ts): endpoint calls never wait behind it.
      fastpath = new FastpathKeeper(() => gatherFastpath(dir.all(), kernel), (plan) => kernel.ensureFastpath(plan), new SerialQueue(), log.child({ component: 'fastpath' }));
      fastpath.start();
    } else {
      const removed = await kernel.removeFastpath().catch((e) => log.warn({ err: errorText(e) }, 'FASTPATH=false: could not remove the netdev table overlay-flannel of an earlier run'));
      log.info({ removedEarlierTable: removed === true }, 'FASTPATH=false: overlay packets are routed by the host (no netdev table)');
    }
    const { agent } = await overlays.join(DEFAULT_OVERLAY);
    const listDocker = dockerEndpointLister(settings.dockerSocket);
    if (metrics) {
      const addr = parseHostPort(settings.statusAddr)!;
      status = buildStatusServer(
        {
          defaultOverlay: DEFAULT_OVERLAY,
          overlays: () => [...dir.agentsByName()].map(([name, a]) => ({ name, prefix: dir.all().find((h) => h.name === name)?.prefix ?? '', agent: a })),
          socketServing: () => socketServing,
          publicIP: pub.publicIP,
          etcd: () => store!.health(),
          ...(opts.api === false
            ? {}
            : {
                containers: () =>
                  localEndpoints({
                    kernel,
                    docker: dockerUnusable === null ? listDocker : null,
                    dockerUnusable: dockerUnusable ?? undefined,
                    addressOf: (id) => driver?.endpointAddress(id),
                    networkOf: (id) => driver?.endpointNetwork(id),
                  }),
              }),
        },
        log.child({ component: 'status' }),
        { metrics },
      );
      try {
        await status.listen({ host: addr.host, port: addr.port });
        log.info({ addr: settings.statusAddr }, 'status server listening (/, /api/v1/…, /metrics, /healthz)');
      } catch (e) {
        log.error({ addr: settings.statusAddr, err: errorText(e) }, 'the status server cannot listen; running without it');
      }
    }
    agent.whenReady().then(() => {
      const lease = agent.lease();
      log.info({ subnet: lease ? formatCidr(lease.subnet) : null, mtu: agent.dataplane?.mtu }, 'overlay ready');
    });
    if (opts.api !== false) {
      const why = await dockerSocketUsable(settings.dockerSocket);
      dockerUnusable = why === null ? null : `the Docker socket (DOCKER_SOCKET) is not usable: ${why}`;
      if (why === null) {
        replicator = new NetworkReplicator(dockerPort(settings.dockerSocket), store.overlay().networks, log.child({ component: 'replication' }), { host: pub.publicIP });
        const st = store;
        audit = new AddressAudit(
          () => dir.all().map((h) => ({ name: h.name, subnet: () => h.lease()?.subnet ?? null, records: st.overlay(h.prefix).addresses })),
          dockerEndpoints(settings.dockerSocket),
          log.child({ component: 'address-audit' }),
          {
            intervalMs: settings.addressAuditIntervalSec * 1000,
            ready: agent.whenReady(),
            veths: { hostVeths: async () => (await kernel.listLinks()).map((l) => l.name).filter((n) => n.startsWith(HOST_VETH_PREFIX)), remove: (n) => queue.run(() => kernel.deleteLink(n)) },
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
        endpointsChanged: () => fastpath?.kick(ENDPOINT_CHECK_DELAY_MS),
      };
      driver = new OverlayPluginDriver(kernel, queue, overlays, log.child({ component: 'driver' }), events);
      api = buildApi(driver, log.child({ component: 'api' }), metrics ? { observer: metrics.apiObserver } : {});
      await listenOnSocket(api, settings.pluginSocket);
      socketServing = true;
      log.info({ socket: settings.pluginSocket }, 'plugin API listening');
      replicator?.start(); // after the socket: the networks it creates call back into this plugin
      audit?.start(); // waits for the Docker API itself (dockerd starts a managed plugin before it serves)
    }
    return { agent, overlays, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
