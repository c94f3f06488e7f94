#!/usr/bin/env bash
# Promotion: from a primary's SIGKILL to the first write accepted through the name by a
# client that reconnects at once, 10 rounds (ROUNDS=N to change), MariaDB (semi-sync) and
# PostgreSQL, single hadns; median and max, and the median split into detection, fence,
# catch-up, promotion, publication and reconnect. Results: docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/packages.sh
install_packages mariadb-server postgresql protobuf-compiler
cargo bench -q --bench hadns -- promotion 2>/dev/null \
  | grep -E '^\||^$'
