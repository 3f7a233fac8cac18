#!/usr/bin/env bash
# bench/debian-login.sh [BUILD_DIR]
#
# Wall time from start to the serial console's `login:` prompt of the Debian 12 i386 system image
# (scripts/make-debian-image: systemd, sshd, DHCP on eth0), under vmbt's bt and under QEMU TCG
# (qemu-system-i386, when installed), one after the other in one run, with the same kernel,
# initrd, command line, 512 MiB, a virtio disk (snapshot: the image is not changed) and a
# user-mode virtio NIC. Prints one line per engine and the ratio bt/QEMU.
set -u
build=${1:-build}
src=$(cd "$(dirname "$0")/.." && pwd)
vmbt=$build/vmbt
[[ -x $vmbt ]] || { echo "debian-login.sh: $vmbt not found (build first)" >&2; exit 2; }
mapfile -t paths < <("$src/scripts/make-debian-image" --print-paths 2>/dev/null)
img=${paths[0]} kernel=${paths[1]} initrd=${paths[2]}
[[ -f $img && -f $kernel && -f $initrd ]] ||
  { echo "debian-login.sh: no image: run scripts/make-debian-image (as root)" >&2; exit 2; }
append="root=/dev/vda console=ttyS0 rw net.ifnames=0"
limit=120  # a boot takes 15-30 s; a boot that spins (README: the known bt bug) fails
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Runs "$@" with its console in $work/out and prints the seconds until `login:` appears.
time_to_login() {
  local start now pid
  : >"$work/out"
  start=$(date +%s.%N)
  "$@" </dev/null >"$work/out" 2>"$work/err" &
  pid=$!
  while kill -0 $pid 2>/dev/null; do
    if grep -q 'login:' "$work/out"; then
      now=$(date +%s.%N)
      kill $pid 2>/dev/null
      wait $pid 2>/dev/null
      awk -v a="$start" -v b="$now" 'BEGIN { printf "%.1f\n", b - a }'
      return 0
    fi
    if awk -v a="$start" -v b="$(date +%s.%N)" -v l=$limit 'BEGIN { exit !(b - a > l) }'; then
      kill $pid 2>/dev/null
      break
    fi
    sleep 0.1
  done
  wait $pid 2>/dev/null
  echo "debian-login.sh: no login: prompt from $1 (console tail below)" >&2
  tr -d '\r' <"$work/out" | tail -15 >&2
  head -20 "$work/err" >&2
  echo fail
}

echo "host: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs"
bt=$(time_to_login "$vmbt" run --engine bt --kernel "$kernel" --initrd "$initrd" --drive "$img" \
  --snapshot --net user --append "$append" -m 512M)
echo "bt:   ${bt} s to login:"
if command -v qemu-system-i386 >/dev/null; then
  qemu=$(time_to_login qemu-system-i386 -m 512M -nographic -no-reboot -kernel "$kernel" \
    -initrd "$initrd" -append "$append" -drive "file=$img,if=virtio,format=raw,snapshot=on" \
    -netdev user,id=n -device virtio-net-pci,netdev=n)
  echo "qemu: ${qemu} s to login: (TCG)"
  [[ $bt != fail && $qemu != fail ]] && echo "bt/qemu: $(awk -v a="$bt" -v b="$qemu" 'BEGIN { printf "%.2f", a / b }')"
else
  echo "qemu: not installed"
fi
