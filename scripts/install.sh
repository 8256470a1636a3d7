#!/usr/bin/env bash
# Installs the release binaries with their man pages:
#   cargo build --release && sudo ./scripts/install.sh [PREFIX]    (default /usr/local)
# distcc, distccd, distccmon-text, lsdistcc and pump go to PREFIX/bin, the man pages to
# PREFIX/share/man/man1. It builds them first when cargo is at hand (root's PATH under sudo
# usually has no cargo, and a build as root would leave target/ to root). Nothing else on
# the system is touched: the masquerade directory and the service file are yours to add
# (see README.md, "Install").
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
if command -v cargo >/dev/null; then
  cargo build --release --quiet
fi
for bin in distcc distccd distccmon-text lsdistcc pump; do
  [ -x "target/release/$bin" ] || { echo "target/release/$bin is missing: run 'cargo build --release' first" >&2; exit 1; }
done
install -d "$prefix/bin" "$prefix/share/man/man1"
install -m 755 target/release/distcc target/release/distccd target/release/distccmon-text \
  target/release/lsdistcc target/release/pump \
  "$prefix/bin/"
install -m 644 man/*.1 "$prefix/share/man/man1/"
echo "installed distcc, distccd, distccmon-text, lsdistcc and pump in $prefix/bin, man pages in $prefix/share/man/man1"
