/**
 * etcd-host-lab.ts — helpers of etcd-host-faults.test.ts: continuous traffic between two
 * containers, the address audit, leases as etcd stores them, and a host's vxlan peer entries.
 *
 * Design note: the probe is iputils `ping -D -O -i 0.02` run by this process inside the source
 * container's network namespace (`nsenter --net=/proc/<pid>/ns/net`): the same stack, address and
 * routes as the container, but it keeps running while dockerd or the plugin is down. It is
 * bounded (`-c`, `-w`) and judged on the probes sent before the last one (whose answer may still
 * be on its way when it is stopped). Two gaps are measured:
 * - `longestGapMs`, the network's: between two answered probes a and b, (b − a) × ping's pace (the
 *   median time per probe between answers: at least the interval, often a little more) plus
 *   how much later b's answer took than a's (RTT growth); also the unanswered run at the start and
 *   at the end. Traffic that stops shows as missing probes, traffic held back (queued) as RTT;
 * - `longestWallGapMs`, wall-clock time between two answers (or the last one and the stop): the
 *   same, plus any pause of the sender itself (this shared 2-core machine sometimes stalls ping for
 *   seconds without a probe being lost), so it is reported, not asserted on.
 * Every other helper reads real state: etcdctl, `docker inspect`, `ip`/`bridge` in the host's namespace.
 */
import { spawn } from 'node:child_process';
import type { DockerHost } from '../helpers/docker-lab';
import type { EtcdServer } from '../helpers/etcd-server';
import type { Host } from '../helpers/netns-lab';
import { run } from '../helpers/run';
import { sleep } from '../helpers/wait';
import * as L from '../lab/docker-plugin-lab';

/** What a probe measured. */
export interface ProbeResult {
  target: string;
  sent: number;
  /** Probes judged: every one sent except the last. */
  judged: number;
  lost: number;
  /** The network's longest gap (from probe sequence numbers and round-trip times), ms. */
  longestGapMs: number;
  /** The longest wall-clock time without an answer (includes pauses of the sender), ms. */
  longestWallGapMs: number;
  /** The largest round-trip time, ms. */
  maxRttMs: number;
  /** Time of each answer (ms since the epoch). */
  answers: number[];
}

export interface Probe {
  /** Answers so far (for waits). */
  answered(): number[];
  stop(): Promise<ProbeResult>;
}

/** Start pinging `target` every `intervalMs` from the network namespace of process `pid`; at most `maxSeconds`. */
export function startProbe(pid: number, target: string, opts: { intervalMs?: number; maxSeconds: number }): Probe {
  const interval = opts.intervalMs ?? 20;
  const count = Math.ceil((opts.maxSeconds * 1000) / interval);
  const child = spawn('nsenter', [`--net=/proc/${pid}/ns/net`, 'ping', '-D', '-O', '-n', '-i', String(interval / 1000), '-W', '1', '-c', String(count), '-w', String(opts.maxSeconds), target], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const answers = new Map<number, number>(); // seq → ms
  const rtts = new Map<number, number>(); // seq → round-trip ms
  let maxSeq = 0;
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString('utf8');
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      const seq = /icmp_seq=(\d+)/.exec(line);
      if (seq) maxSeq = Math.max(maxSeq, Number(seq[1]));
      const m = /^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)/.exec(line);
      if (m) {
        answers.set(Number(m[2]), Math.round(Number(m[1]) * 1000));
        rtts.set(Number(m[2]), Number(/time=([\d.]+) ms/.exec(line)?.[1] ?? 0));
      }
    }
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString('utf8');
  });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    answered: () => [...answers.values()],
    async stop() {
      const stoppedAt = Date.now();
      child.kill('SIGINT');
      await Promise.race([exited, sleep(5_000)]);
      child.kill('SIGKILL');
      if (maxSeq === 0 && answers.size === 0) throw new Error(`the probe to ${target} sent nothing: ${err.trim()}`);
      const judged = Math.max(0, maxSeq - 1);
      let lost = 0;
      for (let s = 1; s <= judged; s++) if (!answers.has(s)) lost++;
      const times = [...answers.values()].sort((a, b) => a - b);
      let wall = 0;
      for (let i = 1; i < times.length; i++) wall = Math.max(wall, times[i]! - times[i - 1]!);
      if (times.length) wall = Math.max(wall, stoppedAt - times[times.length - 1]!);
      else wall = Infinity;
      const seqs = [...answers.keys()].filter((q) => q <= judged).sort((a, b) => a - b);
      // ping's real pace (timers are late on a busy machine): the median time per probe between answers.
      const steps = seqs.slice(1).map((b, i) => (answers.get(b)! - answers.get(seqs[i]!)!) / (b - seqs[i]!)).sort((x, y) => x - y);
      const pace = steps.length ? Math.max(interval, steps[Math.floor(steps.length / 2)]!) : interval;
      let net = seqs.length ? Math.max((seqs[0]! - 1) * pace, (judged - seqs[seqs.length - 1]!) * pace) : Infinity;
      for (let i = 1; i < seqs.length; i++) {
        const [a, b] = [seqs[i - 1]!, seqs[i]!];
        net = Math.max(net, (b - a) * pace + Math.max(0, rtts.get(b)! - rtts.get(a)!));
      }
      const maxRtt = Math.max(0, ...rtts.values());
      return { target, sent: maxSeq, judged, lost, longestGapMs: Math.round(net), longestWallGapMs: wall, maxRttMs: maxRtt, answers: times };
    },
  };
}

/** The pid of a container's first process. */
export async function containerPid(d: DockerHost, name: string): Promise<number> {
  const pid = Number((await d.dockerOk(['inspect', '-f', '{{.State.Pid}}', name])).stdout.trim());
  if (!(pid > 0)) throw new Error(`container ${name} on ${d.host.ns} is not running`);
  return pid;
}

/** A lease as etcd stores it: subnet, PublicIP, VtepMAC, create revision (changes only if the key was re-created). */
export interface StoredLease {
  subnet: string;
  publicIP: string;
  vtepMac: string;
  createRevision: number;
}

/** Every lease under `<prefix>/subnets/`, by PublicIP. */
export async function storedLeases(etcd: EtcdServer, prefix: string): Promise<Map<string, StoredLease>> {
  const { stdout } = await etcd.etcdctl(['get', '--prefix', `${prefix}/subnets/`, '-w', 'json']);
  const r = JSON.parse(stdout) as { kvs?: Array<{ key: string; value: string; create_revision: number }> };
  const out = new Map<string, StoredLease>();
  for (const kv of r.kvs ?? []) {
    const key = Buffer.from(kv.key, 'base64').toString('utf8');
    const m = /(\d+\.\d+\.\d+\.\d+)-(\d+)$/.exec(key);
    const v = JSON.parse(Buffer.from(kv.value, 'base64').toString('utf8')) as { PublicIP: string; BackendData?: { VtepMAC?: string } };
    if (m) out.set(v.PublicIP, { subnet: `${m[1]}/${m[2]}`, publicIP: v.PublicIP, vtepMac: v.BackendData?.VtepMAC ?? '', createRevision: kv.create_revision });
  }
  return out;
}

/** The container names that have a name record under `<prefix>/overlay-flannel/names/`. */
export async function storedNames(etcd: EtcdServer, prefix: string): Promise<Set<string>> {
  const { stdout } = await etcd.etcdctl(['get', '--prefix', `${prefix}/overlay-flannel/names/`, '--print-value-only']);
  const out = new Set<string>();
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    const v = JSON.parse(line) as { container?: { name?: string } };
    if (v.container?.name) out.add(v.container.name);
  }
  return out;
}

/** Which of a peer's three entries (neighbour, FDB, route) a host has on `flannel.<vni>`. */
export async function peerEntries(h: Host, vni: number, peer: { subnet: string; vtepMac: string; publicIP: string }): Promise<{ neigh: boolean; fdb: boolean; route: boolean }> {
  const dev = `flannel.${vni}`;
  const json = async <T>(cmd: string, args: string[]): Promise<T[]> => {
    const r = await run(cmd, ['-n', h.ns, '-j', ...args], { timeoutMs: 10_000, check: false });
    return r.code === 0 && r.stdout.trim() ? (JSON.parse(r.stdout) as T[]) : [];
  };
  const next = peer.subnet.split('/')[0]!;
  const mac = peer.vtepMac.toLowerCase();
  const [neigh, fdb, route] = await Promise.all([
    json<{ dst: string; lladdr?: string }>('ip', ['neigh', 'show', 'dev', dev]),
    json<{ mac: string; dst?: string }>('bridge', ['fdb', 'show', 'dev', dev]),
    json<{ dst: string; gateway?: string }>('ip', ['route', 'show', 'dev', dev]),
  ]);
  return {
    neigh: neigh.some((n) => n.dst === next && n.lladdr?.toLowerCase() === mac),
    fdb: fdb.some((f) => f.mac.toLowerCase() === mac && f.dst === peer.publicIP),
    route: route.some((r) => r.dst === peer.subnet && r.gateway === next),
  };
}

/** Containers attached to `net` on one host: name → IPv4 (from `docker network inspect`). */
export async function containersOn(d: DockerHost, net: string): Promise<Map<string, string>> {
  const r = await d.dockerOk(['network', 'inspect', '-f', '{{json .Containers}}', net]);
  const eps = JSON.parse(r.stdout) as Record<string, { Name: string; IPv4Address: string }> | null;
  return new Map(Object.values(eps ?? {}).map((e) => [e.Name, e.IPv4Address.split('/')[0]!]));
}

/**
 * The address audit of the issue: every container's address is unique across the hosts and
 * recorded under its host's lease, and no record lacks a container. Returns the problems (empty = ok).
 */
export async function addressProblems(etcd: EtcdServer, prefix: string, hosts: Array<{ d: DockerHost; subnet: string }>, net: string): Promise<string[]> {
  const problems: string[] = [];
  const owner = new Map<string, string>();
  for (const { d, subnet } of hosts) {
    const cs = await containersOn(d, net);
    const recs = new Set(await L.addressRecords(etcd, prefix, subnet));
    for (const [name, ip] of cs) {
      const prev = owner.get(ip);
      if (prev) problems.push(`duplicate address ${ip}: ${prev} and ${d.host.ns}/${name}`);
      owner.set(ip, `${d.host.ns}/${name}`);
      if (!recs.has(ip)) problems.push(`${d.host.ns}/${name} has ${ip}, not recorded under ${subnet}`);
    }
    const used = new Set(cs.values());
    for (const r of recs) if (!used.has(r)) problems.push(`record ${r} under ${subnet} (${d.host.ns}) without a container`);
  }
  return problems;
}

/** The PUT and DELETE events of one etcd key from revision `fromRev` on, timed as they arrive (`etcdctl watch`). */
export interface KeyWatch {
  events: Array<{ type: 'PUT' | 'DELETE'; at: number }>;
  stop(): void;
}

export function watchKey(etcd: EtcdServer, key: string, fromRev: number): KeyWatch {
  const args = [`--endpoints=${etcd.endpoint}`, 'watch', `--rev=${fromRev}`, key];
  const child = etcd.netns ? spawn('nsenter', [`--net=/var/run/netns/${etcd.netns}`, 'etcdctl', ...args], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'ignore'] }) : spawn('etcdctl', args, { env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'ignore'] });
  const events: KeyWatch['events'] = [];
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line === 'PUT' || line === 'DELETE') events.push({ type: line, at: Date.now() });
    }
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 300_000); // bounded, whatever the caller does
  return {
    events,
    stop() {
      clearTimeout(timer);
      child.kill('SIGKILL');
    },
  };
}

/** The current revision of the etcd store. */
export async function etcdRevision(etcd: EtcdServer): Promise<number> {
  const { stdout } = await etcd.etcdctl(['get', '/', '-w', 'json']);
  return Number(/"revision":(\d+)/.exec(stdout)?.[1] ?? NaN);
}

/** Milliseconds since `t0`, rounded. */
export const since = (t0: number): number => Math.round(Date.now() - t0);
