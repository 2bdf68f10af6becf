#!/bin/sh
# The chosen interception (design note §3), for the lab's host netns $1 (iptables-nft + nft).
#  1. raw PREROUTING at raw (-300, BEFORE conntrack at -200): every udp/53 packet from a container veth ->
#     NFQUEUE 53 --queue-bypass (no resolver bound: accepted untouched). xt target via nft_compat
#     (this kernel has no nft_queue; iptables-nft writes it the same way).
#  2. raw+5 (still before conntrack): a packet the resolver marked gets conntrack zone 53, so an answered flow and a
#     forwarded flow with the same 5-tuple (Docker dials a new random port per query; UDP
#     conntrack entries live 30 s) never share a conntrack entry and its NAT decision.
#     raw OUTPUT: the resolver's replies are looked up in zone 53 too (to be un-DNATed).
#  3. nat prerouting at dstnat-1: marked packets DNATed to the resolver 169.254.53.53:53.
#  4. input guard: the resolver's address only takes DNATed packets from container veths.
set -eu
H=$1
ip netns exec $H iptables-nft -t mangle -F PREROUTING 2>/dev/null || true
ip netns exec $H nft delete table ip overlay-flannel-dns 2>/dev/null || true
ip netns exec $H nft -f - <<'NFT'
table ip overlay-flannel-dns {
  chain names-zone {
    type filter hook prerouting priority raw + 5; policy accept;
    iifname "ofh*" meta mark & 0x00100000 == 0x00100000 udp dport 53 counter ct zone set 53
  }
  chain names-reply-zone {
    type filter hook output priority raw - 5; policy accept;
    ip saddr 169.254.53.53 udp sport 53 counter ct zone set 53
  }
  chain names-dnat {
    type nat hook prerouting priority dstnat - 1; policy accept;
    iifname "ofh*" meta mark & 0x00100000 == 0x00100000 udp dport 53 counter dnat to 169.254.53.53:53
  }
  chain names-guard {
    type filter hook input priority filter - 1; policy accept;
    ip daddr 169.254.53.53 ct status dnat iifname "ofh*" counter accept
    ip daddr 169.254.53.53 counter drop
  }
}
NFT
# The xt NFQUEUE target (rev 3, --queue-bypass) via nft_compat, written here by iptables-nft into
# table ip raw; the plugin would write the same expressions over netlink (as it writes xt CT and
# MASQUERADE today), or the native `queue num 53 bypass` where nft_queue exists.
ip netns exec $H iptables-nft -t raw -I PREROUTING -i ofh+ -p udp --dport 53 -j NFQUEUE --queue-num 53 --queue-bypass
