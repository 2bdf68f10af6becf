/**
 * address-audit.ts — after a fault, do Docker, etcd and the kernels agree?
 *   - every container on NET (both hosts) has an address, and no two share one;
 *   - each host's address records in etcd are exactly the addresses of its containers on NET
 *     (every address recorded, no record without a container);
 *   - each host's `ofh*` veths are exactly the endpoints of its containers on NET.
 * Docker's view is `docker network inspect NET` (the endpoints of this host) cross-checked with
 * `docker ps` (the running containers attached to NET); the kernel's is `ip link`.
 */
import type { DockerHost } from '../helpers/docker-lab';
import type { EtcdServer } from '../helpers/etcd-server';
import * as L from '../lab/docker-plugin-lab';

export interface AuditInput {
  etcd: EtcdServer;
  prefix: string;
  net: string;
  /** Each host's dockerd and its lease. */
  hosts: Array<{ d: DockerHost; lease: string }>;
}

export interface AuditResult {
  /** Problems found (empty: all agree). */
  problems: string[];
  /** Containers on NET per host (namespace → count). */
  containers: Record<string, number>;
  records: Record<string, number>;
  veths: Record<string, number>;
}

interface Endpoint {
  name: string;
  ip: string;
  eid: string;
}

async function endpoints(d: DockerHost, net: string): Promise<{ eps: Endpoint[]; problems: string[] }> {
  const problems: string[] = [];
  const r = await d.dockerOk(['network', 'inspect', '-f', '{{json .Containers}}', net]);
  const raw = JSON.parse(r.stdout.trim() || '{}') as Record<string, { Name: string; EndpointID: string; IPv4Address: string }> | null;
  const eps = Object.values(raw ?? {}).map((c) => ({ name: c.Name, ip: c.IPv4Address.split('/')[0] ?? '', eid: c.EndpointID }));
  const running = (await d.dockerOk(['ps', '--format', '{{.Names}}', '--filter', `network=${net}`])).stdout.split('\n').filter(Boolean);
  if (running.length !== eps.length) {
    const named = eps.map((e) => e.name);
    problems.push(`${d.host.ns}: ${running.length} running container(s) on ${net} but ${eps.length} endpoint(s) (running without one: ${running.filter((n) => !named.includes(n)).join(' ') || '-'}; endpoints of: ${named.join(' ')})`);
  }
  for (const e of eps) if (!e.ip) problems.push(`${d.host.ns}: container ${e.name} has no address on ${net}`);
  return { eps, problems };
}

const diff = (a: string[], b: string[]): string[] => a.filter((x) => !b.includes(x));

/** Run every check once; never throws on a disagreement (see `problems`). */
export async function auditAddresses(inp: AuditInput): Promise<AuditResult> {
  const out: AuditResult = { problems: [], containers: {}, records: {}, veths: {} };
  const owners = new Map<string, string>();
  for (const { d, lease } of inp.hosts) {
    const ns = d.host.ns;
    const { eps, problems } = await endpoints(d, inp.net);
    out.problems.push(...problems);
    out.containers[ns] = eps.length;
    for (const e of eps) {
      const prev = owners.get(e.ip);
      if (prev) out.problems.push(`duplicate address ${e.ip}: ${prev} and ${ns}/${e.name}`);
      owners.set(e.ip, `${ns}/${e.name}`);
      if (!L.inCidr(e.ip, lease)) out.problems.push(`${ns}/${e.name} has ${e.ip}, outside this host's lease ${lease}`);
    }
    const ips = eps.map((e) => e.ip).sort();
    const records = await L.addressRecords(inp.etcd, inp.prefix, lease);
    out.records[ns] = records.length;
    const unrecorded = diff(ips, records);
    const orphans = diff(records, ips);
    if (unrecorded.length) out.problems.push(`${ns}: address(es) without a record in etcd: ${unrecorded.join(' ')}`);
    if (orphans.length) out.problems.push(`${ns}: record(s) without a container: ${orphans.join(' ')}`);
    const veths = (await L.linkNames(d.host)).filter((n) => n.startsWith('ofh')).sort();
    out.veths[ns] = veths.length;
    const wanted = eps.map((e) => `ofh${e.eid.slice(0, 12)}`).sort();
    const missing = diff(wanted, veths);
    const leaked = diff(veths, wanted);
    if (missing.length) out.problems.push(`${ns}: endpoint veth(s) missing: ${missing.join(' ')}`);
    if (leaked.length) out.problems.push(`${ns}: veth(s) without an endpoint: ${leaked.join(' ')}`);
  }
  return out;
}
