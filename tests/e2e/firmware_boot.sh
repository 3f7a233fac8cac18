#!/usr/bin/env bash
# tests/e2e/firmware_boot.sh VMBT
#
# A firmware boot (no --kernel): the CPU starts at its reset state in Debian's SeaBIOS, on bt and,
# where the host's KVM can run it, on kvm:
#   1. With no disk, SeaBIOS prints its banner on COM1 (its serial console, which fw_cfg's
#      etc/sercon-port selects) and says "No bootable device."
#   2. With a disk whose MBR prints a line through INT 10h and leaves through isa-debug-exit,
#      SeaBIOS boots it from the virtio-blk drive: status 1 ((0 << 1) | 1).
# Exit status: 0 pass, 1 fail, 77 skipped (no SeaBIOS: printed). kvm is skipped, with the reason
# printed, where /dev/kvm is missing or cannot run the firmware.
set -u
vmbt=$1
bios=/usr/share/seabios/bios-256k.bin
[[ -r $bios ]] || { echo "SKIP: $bios missing (Debian package seabios)"; exit 77; }
out=$(mktemp) err=$(mktemp) disk=$(mktemp)
trap 'rm -f "$out" "$err" "$disk"' EXIT
fail() { echo "FAIL firmware_boot ($engine): $*"; cat -v "$out" | head -20; tail -20 "$err"; exit 1; }

# The MBR: xor ax,ax; mov ds,ax; mov si,msg; print with INT 10h AH=0Eh until NUL; sti; wait 20
# timer ticks (SeaBIOS's serial console flushes on them); out 0xf4, 0.
{
  printf '\x31\xc0\x8e\xd8\xbe\x1e\x7c\xac\x84\xc0\x74\x06\xb4\x0e\xcd\x10\xeb\xf5'
  printf '\xfb\xb9\x14\x00\xf4\xe2\xfd\xb0\x00\xe6\xf4\xf4'
  printf 'MBR booted by SeaBIOS\r\n\x00'
} >"$disk"
truncate -s 510 "$disk" && printf '\x55\xaa' >>"$disk" && truncate -s 1M "$disk"

# boot ENGINE: both checks on ENGINE; returns 77 where that engine cannot run the firmware here.
boot() {
  engine=$1
  timeout -k 5 60 "$vmbt" run --engine "$engine" --timeout 10 </dev/null >"$out" 2>"$err"
  if grep -q "cannot run on the $engine engine" "$err"; then
    echo "SKIP $engine: $(grep -o "cannot run on the $engine engine.*" "$err")"
    return 77
  fi
  grep -q "SeaBIOS (version" "$out" || fail "no SeaBIOS banner on the serial console"
  grep -q "No bootable device" "$out" || fail "SeaBIOS did not get to its boot menu"
  timeout -k 5 60 "$vmbt" run --engine "$engine" --timeout 30 --drive "$disk" </dev/null \
    >"$out" 2>"$err"
  status=$?
  [[ $status -eq 1 ]] || fail "the MBR did not end the run through isa-debug-exit (status $status)"
  grep -q "Booting from Hard Disk" "$out" || fail "SeaBIOS did not boot the virtio-blk disk"
  grep -q "MBR booted by SeaBIOS" "$out" || fail "no output from the MBR"
  echo "ok firmware_boot ($engine): SeaBIOS's banner on COM1, an MBR booted from virtio-blk"
}

boot bt || fail "bt cannot run the firmware"
if [[ -r /dev/kvm && -w /dev/kvm ]]; then
  boot kvm
else
  echo "SKIP kvm: no usable /dev/kvm"
fi
exit 0
