/**
 * The status server (STATUS_ADDR, opt-in): a small HTTP server of its own, separate from the
 * plugin socket.
 *   /                 a live HTML page (inline CSS/JS, no CDN), fed by /api/v1/events (SSE)
 *   /healthz          200 when the default overlay holds a lease and the plugin socket serves
 *   /api/v1/overlays  every joined overlay: config, state, own lease, all leases known
 *   /api/v1/kernel    per overlay: peers programmed (the dataplane's applied state) and sync stats
 *   /api/v1/events    server-sent events: an "overlays" snapshot whenever leases come and go
 *   /metrics          Prometheus (prom-client)
 */
import Fastify, { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ServerResponse } from 'node:http';
import type { OverlayAgent } from '../reconcile/overlay-agent';
import { DataplaneObserver, setDataplaneObserver } from '../reconcile/overlay-dataplane';
import type { ApiObserver } from './server';
import { formatCidr } from '../domain/ipv4';
import type { Lease } from '../domain/lease';
import { statusPage } from './status-page';

/** The subset of OverlayAgent the status server reads (fakes implement it in tests). */
export type StatusAgent = Pick<OverlayAgent, 'state' | 'config' | 'dataplane' | 'lease' | 'lastConfigError' | 'on' | 'off'>;

export interface StatusSource {
  defaultOverlay: string;
  /** The joined overlays, by name. */
  overlays(): { name: string; prefix: string; agent: StatusAgent }[];
  /** Whether the plugin socket is listening (null: no plugin API in this process). */
  socketServing(): boolean | null;
  publicIP?: string;
}

export class StatusMetrics {
  readonly registry = new Registry();
  readonly reconcileRuns = new Counter({ name: 'overlay_flannel_reconcile_runs_total', help: 'Dataplane syncs run, by kind (fast, full)', labelNames: ['kind'], registers: [this.registry] });
  readonly reconcileDuration = new Histogram({
    name: 'overlay_flannel_reconcile_duration_seconds',
    help: 'Dataplane sync duration',
    labelNames: ['kind'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({ name: 'overlay_flannel_reconcile_errors_total', help: 'Dataplane syncs that failed', registers: [this.registry] });
  readonly kernelOps = new Counter({ name: 'overlay_flannel_kernel_ops_total', help: 'Kernel writes by the reconciler, by op', labelNames: ['op'], registers: [this.registry] });
  readonly apiRequests = new Counter({ name: 'overlay_flannel_api_requests_total', help: 'Plugin API calls, by call and HTTP status', labelNames: ['call', 'status'], registers: [this.registry] });
  readonly apiDuration = new Histogram({
    name: 'overlay_flannel_api_request_duration_seconds',
    help: 'Plugin API call latency',
    labelNames: ['call'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  readonly renewals = new Counter({ name: 'overlay_flannel_lease_renewals_total', help: 'Lease renewals of this host, by overlay', labelNames: ['overlay'], registers: [this.registry] });
  readonly leases: Gauge;

  constructor(private source: () => StatusSource | null = () => null) {
    this.leases = new Gauge({
      name: 'overlay_flannel_leases',
      help: 'Leases known per overlay (this host included)',
      labelNames: ['overlay'],
      registers: [this.registry],
      collect: () => {
        this.leases.reset();
        for (const o of this.source()?.overlays() ?? []) this.leases.set({ overlay: o.name }, o.agent.dataplane?.knownLeases().length ?? 0);
      },
    });
  }

  setSource(s: () => StatusSource | null): void {
    this.source = s;
  }

  readonly apiObserver: ApiObserver = {
    onCall: (call, status, ms) => {
      this.apiRequests.inc({ call, status: String(status) });
      this.apiDuration.observe({ call }, ms / 1000);
    },
  };

  readonly dataplaneObserver: DataplaneObserver = {
    onSync: (kind, seconds, ok) => {
      this.reconcileRuns.inc({ kind });
      this.reconcileDuration.observe({ kind }, seconds);
      if (!ok) this.reconcileErrors.inc();
    },
    onOp: (op) => this.kernelOps.inc({ op }),
  };

  /** Feed the process-wide dataplane hook into these metrics. */
  install(): void {
    setDataplaneObserver(this.dataplaneObserver);
  }
}

function leaseJson(l: Lease, ownSubnet: string | null) {
  const subnet = formatCidr(l.subnet);
  return {
    subnet,
    publicIP: l.attrs.publicIP,
    backend: l.attrs.backendType,
    vtepMac: l.attrs.vxlan?.vtepMac ?? null,
    expiresAt: l.expiresAt !== undefined ? new Date(l.expiresAt).toISOString() : null,
    own: subnet === ownSubnet,
  };
}

export function overlaysView(src: StatusSource) {
  return src.overlays().map(({ name, prefix, agent }) => {
    const own = agent.lease();
    const ownSubnet = own ? formatCidr(own.subnet) : null;
    const c = agent.config;
    // Our own entry from the keeper: it knows the expiry (peers' leases come from the watch, without one).
    const leases = (agent.dataplane?.knownLeases() ?? []).map((l) => (own && formatCidr(l.subnet) === ownSubnet ? leaseJson(own, ownSubnet) : leaseJson(l, ownSubnet)));
    if (own && !leases.some((l) => l.own)) leases.push(leaseJson(own, ownSubnet));
    leases.sort((a, b) => a.subnet.localeCompare(b.subnet, 'en', { numeric: true }));
    return {
      name,
      prefix,
      state: agent.state,
      configError: agent.lastConfigError,
      config: c ? { network: formatCidr(c.network), subnetLen: c.subnetLen, backend: c.backend } : null,
      lease: own ? leaseJson(own, ownSubnet) : null,
      leases,
    };
  });
}

export function kernelView(src: StatusSource) {
  return src.overlays().map(({ name, agent }) => {
    const dp = agent.dataplane;
    const peers = dp
      ? [...dp.appliedPeers()].map(([subnet, st]) => ({ subnet, neighbours: st.neighbours, fdb: st.fdb, routes: st.routes })).sort((a, b) => a.subnet.localeCompare(b.subnet, 'en', { numeric: true }))
      : [];
    return { name, device: dp?.deviceName ?? null, mtu: dp?.mtu ?? null, peers, stats: dp ? { ...dp.stats } : null };
  });
}

export function health(src: StatusSource): { ok: boolean; reason?: string } {
  const def = src.overlays().find((o) => o.name === src.defaultOverlay);
  if (!def) return { ok: false, reason: 'the default overlay is not joined yet' };
  if (def.agent.state !== 'ready') {
    const why = def.agent.lastConfigError === 'missing' ? 'no overlay config in etcd' : def.agent.lastConfigError ? `config invalid: ${def.agent.lastConfigError}` : 'no lease yet';
    return { ok: false, reason: `the default overlay is ${def.agent.state} (${why})` };
  }
  if (src.socketServing() === false) return { ok: false, reason: 'the plugin socket is not serving' };
  return { ok: true };
}

export interface StatusServerOptions {
  metrics?: StatusMetrics;
  /** How often new agents are looked for (to follow their events); default 1 s. */
  wireIntervalMs?: number;
}

export function buildStatusServer(src: StatusSource, log: Logger, opts: StatusServerOptions = {}): FastifyInstance {
  const metrics = opts.metrics ?? new StatusMetrics();
  metrics.setSource(() => src);
  const app = Fastify({ logger: false });
  const clients = new Set<ServerResponse>();
  const wired = new WeakSet<object>();
  let pending: NodeJS.Timeout | null = null;
  const broadcast = () => {
    if (pending || clients.size === 0) return;
    pending = setTimeout(() => {
      pending = null;
      const data = `event: overlays\ndata: ${JSON.stringify({ overlays: overlaysView(src), kernel: kernelView(src) })}\n\n`;
      for (const c of clients) c.write(data);
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
  const timer = setInterval(wire, opts.wireIntervalMs ?? 1000);
  timer.unref();
  app.addHook('onClose', async () => {
    clearInterval(timer);
    if (pending) clearTimeout(pending);
    for (const c of clients) c.end();
    clients.clear();
  });

  app.get('/healthz', async (_req, reply) => {
    const h = health(src);
    return reply.code(h.ok ? 200 : 503).send(h.ok ? { status: 'ok' } : { status: 'unavailable', reason: h.reason });
  });
  app.get('/api/v1/overlays', async () => ({ publicIP: src.publicIP ?? null, overlays: overlaysView(src) }));
  app.get('/api/v1/kernel', async () => ({ overlays: kernelView(src) }));
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  app.get('/api/v1/events', (req, reply) => {
    wire();
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write(`event: overlays\ndata: ${JSON.stringify({ overlays: overlaysView(src), kernel: kernelView(src) })}\n\n`);
    clients.add(res);
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    req.raw.on('close', () => {
      clearInterval(ping);
      clients.delete(res);
    });
  });
  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').send(statusPage({ overlays: overlaysView(src), kernel: kernelView(src) })));
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

