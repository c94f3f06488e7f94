#!/usr/bin/env bash
# Cluster mode: failover to the last of three members beside a single hadns (10 rounds),
# the disagreement window between members, etcd writes with 1,000 nodes. Needs root (the
# members run in network namespaces) and etcd (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/packages.sh
install_packages etcd-server etcd-client protobuf-compiler iproute2 nftables
cargo bench -q --bench hadns -- cluster 2>/dev/null \
  | grep -E '^\||^$'
