#!/usr/bin/env bash
# tests/e2e/linux_virtio_blk.sh VMBT SOURCE_DIR
#
# Debian's i386 kernel with a raw disk image as a virtio-blk disk (`--drive`, issue 10), under bt.
# The oracle is the image file on the host: the guest's sha256 of /dev/vda must be the host's
# sha256 of the file; a sector the guest writes with fsync (VIRTIO_BLK_T_FLUSH) must be in the
# file after the run; with --snapshot the file must stay byte-identical while the guest still reads
# its own write back; with readonly=on the guest's write must fail with an I/O error and the file
# stay as it was; an ext2 file system made and written in one boot holds the file in the next;
# Linux drives the disk through the modern virtio-pci interface (VIRTIO_F_VERSION_1 negotiated)
# and its interrupt reaches Linux through the DSDT's _PRT (GSI 11, level). Exit status: 0 pass,
# 1 fail, 77 skipped (no guest: Debian's archive unreachable).
set -u
# shellcheck source=tests/e2e/oneshot_guest_lib.sh
source "$(dirname "$0")/oneshot_guest_lib.sh"
vmbt=$1
src=$2
fail() { echo "FAIL linux.bt.virtio_blk: $*"; exit 1; }

commands='mode=$(sed -n "s/.*vmbt.mode=\([a-z]*\).*/\1/p" /proc/cmdline)
if [ "$mode" = mkfs ]; then
  mke2fs -q /dev/vdb && mkdir -p /mnt && mount /dev/vdb /mnt && echo "written in boot one" >/mnt/file &&
    sync && umount /mnt && echo fs-written
fi
if [ "$mode" = mount ]; then
  mkdir -p /mnt && mount /dev/vdb /mnt && echo "fs-read=$(cat /mnt/file)"
fi
echo "pci-problems=$(dmesg | grep -c -E "can.t derive routing|no compatible bridge window|Firmware Bug")"
echo "vda-irq=$(grep virtio0 /proc/interrupts | grep -o "IO-APIC *[0-9]*-fasteoi" | tr -s " ")"
# VIRTIO_F_VERSION_1 (bit 32 of the negotiated features): the modern virtio-pci interface.
echo "virtio-version1=$(cut -c33 /sys/bus/virtio/devices/virtio0/features)"
echo "disk-sha256=$(dd if=/dev/vda bs=64k 2>/dev/null | sha256sum | cut -d" " -f1)"
if echo VMBT-MARK-$mode | dd of=/dev/vda bs=512 seek=100 conv=notrunc,fsync 2>/dev/null; then
  echo write-ok
else
  echo write-failed
fi
echo 3 >/proc/sys/vm/drop_caches
echo "readback=$(dd if=/dev/vda bs=512 skip=100 count=1 2>/dev/null | head -c 15)"'
oneshot_guest "linux.bt.virtio_blk" "$src" "$commands"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
disk=$work/disk.img
# 8 MiB whose sector n reads "sectorNNNNNN" and dots.
pad=$(printf '%500s' '' | tr ' ' '.')
awk -v pad="$pad" 'BEGIN { for (i = 0; i < 16384; i++) printf "sector%06d%s", i, pad }' >"$disk"

run() {  # run MODE EXTRA-FLAGS...: stdout in $work/out, stderr in $work/err
  local mode=$1
  shift
  timeout -k 10 300 "$vmbt" run --engine bt --kernel "$kernel" --initrd "$img" \
    --append "console=ttyS0 vmbt.mode=$mode" --stats "$@" </dev/null >"$work/out" 2>"$work/err"
  status=$?
  tr -d '\r' <"$work/out" >"$work/out.txt"
}
show() { echo "--- stdout tail:"; tail -15 "$work/out.txt"; echo "--- stderr:"; head -30 "$work/err"; }
want() { grep -q -- "$1" "$work/out.txt" || { show; fail "$2: no '$1' on the console"; }; }

# 1. Read it all, write a sector with fsync.
before=$(sha256sum "$disk" | cut -d' ' -f1)
run rw --drive "$disk"
[[ $status -eq 0 ]] || { show; fail "read-write run ended with status $status"; }
want "disk-sha256=$before" "the guest's /dev/vda differs from the image"
want "virtio-version1=1" "Linux did not take the modern virtio-pci interface (VIRTIO_F_VERSION_1)"
want "write-ok" "read-write"
want "readback=VMBT-MARK-rw" "read-write"
[[ $(dd if="$disk" bs=512 skip=100 count=1 2>/dev/null | head -c 12) == VMBT-MARK-rw ]] ||
  fail "the guest's fsynced write is not in the image"
grep -Eq "virtio.blk0.flushes +[1-9]" "$work/err" || { show; fail "no VIRTIO_BLK_T_FLUSH reached the device"; }
# The DSDT's _CRS and _PRT (vmm/boot/acpi_tables.h): Linux takes the BAR inside the root bridge's
# windows and routes INTA# of 00:03.0 to GSI 11, level-triggered, through the I/O APIC.
want "pci-problems=0" "Linux reported a PCI resource or interrupt-routing problem"
want "vda-irq=IO-APIC 11-fasteoi" "virtio0's interrupt is not GSI 11, level, on the I/O APIC"

# 2. --snapshot: the guest sees its write, the image does not change.
before=$(sha256sum "$disk" | cut -d' ' -f1)
run snap --drive "$disk" --snapshot
[[ $status -eq 0 ]] || { show; fail "snapshot run ended with status $status"; }
want "write-ok" "snapshot"
want "readback=VMBT-MARK-snap" "snapshot"
[[ $(sha256sum "$disk" | cut -d' ' -f1) == "$before" ]] || fail "--snapshot changed the image"

# 3. readonly=on: the write fails in the guest, the image does not change.
run ro --drive "$disk,readonly=on"
[[ $status -eq 0 ]] || { show; fail "read-only run ended with status $status"; }
want "disk-sha256=$before" "read-only"
want "write-failed" "read-only (the guest's write must fail)"
[[ $(sha256sum "$disk" | cut -d' ' -f1) == "$before" ]] || fail "readonly=on changed the image"
# 4. A file system (Debian's ext4 modules, loaded by the initramfs) on a second disk: a file
#    written and synced in one boot is read back in the next.
fs=$work/fs.img
truncate -s 32M "$fs"
run mkfs --drive "$disk" --drive "$fs"
want "fs-written" "mke2fs and a file on /dev/vdb"
run mount --drive "$disk" --drive "$fs"
want "fs-read=written in boot one" "the file from the first boot"
echo "ok linux.bt.virtio_blk: read, fsync'd write, --snapshot, readonly=on and a file system across boots"
