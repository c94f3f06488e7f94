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

# Busy and total jiffies of the servers' CPU, from /proc/stat.
cpu_ticks() {
  awk -v c="cpu$SERVER_CPU" '$1 == c { busy = $2 + $3 + $4 + $7 + $8; total = busy + $5 + $6; print busy, total }' /proc/stat
}

echo "every server pinned to CPU $SERVER_CPU, dnsperf on CPU $CLIENT_CPU, ${L}s each."
echo "One dnsperf on one core can be the limit itself: 'per core' divides queries/s by the"
echo "share of CPU $SERVER_CPU the server used, the figure to compare."
for mix in failover static mix; do
  echo
  echo "## $mix"
  echo "| server | queries/s | lost | CPU $SERVER_CPU busy | queries/s per core | hadns per core / server per core |"
  echo "| --- | --- | --- | --- | --- | --- |"
  rows=""
  for sp in $servers; do
    read -r b0 t0 < <(cpu_ticks)
    line=$("$SHARED/qps.sh" -l "$L" -q "$D/$mix.q" "$sp" | tail -1)
    read -r b1 t1 < <(cpu_ticks)
    rows+="$line $(( b1 - b0 )) $(( t1 - t0 ))"$'\n'
  done
  awk 'NF >= 6 { name[NR]=$1; qps[NR]=$2; lost[NR]=$3; util[NR]=($6 > 0 ? $5/$6 : 0);
                 per[NR]=(util[NR] > 0 ? $2/util[NR] : 0); if ($1 == "hadns") h = per[NR] }
       END { for (i = 1; i in name; i++)
               printf "| %s | %.0f | %s | %.0f%% | %.0f | %.2f |\n", name[i], qps[i], lost[i], util[i]*100, per[i], (per[i] > 0 ? h/per[i] : 0) }' <<<"$rows"
done
