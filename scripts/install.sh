#!/usr/bin/env bash
# Builds the release binaries and installs them with their man pages:
#   ./scripts/install.sh [PREFIX]        (default /usr/local; run as root for it)
# distcc, distccd and distccmon-text go to PREFIX/bin, the man pages to
# PREFIX/share/man/man1. Nothing else on the system is touched: the masquerade directory
# and the service file are yours to add (see README.md, "Install").
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
cargo build --release --quiet
install -d "$prefix/bin" "$prefix/share/man/man1"
install -m 755 target/release/distcc target/release/distccd target/release/distccmon-text \
  "$prefix/bin/"
install -m 644 man/*.1 "$prefix/share/man/man1/"
echo "installed distcc, distccd and distccmon-text in $prefix/bin, man pages in $prefix/share/man/man1"
