/**
 * leak-audit.ts — the soak's resource accounting (issue 24): everything overlay-flannel keeps per
 * container, counted and compared with what Docker says exists, per host.
 *   - addresses: the fault suite's audit (address-audit.ts): every container's address unique and
 *     inside its host's lease, each recorded in etcd, no record and no `ofh*` veth without one;
 *   - name records: this host's records in etcd for NET are exactly its running containers on NET;
 *   - routes: one `/32 dev ofh…` per routed endpoint, none to a veth that is gone;
 *   - the fast path: the `endpoints-<vni>` map holds exactly this host's endpoint addresses and
 *     there is one `ofh…` ingress chain per endpoint veth;
 *   - Docker networks of our driver on each host: exactly the ones the soak expects;
 *   - the plugin process: open file descriptors and RSS (reported; growth is judged by the caller).
 * Never throws on a disagreement: it returns the problems in words, and the counts.
 */
import { readdirSync } from 'node:fs';
import type { DockerHost } from '../helpers/docker-lab';
import type { EtcdServer } from '../helpers/etcd-server';
import { auditAddresses } from '../faults/address-audit';
import { rssKiB } from '../faults/fault-lab';
import * as L from '../lab/docker-plugin-lab';

export interface LeakInput {
  etcd: EtcdServer;
  prefix: string;
  net: string;
  vni: number;
  /** Docker networks of our driver each host must have (NET included), by name. */
  networks: string[];
  hosts: Array<{ d: DockerHost; lease: string }>;
}

export interface HostCounts {
  containers: number;
  addressRecords: number;
  nameRecords: number;
  veths: number;
  routes: number;
  fastpathElements: number;
  fastpathChains: number;
  networks: number;
  pluginFds: number;
  pluginRssMiB: number;
}

export interface LeakReport {
  problems: string[];
  hosts: Record<string, HostCounts>;
  /** etcd keys under the overlay's prefix, by kind (subnets, addresses, names, networks, other). */
  etcdKeys: Record<string, number>;
}

const diff = (a: string[], b: string[]): string[] => a.filter((x) => !b.includes(x));

/** This host's name records for `net`, as container names (etcd's view). */
async function nameRecords(etcd: EtcdServer, prefix: string, net: string, host: string): Promise<string[]> {
  const { stdout } = await etcd.etcdctl(['get', '--prefix', `${prefix}/overlay-flannel/names/${net}/`, '--print-value-only']);
  const out: string[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    const v = JSON.parse(line) as { container?: { name?: string }; host?: string };
    if (v.host === host && v.container?.name) out.push(v.container.name);
  }
  return out.sort();
}

/** The fast path's map elements (addresses) and per-veth chains, from `nft -j`. */
async function fastpath(d: DockerHost, vni: number): Promise<{ elements: string[]; chains: string[] }> {
  const r = await d.host.exec('nft', ['-j', 'list', 'table', 'netdev', 'overlay-flannel']);
  if (r.code !== 0) return { elements: [], chains: [] };
  const items = (JSON.parse(r.stdout) as { nftables: Array<Record<string, { name?: string; elem?: unknown[] }>> }).nftables;
  const elements: string[] = [];
  const chains: string[] = [];
  for (const it of items) {
    if (it.map?.name === `endpoints-${vni}`) for (const e of it.map.elem ?? []) elements.push(String((e as unknown[])[0]));
    if (it.chain?.name?.startsWith('ofh') && it.chain.name.endsWith(`.${vni}`)) chains.push(it.chain.name);
  }
  return { elements: elements.sort(), chains: chains.sort() };
}

async function plugin(d: DockerHost): Promise<{ fds: number; rssMiB: number; problems: string[] }> {
  const pids = await L.pluginPids(d.host);
  if (pids.length !== 1) return { fds: -1, rssMiB: -1, problems: [`${d.host.ns}: ${pids.length} plugin processes (want 1)`] };
  const pid = pids[0]!;
  return { fds: readdirSync(`/proc/${pid}/fd`).length, rssMiB: Math.round((rssKiB(pid) / 1024) * 10) / 10, problems: [] };
}

/** Count everything once. */
export async function auditLeaks(inp: LeakInput): Promise<LeakReport> {
  const addr = await auditAddresses({ etcd: inp.etcd, prefix: inp.prefix, net: inp.net, hosts: inp.hosts });
  const out: LeakReport = { problems: [...addr.problems], hosts: {}, etcdKeys: {} };
  for (const { d } of inp.hosts) {
    const ns = d.host.ns;
    const raw = JSON.parse((await d.dockerOk(['network', 'inspect', '-f', '{{json .Containers}}', inp.net])).stdout.trim() || '{}') as Record<string, { Name: string; EndpointID: string; IPv4Address: string }> | null;
    const eps = Object.values(raw ?? {});
    const names = eps.map((e) => e.Name).sort();
    const ips = eps.map((e) => e.IPv4Address.split('/')[0]!).sort();
    const records = await nameRecords(inp.etcd, inp.prefix, inp.net, d.host.ip);
    for (const n of diff(names, records)) out.problems.push(`${ns}: container ${n} has no name record`);
    for (const n of diff(records, names)) out.problems.push(`${ns}: name record ${n} without a container on ${inp.net}`);
    const routes = (await d.host.execJson<Array<{ dst: string; dev: string }>>(['route', 'show'])).filter((r) => r.dev?.startsWith('ofh'));
    const routed = routes.map((r) => r.dst).sort();
    for (const ip of diff(routed, ips)) out.problems.push(`${ns}: route to ${ip} without a container`);
    for (const ip of diff(ips, routed)) out.problems.push(`${ns}: container address ${ip} has no route`);
    const fp = await fastpath(d, inp.vni);
    for (const ip of diff(fp.elements, ips)) out.problems.push(`${ns}: fast path element ${ip} without a container`);
    for (const ip of diff(ips, fp.elements)) out.problems.push(`${ns}: container address ${ip} missing from the fast path`);
    const wanted = eps.map((e) => `ofh${e.EndpointID.slice(0, 12)}`);
    const chainVeths = fp.chains.map((c) => c.split('.')[0]!);
    for (const c of diff(chainVeths, wanted)) out.problems.push(`${ns}: fast path chain of ${c} without an endpoint`);
    for (const c of diff(wanted, chainVeths)) out.problems.push(`${ns}: endpoint veth ${c} has no fast path chain`);
    const nets = (await d.dockerOk(['network', 'ls', '--format', '{{.Name}} {{.Driver}}'])).stdout.split('\n').filter((l) => /overlay-flannel/.test(l)).map((l) => l.split(' ')[0]!).sort();
    for (const n of diff(nets, inp.networks)) out.problems.push(`${ns}: Docker network ${n} of ours that should not exist`);
    for (const n of diff(inp.networks, nets)) out.problems.push(`${ns}: Docker network ${n} missing`);
    const p = await plugin(d);
    out.problems.push(...p.problems);
    out.hosts[ns] = {
      containers: eps.length,
      addressRecords: addr.records[ns] ?? 0,
      nameRecords: records.length,
      veths: addr.veths[ns] ?? 0,
      routes: routes.length,
      fastpathElements: fp.elements.length,
      fastpathChains: fp.chains.length,
      networks: nets.length,
      pluginFds: p.fds,
      pluginRssMiB: p.rssMiB,
    };
  }
  const keys = await L.etcdKeys(inp.etcd, inp.prefix);
  for (const k of keys) {
    const rest = k.slice(inp.prefix.length + 1);
    const kind = rest.startsWith('subnets/') ? 'subnets' : rest.startsWith('overlay-flannel/') ? rest.split('/')[1]! : rest === 'config' ? 'config' : 'other';
    out.etcdKeys[kind] = (out.etcdKeys[kind] ?? 0) + 1;
  }
  return out;
}
