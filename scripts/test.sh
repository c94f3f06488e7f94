#!/usr/bin/env bash
# Runs every test of hadns. Installs what the tests need on a fresh Debian machine first.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use beyond the Rust toolchain: real PostgreSQL and MariaDB
# servers (the tests start their own, in temporary directories), iproute2 for the network
# namespaces of the L2 tests (they need root; HADNS_SKIP_NETNS=1 skips them explicitly),
# python3 for the small HTTP service those tests run on each test host, openssl for the
# TLS tests' certificates, chromium to render the admin status page headless, dnsperf to
# load hadns across reloads, etcd-server for the cluster tests' three-member etcd (and
# etcd-client for etcdctl, which the tests use to wait for it and to cut it: only
# suggested by etcd-server, so not installed with it), unbound
# as the DNS server the dns check probes, nsd, knot and bind9 as the secondaries that
# transfer zones from hadns, protobuf-compiler to build hadns (the etcd-client crate
# compiles etcd's gRPC API), nftables: the cluster tests' partitions are silent drops;
# prometheus for promtool (the alert rules' tests, the dashboard's queries), systemd for
# systemd-analyze (the package's unit is verified) and adduser (the package's postinst).
needed=(ca-certificates postgresql mariadb-server iproute2 python3 openssl chromium dnsperf
        etcd-server etcd-client unbound nsd knot bind9 protobuf-compiler nftables prometheus
        systemd adduser)
missing=()
for pkg in "${needed[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  # The tests start their own servers. Where systemd runs, the packages just installed may
  # have started theirs: unbound, nsd, knot or named would hold port 53, which a test binds.
  if [ -d /run/systemd/system ]; then
    for pkg in "${missing[@]}"; do
      case "$pkg" in
        unbound) systemctl disable --now unbound >/dev/null 2>&1 || true ;;
        etcd-server) systemctl disable --now etcd >/dev/null 2>&1 || true ;;
        nsd) systemctl disable --now nsd >/dev/null 2>&1 || true ;;
        knot) systemctl disable --now knot >/dev/null 2>&1 || true ;;
        bind9) systemctl disable --now named >/dev/null 2>&1 || true ;;
        prometheus) systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true ;;
      esac
    done
  fi
fi

if [ "${HADNS_SKIP_NETNS:-}" = 1 ]; then
  if [ -n "${CI:-}" ]; then
    echo "HADNS_SKIP_NETNS=1 is not honoured under CI: the network namespace tests run" >&2
  else
    echo "WARNING: HADNS_SKIP_NETNS=1: the network namespace tests pass without running if they cannot build their hosts" >&2
  fi
fi

# cargo-deb, for the package test (scripts/package.sh pins its version).
scripts/package.sh --tool-only

cargo test --release --all-targets "$@"
