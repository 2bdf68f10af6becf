/**
 * The public interface and address of this host, chosen as flanneld does: IFACE if given, else
 * the interface holding PUBLIC_IP, else the interface of the default route. The vxlan device sends
 * from the interface's own address; the lease publishes PUBLIC_IP (which may differ behind NAT).
 * IPv6 (issue 21, flanneld's --public-ipv6): the same interface's first global IPv6 address is the
 * local of flannel-v6.<VNI>; the lease publishes PUBLIC_IPV6 if set, else that address. Both are
 * absent when the interface has no global v6 address (an EnableIPv6 vxlan overlay then refuses
 * to start, as flanneld does).
 */
import type { Kernel, LinkInfo } from '../kernel';
import { invalid } from '../errors';
import { cidr, cidrContains, Cidr, formatCidr, parseIPv4 } from '../domain/ipv4';
import { formatIPv6, parseIPv6 } from '../domain/ipv6';

export interface PublicInterface {
  link: LinkInfo;
  address: string; // the interface's IPv4 address (vxlan local)
  publicIP: string; // what the lease publishes
  networks: Cidr[]; // directly connected networks, for "is this peer on-link?"
  address6?: string; // the interface's global IPv6 address (flannel-v6 local)
  publicIPv6?: string; // what a v6 lease publishes (PUBLIC_IPV6, else address6)
}

export async function resolvePublicInterface(kernel: Kernel, want: { iface?: string; publicIP?: string; publicIPv6?: string }): Promise<PublicInterface> {
  let link: LinkInfo | null = null;
  if (want.iface) {
    link = await kernel.getLink(want.iface);
    if (!link) throw invalid(`IFACE: no interface named "${want.iface}" on this host`);
  } else if (want.publicIP) {
    const ip = parseIPv4(want.publicIP);
    for (const l of await kernel.listLinks()) {
      const addrs = await kernel.listAddresses(l.index);
      if (addrs.some((a) => parseIPv4(a.address) === ip)) {
        link = l;
        break;
      }
    }
  }
  if (!link) link = await kernel.defaultRouteInterface();
  if (!link) throw invalid('no default route on this host to pick the public interface from: set IFACE (or PUBLIC_IP)');
  const addrs = await kernel.listAddresses(link.index);
  if (addrs.length === 0) throw invalid(`interface "${link.name}" has no IPv4 address: set IFACE to the interface that reaches the other hosts`);
  const primary = want.publicIP ? addrs.find((a) => a.address === want.publicIP) ?? addrs[0] : addrs[0];
  const global6 = (await kernel.listAddresses(link.index, 6)).filter((a) => !/^fe[89ab]/i.test(a.address));
  const wanted6 = want.publicIPv6 ? formatIPv6(parseIPv6(want.publicIPv6, 'PUBLIC_IPV6')) : undefined;
  const primary6 = global6.find((a) => a.address === wanted6) ?? global6[0];
  const publicIPv6 = wanted6 ?? primary6?.address;
  return {
    link,
    address: primary.address,
    publicIP: want.publicIP ?? primary.address,
    networks: addrs.map((a) => cidr(parseIPv4(a.address), a.prefixLen)),
    ...(primary6 ? { address6: primary6.address } : {}),
    ...(publicIPv6 ? { publicIPv6 } : {}),
  };
}

export function isOnLink(pub: PublicInterface, ip: string): boolean {
  const n = parseIPv4(ip);
  return pub.networks.some((c) => cidrContains(c, n));
}

export function describePublic(pub: PublicInterface): string {
  const v6 = pub.address6 ? `, IPv6 ${pub.address6}${pub.publicIPv6 && pub.publicIPv6 !== pub.address6 ? ` (public ${pub.publicIPv6})` : ''}` : '';
  return `${pub.link.name} (${pub.address}, ${pub.networks.map(formatCidr).join(', ')}), public IP ${pub.publicIP}${v6}`;
}
