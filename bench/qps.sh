#!/usr/bin/env bash
# Query throughput, side by side: hadns and the peers of ../shared/bench (NSD, Knot, gdnsd,
# PowerDNS with a LUA record), every server pinned to one core (CPU $SERVER_CPU, default 1),
# dnsperf on the other (CPU $CLIENT_CPU, default 0), in one run. Three query mixes: the
# failover record, a static record, and a mix with NXDOMAIN and NODATA.
#   bench/qps.sh              # 10 s per server and mix
#   SECONDS_PER_RUN=30 bench/qps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
L=${SECONDS_PER_RUN:-10}
. bench/lib.sh
install_packages
"$SHARED/peers.sh" start "$D/peers" >/dev/null
start_hadns 100ms

printf 'db.svc.test A\n' > "$D/failover.q"
printf 'ns1.svc.test A\n' > "$D/static.q"
printf 'db.svc.test A\nns1.svc.test A\nnx%s.svc.test A\nns1.svc.test AAAA\ndb.svc.test AAAA\n' 1 > "$D/mix.q"

servers="hadns:5305 nsd:5301 knot:5302 gdnsd:5303 pdns:5304"
echo "queries/s, every server pinned to CPU $SERVER_CPU, dnsperf on CPU $CLIENT_CPU, ${L}s each"
for mix in failover static mix; do
  out=$("$SHARED/qps.sh" -l "$L" -q "$D/$mix.q" $servers)
  echo
  echo "## $mix"
  awk 'NR==1 {next} {qps[$1]=$2; lost[$1]=$3; order[NR]=$1}
       END {
         printf "| server | queries/s | lost | hadns / server |\n| --- | --- | --- | --- |\n";
         for (i=2; i in order; i++) { s=order[i];
           printf "| %s | %.0f | %s | %.2f |\n", s, qps[s], lost[s], (qps[s] > 0 ? qps["hadns"]/qps[s] : 0) }
       }' <<<"$out"
done
