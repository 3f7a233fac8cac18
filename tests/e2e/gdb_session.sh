#!/usr/bin/env bash
# tests/e2e/gdb_session.sh VMBT ENGINE GUEST_ELF
#
# Debian's gdb debugs tests/guests/gdb_target.S under `vmbt run --gdb ... -S` in batch mode, as a
# user would. The oracles: the ELF's symbols (nm) for where stops must be, the guest's own
# printout of its registers at gdb_break_here, the same guest word read through two linear
# addresses (identity map and a page-table alias), the SDM's CPL-3 selector after an IRET, and
# the guest's own checks: that it reads its own code where a breakpoint is set (no 0xcc), and
# that the debugger's store ended its spin loop.
# Exit status: 0 pass, 1 fail, 77 skipped (no gdb, or an engine that cannot run the guest here).
set -u
vmbt=$1 engine=$2 elf=$3
command -v gdb >/dev/null || { echo "SKIP: gdb is not installed (scripts/setup installs it)"; exit 77; }
if [[ $engine == kvm ]] && ! [[ -r /dev/kvm && -w /dev/kvm ]]; then
  echo "SKIP gdb.kvm: /dev/kvm is missing or not read-writable"
  exit 77
fi
# kvm-pvm (no VT-x/AMD-V) runs neither paging nor IRET: the guest's "flat" mode leaves both out,
# and so do the checks that need them.
mode=paged
if [[ $engine == kvm ]] && ! "$vmbt" probe 2>/dev/null | grep -q '^paged 32-bit guest runs: *yes'; then
  mode=flat
  echo "note: this host's KVM runs no paged guest, no IRET and no data breakpoint: gdb_target runs flat; the page-table, IRET and watchpoint checks are skipped"
fi
work=$(mktemp -d)
vmbt_pid=
trap '[[ -n $vmbt_pid ]] && kill $vmbt_pid 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL gdb: $*"; echo "--- gdb:"; cat "$work/gdb.out"; echo "--- vmbt:"; cat "$work/vmbt.out" "$work/vmbt.err"; exit 1; }
sym() { nm "$elf" | awk -v s="$1" '$3 == s { print $1 }' | sed 's/^0*//'; }

# A read watchpoint on the page-table alias; debug registers watch reads only with writes.
read_watch=rwatch
[[ $engine == kvm ]] && read_watch=awatch
source "$(dirname "$0")/gdb_stub_lib.sh"
start_vmbt_with_stub "$work" "$vmbt" run --engine "$engine" --kernel "$elf" \
  --append "$([[ $mode == flat ]] && echo flat)" --timeout 120
[[ -n $port ]] || fail "vmbt did not say where its stub listens"

cat >"$work/session.gdb" <<GDB
set pagination off
set confirm off
target remote 127.0.0.1:$port
$([[ $mode == paged ]] && printf '%s\n' 'watch *(unsigned int *)&gdb_data' continue 'printf "WATCH eip=%x value=%x\n", $eip, *(unsigned int *)&gdb_data' delete)
$([[ $mode == paged ]] && printf '%s\n' "$read_watch *(unsigned int *)0x40000000" continue 'printf "READ-WATCH eip=%x\n", $eip' delete)
break *gdb_break_here
continue
printf "BP eip=%x\n", \$eip
printf "REGS eax=0x%08x ecx=0x%08x edx=0x%08x ebx=0x%08x ebp=0x%08x esi=0x%08x edi=0x%08x\n", \$eax, \$ecx, \$edx, \$ebx, \$ebp, \$esi, \$edi
printf "ALIAS %x at %x\n", **(unsigned int **)&alias_addr, *(unsigned int *)&alias_addr
printf "IDENTITY %x\n", *(unsigned int *)&gdb_data
python
try:
    gdb.execute("x/x 0x50000000", to_string=True)
    print("UNMAPPED read")
except gdb.MemoryError as e:
    print("UNMAPPED error:", e)
end
x/2i \$pc
monitor stats
$([[ $mode == paged ]] && printf '%s\n' 'monitor trace on' 'break *iret_to_user' continue stepi 'printf "AFTER-IRET cs=%x eip=%x\n", $cs, $eip' 'monitor trace off')
set var *(unsigned int *)&spin_limit = 0xffffffff
delete
break *gdb_spin
continue
delete
printf "SPIN-CONTINUE\n"
continue
printf "INTERRUPTED eip=%x\n", \$eip
set var *(unsigned int *)&spin_done = 1
continue
GDB
timeout --foreground 90 gdb -nx -batch -x "$work/session.gdb" "$elf" >"$work/gdb.out" 2>&1 &
gdb_pid=$!
# Ctrl-C, as a user at the gdb prompt would, once the guest is spinning under `continue`
# (timeout --foreground passes the SIGINT on to gdb once; without it gdb gets a second one from
# the process group and gives up waiting for the target).
for _ in $(seq 300); do
  grep -q SPIN-CONTINUE "$work/gdb.out" && break
  sleep 0.1
done
sleep 0.5
kill -INT $gdb_pid 2>/dev/null
wait $gdb_pid
wait $vmbt_pid
status=$?
vmbt_pid=

out=$work/gdb.out
stored=$(sym gdb_data_stored)
if [[ $mode == paged ]]; then
  grep -q "^WATCH eip=$stored value=6d6d6462\$" "$out" ||
    fail "the write watchpoint on gdb_data did not stop right after the store (gdb_data_stored, 0x$stored)"
  echo "ok gdb: a write watchpoint stops after the store"
  alias_read=$(sym gdb_alias_read)
  grep -q "^READ-WATCH eip=$alias_read\$" "$out" ||
    fail "$read_watch on the alias did not stop right after the load through it (gdb_alias_read, 0x$alias_read)"
  echo "ok gdb: $read_watch on a linear address stops after the load through it (not after the store to the same frame elsewhere)"
fi
bp=$(sym gdb_break_here) user=$(sym user_entry) spin=$(sym gdb_spin) spin_end=$(sym gdb_spin_end)
grep -q "^BP eip=$bp\$" "$out" || fail "the breakpoint at gdb_break_here (0x$bp) was not where gdb stopped"
echo "ok gdb: breakpoint at gdb_break_here (0x$bp)"
want=$(sed -n 's/^registers at gdb_break_here: //p' "$work/vmbt.out")
got=$(sed -n 's/^REGS //p' "$out")
[[ -n $want && $got == "$want" ]] || fail "registers at the breakpoint: gdb says '$got', the guest '$want'"
echo "ok gdb: registers match the guest's own dump"
grep -Eq "^  engine +$engine\$" "$out" || fail "monitor stats did not print the run's counters"
echo "ok gdb: monitor stats"
alias=$(sed -n 's/^ALIAS \([0-9a-f]*\) at.*/\1/p' "$out") at=$(sed -n 's/^ALIAS .* at //p' "$out")
identity=$(sed -n 's/^IDENTITY //p' "$out")
[[ -n $alias && $alias != 0 && $alias == "$identity" ]] ||
  fail "the word read at 0x$at ($alias) is not gdb_data's ($identity)"
if [[ $mode == paged ]]; then
  [[ $at == 40000000 ]] || fail "the alias is at 0x$at, not the page-table alias 0x40000000"
  echo "ok gdb: memory read through the guest's page tables"
else
  echo "ok gdb: memory read (no paging)"
fi
grep -q "^UNMAPPED error: Cannot access memory at address 0x50000000" "$out" ||
  fail "reading an unmapped address did not fail"
echo "ok gdb: an unmapped address is an error"
if [[ $mode == paged ]]; then
  grep -q "^AFTER-IRET cs=1b eip=$user\$" "$out" ||
    fail "stepi over the IRET did not stop at user_entry (0x$user) with CS 0x1b"
  echo "ok gdb: stepi through IRET to CPL 3"
  iret=$(sym iret_to_user)
  if [[ $engine == bt ]]; then
    grep -Eq "^vmbt trace: .*eip 0x0*$iret cpl 0 +cf +iretd +iret_to_user" "$work/vmbt.err" ||
      fail "monitor trace on did not log the IRET at iret_to_user (0x$iret) on vmbt's stderr"
    grep -q "^tracing off (" "$out" || fail "monitor trace off did not answer"
    echo "ok gdb: monitor trace on|off logs the sensitive instructions in between"
  fi
fi
grep -q "Program received signal SIGINT" "$out" || fail "Ctrl-C did not stop the guest"
eip=$(sed -n 's/^INTERRUPTED eip=//p' "$out")
[[ -n $eip ]] && (( 16#$eip >= 16#$spin && 16#$eip < 16#$spin_end )) ||
  fail "Ctrl-C stopped at 0x$eip, not in gdb_spin [0x$spin, 0x$spin_end)"
echo "ok gdb: Ctrl-C stops the spinning guest"
grep -q "exited with code 01" "$out" && grep -q "spin ended by the debugger" "$work/vmbt.out" &&
  grep -q "gdb_target: all checks passed" "$work/vmbt.out" && [[ $status -eq 1 ]] ||
  fail "continue did not run the guest to its end (vmbt status $status)"
echo "ok gdb: the debugger's store ends the spin; continue runs to the end"
