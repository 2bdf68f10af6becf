/**
 * The daemon: builds every part in order and stops them in reverse.
 *   settings → kernel → public interface → etcd → overlay agent (config → lease → device → peers)
 * Nothing here exits on a transient fault: etcd outages, a missing config and a broken config are
 * waited out with a log line; only bad settings (exit 2) and an uncaught bug (exit 1) end it.
 */
import type { Logger } from 'pino';
import { Settings, redactedSettings } from './config/settings';
import { createNetlinkKernel } from './kernel';
import type { Kernel } from './kernel/types';
import { openStore, OverlayStore, Store } from './store';
import { OverlayAgent, OverlayStorePort } from './reconcile/overlay-agent';
import { describePublic, PublicInterface, resolvePublicInterface } from './reconcile/public-interface';
import { SerialQueue } from './util/serial-queue';
import { Backoff, sleep } from './util/backoff';
import { errorText } from './errors';
import { formatCidr } from './domain/ipv4';

export const RESYNC_INTERVAL_MS = 10_000;

export interface Daemon {
  readonly agent: OverlayAgent;
  stop(): Promise<void>;
}

/** Adapts the etcd store of one prefix to what the overlay agent needs. */
export function overlayPort(ov: OverlayStore): OverlayStorePort {
  return {
    prefix: ov.keys.prefix,
    watchConfig: (onChange) => ov.config.watch(onChange),
    createKeeper: (opts) => ov.keeper(opts),
    watchLeases: (onEvent) => {
      const w = ov.leases();
      w.on('event', onEvent);
      void w.start();
      return w;
    },
  };
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

export async function startDaemon(settings: Settings, log: Logger): Promise<Daemon> {
  log.info({ settings: redactedSettings(settings) }, 'overlay-flannel starting');
  const abort = new AbortController();
  const kernel = createNetlinkKernel();
  let store: Store | null = null;
  let agent: OverlayAgent | null = null;
  const stop = async () => {
    abort.abort();
    await agent?.stop().catch((e) => log.warn({ err: errorText(e) }, 'stopping the overlay agent'));
    await store?.close().catch((e) => log.warn({ err: errorText(e) }, 'closing etcd'));
    await kernel.close();
    log.info('overlay-flannel stopped');
  };
  try {
    const pub = await waitForPublicInterface(kernel, settings, log, abort.signal);
    log.info({ public: describePublic(pub) }, 'public interface');
    store = openStore(settings, log);
    agent = new OverlayAgent(overlayPort(store.overlay()), kernel, new SerialQueue(), pub, log.child({ overlay: 'default' }), {
      name: 'default',
      ttlSec: settings.leaseTtlSec,
      renewMarginSec: settings.leaseRenewMarginSec,
      resyncIntervalMs: RESYNC_INTERVAL_MS,
    });
    await agent.start();
    const ready = agent;
    ready.whenReady().then(() => {
      const lease = ready.lease();
      log.info({ subnet: lease ? formatCidr(lease.subnet) : null, mtu: ready.dataplane?.mtu }, 'overlay ready');
    });
    return { agent, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
