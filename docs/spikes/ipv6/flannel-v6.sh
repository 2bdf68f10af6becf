#!/bin/sh
# Spike (issue 21, stage 3 groundwork): flanneld's v6 vxlan data plane, programmed by hand with
# iproute2 exactly as pkg/backend/vxlan does it, between two scratch network namespaces on an IPv6
# underlay (2001:db8::/64 on a veth pair). Nothing outside the two namespaces is touched.
#   flannel-v6.1: vxlan id 1, dev eth0, local <PublicIPv6>, nolearning, no dstport (kernel 8472),
#                 created with MTU parent - 50 (flannel's device.go asks the same -50 as for v4;
#                 vxlan over IPv6 costs 70), accept_ra 0, address <v6 subnet base>/128
#   per peer:     neighbour <peer subnet base> -> VtepMAC, FDB VtepMAC -> PublicIPv6,
#                 route <peer subnet> via <peer subnet base> onlink (in that order)
# Then ping6 between the hosts' v6 subnet addresses, the MTU the device really got, and pings with
# DF that fill it exactly and by one byte more.
# usage: flannel-v6.sh   (as root; prints results; cleans up on exit)
set -eu
t=v6sp$$; A=$t-a; B=$t-b
trap 'ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true' EXIT
ip netns add $A; ip netns add $B
ip link add $t-x netns $A type veth peer name $t-y netns $B
ip -n $A link set $t-x name eth0; ip -n $B link set $t-y name eth0
for ns in $A $B; do ip -n $ns link set lo up; ip -n $ns link set eth0 mtu 1500 up; done
ip -n $A -6 addr add 2001:db8::a/64 dev eth0 nodad
ip -n $B -6 addr add 2001:db8::b/64 dev eth0 nodad
MAC_A=0e:2a:06:00:00:0a; MAC_B=0e:2a:06:00:00:0b
dev() { # ns local mac subnet-base mtu
  ip -n $1 link add flannel-v6.1 mtu $5 type vxlan id 1 dev eth0 local $2 dstport 0 nolearning
  ip netns exec $1 sysctl -qw net.ipv6.conf.flannel-v6/1.accept_ra=0
  ip -n $1 link set flannel-v6.1 address $3 up
  ip -n $1 -6 addr add $4/128 dev flannel-v6.1 nodad
}
peer() { # ns peer-subnet-base peer-mac peer-public
  ip -n $1 -6 neigh replace $2 lladdr $3 dev flannel-v6.1 nud permanent
  ip netns exec $1 bridge fdb replace $3 dev flannel-v6.1 dst $4 self permanent
  ip -n $1 -6 route replace $2/64 via $2 dev flannel-v6.1 onlink
}
run() { # mtu asked for
  ip -n $A link del flannel-v6.1 2>/dev/null || true; ip -n $B link del flannel-v6.1 2>/dev/null || true
  dev $A 2001:db8::a $MAC_A fd00:10:0:1:: $1; dev $B 2001:db8::b $MAC_B fd00:10:0:2:: $1
  peer $A fd00:10:0:2:: $MAC_B 2001:db8::b; peer $B fd00:10:0:1:: $MAC_A 2001:db8::a
  got=$(ip netns exec $A cat /sys/class/net/flannel-v6.1/mtu)
  echo "== created with MTU $1 (parent 1500 - $((1500 - $1))): the kernel gave it $got"
  echo "-- setting $1 afterwards: $(ip -n $A link set flannel-v6.1 mtu $1 2>&1 || true)"
  ip -n $A -d link show flannel-v6.1 | sed -n '3p' | sed 's/^ *//' | cut -c1-120
  ip -n $A -6 addr show dev flannel-v6.1 scope global | grep inet6 | sed 's/^ */addr:  /'
  ip -n $A -6 route show dev flannel-v6.1 | sed 's/^/route: /'
  ip -n $A -6 neigh show dev flannel-v6.1 | sed 's/^/neigh: /'
  ip netns exec $A bridge fdb show dev flannel-v6.1 | grep 2001 | sed 's/^/fdb:   /'
  ip netns exec $A ping -6 -c 5 -i 0.2 -W 2 -I fd00:10:0:1:: fd00:10:0:2:: | tail -2
  for s in $((got - 48)) $((got - 47)); do # ICMPv6 payload: the packet is s + 48 (IPv6 + ICMPv6 headers)
    echo "-- DF, ${s}-byte payload = $((s + 48))-byte packet (outer IPv6 packet $((s + 48 + 70)) bytes)"
    ip netns exec $A ping -6 -M do -c 3 -i 0.2 -W 2 -s $s -I fd00:10:0:1:: fd00:10:0:2:: 2>&1 | tail -2 || true
  done
}
run 1450
