/**
 * The IPv6 half of a Docker `--ipv6` network (issue 21), beside network.ts's v4 half. The kernel
 * stays the record, as for v4:
 * - routed (default): each host veth holds the network's link-local v6 gateway
 *   (`fe80::a9fe:10k/64`, derived from the network's 169.254.1.k: routedGateway6) and carries a
 *   host route `<v6 address>/128 dev ofh<id>`. The gateway sits on every veth, not on the record
 *   bridge as the v4 one does, because Linux answers neighbour solicitations only for addresses of
 *   the receiving interface. Join hands the container that gateway on-link (/128, connected: so
 *   libnetwork's route lookup picks the right interface), both halves of the v6 subnet and the
 *   overlay's IPv6Network via it, and it as GatewayIPv6 (the v6 default route).
 * - bridge: the bridge holds `<subnet6>::1/<len>` (the IPAM gateway); containers on the bridge
 *   use it as their default gateway, flannel's model.
 * Either way the host needs net.ipv6.conf.all.forwarding=1 (links.ts), set at the first v6
 * endpoint.
 */
import type { Kernel } from '../kernel';
import { gateway6Of, routedGateway6 } from '../domain/addresses-v6';
import { Cidr6, cidr6, cidr6Contains, cidr6Equals, formatCidr6, formatIPv6, parseCidr6, parseIPv6 } from '../domain/ipv6';
import type { Datapath } from '../domain/datapath';
import { invalid } from '../errors';
import type { IpamData, JoinRoute6 } from './types';

/** Where routed networks' v6 gateways live: fe80::a9fe:100/120 ↔ 169.254.1.0/24. */
export const ROUTED_GATEWAYS6 = 'fe80::a9fe:100/120';
const ROUTED6 = parseCidr6(ROUTED_GATEWAYS6);
const LINK_LOCAL6 = parseCidr6('fe80::/10');

/**
 * CreateNetwork's v6 half: null for a v4-only network; else the v6 subnet, which must be this
 * host's v6 lease of the overlay (what our IPAM handed out).
 */
export function networkSubnet6(enableIPv6: boolean, ipv6Data: IpamData[], leaseSubnet6: Cidr6 | undefined, overlay: string): Cidr6 | null {
  if (!enableIPv6 && ipv6Data.length === 0) return null;
  const data = ipv6Data[0];
  if (!data) throw invalid('CreateNetwork with --ipv6 but no IPv6 pool: create the network with --ipam-driver overlay-flannel');
  const pool = parseCidr6(data.pool, 'IPv6Data.Pool');
  if (!leaseSubnet6 || !cidr6Equals(pool, leaseSubnet6)) {
    throw invalid(`the IPv6 pool ${data.pool} is not this host's IPv6 lease of overlay "${overlay}" (${leaseSubnet6 ? formatCidr6(leaseSubnet6) : 'none'}): create the network with --ipam-driver overlay-flannel`);
  }
  return pool;
}

/** Inside the queue. The bridge's v6 half: the gateway ::1 in bridge mode; nothing in routed mode. */
export async function ensureBridge6(kernel: Kernel, bridgeIndex: number, mode: Datapath, subnet6: Cidr6): Promise<void> {
  if (mode !== 'bridge') return;
  await kernel.ensureOnlyAddress(bridgeIndex, `${formatIPv6(gateway6Of(subnet6))}/${subnet6.len}`, formatCidr6(subnet6));
}

/** Inside the queue. Routed: the link-local gateway on the host veth and the /128 host route to the container. */
export async function ensureEndpoint6(kernel: Kernel, mode: Datapath, routedGateway: number | null, hostIndex: number, address6: string): Promise<void> {
  if (mode !== 'routed' || routedGateway === null) return;
  parseIPv6(address6, 'endpoint IPv6 address');
  await kernel.ensureOnlyAddress(hostIndex, `${routedGateway6(routedGateway)}/64`, ROUTED_GATEWAYS6);
  await kernel.replaceRoute({ dst: `${address6}/128`, oif: hostIndex, onlink: false });
}

/**
 * Join's v6 half, read back from the kernel: routed, the gateway on the host veth; bridge, the
 * bridge's global v6 address. Null when the endpoint has no v6 half.
 */
export async function join6(
  kernel: Kernel,
  mode: Datapath,
  bridgeIndex: number,
  hostIndex: number | null,
  subnet6: Cidr6 | undefined,
  network6: Cidr6 | null,
): Promise<{ gateway6: string; routes6: JoinRoute6[] } | null> {
  if (mode === 'bridge') {
    const gw = (await kernel.listAddresses(bridgeIndex, 6)).find((a) => !cidr6Contains(LINK_LOCAL6, parseIPv6(a.address)));
    if (!gw) return null;
    return { gateway6: gw.address, routes6: network6 ? [{ destination: formatCidr6(network6), nextHop: gw.address }] : [] };
  }
  if (hostIndex === null) return null;
  const gw = (await kernel.listAddresses(hostIndex, 6)).find((a) => cidr6Contains(ROUTED6, parseIPv6(a.address)));
  if (!gw) return null;
  const via = (c: Cidr6): JoinRoute6 => ({ destination: formatCidr6(c), nextHop: gw.address });
  const halves = subnet6 && subnet6.len < 127 ? [cidr6(subnet6.base, subnet6.len + 1), cidr6(subnet6.base + (1n << BigInt(127 - subnet6.len)), subnet6.len + 1)] : [];
  return { gateway6: gw.address, routes6: [{ destination: `${gw.address}/128`, nextHop: null }, ...halves.map(via), ...(network6 ? [via(network6)] : [])] };
}
