/**
 * Operator commands: write and show an overlay's flannel config, list every host's lease (or,
 * with --containers, every container of every host: containers.ts), and list the cross-host name
 * records.
 * They talk to etcd with the daemon's settings and print to stdout. Unlike the daemon they never
 * wait through an etcd outage: each etcd call has its deadline, and the first failure ends the
 * command (main.ts prints it as one line naming the endpoints and the fix).
 */
import type { Logger } from 'pino';
import type { Settings } from '../config/settings';
import { openStore, type Store } from '../store';
import { describeNetworkConfig, formatNetworkConfig, parseNetworkConfig } from '../domain/network-config';
import { formatCidr } from '../domain/ipv4';
import { formatCidr6 } from '../domain/ipv6';
import { Lease } from '../domain/lease';
import { leaseOwner } from '../domain/lease-v6';
import { Command } from './args';
import { createNetlinkKernel } from '../kernel';
import { resolvePublicInterface } from '../host/public-interface';
import { prefixOfOverlay } from '../daemon/overlay-directory';
import { DEFAULT_OVERLAY } from '../driver/overlays';
import { unavailable } from '../errors';
import { formatAge, nameRows, type NameRow } from '../domain/name-rows';
import { columns, printContainers } from './containers';
import { printPaths } from './paths';

type Out = (line: string) => void;

/**
 * Deadline of each attempt of an etcd call of a command: an operator waits for an answer, not for
 * an outage. A call that times out moves on to the next endpoint, so with several endpoints each
 * gets a share of ~2.4 s (2 s for one endpoint, at least 1 s each).
 */
export function commandCallDeadlineMs(endpoints: number): number {
  if (endpoints <= 1) return 2000;
  return Math.max(1000, Math.round(2400 / endpoints / 100) * 100);
}
/** Longest a whole command may take: well above one call's deadline, never "forever". */
export const COMMAND_DEADLINE_MS = 15_000;

/** `run`, or an UNAVAILABLE error naming the endpoints when it takes longer than `ms`. */
export async function withCommandDeadline<T>(run: Promise<T>, settings: Pick<Settings, 'etcdEndpoints'>, ms = COMMAND_DEADLINE_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(unavailable(`gave up after ${ms / 1000} s: etcd at ${settings.etcdEndpoints.join(', ')} did not finish answering: check that etcd is healthy (etcdctl endpoint health)`)),
      ms,
    );
  });
  try {
    return await Promise.race([run, late]);
  } finally {
    clearTimeout(timer);
  }
}

export async function runCommand(cmd: Exclude<Command, { cmd: 'daemon' | 'help' }>, settings: Settings, log: Logger, out: Out): Promise<number> {
  const store = openStore(settings, log, { callDeadlineMs: commandCallDeadlineMs(settings.etcdEndpoints.length) });
  try {
    if (cmd.cmd === 'names') return await listNames(store, cmd, out);
    const ov = store.overlay(cmd.prefix ?? prefixOfOverlay(settings.etcdPrefix, cmd.name ?? DEFAULT_OVERLAY));
    if (cmd.cmd === 'config-set') {
      const text = formatNetworkConfig(cmd.input);
      await ov.config.write(text);
      out(`wrote ${ov.keys.config}: ${text}`);
      out(`  ${describeNetworkConfig(parseNetworkConfig(text))}`);
      return 0;
    }
    if (cmd.cmd === 'config-show') {
      const s = await ov.config.read();
      if (s.state === 'missing') {
        out(`no config at ${ov.keys.config}; write one with: overlay-flannel config set ${cmd.name ? `--name ${cmd.name} ` : ''}--network 10.1.0.0/16`);
        return 1;
      }
      out(s.raw);
      out(s.state === 'ok' ? `  ${describeNetworkConfig(s.config)}` : `  INVALID: ${s.error}`);
      return s.state === 'ok' ? 0 : 1;
    }
    const watcher = ov.leases();
    try {
      const leases = await watcher.listOnce();
      const own = await ownPublicIPs(settings);
      const ownIP = own.v4;
      if (cmd.paths) return await printPaths({ leases, ownIP, port: settings.probePort || 8479, json: cmd.json }, out);
      if (cmd.containers) {
        const { records, skipped } = await store.overlay().listNames();
        const expiries = await Promise.all(leases.map((l) => watcher.expiryOf(l)));
        return printContainers({ overlay: cmd.name ?? DEFAULT_OVERLAY, leases, expiries, records, skipped, ownIP, json: cmd.json }, out);
      }
      const rows = await Promise.all(leases.map(async (l) => leaseRow(l, await watcher.expiryOf(l), own)));
      rows.sort((a, b) => a.subnet.localeCompare(b.subnet, 'en', { numeric: true }));
      if (cmd.json) out(JSON.stringify(rows, null, 2));
      else out(formatTable(rows));
      return 0;
    } finally {
      await watcher.stop();
    }
  } finally {
    await store.close();
  }
}

/** This host's public IPs as the daemon would pick them (v6: what a v6 lease publishes); undefined where they cannot be told. */
async function ownPublicIPs(settings: Settings): Promise<{ v4?: string; v6?: string }> {
  const kernel = createNetlinkKernel({ timeoutMs: 2000 });
  try {
    const pi = await resolvePublicInterface(kernel, { iface: settings.iface, publicIP: settings.publicIP, publicIPv6: settings.publicIPv6 });
    return { v4: settings.publicIP ?? pi.publicIP, v6: settings.publicIPv6 ?? pi.publicIPv6 };
  } catch {
    return { v4: settings.publicIP, v6: settings.publicIPv6 };
  } finally {
    await kernel.close();
  }
}

interface LeaseRow {
  subnet: string;
  subnet6?: string; // dual-stack and IPv6-only leases
  publicIP: string;
  publicIPv6?: string;
  backend: string;
  vtepMac: string;
  expires: string;
  thisHost: boolean;
}

/** A lease row; `thisHost` by the lease's owner (leaseOwner: PublicIP, or PublicIPv6 in an IPv6-only lease). */
export function leaseRow(l: Lease, expiresAt: number | undefined, own: { v4?: string; v6?: string }): LeaseRow {
  const expires = l.etcdLease === '0' ? 'never (reservation)' : expiresAt ? new Date(expiresAt).toISOString() : 'unknown';
  return {
    subnet: formatCidr(l.subnet),
    ...(l.subnet6 ? { subnet6: formatCidr6(l.subnet6) } : {}),
    publicIP: l.attrs.publicIP,
    ...(l.attrs.publicIPv6 ? { publicIPv6: l.attrs.publicIPv6 } : {}),
    backend: l.attrs.backendType || 'alloc', // flanneld's alloc leases carry no BackendType
    vtepMac: l.attrs.vxlan?.vtepMac ?? '-',
    expires,
    thisHost: isOwnLease(l, own),
  };
}

function isOwnLease(l: Lease, own: { v4?: string; v6?: string }): boolean {
  const owner = leaseOwner(l.attrs);
  return owner !== '' && (owner === own.v4 || (own.v6 !== undefined && owner === own.v6));
}

function formatTable(rows: LeaseRow[]): string {
  if (rows.length === 0) return 'no leases';
  if (rows.some((r) => r.subnet6)) {
    const head = ['SUBNET', 'IPV6 SUBNET', 'PUBLIC IP', 'PUBLIC IPV6', 'BACKEND', 'VTEP MAC', 'EXPIRES', 'THIS HOST'];
    return columns(head, rows.map((r) => [r.subnet, r.subnet6 ?? '-', r.publicIP, r.publicIPv6 ?? '-', r.backend, r.vtepMac, r.expires, r.thisHost ? '*' : '']));
  }
  const head = ['SUBNET', 'PUBLIC IP', 'BACKEND', 'VTEP MAC', 'EXPIRES', 'THIS HOST'];
  return columns(head, rows.map((r) => [r.subnet, r.publicIP, r.backend, r.vtepMac, r.expires, r.thisHost ? '*' : '']));
}

/** `names`: every host's name records (under the default overlay's prefix, beside the network records). */
async function listNames(store: Store, cmd: { network?: string; json: boolean }, out: Out): Promise<number> {
  const { records, skipped } = await store.overlay().listNames();
  const rows = nameRows(records, Date.now()).filter((r) => cmd.network === undefined || r.network === cmd.network);
  if (cmd.json) out(JSON.stringify(rows, null, 2));
  else out(formatNames(rows, cmd.network));
  if (skipped > 0) out(`(${skipped} record(s) that do not parse were left out; the daemons log why)`);
  return 0;
}

function formatNames(rows: NameRow[], network: string | undefined): string {
  if (rows.length === 0) return network === undefined ? 'no name records' : `no name records on network ${network}`;
  const head = [...(network === undefined ? ['NETWORK'] : []), 'NAME', 'ALIASES', 'ADDRESS', 'HOST', 'AGE'];
  return columns(head, rows.map((r) => [...(network === undefined ? [r.network] : []), r.name, r.aliases.join(',') || '-', r.addresses.join(','), r.host, formatAge(r.ageSec)]));
}
