#!/usr/bin/env bash
# Builds distcc-rs, starts two local distccd daemons on free loopback ports, builds the
# example C project in example/ with `make -j4` through distcc, runs the program, says which
# host compiled each file, and stops the daemons. Needs only a Rust toolchain, gcc and make.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  make -s -C example clean >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }

# The daemon runs only compilers named in its whitelist directory (/usr/lib/distcc when
# Debian's distcc package is installed); the demo brings its own.
chmod 755 "$work"   # started as root, distccd works as an unprivileged user
mkdir "$work/whitelist"
ln -s "$(command -v gcc)" "$work/whitelist/gcc"
# distcc asks for gcc by its target-qualified name when there is one, as distcc 3.4 does.
triple_gcc="$(gcc -dumpmachine)-gcc"
if command -v "$triple_gcc" >/dev/null; then
  ln -s "$(command -v "$triple_gcc")" "$work/whitelist/$triple_gcc"
fi

hosts=()
for i in 1 2; do
  port=$(free_port)
  "$bin/distccd" --daemon --no-detach --listen 127.0.0.1 --port "$port" \
    --allow 127.0.0.1 --jobs 2 --whitelist-dir "$work/whitelist" \
    --log-file "$work/distccd$i.log" &
  pids+=($!)
  hosts+=("127.0.0.1:$port/2")
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done

export DISTCC_HOSTS="${hosts[*]}" DISTCC_DIR="$work/distcc" DISTCC_LOG="$work/client.log"
echo "DISTCC_HOSTS=\"$DISTCC_HOSTS\""
make -s -C example clean
make -C example -j4 CC="$bin/distcc gcc"
echo
./example/hello
echo
echo "Where each file was compiled:"
grep -ho 'compile [^ ]* on [^ ]* completed ok' "$DISTCC_LOG" | awk '{print "  " $2 " on " $4}' | sort
if ! grep -q 'completed ok' "$DISTCC_LOG"; then
  echo "ERROR: no file was compiled by a daemon; their logs:" >&2
  cat "$work"/distccd*.log >&2
  exit 1
fi
