#!/usr/bin/env bash
# tests/e2e/linux_bios_disk.sh VMBT SOURCE_DIR [ENGINE]
#
# BIOS -> GRUB -> Debian's kernel -> login, with no --kernel (issue 12 item 4): the partitioned
# Debian 12 i386 disk with Debian's GRUB in its MBR (scripts/get-debian-guest --bios-disk, built
# once, ~5 min) boots under ENGINE (default bt) with --snapshot:
#   SeaBIOS's banner, "Booting from Hard Disk", GRUB's menu ("GNU GRUB") on COM1, GRUB loading
#   the kernel, then the serial console's `vmbt login:`;
# root logs in with the image's password and the guest answers
#   uname -r           the image's 686 kernel (6.1.0-N-686)
#   cat /proc/cmdline  what grub.cfg gave it: BOOT_IMAGE=/boot/vmlinuz-..., root=/dev/vda1
#   findmnt -no SOURCE /   /dev/vda1 (the first partition, found by the initrd)
# then `poweroff` ends the run with status 0 (ACPI S5), and the image is unchanged (--snapshot).
# The times from power-on to GRUB's menu and to `login:` are printed.
# ENGINE kvm is for hosts with VT-x/AMD-V: under kvm-pvm GRUB runs (its menu after ~25 s, as
# kvm-pvm emulates real mode) but nothing comes after "Loading initial ramdisk" within 4 min.
# Exit status: 0 pass, 1 fail, 77 skipped (no image: not root, no mmdebstrap, Debian's archive
# unreachable; on kvm, vmbt saying the engine cannot run the guest: printed).
set -u
vmbt=$1
src=$2
engine=${3:-bt}
name=linux.$engine.bios_disk
fail() { echo "FAIL $name: $*"; exit 1; }

log=${TMPDIR:-/tmp}/vmbt-make-bios-image.log
# Not under QEMU's user-mode emulator (a host without IA-32 emulation): that takes tens of
# minutes; such a host skips, unless the image was built before.
VMBT_NO_QEMU_USER=1 "$src/scripts/get-debian-guest" --bios-disk >"$log" 2>&1
rc=$?
if [[ $rc -eq 3 || $rc -eq 4 || $rc -eq 5 ]]; then
  echo "SKIP $name: scripts/get-debian-guest --bios-disk could not build the image (exit $rc: $(tail -1 "$log"))"
  exit 77
fi
[[ $rc -eq 0 ]] || { tail -30 "$log"; fail "scripts/get-debian-guest --bios-disk failed (exit $rc)"; }
img=$("$src/scripts/get-debian-guest" --bios-disk --print-paths 2>/dev/null | head -n1)
[[ -f $img ]] || fail "$img was not built"
before=$(stat -c '%s %Y' "$img")

# shellcheck source=tests/e2e/console_session_lib.sh
source "$(dirname "$0")/console_session_lib.sh"
console_session_start
show() { console_show 25; }
# The console's input is a FIFO held open here (fd 3), so vmbt reads what the test types.
mkfifo "$work/in"
: >"$work/out"
start=$(date +%s.%N)
"$vmbt" run --timeout 600 --engine "$engine" --drive "$img" --snapshot -m 512M \
  <"$work/in" >"$work/out" 2>"$work/err" &
vm=$!
exec 3>"$work/in"
elapsed() { echo "$(date +%s.%N) - $start" | bc | xargs printf '%.1f'; }

# Waits up to $2 seconds for $1 (a fixed string) on the console.
wait_for() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    tr -d '\r' <"$work/out" | grep -Fq -- "$1" && return 0
    if ! kill -0 $vm 2>/dev/null; then
      if [[ $engine != bt ]] && grep -q "cannot run on the $engine engine\|refuses" "$work/err"; then
        echo "SKIP $name: $(grep -m1 "cannot run on the $engine engine\|refuses" "$work/err")"
        exit 77
      fi
      show
      fail "vmbt ended before '$1' on the console"
    fi
    sleep 0.1
  done
  show
  fail "no '$1' on the console after $2 s"
}

wait_for "SeaBIOS (version" 30
wait_for "Booting from Hard Disk" 30
wait_for "GNU GRUB" 60
grub=$(elapsed)
wait_for "Loading Linux" 30
wait_for "vmbt login:" 240
login=$(elapsed)

printf 'root\n' >&3
wait_for 'Password:' 30
printf 'vmbt\n' >&3
sleep 2
# The markers are printed by the guest's shell (the typed command's echo has quotes in it).
printf 'echo "==""begin"; uname -r; cat /proc/cmdline; findmnt -no SOURCE /; echo "==""end"\n' >&3
wait_for '==end' 60
answer=$(tr -d '\r' <"$work/out" | sed -n '/==begin$/,/^==end$/p' | sed '1d;$d')
mapfile -t lines <<<"$answer"
[[ ${lines[0]:-} =~ ^6\.[0-9]+\.[0-9]+-[0-9]+-686$ ]] ||
  { show; fail "uname -r says '${lines[0]:-}', not Debian's 6.N.N-N-686"; }
[[ ${lines[1]:-} == *"BOOT_IMAGE=/boot/vmlinuz-${lines[0]}"* && ${lines[1]} == *"root=/dev/vda1"* ]] ||
  { show; fail "/proc/cmdline is '${lines[1]:-}', not grub.cfg's (BOOT_IMAGE=/boot/vmlinuz-${lines[0]} ... root=/dev/vda1)"; }
[[ ${lines[2]:-} == /dev/vda1 ]] || { show; fail "/ is mounted from '${lines[2]:-}', not /dev/vda1"; }

printf 'poweroff\n' >&3
for ((i = 0; i < 600; i++)); do
  kill -0 $vm 2>/dev/null || break
  sleep 0.1
done
kill -0 $vm 2>/dev/null && { show; fail "the guest did not power off within 60 s of 'poweroff'"; }
wait $vm
status=$?
vm=
[[ $status -eq 0 ]] || { show; fail "vmbt ended with status $status after poweroff, not 0"; }
[[ $(stat -c '%s %Y' "$img") == "$before" ]] || fail "the image changed although vmbt ran with --snapshot"
echo "ok $name: SeaBIOS -> GRUB's menu at ${grub} s -> Linux ${lines[0]} -> login: at ${login} s" \
  "(no --kernel); cmdline from grub.cfg, / on /dev/vda1; poweroff"
