#!/usr/bin/env bash
# tests/e2e/linux_gdb.sh VMBT SOURCE_DIR
#
# The README's kernel-debugging session, run by ctest: Debian's gdb with the -dbg package's
# vmlinux (scripts/get-debian-guest --vmlinux) against Debian 12's own i386 kernel under
# `vmbt run --gdb ... -S` on bt, booted with nokaslr. Oracles: System.map for start_kernel's
# address; the kernel's own call chain (head32.c's i386_start_kernel calls start_kernel);
# CR0.PG set there (the kernel runs at virtual addresses); and the first file busybox's shell
# opens as init, the script /init itself, read through the process's page tables.
# Exit status: 0 pass, 1 fail, 77 skipped (no gdb, or the guest cannot be fetched).
set -u
vmbt=$1 src=$2
fail() { echo "FAIL linux.bt.gdb: $*"; echo "--- gdb:"; cat "$work/gdb.out"; echo "--- vmbt:"; tail -20 "$work/vmbt.out"; cat "$work/vmbt.err"; exit 1; }
command -v gdb >/dev/null || { echo "SKIP: gdb is not installed (scripts/setup installs it)"; exit 77; }
"$src/scripts/get-debian-guest" --vmlinux >"${TMPDIR:-/tmp}/vmbt-get-guest.log" 2>&1
rc=$?
if [[ $rc -eq 3 || $rc -eq 4 ]]; then
  echo "SKIP linux.bt.gdb: scripts/get-debian-guest --vmlinux could not fetch the guest (exit $rc)"
  exit 77
fi
[[ $rc -eq 0 ]] || { cat "${TMPDIR:-/tmp}/vmbt-get-guest.log"; echo "FAIL: get-debian-guest"; exit 1; }
cache=$src/guest-cache
work=$(mktemp -d)
vmbt_pid=
trap '[[ -n $vmbt_pid ]] && kill $vmbt_pid 2>/dev/null; rm -rf "$work"' EXIT

source "$(dirname "$0")/gdb_stub_lib.sh"
start_vmbt_with_stub "$work" "$vmbt" run --engine bt --kernel "$cache/vmlinuz-686" \
  --initrd "$cache/initramfs.cpio.gz" --append "console=ttyS0 nokaslr" --timeout 300
[[ -n $port ]] || fail "vmbt did not say where its stub listens"
cat >"$work/session.gdb" <<GDB
set pagination off
set confirm off
target remote 127.0.0.1:$port
break start_kernel
continue
printf "SK eip=%x cr0=%x\n", \$eip, \$cr0
bt
x/2i \$pc
break do_sys_open
continue
printf "OPEN %s\n", filename
kill
GDB
timeout --foreground 240 gdb -nx -batch -x "$work/session.gdb" "$cache/vmlinux-686-dbg" \
  >"$work/gdb.out" 2>&1
wait $vmbt_pid
status=$?
vmbt_pid=

want=$(awk '$3 == "start_kernel" { print $1 }' "$cache/System.map" | sed 's/^0*//')
[[ -n $want ]] || fail "no start_kernel in $cache/System.map"
line=$(grep "^SK " "$work/gdb.out")
[[ $line =~ ^SK\ eip=([0-9a-f]+)\ cr0=([0-9a-f]+)$ ]] || fail "gdb did not stop at start_kernel"
[[ ${BASH_REMATCH[1]} == "$want" ]] || fail "stopped at ${BASH_REMATCH[1]}, start_kernel is $want"
(( 16#${BASH_REMATCH[2]} & 0x80000000 )) || fail "CR0.PG is clear at start_kernel (cr0 ${BASH_REMATCH[2]})"
grep -q "in i386_start_kernel ()" "$work/gdb.out" || fail "bt does not show i386_start_kernel calling start_kernel"
echo "ok linux.bt.gdb: break start_kernel stops at 0x$want with paging on; bt shows i386_start_kernel"
grep -q '^OPEN /init$' "$work/gdb.out" || fail "the first do_sys_open is not init's shell opening /init"
echo "ok linux.bt.gdb: break do_sys_open: the filename /init read through the process's page tables"
grep -q "ended by the debugger" "$work/vmbt.err" && [[ $status -eq 0 ]] ||
  fail "gdb's kill did not end the run (status $status)"
echo "ok linux.bt.gdb: kill ends the run"
