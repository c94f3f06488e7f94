#!/usr/bin/env bash
# VIP switchover benchmark: the gap a client sees when the primary's service dies, for
# hadns (interval 100ms) and keepalived (VRRPv3, advert_int 1 and 0.1, track_script on the
# same service), in the same network-namespace topology, in one run. Needs root.
#   bench/vip-switchover.sh            # 7 rounds per contender
#   HADNS_BENCH_ROUNDS=15 bench/vip-switchover.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/packages.sh
install_packages keepalived iproute2 python3
cargo bench -q --bench hadns -- vip-switchover 2>/dev/null \
  | grep -E '^\||rounds each|: \['
