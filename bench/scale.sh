#!/usr/bin/env bash
# Scale: hadns checking 100, 1,000 and 10,000 tcp nodes every second (CPU share of one
# core and RSS), and the time to build a snapshot with 100, 1,000 and 10,000 records.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q --bench hadns -- scale 2>/dev/null \
  | grep -E '^\|'
