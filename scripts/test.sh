#!/usr/bin/env bash
# Runs test suites with node's test runner, all files in one run (one summary for CI).
#   scripts/test.sh              every suite
#   scripts/test.sh unit kernel  only test/unit and test/kernel
# Root and the unit suite: test/unit needs no privilege (fakes, unix sockets in $TMPDIR, loopback),
# so anyone can run it: `npm run test:unit` as a plain user runs node directly, installs nothing
# and makes no namespace. Every other suite (helpers, store, kernel, lab, faults) starts etcd,
# dockerd or network namespaces and needs root; run as root, the whole run happens inside a private
# network namespace (unshare), so nothing a test does touches the machine's own network, and labs
# make their own named namespaces from there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_SUITES=(helpers store kernel lab faults)
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(unit "${ROOT_SUITES[@]}")
files=()
needs_root=()
for s in "${suites[@]}"; do
  [ "$s" = unit ] || needs_root+=("$s")
  while IFS= read -r f; do files+=("$f"); done < <(find "test/$s" -name '*.test.ts' 2>/dev/null | sort)
done
[ ${#files[@]} -gt 0 ] || { echo "no test files in: ${suites[*]}" >&2; exit 1; }
runner=(node --import tsx --test --test-concurrency=1)

if [ "$(id -u)" != 0 ]; then
  if [ ${#needs_root[@]} -gt 0 ]; then
    echo "the ${needs_root[*]} suite(s) need root (network namespaces, the kernel's vxlan, etcd, dockerd): run them as root;" \
      "the unit suite alone needs none: npm run test:unit" >&2
    exit 1
  fi
  [ -d node_modules ] || { echo "node_modules is missing: run npm ci first" >&2; exit 1; }
  exec "${runner[@]}" "${files[@]}"
fi

bash scripts/ensure-packages.sh test # nothing when all is there (as after .ci/run)
[ -d node_modules ] || npm ci --no-audit --no-fund
# dist/ is what the labs run (the daemon, the plugin image); the unit suite imports src/ only.
if [ ${#needs_root[@]} -gt 0 ] && { [ ! -f dist/main.js ] || [ -n "$(find src -newer dist/main.js -name '*.ts' | head -1)" ]; }; then npm run build; fi
exec unshare --net sh -c 'ip link set lo up && exec "$@"' sh "${runner[@]}" "${files[@]}"
