#!/usr/bin/env bash
# Client-observed downtime: a client network namespace resolving through hadns on port 53,
# a psql loop writing through db.example.internal (one connection per write), a PostgreSQL
# primary killed (SIGKILL) and its standby promoted at once. Prints the write gap and its
# parts. Needs root (namespaces, port 53, /etc/netns).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/packages.sh
install_packages postgresql iproute2
cargo bench -q --bench hadns -- downtime 2>/dev/null \
  | grep -E '^\||resolves for every|commits in all'
