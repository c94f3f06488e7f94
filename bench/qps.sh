#!/usr/bin/env bash
# Query throughput, side by side: hadns and the peers of ../shared/bench (NSD, Knot, gdnsd,
# PowerDNS with a LUA record), every server pinned to one core (CPU $SERVER_CPU, default 1),
# dnsperf on the other (CPU $CLIENT_CPU, default 0), in one run. Three query mixes: the
# failover record, a static record, and a mix with NXDOMAIN and NODATA.
#   bench/qps.sh              # 10 s per server and mix
#   SECONDS_PER_RUN=30 bench/qps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=$(cd "${SHARED:-../shared/bench}" && pwd)
L=${SECONDS_PER_RUN:-10}
export SERVER_CPU=${SERVER_CPU:-1} CLIENT_CPU=${CLIENT_CPU:-0}

missing=()
for pkg in dnsperf nsd knot gdnsd pdns-server pdns-backend-bind python3; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
cargo build --release -q

D=$(mktemp -d)
cleanup() {
  [ -f "$D/hadns.pid" ] && kill "$(cat "$D/hadns.pid")" 2>/dev/null || true
  "$SHARED/peers.sh" stop "$D/peers" >/dev/null 2>&1 || true
  rm -rf "$D"
}
trap cleanup EXIT

"$SHARED/peers.sh" start "$D/peers" >/dev/null

# hadns serves the same zone; db.svc.test is its failover record over the same backends.
mkdir -p "$D/zones"
cat > "$D/zones/svc.test.zone" <<'Z'
$TTL 1
@   IN SOA ns1.svc.test. hostmaster.svc.test. 1 60 60 3600 1
@   IN NS ns1.svc.test.
ns1 IN A 127.0.0.1
Z
cat > "$D/hadns.toml" <<'C'
[dns]
listen = ["127.0.0.1:5305"]
zones_dir = "zones"
udp_workers = 1

[[pool]]
name = "db"
check = "tcp"
interval = "100ms"
timeout = "100ms"
fall = 1
rise = 1
[[pool.node]]
name = "primary"
address = "127.0.0.10"
port = 15432
priority = 100
[[pool.node]]
name = "secondary"
address = "127.0.0.11"
port = 15432
priority = 50

[[record]]
name = "db.svc.test."
pool = "db"
ttl = 1
C
taskset -c "$SERVER_CPU" target/release/hadns serve --config "$D/hadns.toml" --log-level warn > "$D/hadns.log" 2>&1 &
echo $! > "$D/hadns.pid"
for _ in $(seq 100); do
  grep -q . "$D/hadns.log" 2>/dev/null && break
  python3 - <<'P' && break || sleep 0.1
import socket,struct,sys
q=struct.pack(">HHHHHH",1,0,1,0,0,0)+b"\x02db\x03svc\x04test\x00"+struct.pack(">HH",1,1)
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(0.2)
s.sendto(q,("127.0.0.1",5305)); r=s.recv(512)
sys.exit(0 if struct.unpack(">H",r[6:8])[0]>0 else 1)
P
done

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
