#!/bin/sh
# A HUNG resolver (SIGSTOP: queue still bound, nobody reading): with FAIL_OPEN the kernel accepts
# untouched whatever does not fit in the queue, so at most QUEUE_MAXLEN queries are held.
# usage: stoptest.sh TAG MAXLEN
set -eu
t=$1; m=${2:-16}; cd "$(dirname "$0")"
./lab.sh down $t; ./lab.sh up $t
ip netns exec $t-up node upstream.mjs > /tmp/$t-up.log 2>&1 & UP=$!
trap 'kill -CONT ${RES:-0} 2>/dev/null; kill $UP ${RES:-} 2>/dev/null || true; ./lab.sh down $t' EXIT
./rules-nfqueue.sh $t-host
QUEUE_MAXLEN=$m ip netns exec $t-host node nfq-resolver.mjs > /tmp/$t-res.log 2>&1 & RES=$!
sleep 1.5
kill -STOP $RES
echo "== resolver stopped, queue maxlen $m: 60 queries (300 ms timeout each)"
ip netns exec $t-ctr node client.mjs --timeout-ms 300 --max-seconds 30 --count 60 --names www.example.test,c2
kill -CONT $RES; sleep 0.5
echo "== resumed"
ip netns exec $t-ctr node client.mjs --timeout-ms 300 --max-seconds 10 --count 20 --names www.example.test,c2
