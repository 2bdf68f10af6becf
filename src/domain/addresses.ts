/**
 * Endpoint addresses inside a host's lease. Reserved: the network address (.0, it is the vxlan
 * device's /32 and flannel's next hop), the gateway (.1, the bridge) and the broadcast address.
 */
import { Cidr, cidrContains, cidrSize, formatCidr, formatIPv4, nthAddress, parseIPv4 } from './ipv4';
import { conflict, invalid } from '../errors';

export function gatewayOf(subnet: Cidr): number {
  return nthAddress(subnet, 1);
}

export function isReservedAddress(subnet: Cidr, ip: number): boolean {
  const offset = (ip - subnet.base) >>> 0;
  return offset === 0 || offset === 1 || offset === cidrSize(subnet) - 1;
}

/** Validate a requested address against the lease; returns it as u32. */
export function checkRequestedAddress(subnet: Cidr, text: string): number {
  const ip = parseIPv4(text, 'requested address');
  if (!cidrContains(subnet, ip)) throw invalid(`address ${text} is not in this host's subnet ${formatCidr(subnet)}`);
  if (isReservedAddress(subnet, ip)) {
    throw conflict(`address ${text} is reserved in ${formatCidr(subnet)} (network, gateway .1 or broadcast)`);
  }
  return ip;
}

/**
 * Free host addresses of the subnet in allocation order, starting after `after` (round-robin, so
 * a just-released address is not handed out again at once), skipping reserved and taken ones.
 */
export function* freeAddresses(subnet: Cidr, taken: { has(ip: number): boolean }, after?: number): Generator<number> {
  const size = cidrSize(subnet);
  const start = after !== undefined && cidrContains(subnet, after) ? (after - subnet.base + 1) % size : 2;
  for (let i = 0; i < size; i++) {
    const ip = nthAddress(subnet, (start + i) % size);
    if (isReservedAddress(subnet, ip) || taken.has(ip)) continue;
    yield ip;
  }
}

export function addressWithPrefix(ip: number, subnet: Cidr): string {
  return `${formatIPv4(ip)}/${subnet.len}`;
}
