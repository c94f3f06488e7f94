#!/usr/bin/env bash
# Soak: hadns for SECONDS (default 3600) at half of its measured saturation (or QPS), with a
# backend flapping every second, a reload every minute, TCP clients coming and going and
# ~500 malformed packets a second. Prints memory (VmRSS) and open descriptors once a second
# and dnsperf's summary; fails if memory grows (last quarter over the first quarter's peak
# by more than 25 % + 4 MB), queries are lost (over 0.5 %), any answer for the failover
# name is empty, or descriptors do not return to their start.
#
#   bench/soak.sh [SECONDS [QPS]]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/packages.sh
install_packages dnsperf python3
seconds=${1:-3600}
qps=${2:-}
if [ -z "$qps" ]; then
  # Saturation: dnsperf unthrottled for 10 s against hadns with the soak's query mix.
  D=$(mktemp -d)
  trap 'kill $(cat "$D/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$D"' EXIT
  cargo build --release -q
  mkdir -p "$D/zones"
  cp tests/invalid/zones/example.internal.zone "$D/zones/"
  printf '[dns]\nlisten = ["127.0.0.1:5399"]\nzones_dir = "zones"\n' > "$D/hadns.toml"
  target/release/hadns serve --config "$D/hadns.toml" --log-level warn > "$D/log" 2>&1 &
  echo $! > "$D/pid"
  printf 'mail.example.internal. A\nns1.example.internal. A\nnope.example.internal. A\n' > "$D/q"
  for _ in $(seq 50); do dnsperf -s 127.0.0.1 -p 5399 -d "$D/q" -l 1 -Q 10 >/dev/null 2>&1 && break || sleep 0.1; done
  saturation=$(dnsperf -s 127.0.0.1 -p 5399 -d "$D/q" -l 10 -c 8 -t 2 | awk '/Queries per second/ {print int($4)}')
  kill "$(cat "$D/pid")"
  qps=$((saturation / 2))
  echo "saturation ${saturation} q/s; soaking at ${qps} q/s for ${seconds} s"
fi
HADNS_SOAK_SECONDS=$seconds HADNS_SOAK_QPS=$qps \
  cargo bench -q --bench hadns -- soak 2>&1 \
  | grep -vE '^hadns [0-9]+\|'
