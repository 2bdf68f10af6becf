#!/usr/bin/env bash
# scripts/ensure-packages.sh demo|test: installs the Debian packages that `npm run demo` or
# `npm test` needs and this machine lacks (a fresh Debian 12 has none of them), as root.
# While installing, a policy-rc.d forbids service starts: the etcd-server and docker.io packages
# would start etcd on 2379 and a dockerd; the demo and the tests start their own.
# `--list demo|test` prints every package of that list instead (.ci/run installs them all), so
# the list lives here only.
set -euo pipefail
list=0
if [ "${1:-}" = --list ]; then list=1; shift; fi
what=${1:?usage: ensure-packages.sh [--list] demo|test}
need=()
all=()
want() { # want PACKAGE CHECK: CHECK is a command name or an absolute path
  all+=("$1")
  case "$2" in
    /*) [ -e "$2" ] || need+=("$1") ;;
    *) command -v "$2" >/dev/null || need+=("$1") ;;
  esac
}
want etcd-server etcd
want etcd-client etcdctl
want iproute2 ip
want iputils-ping ping
want busybox-static busybox
want util-linux nsenter
want docker.io /usr/sbin/dockerd
want iptables iptables
want python3-minimal python3 # the LAN's small DNS server (demo, labs) and DNS-like clients in netns (tests)
if [ "$what" = test ]; then
  want nftables nft
  want ethtool ethtool
  want iperf3 iperf3
  want socat socat # test/lab/docker-multicast.test.ts: joins groups inside containers (copied into the image)
  want tcpdump tcpdump # test/lab/docker-multicast.test.ts: counts the vxlan copies on the LAN
  want docker-registry /usr/bin/docker-registry
  want openssl openssl
  want procps ps
  want curl curl
  want ca-certificates /etc/ssl/certs/ca-certificates.crt
  want wireguard-tools wg # test/unit/wireguard-key.test.ts: `wg pubkey` cross-checks our X25519 public key; test/lab/overlay-wireguard.test.ts: `wg set` (a flanneld-style host), `wg show dump`
  want wireguard-go wireguard-go # the wireguard backend's userspace device (this kernel has no WireGuard), also copied into the managed plugin (scripts/plugin-build.ts); its kernel tests and labs
  want chromium chromium
  want fonts-liberation /usr/share/fonts/truetype/liberation
fi
if [ "$list" = 1 ]; then
  echo "${all[*]}"
  exit 0
fi
[ ${#need[@]} -gt 0 ] || exit 0
echo "== installing ${need[*]}"
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
DEBIAN_FRONTEND=noninteractive apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
