#!/usr/bin/env bash
# Runs test suites with node's test runner, all files in one run (one summary for CI), inside a
# private network namespace: nothing a test does can touch the machine's own network. Labs make
# their own named namespaces from there. Needs root (unshare, netns, etcd, dockerd).
#   scripts/test.sh              every suite
#   scripts/test.sh unit kernel  only test/unit and test/kernel
set -euo pipefail
cd "$(dirname "$0")/.."
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(unit helpers store kernel lab faults)
files=()
for s in "${suites[@]}"; do
  while IFS= read -r f; do files+=("$f"); done < <(find "test/$s" -name '*.test.ts' 2>/dev/null | sort)
done
[ ${#files[@]} -gt 0 ] || { echo "no test files in: ${suites[*]}" >&2; exit 1; }
if [ "$(id -u)" != 0 ]; then
  echo "the tests need root (network namespaces, the kernel's vxlan, etcd, dockerd): run as root" >&2
  exit 1
fi
bash scripts/ensure-packages.sh test # nothing when all is there (as after .ci/run)
[ -d node_modules ] || npm ci --no-audit --no-fund
if [ ! -f dist/main.js ] || [ -n "$(find src -newer dist/main.js -name '*.ts' | head -1)" ]; then npm run build; fi
exec unshare --net sh -c 'ip link set lo up && exec node --import tsx --test --test-concurrency=1 "$@"' sh "${files[@]}"
