/**
 * The status server's Prometheus metrics (prom-client, one Registry per daemon). Counters and
 * histograms are fed by hooks (the plugin API's observer, the dataplane's process-wide observer,
 * the agents' 'renewed' events); gauges are read from the daemon at scrape time.
 * The README's "Metrics" table lists every name and label: keep both in step.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DataplaneObserver, setDataplaneObserver } from '../reconcile/overlay-dataplane';
import type { ApiObserver } from '../api/server';
import type { StatusSource } from './views';
import { recordsPerNetwork } from './names-view';
import { noEcho } from '../domain/path-matrix';

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
  readonly etcdUp: Gauge;
  readonly nameRecords: Gauge;
  readonly pathRtt: Gauge;
  readonly pathUp: Gauge;
  readonly nameQueries: Counter;
  readonly nameAnswers: Counter;

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
    this.etcdUp = new Gauge({
      name: 'overlay_flannel_etcd_up',
      help: '1 when the last etcd call or watch of this daemon succeeded, 0 when it failed (or none had an outcome yet)',
      registers: [this.registry],
      collect: () => {
        this.etcdUp.set(this.source()?.etcd?.().up === true ? 1 : 0);
      },
    });
    this.nameRecords = new Gauge({
      name: 'overlay_flannel_name_records',
      help: 'Cross-host name records known (every host\'s), per Docker network',
      labelNames: ['network'],
      registers: [this.registry],
      collect: () => {
        this.nameRecords.reset();
        for (const [network, n] of recordsPerNetwork(this.source()?.names?.())) this.nameRecords.set({ network }, n);
      },
    });
    const paths = () => (this.source()?.paths?.() ?? []).flatMap((o) => o.peers.map((p) => ({ labels: { overlay: o.overlay, peer: p.publicIP }, p })));
    this.pathRtt = new Gauge({
      name: 'overlay_flannel_path_rtt_seconds',
      help: 'Median round trip of this host\'s path probes to a peer through the overlay (last 10 probes)',
      labelNames: ['overlay', 'peer'],
      registers: [this.registry],
      collect: () => {
        this.pathRtt.reset();
        for (const { labels, p } of paths()) if (p.rttMs !== null) this.pathRtt.set(labels, p.rttMs / 1000);
      },
    });
    this.pathUp = new Gauge({
      name: 'overlay_flannel_path_up',
      help: '1 when a peer answers this host\'s path probes, 0 when it stopped (3 lost in a row); absent before the first outcome and for a peer that runs no echo (never answered, no path report: flanneld)',
      labelNames: ['overlay', 'peer'],
      registers: [this.registry],
      collect: () => {
        this.pathUp.reset();
        const reporters = new Set((this.source()?.pathReports?.() ?? []).map((r) => r.host));
        for (const { labels, p } of paths()) if (p.state !== 'unknown' && !noEcho(p.state, p.lastReplyAt, reporters.has(p.publicIP))) this.pathUp.set(labels, p.state === 'reachable' ? 1 : 0);
      },
    });
    // The resolver keeps plain counters; these read them at scrape time (reset + inc = the total).
    const resolverStats = () => this.source()?.names?.()?.resolver?.()?.stats ?? null;
    this.nameQueries = new Counter({
      name: 'overlay_flannel_name_queries_total',
      help: 'DNS queries the kernel handed to the names resolver, by verdict (answer = answered here; miss, not-ours, other-type, malformed, limited, not-dns = passed on untouched)',
      labelNames: ['verdict'],
      registers: [this.registry],
      collect: () => {
        const s = resolverStats();
        this.nameQueries.reset();
        if (s) for (const [verdict, n] of Object.entries(s.verdicts)) this.nameQueries.inc({ verdict }, n);
      },
    });
    this.nameAnswers = new Counter({
      name: 'overlay_flannel_name_answers_total',
      help: 'Datagrams at the names answer socket, by result (answered, servfail, dropped)',
      labelNames: ['result'],
      registers: [this.registry],
      collect: () => {
        const s = resolverStats();
        this.nameAnswers.reset();
        if (s) for (const result of ['answered', 'servfail', 'dropped'] as const) this.nameAnswers.inc({ result }, s[result]);
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
