#!/usr/bin/env bash
# tests/e2e/linux_debian_image.sh VMBT SOURCE_DIR
#
# The Debian 12 i386 system image (scripts/get-debian-guest --disk: mmdebstrap, systemd, sshd,
# ifupdown + isc-dhcp-client; issue 10) boots under bt with --snapshot to the serial console's
# `login:`; then, through --net user's hostfwd on a free port, root logs in over ssh with the key
# the script generated and Debian answers
#   systemctl is-system-running   running   (else the failed units are printed)
#   uname -m                      i686
#   cat /etc/debian_version       12.N
# and root logs in on the serial console with the image's password (vmbt's console is stdin).
# The image file must be unchanged afterwards (size and mtime: --snapshot). vmbt is killed at the end.
# MODE crash (tests/e2e/linux_debian_image.sh VMBT SOURCE_DIR crash): on a copy of the image,
# without --snapshot, root writes a file and runs `sync` over ssh, vmbt is killed with SIGKILL,
# and in a second boot (ext4 replays its journal) the file must hold what was written.
# Exit status: 0 pass, 1 fail, 77 skipped (no image: not root, no mmdebstrap, Debian's archive
# unreachable; or no ssh/python3).
set -u
vmbt=$1
src=$2
mode=${3:-login}
name=linux.bt.debian_image
[[ $mode == crash ]] && name=linux.bt.debian_image_crash
[[ $mode == login || $mode == crash ]] || { echo "FAIL $name: unknown mode '$mode'"; exit 1; }
fail() { echo "FAIL $name: $*"; exit 1; }

for tool in ssh python3; do
  command -v $tool >/dev/null || { echo "SKIP $name: $tool is not installed"; exit 77; }
done

log=${TMPDIR:-/tmp}/vmbt-make-image.log
# Not under QEMU's user-mode emulator (a host without IA-32 emulation): that takes tens of
# minutes; such a host skips, unless the image was built before.
VMBT_NO_QEMU_USER=1 "$src/scripts/get-debian-guest" --disk >"$log" 2>&1
rc=$?
if [[ $rc -eq 3 || $rc -eq 4 || $rc -eq 5 ]]; then
  echo "SKIP $name: scripts/get-debian-guest --disk could not build the image (exit $rc: $(tail -1 "$log"))"
  exit 77
fi
[[ $rc -eq 0 ]] || { tail -30 "$log"; fail "scripts/get-debian-guest --disk failed (exit $rc)"; }
mapfile -t paths < <("$src/scripts/get-debian-guest" --disk --print-paths 2>/dev/null)
img=${paths[0]} kernel=${paths[1]} initrd=${paths[2]} key=${paths[3]}
for f in "$img" "$kernel" "$initrd" "$key"; do [[ -f $f ]] || fail "$f was not built"; done
if [[ ! -r $key ]]; then
  echo "SKIP $name: $key is not readable by $(id -un) (built by another user: run as that user)"
  exit 77
fi
before=$(stat -c '%s %Y' "$img")

# shellcheck source=tests/e2e/console_session_lib.sh
source "$(dirname "$0")/console_session_lib.sh"
console_session_start
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
show() { console_show 25; }
# Boots $1 (an image) under bt with the forward on $port; more vmbt flags follow. The console's
# input is a FIFO held open here (fd 3), so vmbt reads what the test types.
boot() {
  local disk=$1
  shift
  rm -f "$work/in"
  mkfifo "$work/in"
  [[ ! -f $work/out ]] || cat "$work/out" >>"$work/all"  # the consoles of earlier boots
  : >"$work/out"
  # vmbt's own --timeout, so that $vm is vmbt (the crash mode kills it with SIGKILL).
  "$vmbt" run --timeout 600 --engine bt --kernel "$kernel" --initrd "$initrd" --drive "$disk" \
    --net "user,hostfwd=tcp:127.0.0.1:$port-:22" \
    --append "root=/dev/vda console=ttyS0 rw net.ifnames=0" -m 512M --stats "$@" \
    <"$work/in" >"$work/out" 2>"$work/err" &
  vm=$!
  exec 3>"$work/in"
}
# Waits up to $2 seconds for $1 (an extended regex) on the console.
wait_for() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    tr -d '\r' <"$work/out" | grep -Eq -- "$1" && return 0
    kill -0 $vm 2>/dev/null || { show; fail "vmbt ended before '$1' on the console"; }
    sleep 0.1
  done
  show
  fail "no '$1' on the console after $2 s"
}

# Boots "$@" (boot's arguments) until the console says `vmbt login:` (a soft lockup reported by
# the guest's watchdog, or vmbt ending, fails at once).
boot_to_login() {
  local i
  boot "$@"
  for ((i = 0; i < 3000; i++)); do
    tr -d '\r' <"$work/out" | grep -q 'vmbt login:' && return 0
    if tr -d '\r' <"$work/out" | grep -q 'soft lockup'; then
      tr -d '\r' <"$work/out" | grep -m1 -A12 'soft lockup'
      fail "the guest's watchdog reports a soft lockup (a vCPU spinning under bt)"
    fi
    kill -0 $vm 2>/dev/null || { show; fail "vmbt ended before 'vmbt login:' on the console"; }
    sleep 0.1
  done
  show
  fail "no 'vmbt login:' on the console after 300 s"
}

sshopts=(-i "$key" -p "$port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR)
# Runs $1 in the guest over ssh through the forward (sshd may still be starting after the getty:
# a few tries); its stdout into $work/answer.
guest() {
  local _
  for _ in 1 2 3 4 5 6; do
    timeout 60 ssh "${sshopts[@]}" root@127.0.0.1 "$1" >"$work/answer" 2>"$work/ssh.err" && return 0
    sleep 5
  done
  show
  cat "$work/ssh.err"
  fail "ssh -p $port root@127.0.0.1 '$1' through hostfwd failed"
}
stop() {
  kill -"$1" $vm 2>/dev/null
  wait $vm 2>/dev/null
  vm=
  exec 3>&-
}

if [[ $mode == crash ]]; then
  disk=$work/disk.img
  cp --sparse=always "$img" "$disk"
  token=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
  boot_to_login "$disk"
  guest "echo $token >/root/vmbt-crash-test && sync"
  stop KILL
  rm -f "$work/out"
  : >"$work/all"
  boot_to_login "$disk"
  guest 'cat /root/vmbt-crash-test'
  got=$(cat "$work/answer")
  recovered=$(cat "$work/all" "$work/out" | tr -d '\r' | grep -c 'EXT4-fs (vda): recovery complete')
  stop TERM
  [[ $got == "$token" ]] || fail "after kill -9 and a reboot /root/vmbt-crash-test holds '$got', not '$token'"
  [[ $recovered -ge 1 ]] || fail "the second boot replayed no ext4 journal ('recovery complete')"
  echo "ok $name: a file synced before kill -9 is there after a reboot (ext4 recovered its journal)"
  exit 0
fi

start=$SECONDS
boot_to_login "$img" --snapshot
boot=$((SECONDS - start))
guest 'systemctl is-system-running; uname -m; cat /etc/debian_version'
answer=$(cat "$work/answer")
mapfile -t lines <<<"$answer"
if [[ ${lines[0]} == starting ]]; then
  sleep 20
  lines[0]=$(timeout 60 ssh "${sshopts[@]}" root@127.0.0.1 'systemctl is-system-running')
fi
if [[ ${lines[0]} != running ]]; then
  timeout 60 ssh "${sshopts[@]}" root@127.0.0.1 'systemctl --failed --no-pager; journalctl -b -p err --no-pager | tail -30'
  fail "systemctl is-system-running says '${lines[0]}', not 'running' (failed units above)"
fi
[[ ${lines[1]} == i686 ]] || fail "uname -m says '${lines[1]}', not i686"
[[ ${lines[2]} =~ ^12\.[0-9]+$ ]] || fail "/etc/debian_version is '${lines[2]}', not 12.N"

# The serial console: root with the image's password; the marker is printed by the guest's shell
# (the typed command's echo has $(...) in it, not the answer).
printf 'root\n' >&3
wait_for 'Password:' 30
printf 'vmbt\n' >&3
sleep 2
printf 'echo "serial-login=$(id -un)@$(hostname)"\n' >&3
wait_for 'serial-login=root@vmbt' 60

stop TERM
[[ $(stat -c '%s %Y' "$img") == "$before" ]] || fail "the image changed although vmbt ran with --snapshot"
echo "ok $name: login: after ${boot} s under bt; over ssh (hostfwd 127.0.0.1:$port): ${lines[*]};" \
  "root logged in on ttyS0"
