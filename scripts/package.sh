#!/usr/bin/env bash
# Builds the Debian package with cargo-deb: target/debian/hadns_<version>_<arch>.deb.
#
#   scripts/package.sh                  build hadns (release) and package it
#   scripts/package.sh --no-build       package the binary already in target/release
#   scripts/package.sh --deb-version V  the package's version (default: Cargo's, revision 1)
#   scripts/package.sh --tool-only      only install cargo-deb (scripts/test.sh does, so
#                                       that the package test does not compile it)
#
# Installs cargo-deb (a pinned version, with cargo) when it is missing. Generates from the
# built binary what the package carries besides it: the manual page and the shell
# completions (`hadns man`, `hadns completions`), and /etc/hadns/hadns.toml, the example
# configuration with the paths of an installed system (checked with `hadns check-config`
# before it is packaged).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
build=1
tool_only=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --tool-only) tool_only=1 ;;
    --deb-version) args+=(--deb-version "$2"); shift ;;
    *) echo "package.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi
if [ "$tool_only" = 1 ]; then
  exit 0
fi
if [ "$build" = 1 ]; then
  cargo build --release
fi
hadns=target/release/hadns
out=target/package
rm -rf "$out"
mkdir -p "$out/etc/zones"

# The manual page is generated outside the checkout, so that it names the installed
# configuration (/etc/hadns/hadns.toml) as the default.
(cd "$out" && ../release/hadns man) | gzip -9n > "$out/hadns.1.gz"
"$hadns" completions bash > "$out/hadns.bash"
"$hadns" completions zsh > "$out/_hadns"
"$hadns" completions fish > "$out/hadns.fish"

# The example configuration, for an installed system: zones in /etc/hadns/zones, state in
# /var/lib/hadns (the unit's StateDirectory).
sed -e 's|^zones_dir = "../zones" .*|zones_dir = "zones"                          # /etc/hadns/zones|' \
    -e 's|^drain_file = "drained.toml" .*|drain_file = "/var/lib/hadns/drained.toml"   # drains survive restarts|' \
    -e 's|hadns check-config --config config/hadns.toml|hadns check-config --config /etc/hadns/hadns.toml|' \
    config/hadns.toml > "$out/hadns.toml"
for key in zones_dir drain_file; do
  if ! grep -q "^$key = \"[/z]" "$out/hadns.toml"; then
    echo "package.sh: config/hadns.toml's $key line changed; adapt the rewrite above" >&2
    exit 1
  fi
done
cp "$out/hadns.toml" "$out/etc/hadns.toml"
cp zones/example.internal.zone "$out/etc/zones/"
"$hadns" check-config --config "$out/etc/hadns.toml" >/dev/null

# The binary is stripped; its line tables (panic backtraces with file and line) go to
# hadns-dbgsym, a .ddeb beside the package, for those who want them.
cargo deb --no-build --dbgsym --compress-debug-symbols=zlib "${args[@]}"
