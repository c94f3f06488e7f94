#!/usr/bin/env bash
# Coverage-guided fuzzing of everything hadns reads from outside: DNS packets (the whole
# request path: fast path, hadns's own checks, hickory, UDP and TCP), zone files and config
# files. Uses cargo-fuzz (libFuzzer) on the stable toolchain (RUSTC_BOOTSTRAP=1 for the
# sanitizer flags).
#
#   bench/fuzz.sh [seconds per target] [target...]     default: 600 s, every target
#
# New coverage goes to fuzz/target/corpus/<target> (not committed); the seeds in
# fuzz/corpus/<target> are read only. Every crash, timeout or out-of-memory input is copied
# to fuzz/regressions/<target>/, which the test command replays (tests/fuzz_regressions.rs):
# commit it with the fix. Prints executions and time per target at the end.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request_path zone_file config_file)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O

summary=()
for target in "${targets[@]}"; do
  mkdir -p "target/corpus/$target" "artifacts/$target" "regressions/$target"
  # Findings of earlier runs are in regressions/ already.
  rm -f "artifacts/$target"/*
  log="target/fuzz-$target.log"
  started=$(date +%s)
  status=0
  cargo fuzz run -O "$target" "target/corpus/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 \
    -artifact_prefix="artifacts/$target/" -print_final_stats=1 2>"$log" || status=$?
  took=$(( $(date +%s) - started ))
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  found=0
  for artifact in "artifacts/$target"/*; do
    [ -e "$artifact" ] || continue
    cp "$artifact" "regressions/$target/"
    found=$((found + 1))
  done
  summary+=("$target: $runs executions in ${took}s, exit $status, $found findings")
done
printf '%s\n' "${summary[@]}"
