#!/usr/bin/env bash
# Runs every test of hadns. Installs what the tests need on a fresh Debian machine first.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use beyond the Rust toolchain (later database and
# network-namespace tests add theirs here).
needed=(ca-certificates)
missing=()
for pkg in "${needed[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -q && apt-get install -y -q "${missing[@]}"
fi

cargo test --release --all-targets "$@"
