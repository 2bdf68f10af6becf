/**
 * The public interface and address of this host, chosen as flanneld does: IFACE if given, else
 * the interface holding PUBLIC_IP, else the interface of the default route. The vxlan device sends
 * from the interface's own address; the lease publishes PUBLIC_IP (which may differ behind NAT).
 */
import type { Kernel, LinkInfo } from '../kernel';
import { invalid } from '../errors';
import { cidr, cidrContains, Cidr, formatCidr, parseIPv4 } from '../domain/ipv4';

export interface PublicInterface {
  link: LinkInfo;
  address: string; // the interface's IPv4 address (vxlan local)
  publicIP: string; // what the lease publishes
  networks: Cidr[]; // directly connected networks, for "is this peer on-link?"
}

export async function resolvePublicInterface(kernel: Kernel, want: { iface?: string; publicIP?: string }): Promise<PublicInterface> {
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
  return {
    link,
    address: primary.address,
    publicIP: want.publicIP ?? primary.address,
    networks: addrs.map((a) => cidr(parseIPv4(a.address), a.prefixLen)),
  };
}

export function isOnLink(pub: PublicInterface, ip: string): boolean {
  const n = parseIPv4(ip);
  return pub.networks.some((c) => cidrContains(c, n));
}

export function describePublic(pub: PublicInterface): string {
  return `${pub.link.name} (${pub.address}, ${pub.networks.map(formatCidr).join(', ')}), public IP ${pub.publicIP}`;
}
