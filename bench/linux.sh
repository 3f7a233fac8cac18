#!/usr/bin/env bash
# bench/linux.sh [BUILD_DIR]
#
# Linux workloads under bt, natively, and under QEMU TCG (when qemu-system-i386 is installed),
# measured in one run and printed as a table with ratios:
#   boot       seconds from power-on to /init (the guest's /proc/uptime when init starts)
#   sha256     dd if=/dev/zero bs=1M count=32 | sha256sum    (CPU-bound)
#   gzip       dd if=/dev/zero bs=1M count=32 | gzip -1 | wc -c (CPU-bound)
#   fork-exec  300 x /bin/true from a shell loop                (process-heavy: fork, exec, exit)
# The guest is Debian 12's own i386 kernel and busybox (scripts/get-debian-guest); "native" is the
# same static i386 busybox binary run directly on this host (it runs 32-bit programs).
# Workload times inside the guest come from busybox `time` (the guest's clock follows the host's:
# its PIT and TSC are host time). Needs root for the first scripts/get-debian-guest run.
set -u
build=${1:-build}
src=$(cd "$(dirname "$0")/.." && pwd)
vmbt=$build/vmbt
[[ -x $vmbt ]] || { echo "linux.sh: $vmbt not found (build first)" >&2; exit 2; }

sha='dd if=/dev/zero bs=1M count=32 2>/dev/null | sha256sum >/dev/null'
gz='dd if=/dev/zero bs=1M count=32 2>/dev/null | gzip -1 | wc -c >/dev/null'
fe='i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done'
script="echo BENCH boot \$(cut -d' ' -f1 /proc/uptime);
time sh -c '$sha' 2>&1 | sed 's/^/BENCH-sha256 /';
time sh -c '$gz' 2>&1 | sed 's/^/BENCH-gzip /';
time sh -c '$fe' 2>&1 | sed 's/^/BENCH-forkexec /'"
img=$("$src/scripts/get-debian-guest" --oneshot "$script") || { echo "linux.sh: no guest" >&2; exit 2; }
kernel=$src/guest-cache/vmlinuz-686
busybox=$src/guest-cache/busybox-i386

# "real 0m 1.23s" (busybox time) -> 1.23
parse_time() { sed -n "s/^BENCH-$1 real[[:space:]]*\([0-9]*\)m[[:space:]]*\([0-9.]*\)s.*/\1 \2/p" | awk '{print $1*60+$2}' | head -1; }
parse_boot() { sed -n 's/^BENCH boot \([0-9.]*\).*/\1/p' | head -1; }

run_guest() {  # engine-label command... -> prints the console to stdout
  "$@" 2>/dev/null | tr -d '\r'
}

bt_out=$(run_guest "$vmbt" run --engine bt --kernel "$kernel" --initrd "$img" --memory 256M --timeout 600 </dev/null)
declare -A bt qemu native
bt[boot]=$(parse_boot <<<"$bt_out")
for w in sha256 gzip forkexec; do bt[$w]=$(parse_time $w <<<"$bt_out"); done

if command -v qemu-system-i386 >/dev/null; then
  q_out=$(run_guest timeout 900 qemu-system-i386 -nographic -no-reboot -m 256M -kernel "$kernel" \
    -initrd "$img" -append "console=ttyS0")
  qemu[boot]=$(parse_boot <<<"$q_out")
  for w in sha256 gzip forkexec; do qemu[$w]=$(parse_time $w <<<"$q_out"); done
  qemu_note="QEMU TCG: $(qemu-system-i386 --version | head -1)"
else
  qemu_note="QEMU TCG: not installed (apt-get install qemu-system-x86 to compare)"
fi

nt() { local t0 t1; t0=$(date +%s.%N); "$busybox" sh -c "$1"; t1=$(date +%s.%N); awk "BEGIN{print $t1-$t0}"; }
native[sha256]=$(nt "$sha")
native[gzip]=$(nt "$gz")
native[forkexec]=$(PATH=$(dirname "$busybox"):$PATH nt "$fe")

ratio() { [[ -n ${1:-} && -n ${2:-} ]] && awk "BEGIN{ if ($2 > 0) printf \"%.2f\", $1/$2; else print \"-\" }" || echo "-"; }
printf '%-10s %10s %10s %10s %10s %10s\n' workload "bt s" "native s" "qemu s" "bt/native" "qemu/bt"
for w in boot sha256 gzip forkexec; do
  printf '%-10s %10s %10s %10s %10s %10s\n' "$w" "${bt[$w]:--}" "${native[$w]:--}" "${qemu[$w]:--}" \
    "$(ratio "${bt[$w]:-}" "${native[$w]:-}")" "$(ratio "${qemu[$w]:-}" "${bt[$w]:-}")"
done
echo "$qemu_note"
echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
