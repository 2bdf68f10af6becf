/**
 * The status server (STATUS_ADDR, opt-in): a small HTTP server of its own, separate from the
 * plugin socket. Its routes are data handed to src/api's GET server (get-server.ts), so fastify
 * stays in src/api.
 *   /                    a live HTML page (inline CSS/JS/SVG, no CDN), fed by /api/v1/events (SSE)
 *   /healthz             200 when the default overlay holds a lease and the plugin socket serves
 *   /api/v1/status       everything below in one object (what each event carries)
 *   /api/v1/overlays     every joined overlay: config, state, own lease, all leases known
 *   /api/v1/kernel       per overlay: peers programmed (the dataplane's applied state) and sync stats
 *   /api/v1/containers   the endpoints on this host, named through the Docker API when it answers
 *   /api/v1/etcd         the store's view of etcd: up, since, last error
 *   /api/v1/names        the cross-host name records known (every host's), with their age
 *   /api/v1/cluster      the whole overlay: every host, every container, the host × host path
 *                        matrix, problems, recent events
 *   /api/v1/paths        this host's path probes to every peer: RTT, loss, reachable
 *   /api/v1/events       server-sent events: a "status" snapshot and a "cluster" view (hosts,
 *                        problems, events) when leases come and go and every 5 s; "containers"
 *                        (every host's, compact) at connect and when they change
 *   /metrics             Prometheus (prom-client, see metrics.ts)
 */
import { buildGetServer, type GetAnswer, type GetServer } from '../api/get-server';
import type { Logger } from 'pino';
import type { ServerResponse } from 'node:http';
import { statusPage } from './page';
import { StatusMetrics } from './metrics';
import { containersView, etcdView, health, kernelView, overlaysView, snapshot, StatusSource } from './views';
import { namesView } from './names-view';
import { apiCluster, ClusterTracker, pageCluster, pageContainers, type ClusterJson } from './cluster-view';

export { StatusMetrics } from './metrics';
export { ClusterTracker } from './cluster-view';
export { health, kernelView, overlaysView, snapshot, type StatusAgent, type StatusSource } from './views';

export interface StatusServerOptions {
  metrics?: StatusMetrics;
  /** How often new agents are looked for (to follow their events); default 1 s. */
  wireIntervalMs?: number;
  /** How often open pages get a fresh snapshot even without lease events, and the whole-overlay view is stepped; default 5 s. */
  refreshMs?: number;
  /** The whole-overlay view (tests hand in one with a clock). */
  cluster?: ClusterTracker;
}

/** The page's first data: the status without the per-lease lists the cluster view already has. */
function pageStatus(s: Awaited<ReturnType<typeof snapshot>>) {
  return { ...s, overlays: s.overlays.map(({ leases: _l, ...o }) => o), kernel: s.kernel.map(({ peers: _p, ...k }) => k) };
}

export function buildStatusServer(src: StatusSource, log: Logger, opts: StatusServerOptions = {}): GetServer {
  const metrics = opts.metrics ?? new StatusMetrics();
  metrics.setSource(() => src);
  const clients = new Set<ServerResponse>();
  const wired = new WeakSet<object>();
  let pending: NodeJS.Timeout | null = null;
  const tracker = opts.cluster ?? new ClusterTracker(src);
  let containersSent = '';
  const sse = (name: string, data: string) => `event: ${name}\ndata: ${data}\n\n`;
  const containersEvent = (c: ClusterJson) => sse('containers', JSON.stringify(pageContainers(c)));
  const event = async () => {
    const s = await snapshot(src);
    const c = await tracker.step(s);
    return { text: sse('status', JSON.stringify(s)) + sse('cluster', JSON.stringify(pageCluster(c))), cluster: c };
  };
  const send = () => {
    if (clients.size === 0) {
      tracker.step().catch((e) => log.warn({ err: e instanceof Error ? e.message : String(e) }, 'cluster view failed'));
      return;
    }
    event()
      .then(({ text, cluster }) => {
        const cs = containersEvent(cluster);
        const data = cs === containersSent ? text : text + cs;
        containersSent = cs;
        clients.forEach((c) => c.write(data));
      })
      .catch((e) => log.warn({ err: e instanceof Error ? e.message : String(e) }, 'status snapshot failed'));
  };
  const broadcast = () => {
    if (pending || clients.size === 0) return;
    pending = setTimeout(() => {
      pending = null;
      send();
    }, 100);
  };
  const wire = () => {
    for (const o of src.overlays()) {
      if (wired.has(o.agent)) continue;
      wired.add(o.agent);
      o.agent.on('peers', broadcast);
      o.agent.on('lease', broadcast);
      o.agent.on('renewed', () => metrics.renewals.inc({ overlay: o.name }));
    }
  };
  wire();
  src.onPathReports?.(broadcast);
  const timer = setInterval(wire, opts.wireIntervalMs ?? 1000);
  timer.unref();
  const refresh = setInterval(send, opts.refreshMs ?? 5000);
  refresh.unref();
  send(); // the whole-overlay view's baseline: events are what changes from here
  const json = (body: object): GetAnswer => ({ body });

  const app = buildGetServer([
    {
      path: '/healthz',
      answer: async () => {
        const h = health(src);
        return { status: h.ok ? 200 : 503, body: h.ok ? { status: 'ok' } : { status: 'unavailable', reason: h.reason } };
      },
    },
    { path: '/api/v1/status', answer: async () => json(await snapshot(src)) },
    { path: '/api/v1/overlays', answer: async () => json({ publicIP: src.publicIP ?? null, overlays: await overlaysView(src) }) },
    { path: '/api/v1/kernel', answer: async () => json({ overlays: kernelView(src) }) },
    { path: '/api/v1/containers', answer: async () => json(await containersView(src)) },
    { path: '/api/v1/etcd', answer: async () => json(etcdView(src) ?? { up: null, lastOkAt: null, since: null, lastError: null }) },
    { path: '/api/v1/names', answer: async () => json(namesView(src.names?.())) },
    { path: '/api/v1/cluster', answer: async () => json(apiCluster(await tracker.step())) },
    { path: '/api/v1/paths', answer: async () => json(src.paths ? { enabled: true, overlays: src.paths() } : { enabled: false, overlays: [] }) },
    { path: '/metrics', answer: async () => ({ type: metrics.registry.contentType, body: await metrics.registry.metrics() }) },
    {
      path: '/api/v1/events',
      stream: async () => {
        wire();
        const first = await event();
        const cs = containersEvent(first.cluster);
        return (res, req) => {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
          res.write(first.text + cs);
          clients.add(res);
          const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
          req.on('close', () => {
            clearInterval(ping);
            clients.delete(res);
          });
        };
      },
    },
    {
      path: '/',
      answer: async () => {
        const s = await snapshot(src);
        const c = await tracker.step(s);
        return { type: 'text/html; charset=utf-8', body: statusPage({ status: pageStatus(s), cluster: pageCluster(c), containers: pageContainers(c) }) };
      },
    },
  ]);
  app.onClose(() => {
    clearInterval(timer);
    clearInterval(refresh);
    if (pending) clearTimeout(pending);
    for (const c of clients) c.end();
    clients.clear();
  });
  return app;
}

/** Parse STATUS_ADDR "host:port". */
export function parseHostPort(addr: string): { host: string; port: number } | null {
  const m = /^(.+):(\d{1,5})$/.exec(addr.trim());
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}
