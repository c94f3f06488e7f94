#!/usr/bin/env bash
# Secondaries: NSD, Knot and BIND transfer from hadns on loopback. The time from a
# failover in hadns to each secondary answering the new address (median of 10 changes),
# and the NOTIFYs and transfers a burst of 100 changes in one second causes.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/packages.sh
install_packages nsd knot bind9 protobuf-compiler
cargo bench -q --bench hadns -- secondaries 2>/dev/null \
  | grep -E '^\||^$'
