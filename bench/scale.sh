#!/usr/bin/env bash
# Scale: hadns checking 100, 1,000 and 10,000 tcp nodes every second (CPU share of one
# core and RSS), the time to build a snapshot with 100, 1,000 and 10,000 records, and
# with 1,000 to 50,000 static records beside one failover record (and hadns's RSS).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q --bench hadns -- scale 2>/dev/null \
  | grep -E '^\|'
