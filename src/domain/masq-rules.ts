/**
 * flannel's ip-masq rule set (v0.20+, docs/flannel-compat.md §6) as data: what src/kernel/nft-masq.ts
 * writes to nftables `ip nat` POSTROUTING, and what the logs print as iptables commands when that
 * chain is missing. Pure: no I/O.
 * IPv6 (issue 21): flannel's MasqIP6Rules are the same five rules for IPv6Network and the v6
 * subnet, with ff00::/8 as the multicast exception, in `ip6 nat` (ip6tables).
 */
export const MULTICAST = '224.0.0.0/4';
export const MULTICAST6 = 'ff00::/8';
const isV6 = (cidr: string): boolean => cidr.includes(':');
export interface MasqRule {
  src?: string;
  srcNeg?: boolean;
  dst?: string;
  dstNeg?: boolean;
  action: 'RETURN' | 'MASQUERADE';
}

export function masqComment(network: string): string {
  return `overlay-flannel masq ${network}`;
}

/** flannel's v0.20+ rules for Network `network` and this host's subnet `subnet` (both v4, or both v6), in chain order. */
export function masqRules(network: string, subnet: string): MasqRule[] {
  return [
    { src: subnet, dst: network, action: 'RETURN' },
    { src: network, dst: subnet, action: 'RETURN' },
    { src: network, srcNeg: true, dst: subnet, action: 'RETURN' },
    { src: network, dst: isV6(network) ? MULTICAST6 : MULTICAST, dstNeg: true, action: 'MASQUERADE' },
    { src: network, srcNeg: true, dst: network, action: 'MASQUERADE' },
  ];
}

/** A rule as `iptables -t nat -S` prints it (without the comment), e.g. "-s 10.5.72.0/24 -d 10.5.0.0/16 -j RETURN". */
export function masqRuleText(r: MasqRule, randomFully = true): string {
  const parts: string[] = [];
  if (r.src) parts.push(`${r.srcNeg ? '! ' : ''}-s ${r.src}`);
  if (r.dst) parts.push(`${r.dstNeg ? '! ' : ''}-d ${r.dst}`);
  parts.push(`-j ${r.action}${r.action === 'MASQUERADE' && randomFully ? ' --random-fully' : ''}`);
  return parts.join(' ');
}

/** The equivalent iptables commands (for the log when there is no nftables nat chain). */
export function masqCommands(network: string, subnet: string): string[] {
  const tool = isV6(network) ? 'ip6tables' : 'iptables';
  return masqRules(network, subnet).map((r) => `${tool} -t nat -A POSTROUTING ${masqRuleText(r)} -m comment --comment "${masqComment(network)}"`);
}

