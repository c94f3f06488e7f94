#!/usr/bin/env bash
# The randomized fault test (tests/integration/cluster/nemesis.rs) for as long as asked:
# SECONDS_PER_RUN (default 600) per run, RUNS runs (default 1), each with a seed of its
# own (printed; HADNS_NEMESIS_SEED=... replays one). Needs root (network namespaces) and
# etcd (installed here when missing). Each run prints its faults and the checker's figures;
# a run that shows two writers usable at once fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/packages.sh
install_packages etcd-server etcd-client protobuf-compiler iproute2 nftables
runs="${RUNS:-1}"
failed=0
for run in $(seq 1 "$runs"); do
  echo "## run $run of $runs"
  # A failing run does not stop the others; the script fails at the end.
  if ! HADNS_NEMESIS_SECONDS="${SECONDS_PER_RUN:-600}" \
    cargo test -q --release --test integration -- cluster::nemesis --nocapture 2>&1 \
    | grep --line-buffered -E '^nemesis:|panicked|^test result'; then
    failed=$((failed + 1))
  fi
done
echo "## $failed of $runs runs failed"
[ "$failed" -eq 0 ]
