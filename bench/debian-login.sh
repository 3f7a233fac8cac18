#!/usr/bin/env bash
# bench/debian-login.sh [BUILD_DIR]
#
# The Debian 12 i386 system image (scripts/make-debian-image: systemd, sshd, DHCP on eth0) under
# vmbt's bt and under QEMU TCG (qemu-system-i386, when installed), one after the other in one run,
# with the same kernel, initrd, command line, 512 MiB, virtio disks (snapshot: no image is
# changed) and a user-mode virtio NIC:
#   login   wall time from start to the serial console's `login:` prompt
#   write   dd if=/dev/zero of=/dev/vdb bs=1M count=256 oflag=direct  (MB/s, dd's own figure)
#   read    dd if=/dev/vdb of=/dev/null bs=1M count=256 iflag=direct  (MB/s)
# /dev/vdb is a 256 MiB scratch disk (a sparse file), so the root file system is not touched;
# the dd commands run over ssh through a host forward. Prints one line per engine.
set -u
build=${1:-build}
src=$(cd "$(dirname "$0")/.." && pwd)
vmbt=$build/vmbt
[[ -x $vmbt ]] || { echo "debian-login.sh: $vmbt not found (build first)" >&2; exit 2; }
mapfile -t paths < <("$src/scripts/make-debian-image" --print-paths 2>/dev/null)
img=${paths[0]} kernel=${paths[1]} initrd=${paths[2]} key=${paths[3]}
[[ -f $img && -f $kernel && -f $initrd && -f $key ]] ||
  { echo "debian-login.sh: no image: run scripts/make-debian-image (as root)" >&2; exit 2; }
append="root=/dev/vda console=ttyS0 rw net.ifnames=0"
limit=120  # a boot takes 15-30 s; a boot that spins (README: the known bt bug) fails
work=$(mktemp -d)
pid=
trap '[[ -z $pid ]] || kill $pid 2>/dev/null; rm -rf "$work"' EXIT
truncate -s 256M "$work/scratch"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Runs "$@" with its console in $work/out; sets $login to the seconds until `login:` appeared
# (or "fail"), then the dd figures over ssh, and stops it.
measure() {
  local start now
  login=fail write=- read=-
  : >"$work/out"
  start=$(date +%s.%N)
  "$@" </dev/null >"$work/out" 2>"$work/err" &
  pid=$!
  while kill -0 $pid 2>/dev/null; do
    if grep -q 'login:' "$work/out"; then
      now=$(date +%s.%N)
      login=$(awk -v a="$start" -v b="$now" 'BEGIN { printf "%.1f", b - a }')
      break
    fi
    if awk -v a="$start" -v b="$(date +%s.%N)" -v l=$limit 'BEGIN { exit !(b - a > l) }'; then
      break
    fi
    sleep 0.1
  done
  if [[ $login == fail ]]; then
    echo "debian-login.sh: no login: prompt from $1 (console tail below)" >&2
    tr -d '\r' <"$work/out" | tail -15 >&2
    head -20 "$work/err" >&2
  else
    local d _
    for _ in 1 2 3 4 5 6; do
      d=$(timeout 120 ssh -i "$key" -p "$port" -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR \
        root@127.0.0.1 'dd if=/dev/zero of=/dev/vdb bs=1M count=256 oflag=direct 2>&1 | tail -1;
          dd if=/dev/vdb of=/dev/null bs=1M count=256 iflag=direct 2>&1 | tail -1') && break
      sleep 5
    done
    write=$(sed -n '1s/.*, \([0-9.]* [MGk]B\/s\)$/\1/p' <<<"$d")
    read=$(sed -n '2s/.*, \([0-9.]* [MGk]B\/s\)$/\1/p' <<<"$d")
  fi
  kill $pid 2>/dev/null
  wait $pid 2>/dev/null
  pid=
}

echo "host: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs"
measure "$vmbt" run --engine bt --kernel "$kernel" --initrd "$initrd" --drive "$img" \
  --drive "$work/scratch" --snapshot --net "user,hostfwd=tcp:127.0.0.1:$port-:22" \
  --append "$append" -m 512M
bt=$login
echo "bt:   ${login} s to login:   dd write ${write:--}   dd read ${read:--}"
if command -v qemu-system-i386 >/dev/null; then
  measure qemu-system-i386 -m 512M -nographic -no-reboot -kernel "$kernel" -initrd "$initrd" \
    -append "$append" -drive "file=$img,if=virtio,format=raw,snapshot=on" \
    -drive "file=$work/scratch,if=virtio,format=raw,snapshot=on" \
    -netdev "user,id=n,hostfwd=tcp:127.0.0.1:$port-:22" -device virtio-net-pci,netdev=n
  echo "qemu: ${login} s to login:   dd write ${write:--}   dd read ${read:--}   (TCG)"
  [[ $bt != fail && $login != fail ]] &&
    echo "login bt/qemu: $(awk -v a="$bt" -v b="$login" 'BEGIN { printf "%.2f", a / b }')"
else
  echo "qemu: not installed"
fi
