#!/usr/bin/env bash
# Failover time, side by side: how long after the primary backend stops accepting TCP each
# server answers only the secondary (../shared/bench/failover.py): hadns with interval
# 100ms beside gdnsd (2 s, its minimum interval) and PowerDNS (LUA ifportup, 1 s checks).
#   bench/failover.sh          # 5 rounds
#   ROUNDS=10 bench/failover.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
install_packages "${PEER_PACKAGES[@]}"
NO_BACKENDS=1 "$SHARED/peers.sh" start "$D/peers" >/dev/null
start_hadns 100ms
python3 "$SHARED/failover.py" -n "${ROUNDS:-5}" hadns:5305 gdnsd:5303 pdns:5304
