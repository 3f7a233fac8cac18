#!/usr/bin/env bash
# tests/e2e/memtest.sh VMBT SOURCE_DIR
#
# Debian's memtest86+ (package memtest86+, /boot/memtest86+ia32.bin: a 32-bit image for the Linux
# boot protocol that is not padded to its last 16-byte paragraph, which vmbt's loader once
# refused; issue 12) boots under bt with 32 MiB, prints its banner on the serial console and runs
# its tests past the first five (#0-#4: address and moving-inversions tests; under bt on an idle
# host it is at #8-#10 after 30 s) with no error, as it does under QEMU. memtest never ends by
# itself: the run stops at --timeout.
#
# Exit status: 0 pass, 1 fail, 77 skipped (Debian's archive is not reachable).
set -u
vmbt=$1
src=$2
cache=$src/guest-cache
fail() { echo "FAIL memtest: $*"; exit 1; }

mkdir -p "$cache"
deb=$(ls "$cache"/memtest86+_*_i386.deb "$cache"/memtest86+_*_amd64.deb 2>/dev/null | head -1)
if [[ -z $deb ]]; then
  (cd "$cache" && apt-get download memtest86+ >/dev/null 2>&1) ||
    { echo "SKIP memtest: cannot download Debian's memtest86+ package (apt-get download)"; exit 77; }
  deb=$(ls "$cache"/memtest86+_*.deb 2>/dev/null | head -1)
fi
[[ -n $deb ]] || { echo "SKIP memtest: no memtest86+ package"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp" || fail "cannot unpack $deb"
image=$tmp/boot/memtest86+ia32.bin
[[ -f $image ]] || fail "no /boot/memtest86+ia32.bin in $deb"

out=$(timeout 120 "$vmbt" run --engine bt --kernel "$image" --append "console=ttyS0" \
  --memory 32M --timeout 30 </dev/null 2>&1 | tr -d '\r')
grep -aq "Memtest86+ v" <<<"$out" || fail "no memtest86+ banner on the console: $(tail -c 400 <<<"$out")"
grep -aEq "#([5-9]|1[0-9]) +\[" <<<"$out" || fail "the tests did not get past #4 in 30 s"
grep -aq "Errors: *[1-9]" <<<"$out" && fail "memtest86+ found errors in guest RAM"
grep -aq "Errors: *0" <<<"$out" || fail "no error count on the console"
grep -aq "vmbt: timed out" <<<"$out" || fail "the run did not go on until --timeout: $(tail -c 400 <<<"$out")"
echo "ok memtest86+ ran its tests past #4 with no error"
