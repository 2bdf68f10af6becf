#!/bin/sh
# Spike lab for issue 16: three network namespaces, nothing in the root namespace.
#   <tag>-ctr   "container": 10.1.15.7/32 on eth0, default via 169.254.1.1 (routed data path)
#   <tag>-host  "host": ofh<tag> (host veth end, route 10.1.15.7/32), 169.254.1.1 and 169.254.53.53 (the resolver) on lo (no dummy module here)
#               lan0 192.0.2.1/24,
#               forwarding + masquerade of 10.1.0.0/16 (like the plugin's masq rule)
#   <tag>-up    "upstream DNS": 192.0.2.254/24 (node upstream.mjs)
# usage: lab.sh up TAG | lab.sh down TAG
set -eu
cmd=$1; t=$2
H=$t-host; C=$t-ctr; U=$t-up
if [ "$cmd" = down ]; then
  for n in $H $C $U; do ip netns del $n 2>/dev/null || true; done
  exit 0
fi
for n in $H $C $U; do ip netns add $n; ip -n $n link set lo up; done
ip -n $H link add ofh$t type veth peer name eth0 netns $C
ip -n $H link set ofh$t up
ip -n $C addr add 10.1.15.7/32 dev eth0
ip -n $C link set eth0 up
ip -n $C route add 169.254.1.1 dev eth0 scope link
ip -n $C route add default via 169.254.1.1 dev eth0

ip -n $H addr add 169.254.1.1/32 dev lo

ip -n $H addr add 169.254.53.53/32 dev lo
ip -n $H route add 10.1.15.7/32 dev ofh$t
ip -n $H link add lan0 type veth peer name lan0 netns $U
ip -n $H addr add 192.0.2.1/24 dev lan0; ip -n $H link set lan0 up
ip -n $U addr add 192.0.2.254/24 dev lan0; ip -n $U link set lan0 up
ip netns exec $H sysctl -qw net.ipv4.ip_forward=1
ip netns exec $H nft -f - <<NFT
table ip labnat {
  chain post { type nat hook postrouting priority srcnat; ip saddr 10.1.0.0/16 ip daddr != 10.1.0.0/16 masquerade; }
}
NFT
