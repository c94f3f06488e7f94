#!/usr/bin/env bash
# hadns as the clients' resolver ([resolver], issue 26), side by side in one run:
# 1. Client-observed failover: ../shared/bench/failover.py against hadns (which is then
#    the client's resolver: its own names from its snapshot) and against unbound with a
#    stub zone for svc.test pointing at that hadns (the usual setup without [resolver]).
# 2. Cache hits: dnsperf over 1,000 names of a corporate zone (an unbound upstream on
#    5401 answers them), every cache warmed first, against hadns [resolver], unbound
#    forwarding the zone, and dnsmasq forwarding it; each server pinned to CPU
#    $SERVER_CPU, dnsperf to $CLIENT_CPU ('per core' divides by the share of the core used).
# 3. What a miss adds: fresh names asked through hadns and straight from the upstream.
# Results: docs/performance.md ("hadns as the resolver").
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
L=${SECONDS_PER_RUN:-10}
. bench/lib.sh
install_packages dnsperf unbound dnsmasq-base python3 protobuf-compiler

unbound_on() { # PORT NAME CLAUSES: unbound on 127.0.0.1:PORT, pinned like the servers
  local dir="$D/unbound-$2"
  mkdir -p "$dir"
  cat > "$dir/unbound.conf" <<U
server:
  interface: 127.0.0.1
  port: $1
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "$dir"
  pidfile: "$dir/unbound.pid"
  use-syslog: no
  do-ip6: no
  num-threads: 1
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  verbosity: 0
$3
U
  taskset -c "$SERVER_CPU" unbound -d -c "$dir/unbound.conf" > "$dir/log" 2>&1 &
  echo $! > "$D/hadns-unbound-$2.pid"
}

wait_answer() { # PORT NAME
  for _ in $(seq 100); do
    dig_py "$1" "$2" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "nothing answers $2 on port $1" >&2
  return 1
}

dig_py() { # PORT NAME: one query (RD), succeeds on any answer
  python3 - "$1" "$2" <<'P'
import socket, struct, sys, random
port, name = int(sys.argv[1]), sys.argv[2]
q = struct.pack(">HHHHHH", random.randint(0, 65535), 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)
s.sendto(q, ("127.0.0.1", port)); s.recv(4096)
P
}

# The corporate upstream: every name under corp.example. is 10.1.0.5 (TTL 300).
unbound_on 5401 corp '  local-zone: "corp.example." redirect
  local-data: "corp.example. 300 IN A 10.1.0.5"'
wait_answer 5401 check.corp.example
resolver=$'[resolver]\nforward = ["127.0.0.1:5401"]\nallow = ["127.0.0.0/8"]\n[resolver.check]\nname = "check.corp.example."\ntype = "A"'
start_hadns 200ms 5305 "$resolver"
# unbound with a stub zone for hadns's zone, and forwarding the corporate zone.
unbound_on 5310 stub '  local-zone: "test." nodefault
  domain-insecure: "svc.test."
  domain-insecure: "corp.example."
stub-zone:
  name: "svc.test."
  stub-addr: 127.0.0.1@5305
forward-zone:
  name: "corp.example."
  forward-addr: 127.0.0.1@5401'
wait_answer 5310 db.svc.test
taskset -c "$SERVER_CPU" dnsmasq --keep-in-foreground --no-resolv --no-hosts --port=5311 \
  --listen-address=127.0.0.1 --bind-interfaces --server=/corp.example/127.0.0.1#5401 \
  --cache-size=10000 --pid-file="$D/dnsmasq.pid" > "$D/dnsmasq.log" 2>&1 &
echo $! > "$D/hadns-dnsmasq.pid"
wait_answer 5311 check.corp.example

echo "## 1. failover seen by a client: hadns as its resolver vs unbound with a stub zone ($ROUNDS rounds)"
"$SHARED/failover.py" -n "$ROUNDS" hadns-resolver:5305 unbound-stub:5310

echo
echo "## 2. cache hits, ${L}s each (1,000 names, caches warmed)"
for i in $(seq 1000); do echo "h$i.corp.example A"; done > "$D/corp.q"
cpu_ticks() {
  awk -v c="cpu$SERVER_CPU" '$1 == c { busy = $2 + $3 + $4 + $7 + $8; total = busy + $5 + $6; print busy, total }' /proc/stat
}
printf '| server | queries/s | share of its core | per core | avg latency |\n| --- | ---: | ---: | ---: | ---: |\n'
for sp in hadns-resolver:5305 unbound:5310 dnsmasq:5311; do
  name=${sp%%:*}; port=${sp##*:}
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$D/corp.q" -n 1 -c 8 -q 200 -t 2 >/dev/null 2>&1
  read -r b0 t0 < <(cpu_ticks)
  out=$(taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$D/corp.q" -l "$L" -c 8 -q 200 -t 2 2>&1)
  read -r b1 t1 < <(cpu_ticks)
  qps=$(awk '/Queries per second/{print $4}' <<<"$out")
  lat=$(awk '/Average Latency/{printf "%.3f ms", $4*1000}' <<<"$out")
  share=$(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.2f", (t > 0) ? b / t : 0 }')
  per=$(awk -v q="$qps" -v s="$share" 'BEGIN { printf "%.0f", (s > 0) ? q / s : 0 }')
  printf '| %s | %.0f | %s | %s | %s |\n' "$name" "$qps" "$share" "$per" "$lat"
done

echo
echo "## 3. what a miss adds: 300 fresh names through hadns, 300 straight from the upstream"
python3 - <<'P'
import socket, struct, random, time, statistics
def ask(port, name):
    q = struct.pack(">HHHHHH", random.randint(0, 65535), 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    t = time.perf_counter(); s.sendto(q, ("127.0.0.1", port)); s.recv(4096)
    return (time.perf_counter() - t) * 1000
tag = random.randint(0, 10**9)
via = [ask(5305, "miss%d-%d.corp.example" % (tag, i)) for i in range(300)]
direct = [ask(5401, "direct%d-%d.corp.example" % (tag, i)) for i in range(300)]
print("| path | median | p99 |\n| --- | ---: | ---: |")
for name, xs in (("through hadns (a miss)", via), ("straight to the upstream", direct)):
    xs.sort()
    print("| %s | %.3f ms | %.3f ms |" % (name, statistics.median(xs), xs[int(len(xs) * 0.99) - 1]))
print("a miss adds %.3f ms (medians)" % (statistics.median(via) - statistics.median(direct)))
P
