#!/usr/bin/env bash
# The README's run command: builds hadns and runs `hadns demo`. Installs what the build
# needs on a fresh Debian machine first: protoc, with which the etcd-client crate compiles
# etcd's gRPC API (cluster mode).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/packages.sh
command -v protoc >/dev/null 2>&1 || install_packages protobuf-compiler
exec cargo run --release -- demo "$@"
