/**
 * `overlay-flannel status --containers`: every container of every host, as the status page's
 * "containers, every host" list shows it (domain/cluster.ts over the overlay's leases and every
 * host's name records, read once from etcd): name, aliases, address, network, host, the host's
 * subnet on this overlay, the record's age; then the hosts without name records (flanneld, or no
 * containers yet) and the problems the records show (records of a host that holds no lease).
 * `--json` prints `{hosts, containers, problems}` with the same fields as `GET /api/v1/cluster`.
 */
import { buildCluster } from '../domain/cluster';
import { formatCidr } from '../domain/ipv4';
import type { Lease } from '../domain/lease';
import type { NameRecord } from '../domain/name-record';
import { formatAge, nameRows } from '../domain/name-rows';

export interface ContainersInput {
  overlay: string;
  leases: Lease[];
  /** Each lease's expiry (ms), as etcd tells it. */
  expiries: (number | undefined)[];
  records: NameRecord[];
  /** Records that do not parse (left out). */
  skipped: number;
  ownIP: string | undefined;
  json: boolean;
}

export function printContainers(p: ContainersInput, out: (line: string) => void): number {
  const now = Date.now();
  const rows = nameRows(p.records, now);
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  const cluster = buildCluster({
    leases: p.leases.map((l, i) => ({
      overlay: p.overlay,
      subnet: formatCidr(l.subnet),
      publicIP: l.attrs.publicIP,
      backend: l.attrs.backendType || 'alloc',
      vtepMac: l.attrs.vxlan?.vtepMac ?? null,
      expiresAt: iso(p.expiries[i]),
      lastSeen: null,
      own: p.ownIP !== undefined && l.attrs.publicIP === p.ownIP,
      programmed: null,
    })),
    names: rows,
    etcd: null,
    namesStale: false,
    drift: [],
    nowMs: now,
  });
  // Only what the records and leases say (no expiry warnings here: `status` lists the expiries).
  const problems = cluster.problems.filter((x) => x.kind === 'names-without-lease');
  if (p.json) {
    out(JSON.stringify({ hosts: cluster.hosts, containers: cluster.containers, problems }, null, 2));
  } else if (cluster.containers.length === 0) {
    out('no containers (no name records: NAMES=false on every host, or no container on an overlay network)');
  } else {
    const head = ['NAME', 'ALIASES', 'ADDRESS', 'NETWORK', 'HOST', 'SUBNET', 'AGE'];
    // The containers are in the rows' order (network, name, host): the same index.
    out(columns(head, cluster.containers.map((c, i) => [c.name, c.aliases.join(',') || '-', c.addresses.join(','), c.network, c.host, c.subnet ?? '-', formatAge(rows[i]!.ageSec)])));
    const hosts = new Set(cluster.containers.map((c) => c.host)).size;
    out(`${cluster.containers.length} container(s) on ${hosts} host(s)`);
  }
  if (!p.json) {
    const quiet = cluster.hosts.filter((h) => h.kind === 'flanneld').map((h) => `${h.publicIP} (${h.subnet})`);
    if (quiet.length) out(`hosts with no name records (flanneld, or no containers yet): ${quiet.join(', ')}`);
    for (const x of problems) out(`problem: ${x.text}`);
  }
  if (p.skipped > 0) out(`(${p.skipped} record(s) that do not parse were left out; the daemons log why)`);
  return 0;
}

/** A plain-text table: each column as wide as its widest cell, two spaces apart. */
export function columns(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  return [head, ...body].map((cols) => cols.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
