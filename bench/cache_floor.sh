#!/usr/bin/env bash
# The floor of any compile cache's warm rebuild of the Linux tinyconfig kernel: what Kbuild
# itself takes when every compile costs nothing.
#
#     bash bench/cache_floor.sh [WORK_DIR]
#
# Unpacks Debian's linux-source-6.1 into WORK_DIR (default: a new temporary directory),
# builds tinyconfig with a compiler wrapper that keeps every object and dependency file it
# makes (by output path), runs `make clean`, and rebuilds with the wrapper copying them back
# instead of compiling: the rebuild's wall time is Kbuild's own work (fixdep, objtool, the
# generated headers, the archives and the link of vmlinux and bzImage) plus a shell script
# and a copy per unit. Then `make clean` and a plain local build for comparison, and a check
# that the replayed bzImage is the plain build's. Compare the replay's time with
# bench.py's `kernel-cache` figures (distcc 3.4's build, ours warm, ccache's warm).
set -euo pipefail
work=${1:-$(mktemp -d)}
tarball=/usr/src/linux-source-6.1.tar.xz
[ -e "$tarball" ] || { echo "cache_floor: needs Debian's linux-source-6.1" >&2; exit 1; }
tree=$work/linux-source-6.1
stash=$work/stash
[ -d "$tree" ] || tar xf "$tarball" -C "$work"
cc=$work/floor-cc
cat > "$cc" <<EOF
#!/usr/bin/env bash
# FLOOR_MODE=record: gcc, then the object and dependency file kept; replay: copied back.
out=""; dep=""; args=("\$@")
for ((i = 0; i < \${#args[@]}; i++)); do
  case "\${args[\$i]}" in
    -o) out=\${args[\$((i + 1))]} ;;
    -Wp,-MMD,*|-Wp,-MD,*) dep=\${args[\$i]#-Wp,-M*D,} ;;
  esac
done
case " \$* " in *" -c "*) ;; *) exec gcc "\$@" ;; esac
[ -n "\$out" ] || exec gcc "\$@"
real=\$(realpath -m "\$out")
# Kbuild's option probes write /dev/null or temporary files: always compiled.
case "\$real" in "$tree"/*) ;; *) exec gcc "\$@" ;; esac
key=\${real//\//%}
if [ "\${FLOOR_MODE:-}" = replay ] && [ -f "$stash/\$key.o" ]; then
  cp "$stash/\$key.o" "\$out"
  if [ -n "\$dep" ]; then cp "$stash/\$key.d" "\$dep"; fi
  exit 0
fi
gcc "\$@" || exit \$?
if [ "\${FLOOR_MODE:-}" = record ]; then
  cp "\$out" "$stash/\$key.o"
  if [ -n "\$dep" ]; then cp "\$dep" "$stash/\$key.d"; fi
fi
exit 0
EOF
chmod +x "$cc"
rm -rf "$stash"
mkdir -p "$stash"
cd "$tree"
export KBUILD_BUILD_TIMESTAMP="Thu Jan  1 00:00:00 UTC 2026" KBUILD_BUILD_USER=u
export KBUILD_BUILD_HOST=h KBUILD_BUILD_VERSION=1
make ARCH=x86_64 mrproper >/dev/null 2>&1
make ARCH=x86_64 tinyconfig >/dev/null 2>&1
timed() {
  local label=$1 start end
  shift
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  printf "%s: %.2f s\n" "$label" "$(echo "$end - $start" | bc)"
}
FLOOR_MODE=record timed "build, recording" make -s ARCH=x86_64 -j6 CC="$cc"
make ARCH=x86_64 clean >/dev/null
FLOOR_MODE=replay timed "rebuild after make clean, every compile replayed" \
  make -s ARCH=x86_64 -j6 CC="$cc"
cp arch/x86/boot/bzImage "$work/bzImage.replayed"
make ARCH=x86_64 clean >/dev/null
timed "rebuild after make clean, with gcc" make -s ARCH=x86_64 -j6 CC=gcc
cmp -s arch/x86/boot/bzImage "$work/bzImage.replayed" && echo "the same bzImage"
