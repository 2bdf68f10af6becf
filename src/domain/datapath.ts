/**
 * The two data paths a Docker network of overlay-flannel can use, and the pure parts of each.
 *
 * - routed (default): no bridge in the packet path. Each container's veth carries a host route
 *   `<address>/32 dev ofh<id>`; inside the container the gateway is a link-local address
 *   (169.254.1.1 for the first network of a host, .2 for the next …: one per network, so a
 *   container can be on several; Calico's libnetwork plugin used one fixed address), which the
 *   host answers for because that address sits on the network's (port-less) record bridge. Docker gives the container its address with the
 *   host subnet's prefix (a /24 makes a connected /24 route in the container), so Join also
 *   returns the two halves of that subnet via the gateway: longer prefixes than the connected
 *   route, so even a container on the same host is reached through the host (one routing hop,
 *   no proxy-ARP and no ARP delay). Peers see nothing different: the host still owns its subnet
 *   behind its `.0` on flannel.<VNI>.
 * - bridge: flannel's model: veths enslaved to the bridge `ofb-<id>` that holds the gateway `.1`.
 *
 * The record bridge exists in both modes (it carries the network's gateway, MTU and, in routed
 * mode, the link-local gateway address that marks the mode), so the kernel stays the record.
 */
import { invalid } from '../errors';
import { cidr, Cidr, parseIPv4 } from './ipv4';

export type Datapath = 'routed' | 'bridge';
export const DATAPATHS: readonly Datapath[] = ['routed', 'bridge'];
export const DEFAULT_DATAPATH: Datapath = 'routed';
/** The `docker network create -o` keys that choose the data path. */
export const DATAPATH_OPTIONS = ['datapath', 'overlay-flannel.datapath'] as const;
/** The link-local gateway of the first routed network on a host; the next ones take .2, .3 … */
export const LINK_LOCAL_GATEWAY = '169.254.1.1';
/** The same, as a number. */
export const LINK_LOCAL_GATEWAY_IP = parseIPv4(LINK_LOCAL_GATEWAY);
export const LINK_LOCAL_SCOPE = '169.254.0.0/16';
/** Where routed networks' gateways come from: one per network of this host, 169.254.1.1–.254. */
export const ROUTED_GATEWAYS = '169.254.1.0/24';
const ROUTED_GATEWAY_RANGE = cidr(parseIPv4('169.254.1.0'), 24);

/** Whether `ip` is a routed network's link-local gateway (what marks a record bridge as routed). */
export function isRoutedGateway(ip: number): boolean {
  return ip >>> 8 === ROUTED_GATEWAY_RANGE.base >>> 8 && (ip & 0xff) !== 0 && (ip & 0xff) !== 0xff;
}

/**
 * The link-local gateway for a new routed network on this host: the lowest of 169.254.1.1–.254
 * that no other network of this host holds. Each network needs its own: a container on two routed
 * networks gets one on-link /32 route per gateway, and two equal ones collide (EEXIST). A
 * container only ever joins networks of its own host, so distinct per host is enough. Null when
 * all 254 are taken.
 */
export function pickRoutedGateway(taken: Iterable<number>): number | null {
  const used = new Set(taken);
  for (let i = 1; i < 255; i++) {
    const ip = (ROUTED_GATEWAY_RANGE.base + i) >>> 0;
    if (!used.has(ip)) return ip;
  }
  return null;
}

/** The data path asked for in a network's generic options (`-o datapath=routed|bridge`). */
export function datapathOption(generic: Record<string, string | undefined>): Datapath {
  const given = DATAPATH_OPTIONS.map((k) => [k, generic[k]] as const).filter(([, v]) => v !== undefined && v !== '');
  if (given.length === 0) return DEFAULT_DATAPATH;
  const [key, value] = given[0]!;
  const v = value!.trim().toLowerCase();
  if (!(DATAPATHS as readonly string[]).includes(v)) {
    throw invalid(`-o ${key}=${value}: unknown data path; use -o datapath=routed (the default: no bridge, fastest) or -o datapath=bridge (flannel's bridge model)`);
  }
  return v as Datapath;
}

/** A route Join hands the container: via `nextHop`, or on-link (connected) when it is null. */
export interface JoinRoute {
  destination: Cidr;
  nextHop: number | null;
}

/** The two halves of `subnet` (len+1 each); none for a /31 or /32. */
export function subnetHalves(subnet: Cidr): Cidr[] {
  if (subnet.len >= 31) return [];
  const half = subnet.len + 1;
  return [cidr(subnet.base, half), cidr((subnet.base + 2 ** (32 - half)) >>> 0, half)];
}

/**
 * The routes Join returns for a container on this host's `subnet` of `overlay`.
 * routed: the network's link-local gateway on-link, both halves of the subnet and the overlay via it.
 * bridge: the overlay via the bridge's gateway (the subnet is on-link through the bridge).
 */
export function joinRoutes(mode: Datapath, subnet: Cidr, overlay: Cidr | null, bridgeGateway: number, routedGateway: number = LINK_LOCAL_GATEWAY_IP): JoinRoute[] {
  if (mode === 'bridge') return overlay ? [{ destination: overlay, nextHop: bridgeGateway }] : [];
  const via = (c: Cidr): JoinRoute => ({ destination: c, nextHop: routedGateway });
  return [{ destination: cidr(routedGateway, 32), nextHop: null }, ...subnetHalves(subnet).map(via), ...(overlay ? [via(overlay)] : [])];
}
