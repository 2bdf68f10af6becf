#!/bin/sh
# Latency of overlay names and forwarded names, baseline (no interception) vs the chosen
# mechanism, on a fresh lab (fresh conntrack). Sequential queries, bounded in count and time.
# usage: bench.sh TAG COUNT
set -eu
t=$1; n=${2:-3000}; cd "$(dirname "$0")"
./lab.sh down $t; ./lab.sh up $t
ip netns exec $t-up node upstream.mjs > /tmp/$t-up.log 2>&1 & UP=$!
trap 'kill $UP ${RES:-} 2>/dev/null || true; ./lab.sh down $t' EXIT
sleep 1
C="ip netns exec $t-ctr node client.mjs --timeout-ms 500 --max-seconds 40 --count $n"
echo "== baseline (no rules, no resolver)"
$C --names c2; $C --names www.example.test
./rules-nfqueue.sh $t-host
ip netns exec $t-host node nfq-resolver.mjs > /tmp/$t-res.log 2>&1 & RES=$!
sleep 1
echo "== interception (NFQUEUE decision + zone + DNAT for overlay names)"
$C --names c2; $C --names www.example.test; $C --names c2,www.example.test,web,secret
echo "== baseline again, rules in place but resolver SIGKILLed (fail-open: queue unbound)"
kill -9 $RES; RES=; sleep 0.5
$C --names c2; $C --names www.example.test
echo "== upstream saw:"; kill -USR2 $UP; sleep 0.3; tail -1 /tmp/$t-up.log
