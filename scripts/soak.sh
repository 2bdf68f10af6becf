#!/usr/bin/env bash
# npm run soak [-- --minutes N --seed S]: the long soak (test/soak/), as root, in a private network
# namespace like the test suites; installs what the labs need and builds first when needed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "the soak needs root (network namespaces, etcd, dockerd)" >&2; exit 1; }
bash scripts/ensure-packages.sh test
[ -d node_modules ] || npm ci --no-audit --no-fund
if [ ! -f dist/main.js ] || [ -n "$(find src -newer dist/main.js -name '*.ts' | head -1)" ]; then npm run build; fi
exec unshare --net sh -c 'ip link set lo up && exec "$@"' sh node --import tsx test/soak/soak.ts "$@"
