#!/bin/sh
# What a container sees while the resolver is SIGKILLed and restarted (fail-open), for
#  (1) the chosen NFQUEUE design, and (2) alternative (a)/(d) "DNAT every query to our resolver"
#  with no resolver listening (what a SIGKILL leaves until rules are removed).
# usage: killtest.sh TAG
set -eu
t=$1; cd "$(dirname "$0")"
./lab.sh down $t; ./lab.sh up $t
ip netns exec $t-up node upstream.mjs > /tmp/$t-up.log 2>&1 & UP=$!
trap 'kill $UP ${RES:-} ${CL:-} 2>/dev/null || true; ./lab.sh down $t' EXIT
./rules-nfqueue.sh $t-host
ip netns exec $t-host node nfq-resolver.mjs > /tmp/$t-res.log 2>&1 & RES=$!
sleep 1.5
echo "== (1) NFQUEUE design: 2000 queries, 2 ms apart; SIGKILL at ~1.5 s, restart at ~4 s"
ip netns exec $t-ctr node client.mjs --timeout-ms 1000 --max-seconds 30 --count 2000 --interval-ms 2 --names c2,www.example.test > /tmp/$t-kill.json & CL=$!
sleep 1.5; kill -9 $RES; echo "killed at $(date +%s.%N)"; sleep 2.5
ip netns exec $t-host node nfq-resolver.mjs > /tmp/$t-res2.log 2>&1 & RES=$!
wait $CL; CL=; cat /tmp/$t-kill.json
kill $RES; RES=
echo "== (2) DNAT-all with nobody listening on the DNAT target"
ip netns exec $t-host iptables-nft -t raw -F PREROUTING
ip netns exec $t-host nft delete table ip overlay-flannel-dns
ip netns exec $t-host nft add table ip dnatall
ip netns exec $t-host nft add chain ip dnatall pre '{ type nat hook prerouting priority dstnat - 1; }'
ip netns exec $t-host nft add rule ip dnatall pre iifname "ofh*" udp dport 53 dnat to 169.254.53.53:5300
ip netns exec $t-ctr node client.mjs --timeout-ms 1000 --max-seconds 10 --count 5 --names www.example.test
