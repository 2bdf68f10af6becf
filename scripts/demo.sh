#!/usr/bin/env bash
# npm run demo [-- --keep]: installs what the demo needs (Debian packages, npm modules), builds,
# then runs scripts/demo.ts: two Docker hosts in network namespaces with etcd on their LAN, the
# managed plugin installed on both, and containers on different hosts talking over the overlay.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "the demo needs root (network namespaces, vxlan): sudo npm run demo" >&2; exit 1; fi
need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
command -v busybox >/dev/null || need+=(busybox-static)
command -v nsenter >/dev/null || need+=(util-linux)
[ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v iptables >/dev/null || need+=(iptables)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; trap 'rm -f /usr/sbin/policy-rc.d' EXIT; }
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
exec node --import tsx scripts/demo.ts "$@"
