#!/usr/bin/env bash
# Runs the whole test suite. As root on Debian or Ubuntu it first installs what the tests
# need: gcc, g++ and make; clang; distcc 3.4 for the interoperability tests; OpenSSH for a build
# over a real sshd on loopback; CMake, Ninja, autoconf and ccache for the real-project tests;
# the Linux 6.1 source with flex, bison, bc and libelf for the kernel build test; MIT
# Kerberos (a KDC on loopback with a throwaway realm) for the GSS-API tests; Prometheus's
# promtool, which checks the daemon's metrics page; tmux and Chromium, which show the farm
# view and the live page during a build; Avahi, D-Bus and iproute2 for the zeroconf tests,
# which run distcc 3.4 and ours in network namespaces of their own.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  for pkg in gcc g++ make clang distcc openssh-server openssh-client cmake ninja-build autoconf ccache \
      linux-source-6.1 flex bison bc libelf-dev krb5-kdc krb5-admin-server krb5-user \
      prometheus tmux chromium avahi-daemon avahi-utils dbus iproute2; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    # No service is to start while the packages install (a KDC or an sshd without their
    # set-up would fail their scripts): the tests start their own, on loopback.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi
cargo test --all-targets
