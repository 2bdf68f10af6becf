/**
 * Connection-tracking bypass for overlay traffic, as data: what src/kernel/nft-notrack.ts writes to
 * nftables `ip raw` (iptables-nft's raw table) and what the logs print as iptables commands.
 *
 * Why: every routed overlay packet otherwise costs a conntrack lookup (and an entry per flow) on
 * both hosts, twice with vxlan (the inner packet and the outer UDP). Overlay ↔ overlay traffic is
 * never translated (the masquerade rules RETURN for it) and the FORWARD accept rules match on
 * addresses only, so it needs no tracking.
 * What stays tracked: traffic between this host's subnet and itself, so the reply of a container
 * reached through a published port of this host (DNAT) by a container on the same host is still
 * un-NATed; everything to or from outside the overlay (masquerade, published ports from outside).
 * So the inner rules are two, in this order: `-s S -d S -j ACCEPT` (this host's subnet S with
 * itself: ACCEPT ends the raw chain, conntrack still sees the packet) and `-s N -d N -j CT
 * --notrack` (the rest of the Network N). Every rule is evaluated for every packet that reaches it,
 * so the count matters: an earlier layout that paired S with each aligned block of N − S took
 * 2 × (subnet length − network length) rules, 16 for a /16 of /24s, and measurably cost throughput.
 * The outer vxlan UDP packets to and from this host's public address on the overlay's port are
 * untracked in PREROUTING and OUTPUT (the kernel's vxlan socket needs no state).
 * IPv6 (issue 21): the same rules for the IPv6Network, the v6 subnet and flannel-v6's public
 * IPv6 address (/128), in `ip6 raw`.
 * Caveat (README): a cross-host container reaching a published port of this host with its own
 * overlay address (its host not masquerading, IP_MASQ=false there) gets no un-DNAT on the reply.
 */
export type NotrackChain = 'PREROUTING' | 'OUTPUT';
export interface NotrackRule {
  chain: NotrackChain;
  src?: string;
  dst?: string;
  udpDport?: number;
  /** `-j CT --notrack`, or `-j ACCEPT` (leave the raw chain: the packet stays tracked). */
  verdict: 'notrack' | 'accept';
}

export function notrackComment(network: string): string {
  return `overlay-flannel notrack ${network}`;
}

/** The rules for Network `network`, this host's `subnet`, and (vxlan) the public IP and UDP port. */
export function notrackRules(network: string, subnet: string, vxlan: { publicIP: string; port: number } | null): NotrackRule[] {
  const out: NotrackRule[] = [];
  if (vxlan) {
    const host = `${vxlan.publicIP}/${vxlan.publicIP.includes(':') ? 128 : 32}`;
    out.push({ chain: 'PREROUTING', dst: host, udpDport: vxlan.port, verdict: 'notrack' });
    out.push({ chain: 'OUTPUT', src: host, udpDport: vxlan.port, verdict: 'notrack' });
  }
  out.push({ chain: 'PREROUTING', src: subnet, dst: subnet, verdict: 'accept' }, { chain: 'PREROUTING', src: network, dst: network, verdict: 'notrack' });
  return out;
}

/** A rule as `iptables -t raw -S` prints it (without the comment). */
export function notrackRuleText(r: NotrackRule): string {
  const parts = [`-A ${r.chain}`];
  if (r.src) parts.push(`-s ${r.src}`);
  if (r.dst) parts.push(`-d ${r.dst}`);
  if (r.udpDport !== undefined) parts.push(`-p udp -m udp --dport ${r.udpDport}`);
  parts.push(r.verdict === 'accept' ? '-j ACCEPT' : '-j CT --notrack');
  return parts.join(' ');
}

/** The equivalent iptables commands (for the log when nftables cannot be written). */
export function notrackCommands(network: string, rules: NotrackRule[]): string[] {
  const tool = network.includes(':') ? 'ip6tables' : 'iptables';
  return rules.map((r) => `${tool} -t raw ${notrackRuleText(r)} -m comment --comment "${notrackComment(network)}"`);
}
