#!/usr/bin/env bash
# Promotion: from a primary's SIGKILL to the first write accepted through the name by a
# client that reconnects at once, 10 rounds (ROUNDS=N to change), MariaDB (semi-sync) and
# PostgreSQL, single hadns, and MariaDB in cluster mode; median and max, and the median
# split into detection, fence, catch-up, promotion, publication and reconnect. Then a
# MariaDB primary whose host goes silent (its packets dropped with nftables: root), to the
# name's new answer. Results: docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/packages.sh
install_packages mariadb-server postgresql protobuf-compiler nftables
cargo bench -q --bench hadns -- promotion 2>/dev/null \
  | grep -E '^\||^$'

# Cluster mode: three members in namespaces, a three-member etcd, the same MariaDB trio on
# the cluster site (needs root for the namespaces; etcd-server, etcd-client and nftables
# as the test command installs them). Each round is the integration test's run; its line
# says when every member named the new primary and when the first write landed there.
install_packages etcd-server etcd-client nftables iproute2
cargo build -q --release --tests
times=()
for _ in $(seq "${ROUNDS:-10}"); do
  line=$(cargo test -q --release --test integration \
           cluster::promotion::the_leader -- --nocapture 2>&1 | grep 'writes acknowledged')
  echo "$line"
  times+=("$(sed -E 's/.*first write on m[23] ([0-9.]+)(ms|s) after.*/\1 \2/' <<<"$line" \
             | awk '{ print ($2 == "s") ? $1 * 1000 : $1 }')")
done
printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END {
  m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
  printf "| MariaDB 10.11, semi-sync, cluster of 3 | %d | %.0f ms | %.0f ms |\n", NR, m, a[NR] }'
