#!/usr/bin/env bash
# Query throughput, side by side: hadns and the peers of ../shared/bench (NSD, Knot, gdnsd,
# PowerDNS with a LUA record), every server pinned to one core (CPU $SERVER_CPU, default 1),
# dnsperf on the other (CPU $CLIENT_CPU, default 0), in one run. Three query mixes: the
# failover record, a static record, and a mix with NXDOMAIN and NODATA. A fourth, by_site:
# the failover record with an EDNS Client Subnet, on hadns (the plain record: scope 0) and
# on a hadns whose record is answered by site (port 5307), with subnets of dc1, of dc2 and
# of no site.
#
# Each mix is measured ROUNDS times (default 3), the servers' order rotating each round so
# none always runs first or last; the table shows each server's median.
#   bench/qps.sh                         # 10 s per server, mix and round
#   SECONDS_PER_RUN=30 ROUNDS=5 bench/qps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
L=${SECONDS_PER_RUN:-10}
ROUNDS=${ROUNDS:-3}
. bench/lib.sh
install_packages "${PEER_PACKAGES[@]}"
"$SHARED/peers.sh" start "$D/peers" >/dev/null
start_hadns 100ms
# The same hadns without UDP coalescing, on port 5306, to show what that setting
# contributes in the same run.
start_hadns 100ms 5306 'udp_coalesce = "0us"'
# The same record answered by site.
start_hadns 100ms 5307 '' sites

printf 'db.svc.test A\n' > "$D/failover.q"
printf 'ns1.svc.test A\n' > "$D/static.q"
printf 'db.svc.test A\nns1.svc.test A\nnx%s.svc.test A\nns1.svc.test AAAA\ndb.svc.test AAAA\n' 1 > "$D/mix.q"

servers=(hadns:5305 hadns-nocoalesce:5306 nsd:5301 knot:5302 gdnsd:5303 pdns:5304)
by_site=(hadns:5305:000118000a0102 hadns-dc1:5307:000118000a0102 hadns-dc2:5307:000118000a0203
         hadns-nosite:5307:00011800c00002)

# Busy and total jiffies of the servers' CPU, from /proc/stat.
cpu_ticks() {
  awk -v c="cpu$SERVER_CPU" '$1 == c { busy = $2 + $3 + $4 + $7 + $8; total = busy + $5 + $6; print busy, total }' /proc/stat
}

echo "every server pinned to CPU $SERVER_CPU, dnsperf on CPU $CLIENT_CPU, ${L}s each, $ROUNDS rounds (medians)."
echo "One dnsperf on one core can be the limit itself: 'per core' divides queries/s by the"
echo "share of CPU $SERVER_CPU the server used, the figure to compare."
: > "$D/results"
for round in $(seq 1 "$ROUNDS"); do
  for mix in failover static mix by_site; do
    if [ "$mix" = by_site ]; then list=("${by_site[@]}"); else list=("${servers[@]}"); fi
    n=${#list[@]}
    for i in $(seq 0 $((n - 1))); do
      sp=${list[$(( (i + round - 1) % n ))]}
      read -r b0 t0 < <(cpu_ticks)
      if [ "$mix" = by_site ]; then
        # name:port:ECS option (RFC 7871 wire form, hex): family 1, source 24, scope 0.
        IFS=: read -r name port ecs <<<"$sp"
        out=$(taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$D/failover.q" -l "$L" \
              -c 8 -q 200 -t 2 -E "8:$ecs" 2>&1)
        line=$(printf '%s %s %s %s' "$name" \
          "$(awk '/Queries per second/{print $4}' <<<"$out")" \
          "$(awk '/Queries lost/{print $3}' <<<"$out")" \
          "$(awk '/Average Latency/{print $4*1000}' <<<"$out")")
      else
        line=$("$SHARED/qps.sh" -l "$L" -q "$D/$mix.q" "$sp" | tail -1)
      fi
      read -r b1 t1 < <(cpu_ticks)
      # mix server qps lost latency_ms busy total
      echo "$mix $line $(( b1 - b0 )) $(( t1 - t0 ))" >> "$D/results"
    done
  done
done

python3 - "$D/results" "$SERVER_CPU" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 7]
cpu = sys.argv[2]
for mix in ("failover", "static", "mix", "by_site"):
    print(f"\n## {mix}")
    print(f"| server | queries/s | lost | avg latency | CPU {cpu} busy | queries/s per core | hadns per core / server per core |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    by = {}
    for m, name, qps, lost, lat, busy, total in rows:
        if m != mix or qps == "?":
            continue
        util = int(busy) / int(total) if int(total) else 0
        by.setdefault(name, []).append((float(qps), int(lost), float(lat), util))
    def med(v): return statistics.median(v)
    per = {n: med([q / u for q, _, _, u in v if u > 0] or [0]) for n, v in by.items()}
    for name, v in by.items():
        util = med([u for *_, u in v])
        # A server that used under 10% of the pinned CPU did not run there (Knot pins
        # its own worker threads): its per-core figure would be meaningless.
        pinned = util >= 0.10
        ratio = f"{per['hadns'] / per[name]:.2f}" if pinned and per.get(name) else "-"
        print(f"| {name} | {med([q for q, *_ in v]):.0f} | {med([l for _, l, *_ in v]):.0f} "
              f"| {med([x for _, _, x, _ in v]) * 1000:.0f} µs | {util * 100:.0f}% "
              f"| {per[name]:.0f} | {ratio} |" if pinned else
              f"| {name} | {med([q for q, *_ in v]):.0f} | {med([l for _, l, *_ in v]):.0f} "
              f"| {med([x for _, _, x, _ in v]) * 1000:.0f} µs | {util * 100:.0f}% | (not pinned) | - |")
PY
