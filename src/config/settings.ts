/**
 * The daemon's settings, read from the environment once at start and frozen. Every field is
 * validated before anything starts, and all problems are reported together (exit code 2), so an
 * operator fixes a config in one round instead of one error per restart.
 */
import { isIPv4 } from '../domain/ipv4';
import { isIPv6 } from '../domain/ipv6';

export const DEFAULTS = {
  ETCD_ENDPOINTS: 'http://127.0.0.1:2379',
  ETCD_PREFIX: '/coreos.com/network',
  LEASE_TTL: 86400,
  LEASE_RENEW_MARGIN: 3600,
  LOG_LEVEL: 'info',
  PLUGIN_SOCKET: '/run/docker/plugins/overlay-flannel.sock',
  IP_MASQ: true,
  NOTRACK: true,
  FASTPATH: true,
  SUBNET_FILE: '/run/flannel/subnet.env',
  DOCKER_SOCKET: '/var/run/docker.sock',
  DOCKER_SEARCH_ROOT: '/',
  LEGACY_SOCKET_DIR: '',
  STATUS_ADDR: '',
  PROBE_PORT: 8479,
  ADDRESS_AUDIT_INTERVAL: 300,
  NAMES: true,
  NAME_TTL: 30,
  NAME_QUEUE: 53,
  NAME_MARK_BIT: 0x00100000,
  NAME_CT_ZONE: 53,
  NAME_ANSWER_ADDR: '169.254.53.53',
  STATE_DIR: '/var/lib/overlay-flannel',
  WIREGUARD_PRIVATE_SOCKET: false,
} as const;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Settings {
  readonly etcdEndpoints: readonly string[];
  readonly etcdPrefix: string; // no trailing slash
  readonly etcdCaFile?: string;
  readonly etcdCertFile?: string;
  readonly etcdKeyFile?: string;
  readonly etcdUsername?: string;
  readonly etcdPassword?: string; // never logged: see redactedSettings
  readonly publicIP?: string; // default: the address of iface
  readonly publicIPv6?: string; // PUBLIC_IPV6 (EnableIPv6 overlays); default: iface's global IPv6 address
  readonly iface?: string; // default: the interface of the default route
  readonly leaseTtlSec: number;
  readonly leaseRenewMarginSec: number; // effective margin, already scaled to the TTL
  readonly logLevel: LogLevel;
  readonly pluginSocket: string;
  /** flannel's --ip-masq: masquerade traffic leaving the overlays (nft-masq.ts). */
  readonly ipMasq: boolean;
  /** Bypass connection tracking for overlay ↔ overlay and vxlan traffic (nft-notrack.ts). */
  readonly notrack: boolean;
  /** Hand routed overlay packets between veth and vxlan at the netdev hook (nft-fastpath.ts). */
  readonly fastpath: boolean;
  /** flannel's --subnet-file for the default overlay; '' = not written. */
  readonly subnetFile: string;
  /** The Docker API socket (network replication; off when it cannot be used). When it is no socket, it is searched for (socket-locator.ts). */
  readonly dockerSocket: string;
  /** Where the host's root is seen when searching the Docker socket ('/' = this is the host; the managed plugin: /host/root). */
  readonly dockerSearchRoot: string;
  /** Docker's legacy plugin folder (/run/docker/plugins of the host) where overlay-flannel.sock is also served; '' = off. */
  readonly legacySocketDir: string;
  /** STATUS_ADDR host:port of the status server (page, JSON API, /metrics); '' = off. */
  readonly statusAddr: string;
  /** PROBE_PORT: UDP port of the path probes on each host's overlay address (with STATUS_ADDR); 0 = no probes. */
  readonly probePort: number;
  /** ADDRESS_AUDIT_INTERVAL in seconds: period of the orphan address-record audit; 0 = only once after start. */
  readonly addressAuditIntervalSec: number;
  /** NAMES: cross-host name records of this host's containers (and the names of every host kept in memory); false = none. */
  readonly names: boolean;
  /** NAME_TTL in seconds: the TTL of the etcd lease this host's name records are bound to (a dead host's names go within it). */
  readonly nameTtlSec: number;
  /** The resolver's kernel hooks (docs/names-design.md §3): NFQUEUE number, the mark bit of "answer here",
   *  the conntrack zone of answered flows, the answer socket's link-local address (on lo, port 53). */
  readonly nameQueue: number;
  readonly nameMarkBit: number;
  readonly nameCtZone: number;
  readonly nameAnswerAddr: string;
  /** STATE_DIR: this host's state kept across restarts (the WireGuard private key, mode 0600). */
  readonly stateDir: string;
  /** WIREGUARD_PRIVATE_SOCKET: run wireguard-go in its own mount namespace (its UAPI socket out of
   *  /var/run/wireguard), for several simulated hosts on one machine; `wg show` cannot see it then. */
  readonly wireguardPrivateSocket: boolean;
}

export class SettingsError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid settings:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'SettingsError';
  }
}


/** Parse a duration: "90" (seconds), "90s", "15m", "1h". */
export function parseDuration(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$/.exec(text);
  if (!m) return null;
  const n = Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
  return Number.isFinite(n) ? n : null;
}

/** "true"/"false"/"1"/"0" (any case), else null. */
export function parseBool(text: string): boolean | null {
  const t = text.trim().toLowerCase();
  return t === 'true' || t === '1' ? true : t === 'false' || t === '0' ? false : null;
}

export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const problems: string[] = [];
  const get = (k: string): string | undefined => {
    const v = env[k];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };

  const endpoints = (get('ETCD_ENDPOINTS') ?? DEFAULTS.ETCD_ENDPOINTS).split(',').map((s) => s.trim()).filter(Boolean);
  for (const e of endpoints) {
    let ok = false;
    try {
      const u = new URL(e);
      ok = (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '' && u.port !== '';
    } catch {
      ok = false;
    }
    if (!ok) problems.push(`ETCD_ENDPOINTS: "${e}" is not a URL like http://127.0.0.1:2379 (scheme, host and port)`);
  }
  if (endpoints.length === 0) problems.push('ETCD_ENDPOINTS: no endpoint given');

  let prefix = get('ETCD_PREFIX') ?? DEFAULTS.ETCD_PREFIX;
  if (!prefix.startsWith('/')) problems.push(`ETCD_PREFIX: "${prefix}" must start with "/" (e.g. /coreos.com/network)`);
  prefix = prefix.replace(/\/+$/, '');
  if (prefix === '') problems.push('ETCD_PREFIX: must not be "/" alone');

  const caFile = get('ETCD_CAFILE');
  const certFile = get('ETCD_CERTFILE');
  const keyFile = get('ETCD_KEYFILE');
  if ((certFile === undefined) !== (keyFile === undefined)) {
    problems.push('ETCD_CERTFILE and ETCD_KEYFILE: give both (a client certificate and its key) or neither');
  }
  const username = get('ETCD_USERNAME');
  const password = env.ETCD_PASSWORD;
  if (username !== undefined && (password === undefined || password === '')) {
    problems.push('ETCD_PASSWORD: required when ETCD_USERNAME is set');
  }
  if (username === undefined && password) problems.push('ETCD_USERNAME: required when ETCD_PASSWORD is set');

  const publicIP = get('PUBLIC_IP');
  if (publicIP !== undefined && !isIPv4(publicIP)) problems.push(`PUBLIC_IP: "${publicIP}" is not an IPv4 address`);
  const publicIPv6 = get('PUBLIC_IPV6');
  if (publicIPv6 !== undefined && !isIPv6(publicIPv6)) problems.push(`PUBLIC_IPV6: "${publicIPv6}" is not an IPv6 address`);
  const iface = get('IFACE');
  if (iface !== undefined && !/^[^\s/]{1,15}$/.test(iface)) problems.push(`IFACE: "${iface}" is not an interface name (1–15 characters)`);

  const ttlText = get('LEASE_TTL');
  const ttl = ttlText === undefined ? DEFAULTS.LEASE_TTL : parseDuration(ttlText);
  if (ttl === null || ttl < 2 || ttl > 10 * 365 * 86400 || !Number.isInteger(ttl)) {
    problems.push(`LEASE_TTL: "${ttlText}" must be a whole number of seconds ≥ 2 (default ${DEFAULTS.LEASE_TTL}, flannel's 24 h)`);
  }
  const marginText = get('LEASE_RENEW_MARGIN');
  let margin = marginText === undefined ? DEFAULTS.LEASE_RENEW_MARGIN : parseDuration(marginText);
  if (margin === null || margin <= 0) {
    problems.push(`LEASE_RENEW_MARGIN: "${marginText}" must be a positive duration such as 3600, 60m or 1h`);
  } else if (ttl !== null && ttl >= 2) {
    if (marginText !== undefined && margin >= ttl) {
      problems.push(`LEASE_RENEW_MARGIN: ${margin}s must be shorter than LEASE_TTL (${ttl}s)`);
    }
    // The default margin is scaled to short TTLs: renew when two thirds of the TTL have passed.
    if (marginText === undefined) margin = Math.min(margin, ttl / 3);
  }

  const logLevel = (get('LOG_LEVEL') ?? DEFAULTS.LOG_LEVEL).toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    problems.push(`LOG_LEVEL: "${logLevel}" must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const pluginSocket = get('PLUGIN_SOCKET') ?? DEFAULTS.PLUGIN_SOCKET;
  if (!pluginSocket.startsWith('/')) problems.push(`PLUGIN_SOCKET: "${pluginSocket}" must be an absolute path`);
  const dockerSocket = get('DOCKER_SOCKET') ?? DEFAULTS.DOCKER_SOCKET;
  if (!dockerSocket.startsWith('/')) problems.push(`DOCKER_SOCKET: "${dockerSocket}" must be an absolute path`);
  const dockerSearchRoot = get('DOCKER_SEARCH_ROOT') ?? DEFAULTS.DOCKER_SEARCH_ROOT;
  if (!dockerSearchRoot.startsWith('/')) problems.push(`DOCKER_SEARCH_ROOT: "${dockerSearchRoot}" must be an absolute path (the host's / as this process sees it)`);
  const legacySocketDir = env.LEGACY_SOCKET_DIR === undefined ? DEFAULTS.LEGACY_SOCKET_DIR : env.LEGACY_SOCKET_DIR.trim();
  if (legacySocketDir !== '' && !legacySocketDir.startsWith('/')) problems.push(`LEGACY_SOCKET_DIR: "${legacySocketDir}" must be an absolute path, or empty for none`);

  const ipMasqText = get('IP_MASQ');
  const ipMasq = ipMasqText === undefined ? DEFAULTS.IP_MASQ : parseBool(ipMasqText);
  if (ipMasq === null) problems.push(`IP_MASQ: "${ipMasqText}" must be true, false, 1 or 0 (default true)`);
  const notrackText = get('NOTRACK');
  const notrack = notrackText === undefined ? DEFAULTS.NOTRACK : parseBool(notrackText);
  if (notrack === null) problems.push(`NOTRACK: "${notrackText}" must be true, false, 1 or 0 (default true)`);
  const fastpathText = get('FASTPATH');
  const fastpath = fastpathText === undefined ? DEFAULTS.FASTPATH : parseBool(fastpathText);
  if (fastpath === null) problems.push(`FASTPATH: "${fastpathText}" must be true, false, 1 or 0 (default true)`);
  const subnetFile = env.SUBNET_FILE === undefined ? DEFAULTS.SUBNET_FILE : env.SUBNET_FILE.trim();
  if (subnetFile !== '' && !subnetFile.startsWith('/')) problems.push(`SUBNET_FILE: "${subnetFile}" must be an absolute path, or empty to not write it`);

  const statusAddr = get('STATUS_ADDR') ?? DEFAULTS.STATUS_ADDR;
  if (statusAddr !== '') {
    const m = /^(.+):(\d{1,5})$/.exec(statusAddr);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) problems.push(`STATUS_ADDR: "${statusAddr}" must be host:port such as 127.0.0.1:9890, or empty for no status server`);
  }

  const probePort = intSetting(get('PROBE_PORT'), DEFAULTS.PROBE_PORT, 0, 65535);
  if (probePort === null) problems.push(`PROBE_PORT: "${get('PROBE_PORT')}" must be a UDP port 1–65535, or 0 for no path probes (default ${DEFAULTS.PROBE_PORT})`);

  const auditText = get('ADDRESS_AUDIT_INTERVAL');
  const audit = auditText === undefined ? DEFAULTS.ADDRESS_AUDIT_INTERVAL : parseDuration(auditText);
  if (audit === null || (audit !== 0 && audit < 10) || audit > 86400) {
    problems.push(`ADDRESS_AUDIT_INTERVAL: "${auditText}" must be 0 (audit once after start) or a duration from 10s to 24h such as 300, 5m (default ${DEFAULTS.ADDRESS_AUDIT_INTERVAL})`);
  }

  const namesText = get('NAMES');
  const names = namesText === undefined ? DEFAULTS.NAMES : parseBool(namesText);
  if (names === null) problems.push(`NAMES: "${namesText}" must be true, false, 1 or 0 (default true)`);
  const nameTtlText = get('NAME_TTL');
  const nameTtl = nameTtlText === undefined ? DEFAULTS.NAME_TTL : parseDuration(nameTtlText);
  if (nameTtl === null || !Number.isInteger(nameTtl) || nameTtl < 2 || nameTtl > 3600) {
    problems.push(`NAME_TTL: "${nameTtlText}" must be a whole number of seconds from 2 to 3600 such as 30 or 1m (default ${DEFAULTS.NAME_TTL}; a dead host's names vanish within it)`);
  }

  const nameQueue = intSetting(get('NAME_QUEUE'), DEFAULTS.NAME_QUEUE, 0, 65535);
  if (nameQueue === null) problems.push(`NAME_QUEUE: "${get('NAME_QUEUE')}" must be an NFQUEUE number 0–65535 that no other program binds (default ${DEFAULTS.NAME_QUEUE})`);
  const nameMark = intSetting(get('NAME_MARK_BIT'), DEFAULTS.NAME_MARK_BIT, 1, 0x80000000);
  if (nameMark === null || (nameMark & (nameMark - 1)) !== 0) {
    problems.push(`NAME_MARK_BIT: "${get('NAME_MARK_BIT')}" must be exactly one bit of the 32-bit packet mark, such as 0x00100000 (the default), and one no other program (kube-proxy, Calico, Docker) uses`);
  }
  const nameZone = intSetting(get('NAME_CT_ZONE'), DEFAULTS.NAME_CT_ZONE, 1, 65535);
  if (nameZone === null) problems.push(`NAME_CT_ZONE: "${get('NAME_CT_ZONE')}" must be a conntrack zone 1–65535 (default ${DEFAULTS.NAME_CT_ZONE})`);
  const nameAnswer = get('NAME_ANSWER_ADDR') ?? DEFAULTS.NAME_ANSWER_ADDR;
  if (!isIPv4(nameAnswer) || !nameAnswer.startsWith('169.254.') || nameAnswer === '169.254.169.254') {
    problems.push(`NAME_ANSWER_ADDR: "${nameAnswer}" must be an IPv4 link-local address in 169.254.0.0/16 (never routed off the host; not the cloud metadata 169.254.169.254), default ${DEFAULTS.NAME_ANSWER_ADDR}`);
  }

  const stateDir = get('STATE_DIR') ?? DEFAULTS.STATE_DIR;
  if (!stateDir.startsWith('/')) problems.push(`STATE_DIR: "${stateDir}" must be an absolute path (default ${DEFAULTS.STATE_DIR})`);
  const wgSocketText = get('WIREGUARD_PRIVATE_SOCKET');
  const wgSocket = wgSocketText === undefined ? DEFAULTS.WIREGUARD_PRIVATE_SOCKET : parseBool(wgSocketText);
  if (wgSocket === null) problems.push(`WIREGUARD_PRIVATE_SOCKET: "${wgSocketText}" must be true, false, 1 or 0 (default false)`);

  if (problems.length) throw new SettingsError(problems);
  return Object.freeze({
    etcdEndpoints: Object.freeze(endpoints),
    etcdPrefix: prefix,
    ...(caFile ? { etcdCaFile: caFile } : {}),
    ...(certFile ? { etcdCertFile: certFile } : {}),
    ...(keyFile ? { etcdKeyFile: keyFile } : {}),
    ...(username ? { etcdUsername: username } : {}),
    ...(password ? { etcdPassword: password } : {}),
    ...(publicIP ? { publicIP } : {}),
    ...(publicIPv6 ? { publicIPv6 } : {}),
    ...(iface ? { iface } : {}),
    leaseTtlSec: ttl as number,
    leaseRenewMarginSec: margin as number,
    logLevel: logLevel as LogLevel,
    pluginSocket,
    ipMasq: ipMasq as boolean,
    notrack: notrack as boolean,
    fastpath: fastpath as boolean,
    subnetFile,
    dockerSocket,
    dockerSearchRoot,
    legacySocketDir,
    statusAddr,
    probePort: probePort as number,
    addressAuditIntervalSec: audit as number,
    names: names as boolean,
    nameTtlSec: nameTtl as number,
    nameQueue: nameQueue as number,
    nameMarkBit: nameMark as number,
    nameCtZone: nameZone as number,
    nameAnswerAddr: nameAnswer,
    stateDir,
    wireguardPrivateSocket: wgSocket as boolean,
  });
}

/** Settings safe to log: secrets replaced. */
export function redactedSettings(s: Settings): Record<string, unknown> {
  return { ...s, ...(s.etcdPassword ? { etcdPassword: '<redacted>' } : {}) };
}

/** An integer setting: decimal or 0x hex, within [min, max]; the default when unset; null when bad. */
function intSetting(text: string | undefined, fallback: number, min: number, max: number): number | null {
  if (text === undefined) return fallback;
  const t = text.trim();
  if (!/^(0x[0-9a-fA-F]{1,8}|\d{1,10})$/.test(t)) return null;
  const n = Number(t);
  return Number.isInteger(n) && n >= min && n <= max ? n : null;
}
