/**
 * flannel's network config (`<prefix>/config`), parsed and validated exactly as flanneld's
 * CheckNetworkConfig does (docs/flannel-compat.md §1), so that a config flanneld accepts means the same
 * subnets here. Deliberate differences, each a clear error instead of a silent surprise:
 * - no "Backend": flanneld falls back to `udp`, which we cannot speak; we say so and how to fix it;
 * - `udp` is refused with its reason (forwarding in a userspace process; deprecated upstream);
 *   `ipsec`, … are refused naming the supported backends (vxlan, host-gw, alloc);
 * - `wireguard`: its options are read and checked as flanneld does (wireguard-config.ts), so a bad
 *   Mode or PSK gets flanneld's error; Mode "ipv6" (endpoints over IPv6) is refused while IPv6 is;
 * - IPv6 (EnableIPv6, IPv6Network …) is read and checked as flanneld does (network-config-v6.ts);
 *   EnableIPv4 and EnableIPv6 both false is refused (flanneld would start with no network). In an
 *   IPv6-only config (EnableIPv4 false) the v4 fields are Go's zero values (0.0.0.0/0, length 0),
 *   as flanneld's Config has them, and its leases carry the v4 part `0.0.0.0-0`.
 * `alloc` is flannel's lease-only backend: a subnet per host and nothing else (no device, no
 * routes); the operator routes the subnets between hosts (README "Backends").
 */
import { invalid, unsupported } from '../errors';
import { Cidr, cidr, cidrContains, cidrSize, formatCidr, formatIPv4, maskOf, nextNetworkBase, parseCidr, parseIPv4 } from './ipv4';
import { parseWireguardBackend, type WireguardBackend } from './wireguard-config';
import { describeIPv6, flannelSubnetLen, IPV4_LENS, Ipv6NetworkConfig, parseIPv6Fields } from './network-config-v6';
import { formatCidr6 } from './ipv6';
import { boolField, field, intField, isObject, JsonObject, parseJsonObject, stringField } from './json-fields';

export const DEFAULT_VXLAN_PORT = 8472; // the kernel's default, used when Port is 0
export const SUPPORTED_BACKENDS = ['vxlan', 'host-gw', 'alloc', 'wireguard'] as const;
export type BackendType = (typeof SUPPORTED_BACKENDS)[number];

export interface VxlanBackend {
  readonly type: 'vxlan';
  readonly vni: number;
  readonly port: number; // 0 = kernel default (8472), not sent to netlink, as flannel
  readonly gbp: boolean;
  readonly learning: boolean;
  readonly directRouting: boolean;
  readonly mtu?: number; // MTU of the underlay to assume; the device gets this minus 50
}

export interface HostGwBackend {
  readonly type: 'host-gw';
}

/** Subnet leases only: no data plane, the operator routes the subnets (flannel's `alloc`). */
export interface AllocBackend {
  readonly type: 'alloc';
}

export type Backend = VxlanBackend | HostGwBackend | AllocBackend | WireguardBackend;

export interface NetworkConfig {
  /** EnableIPv4 (default true). When false the four v4 fields below are Go's zero values. */
  readonly enableIPv4: boolean;
  /** Present when EnableIPv6 is true. */
  readonly ipv6?: Ipv6NetworkConfig;
  readonly network: Cidr;
  readonly subnetLen: number;
  readonly subnetMin: number; // u32 base of the first subnet that may be leased
  readonly subnetMax: number; // u32 base of the last one
  readonly backend: Backend;
}

/** Parse the JSON text of `<prefix>/config`. Throws INVALID or UNSUPPORTED with a readable reason. */
export function parseNetworkConfig(text: string): NetworkConfig {
  const where = 'network config';
  const obj = parseJsonObject(text, where);
  const enableIPv4 = boolField(obj, 'EnableIPv4', where) ?? true;
  const enableIPv6 = boolField(obj, 'EnableIPv6', where) ?? false;
  if (!enableIPv4 && !enableIPv6) throw invalid(`${where}: EnableIPv4 and EnableIPv6 are both false: enable at least one (EnableIPv4 defaults to true)`);
  const ipv6 = enableIPv6 ? { ipv6: parseIPv6Fields(obj) } : {};
  if (!enableIPv4) {
    const v4 = stringField(obj, 'Network', where); // Go still decodes it, unchecked and unused
    if (v4) parseCidr(v4, `${where}: "Network"`);
    return { enableIPv4, ...ipv6, network: cidr(0, 0), subnetLen: 0, subnetMin: 0, subnetMax: 0, backend: parseBackend(field(obj, 'Backend')) };
  }

  const networkText = stringField(obj, 'Network', where);
  if (networkText === undefined) throw invalid(`${where}: "Network" is required, e.g. {"Network":"10.1.0.0/16","Backend":{"Type":"vxlan"}}`);
  const network = parseCidr(networkText, `${where}: "Network"`);

  const subnetLen = flannelSubnetLen(intField(obj, 'SubnetLen', where, 0, 32) ?? 0, network.len, formatCidr(network), IPV4_LENS, where);

  const size = 2 ** (32 - subnetLen);
  const subnetMin = boundField(obj, 'SubnetMin', network, (network.base + size) >>> 0, subnetLen);
  const subnetMax = boundField(obj, 'SubnetMax', network, (nextNetworkBase(network) - size) >>> 0, subnetLen);
  return { enableIPv4, ...ipv6, network, subnetLen, subnetMin, subnetMax, backend: parseBackend(field(obj, 'Backend')) };
}

function boundField(obj: JsonObject, name: string, network: Cidr, dflt: number, subnetLen: number): number {
  const where = 'network config';
  const text = stringField(obj, name, where);
  if (text === undefined || text === '') return dflt;
  const ip = parseIPv4(text, `${where}: "${name}"`);
  if (ip === 0) return dflt; // Go's zero IP means "unset"
  if (!cidrContains(network, ip)) throw invalid(`${where}: ${name} ${text} is not in the range of the Network ${formatCidr(network)}`);
  if (((ip & maskOf(subnetLen)) >>> 0) !== ip) throw invalid(`${where}: ${name} is not on a SubnetLen boundary: ${text}`);
  return ip;
}

function parseBackend(raw: unknown): Backend {
  const where = 'network config: Backend';
  if (raw === undefined) {
    throw unsupported(
      'network config: no "Backend" given; flanneld then uses the udp backend, which overlay-flannel does not support. ' +
        'Add "Backend":{"Type":"vxlan"} (or "host-gw", or "alloc")',
    );
  }
  if (!isObject(raw)) throw invalid(`${where} must be an object like {"Type":"vxlan"}`);
  const type = (stringField(raw, 'Type', where) ?? '').toLowerCase();
  if (type === '') throw invalid(`${where}: unknown backend type ""; supported: ${SUPPORTED_BACKENDS.join(', ')}`);
  if (type === 'host-gw') return { type: 'host-gw' };
  if (type === 'alloc') return { type: 'alloc' };
  if (type === 'udp') {
    throw unsupported(
      `${where}: the udp backend is not supported: it forwards every packet through a userspace process (slow, and deprecated upstream); ` +
        'use "vxlan" (the same overlay in the kernel), or "host-gw" when all hosts share one L2 segment',
    );
  }
  if (type === 'wireguard') {
    const wg = parseWireguardBackend(raw, where);
    if (wg.mode === 'ipv6') throw unsupported(`${where}: wireguard Mode "ipv6" (endpoints over IPv6) is not supported by overlay-flannel yet; use "separate" (the default), "auto" or "ipv4"`);
    return wg;
  }
  if (type !== 'vxlan') {
    throw unsupported(`${where}: unsupported backend "${type}"; overlay-flannel supports ${SUPPORTED_BACKENDS.join(', ')}`);
  }
  const mtu = intField(raw, 'MTU', where, 0, 65535);
  return {
    type: 'vxlan',
    vni: intField(raw, 'VNI', where, 0, 16777215) ?? 1,
    port: intField(raw, 'Port', where, 0, 65535) ?? 0,
    gbp: boolField(raw, 'GBP', where) ?? false,
    learning: boolField(raw, 'Learning', where) ?? false,
    directRouting: boolField(raw, 'DirectRouting', where) ?? false,
    ...(mtu ? { mtu } : {}),
  };
}

/** The subnets flannel may lease, in order, as CIDRs (lazy: a /8 split in /30s is millions). */
export function* leasableSubnets(cfg: NetworkConfig): Generator<Cidr> {
  const size = 2 ** (32 - cfg.subnetLen);
  for (let ip = cfg.subnetMin; ip <= cfg.subnetMax; ip += size) yield cidr(ip, cfg.subnetLen);
}

export function subnetInRange(cfg: NetworkConfig, subnet: Cidr): boolean {
  return subnet.len === cfg.subnetLen && subnet.base >= cfg.subnetMin && subnet.base <= cfg.subnetMax && cidrContains(cfg.network, subnet.base);
}

/** What an operator writes with `overlay-flannel config set`. */
export interface NetworkConfigInput {
  /** The v4 Network; omitted only for an IPv6-only overlay (ipv4: false). */
  network?: string;
  backend?: BackendType;
  vni?: number;
  port?: number;
  subnetLen?: number;
  subnetMin?: string;
  subnetMax?: string;
  directRouting?: boolean;
  mtu?: number;
  /** false: an IPv6-only overlay ("EnableIPv4":false). */
  ipv4?: false;
  /** IPv6Network; given, the config gets "EnableIPv6":true. */
  ipv6Network?: string;
  ipv6SubnetLen?: number;
  ipv6SubnetMin?: string;
  ipv6SubnetMax?: string;
}

/** Build the JSON flanneld expects; validated by parsing it back, so what we write always loads. */
export function formatNetworkConfig(input: NetworkConfigInput): string {
  const backend: Record<string, unknown> = { Type: input.backend ?? 'vxlan' };
  if ((input.backend ?? 'vxlan') === 'vxlan') {
    backend.VNI = input.vni ?? 1;
    if (input.port) backend.Port = input.port;
    if (input.directRouting) backend.DirectRouting = true;
    if (input.mtu) backend.MTU = input.mtu;
  } else {
    if (input.vni !== undefined || input.directRouting || input.mtu !== undefined) throw invalid(`--vni, --direct-routing and --mtu apply only to the vxlan backend, not to ${input.backend}`);
    if (input.port !== undefined && input.backend !== 'wireguard') throw invalid(`--port applies only to the vxlan (Port) and wireguard (ListenPort) backends, not to ${input.backend}`);
    if (input.port) backend.ListenPort = input.port; // each wireguard overlay of a host needs its own
  }
  const out: Record<string, unknown> = {};
  if (input.ipv4 === false) {
    if (input.network !== undefined || input.subnetLen || input.subnetMin || input.subnetMax) {
      throw invalid('an IPv6-only overlay (--ipv6-only) has no IPv4 Network: drop --network, --subnet-len, --subnet-min and --subnet-max');
    }
    if (input.ipv6Network === undefined) throw invalid('an IPv6-only overlay (--ipv6-only) needs --ipv6-network, e.g. --ipv6-network fd00:10::/48');
    out.EnableIPv4 = false;
  } else {
    out.Network = input.network;
    if (input.subnetLen) out.SubnetLen = input.subnetLen;
    if (input.subnetMin) out.SubnetMin = input.subnetMin;
    if (input.subnetMax) out.SubnetMax = input.subnetMax;
  }
  if (input.ipv6Network !== undefined) {
    out.EnableIPv6 = true;
    out.IPv6Network = input.ipv6Network;
    if (input.ipv6SubnetLen) out.IPv6SubnetLen = input.ipv6SubnetLen;
    if (input.ipv6SubnetMin) out.IPv6SubnetMin = input.ipv6SubnetMin;
    if (input.ipv6SubnetMax) out.IPv6SubnetMax = input.ipv6SubnetMax;
  } else if (input.ipv6SubnetLen !== undefined || input.ipv6SubnetMin || input.ipv6SubnetMax) {
    throw invalid('--ipv6-subnet-len, --ipv6-subnet-min and --ipv6-subnet-max need --ipv6-network');
  }
  out.Backend = backend;
  const parsed = parseNetworkConfig(JSON.stringify(out));
  // Write the masked networks, as flanneld would read them back.
  if (parsed.enableIPv4) out.Network = formatCidr(parsed.network);
  if (parsed.ipv6) out.IPv6Network = formatCidr6(parsed.ipv6.network);
  return JSON.stringify(out);
}

export function describeNetworkConfig(cfg: NetworkConfig): string {
  const b = cfg.backend;
  const backend =
    b.type === 'vxlan' ? `vxlan VNI ${b.vni} port ${b.port || DEFAULT_VXLAN_PORT}${b.directRouting ? ' DirectRouting' : ''}`
    : b.type === 'alloc' ? 'alloc (leases only: you route the subnets)'
    : b.type === 'wireguard' ? `wireguard port ${b.listenPort}${b.psk ? ' PSK' : ''}${b.persistentKeepaliveInterval ? ` keepalive ${b.persistentKeepaliveInterval}s` : ''}`
    : 'host-gw';
  const parts: string[] = [];
  if (cfg.enableIPv4) {
    const count = Math.floor((cfg.subnetMax - cfg.subnetMin) / cidrSize(cidr(0, cfg.subnetLen))) + 1;
    parts.push(`${formatCidr(cfg.network)}, /${cfg.subnetLen} per host (${formatIPv4(cfg.subnetMin)}–${formatIPv4(cfg.subnetMax)}, ${count} subnets)`);
  }
  if (cfg.ipv6) parts.push(`${cfg.enableIPv4 ? 'IPv6' : 'IPv6 only:'} ${describeIPv6(cfg.ipv6)}`);
  return `${parts.join('; ')}, ${backend}`;
}
