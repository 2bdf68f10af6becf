/**
 * A generated overlay for the status server (issue 20): `hosts` leases of one vxlan overlay
 * (10.<a>.<b>.0/24 on 198.51.100.x / 203.0.113.x public IPs, this host the first) and
 * `containers` name records spread over them, behind a StatusSource with fake agent and names
 * parts. Everything is mutable: tests add and drop hosts and containers, stop "etcd", mark the
 * name watch stale, and the status server sees it on its next step.
 */
import { EventEmitter } from 'node:events';
import { formatCidr, parseCidr } from '../../src/domain/ipv4';
import type { Lease } from '../../src/domain/lease';
import type { NameRecord } from '../../src/domain/name-record';
import type { StatusAgent, StatusSource } from '../../src/status/server';
import { nameRecord } from './name-records';

export const hostIP = (i: number) => (i < 250 ? `198.51.100.${i + 1}` : `203.0.113.${i - 249}`);
export const hostSubnet = (i: number) => `10.${20 + (i >> 8)}.${i & 255}.0/24`;

export function makeLease(i: number, expiresAt: number): Lease {
  const mac = `0e:00:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
  return { subnet: parseCidr(hostSubnet(i)), attrs: { publicIP: hostIP(i), backendType: 'vxlan', vxlan: { vni: 1, vtepMac: mac } }, etcdLease: String(1000 + i), expiresAt };
}

/** Container `j` of host `i` (address .2 + j in the host's subnet). */
export function makeRecord(i: number, j: number, now = Date.now()): NameRecord {
  const base = hostSubnet(i).split('.').slice(0, 3).join('.');
  return nameRecord({
    host: hostIP(i),
    containerName: `svc${i}-${j}`,
    aliases: j % 5 === 0 ? [`api${i}`] : [],
    ipv4: [`${base}.${2 + j}`],
    networkId: j % 2 ? 'backnet' : 'appnet',
    networkName: j % 2 ? 'backnet' : 'appnet',
    endpointId: `e${i}x${j}`,
    updatedAt: new Date(now - 30_000).toISOString(),
  });
}

export interface GeneratedOverlay {
  src: StatusSource;
  leases: Lease[];
  records: NameRecord[];
  etcd: { up: boolean | null; lastOkAt: number | null; since: number | null; lastError: string | null };
  names: { stale: boolean };
  agent: EventEmitter;
}

export function generatedOverlay(hosts: number, containers: number, ttlMs = 3_600_000): GeneratedOverlay {
  const now = Date.now();
  const leases = Array.from({ length: hosts }, (_, i) => makeLease(i, now + ttlMs));
  const perHost = Math.ceil(containers / Math.max(1, hosts - 1));
  const records: NameRecord[] = [];
  // Host 0 is this host; the others run the containers (host `hosts - 1` runs none: a flanneld host).
  for (let i = 1; i < hosts - 1 && records.length < containers; i++) for (let j = 0; j < perHost && records.length < containers; j++) records.push(makeRecord(i, j, now));
  for (let j = 0; records.length < containers; j++) records.push(makeRecord(0, j, now));
  const etcd = { up: true as boolean | null, lastOkAt: now, since: now - 60_000, lastError: null as string | null };
  const names = { stale: false };
  const agent = Object.assign(new EventEmitter(), {
    state: 'ready' as StatusAgent['state'],
    lastConfigError: null,
    config: { network: parseCidr('10.16.0.0/12'), subnetLen: 24, backend: { type: 'vxlan', vni: 1 } },
    dataplane: {
      knownLeases: () => g.leases,
      appliedPeers: () => new Map(g.leases.slice(1).map((l) => [formatCidr(l.subnet), { neighbours: [], fdb: [], routes: [] }])),
      stats: { fullSyncs: 1, fastSyncs: 0, opsApplied: 0, errors: 0, lastDrift: 0 },
      deviceName: 'flannel.1',
      mtu: 1450,
    },
    lease: () => g.leases[0] ?? null,
    lastSeen: () => now - 1000,
  });
  const src: StatusSource = {
    defaultOverlay: 'default',
    overlays: () => [{ name: 'default', prefix: '/gen/network', agent: agent as unknown as StatusAgent }],
    socketServing: () => true,
    publicIP: hostIP(0),
    etcd: () => etcd,
    containers: async () => ({ source: 'docker', dockerError: null, endpoints: [] }),
    names: () => ({
      records: () => g.records,
      state: () => ({ records: g.records.length, localRecords: 0, etcdStale: names.stale, problem: names.stale ? 'etcd unreachable' : null, notWriting: null, lease: '7', resolving: true, upstreamProblem: null }),
    }),
  };
  const g: GeneratedOverlay = { src, leases, records, etcd, names, agent };
  return g;
}
