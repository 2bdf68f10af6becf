#!/usr/bin/env bash
# npm run demo [-- --keep]: installs what the demo needs (Debian packages, npm modules), builds,
# then runs scripts/demo.ts: two Docker hosts in network namespaces with etcd on their LAN, the
# managed plugin installed on both, and containers on different hosts talking over the overlay.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "the demo needs root (network namespaces, vxlan): sudo npm run demo" >&2; exit 1; fi
bash scripts/ensure-packages.sh demo
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
exec node --import tsx scripts/demo.ts "$@"
