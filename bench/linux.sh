#!/usr/bin/env bash
# bench/linux.sh [BUILD_DIR]
#
# Linux workloads under bt, natively, and under QEMU TCG (when qemu-system-i386 is installed),
# measured in one run and printed as a table with ratios:
#   boot       seconds from power-on to /init (the guest's /proc/uptime when init starts)
#   sha256     dd if=/dev/zero bs=1M count=32 | sha256sum    (CPU-bound)
#   gzip       dd if=/dev/zero bs=1M count=32 | gzip -1 | wc -c (CPU-bound)
#   md5        dd if=/dev/zero bs=1M count=32 | md5sum       (CPU-bound)
#   shloop     100,000 iterations of a shell while loop       (an interpreter: indirect branches)
#   fork-exec  300 x /bin/true from a shell loop                (process-heavy: fork, exec, exit)
#   pipe       dd bs=64 count=20000 | dd bs=64: every write wakes the reader (context switches)
#   pagetouch  dd bs=64M count=1 of=/dev/null: 64 MiB of fresh anonymous memory touched (page
#              faults, page-table writes)
#   python     Debian's i386 CPython 3.11 (python3.11-minimal) counting to 3,000,000 in a while
#              loop (an interpreter: indirect branches, calls, returns); in a second boot whose
#              initramfs holds CPython (scripts/get-debian-guest --python), after a first
#              `python3 -S -c pass` (its start waits for the guest kernel's random pool)
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
md5='dd if=/dev/zero bs=1M count=32 2>/dev/null | md5sum >/dev/null'
sl='i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done'
fe='i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done'
pp='dd if=/dev/zero bs=64 count=20000 2>/dev/null | dd of=/dev/null bs=64 2>/dev/null'
pt='dd if=/dev/zero bs=64M count=1 of=/dev/null 2>/dev/null'
workloads="sha256 gzip md5 shloop forkexec pipe pagetouch"
script="echo BENCH boot \$(cut -d' ' -f1 /proc/uptime);
time sh -c '$sha' 2>&1 | sed 's/^/BENCH-sha256 /';
time sh -c '$gz' 2>&1 | sed 's/^/BENCH-gzip /';
time sh -c '$md5' 2>&1 | sed 's/^/BENCH-md5 /';
time sh -c '$sl' 2>&1 | sed 's/^/BENCH-shloop /';
time sh -c '$fe' 2>&1 | sed 's/^/BENCH-forkexec /';
time sh -c '$pp' 2>&1 | sed 's/^/BENCH-pipe /';
time sh -c '$pt' 2>&1 | sed 's/^/BENCH-pagetouch /'"
img=$("$src/scripts/get-debian-guest" --oneshot "$script") || { echo "linux.sh: no guest" >&2; exit 2; }
py='i = 0
while i < 3000000: i += 1'
py_script="python3 -S -c pass; time python3 -S -c '$py' 2>&1 | sed 's/^/BENCH-python /'"
py_img=$("$src/scripts/get-debian-guest" --python --oneshot "$py_script") ||
  { echo "linux.sh: no CPython guest" >&2; exit 2; }
py_tree=$src/guest-cache/python-i386
kernel=$src/guest-cache/vmlinuz-686
busybox=$src/guest-cache/busybox-i386

# "real 0m 1.23s" (busybox time) -> 1.23
parse_time() { sed -n "s/^BENCH-$1 real[[:space:]]*\([0-9]*\)m[[:space:]]*\([0-9.]*\)s.*/\1 \2/p" | awk '{print $1*60+$2}' | head -1; }
parse_boot() { sed -n 's/^BENCH boot \([0-9.]*\).*/\1/p' | head -1; }

run_guest() {  # engine-label command... -> prints the console to stdout
  "$@" 2>/dev/null | tr -d '\r'
}

bt_out=$(run_guest "$vmbt" run --engine bt --kernel "$kernel" --initrd "$img" --memory 256M --timeout 600 </dev/null)
bt_out+=$'\n'$(run_guest "$vmbt" run --engine bt --kernel "$kernel" --initrd "$py_img" --memory 256M --timeout 600 </dev/null)
workloads+=" python"
declare -A bt qemu native
bt[boot]=$(parse_boot <<<"$bt_out")
for w in $workloads; do bt[$w]=$(parse_time $w <<<"$bt_out"); done

if command -v qemu-system-i386 >/dev/null; then
  q_out=$(run_guest timeout 900 qemu-system-i386 -nographic -no-reboot -m 256M -kernel "$kernel" \
    -initrd "$img" -append "console=ttyS0")
  q_out+=$'\n'$(run_guest timeout 900 qemu-system-i386 -nographic -no-reboot -m 256M -kernel "$kernel" \
    -initrd "$py_img" -append "console=ttyS0")
  qemu[boot]=$(parse_boot <<<"$q_out")
  for w in $workloads; do qemu[$w]=$(parse_time $w <<<"$q_out"); done
  qemu_note="QEMU TCG: $(qemu-system-i386 --version | head -1)"
else
  qemu_note="QEMU TCG: not installed (apt-get install qemu-system-x86 to compare)"
fi

nt() { local t0 t1; t0=$(date +%s.%N); "$busybox" sh -c "$1"; t1=$(date +%s.%N); awk "BEGIN{print $t1-$t0}"; }
# The native column needs a host kernel that runs 32-bit programs (IA-32 emulation on).
if "$busybox" true 2>/dev/null; then
  native[sha256]=$(nt "$sha")
  native[gzip]=$(nt "$gz")
  native[md5]=$(nt "$md5")
  native[shloop]=$(nt "$sl")
  native[forkexec]=$(PATH=$(dirname "$busybox"):$PATH nt "$fe")
  native[pipe]=$(PATH=$(dirname "$busybox"):$PATH nt "$pp")
  native[pagetouch]=$(PATH=$(dirname "$busybox"):$PATH nt "$pt")
  # The guest's CPython and libraries, through their own dynamic loader.
  native[python]=$(nt "PYTHONHOME=$py_tree/usr $py_tree/lib/ld-linux.so.2 --library-path \
$py_tree/lib/i386-linux-gnu:$py_tree/usr/lib/i386-linux-gnu $py_tree/usr/bin/python3.11 -S -c '$py'")
  native_note=""
else
  native_note="native: this host's kernel does not run 32-bit programs (IA-32 emulation off): no native column"
fi

ratio() { [[ -n ${1:-} && -n ${2:-} ]] && awk "BEGIN{ if ($2 > 0) printf \"%.2f\", $1/$2; else print \"-\" }" || echo "-"; }
printf '%-10s %10s %10s %10s %10s %10s\n' workload "bt s" "native s" "qemu s" "bt/native" "qemu/bt"
for w in boot $workloads; do
  printf '%-10s %10s %10s %10s %10s %10s\n' "$w" "${bt[$w]:--}" "${native[$w]:--}" "${qemu[$w]:--}" \
    "$(ratio "${bt[$w]:-}" "${native[$w]:-}")" "$(ratio "${qemu[$w]:-}" "${bt[$w]:-}")"
done
echo "$qemu_note"
[[ -n $native_note ]] && echo "$native_note"
echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
