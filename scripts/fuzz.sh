#!/usr/bin/env bash
# Fuzzes the daemon's request reader and classifier for a fixed time (default 60 s):
#   ./scripts/fuzz.sh [SECONDS]
# Uses nightly with AddressSanitizer when installed, else the stable toolchain without a
# sanitizer (the parsers are safe Rust: a bug shows as a panic either way). New inputs
# go to a scratch corpus, never into the committed seeds; a crash fails the run and its
# input is kept under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp fuzz/seeds/* "$corpus/"
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  run=(cargo +nightly fuzz run)
else
  run=(env RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none)
fi
log="$corpus.log"
set +e
"${run[@]}" request "$corpus" -- -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1
status=$?
set -e
grep -E 'DONE|Done' "$log" || true
if [ "$status" -ne 0 ]; then
  tail -40 "$log"
  echo "fuzzing failed (status $status)" >&2
fi
rm -f "$log"
exit "$status"
