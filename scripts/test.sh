#!/usr/bin/env bash
# Runs the whole test suite. As root on Debian or Ubuntu it first installs what the tests
# need (gcc, make, distcc 3.4 for the interoperability tests, and OpenSSH for a build over
# a real sshd on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  for pkg in gcc make distcc openssh-server openssh-client; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi
cargo test --all-targets
