# Shared by bench/qps.sh and bench/failover.sh: packages, the peers, and hadns serving the
# peers' zone svc.test with db.svc.test as its failover record over the same backends
# (127.0.0.10:15432 primary, 127.0.0.11:15432 secondary), on 127.0.0.1:5305 (or another
# port), pinned to CPU $SERVER_CPU. Sets D (a temporary directory, removed on exit).

SHARED=$(cd "${SHARED:-../shared/bench}" && pwd)
export SERVER_CPU=${SERVER_CPU:-1} CLIENT_CPU=${CLIENT_CPU:-0}

. "$(dirname "${BASH_SOURCE[0]}")/packages.sh"
# What qps.sh and failover.sh need: dnsperf and the peers.
PEER_PACKAGES=(dnsperf nsd knot gdnsd pdns-server pdns-backend-bind python3)

D=$(mktemp -d)
cleanup() {
  for pid in "$D"/hadns-*.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  "$SHARED/peers.sh" stop "$D/peers" >/dev/null 2>&1 || true
  rm -rf "$D"
}
trap cleanup EXIT

# start_hadns INTERVAL [PORT [DNS_LINES [sites]]]: hadns on 127.0.0.1:PORT (default 5305),
# with DNS_LINES (e.g. 'udp_coalesce = "0us"') added to its [dns] table; with "sites", the
# two nodes in sites dc1 (10.1.0.0/16) and dc2 (10.2.0.0/16) and the record by_site.
# Returns once it answers.
start_hadns() {
  local port=${2:-5305} extra=${3:-} site1="" site2="" by_site="" sites=""
  if [ "${4:-}" = sites ]; then
    site1='site = "dc1"'
    site2='site = "dc2"'
    by_site='by_site = true'
    sites=$'[[site]]\nname = "dc1"\nnetworks = ["10.1.0.0/16"]\n\n[[site]]\nname = "dc2"\nnetworks = ["10.2.0.0/16"]'
  fi
  local config="$D/hadns-$port.toml"
  mkdir -p "$D/zones"
  cat > "$D/zones/svc.test.zone" <<'Z'
$TTL 1
@   IN SOA ns1.svc.test. hostmaster.svc.test. 1 60 60 3600 1
@   IN NS ns1.svc.test.
ns1 IN A 127.0.0.1
Z
  cat > "$config" <<C
[dns]
listen = ["127.0.0.1:$port"]
zones_dir = "zones"
udp_workers = 1
$extra

[[pool]]
name = "db"
check = "tcp"
interval = "$1"
timeout = "100ms"
fall = 1
rise = 1
[[pool.node]]
name = "primary"
address = "127.0.0.10"
port = 15432
priority = 100
$site1
[[pool.node]]
name = "secondary"
address = "127.0.0.11"
port = 15432
priority = 50
$site2

[[record]]
name = "db.svc.test."
pool = "db"
ttl = 1
max_stale = "0s"
$by_site

$sites
C
  cargo build --release -q
  taskset -c "$SERVER_CPU" target/release/hadns serve --config "$config" --log-level warn > "$D/hadns-$port.log" 2>&1 &
  echo $! > "$D/hadns-$port.pid"
  # Wait until it answers (any response) on its port.
  for _ in $(seq 100); do
    python3 - "$port" <<'P' && return 0 || sleep 0.1
import socket,struct,sys
q=struct.pack(">HHHHHH",1,0,1,0,0,0)+b"\x03ns1\x03svc\x04test\x00"+struct.pack(">HH",1,1)
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(0.2)
s.sendto(q,("127.0.0.1",int(sys.argv[1]))); s.recv(512)
P
  done
  echo "hadns did not start: $(cat "$D/hadns-$port.log")" >&2
  return 1
}
