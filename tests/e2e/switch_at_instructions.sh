#!/usr/bin/env bash
# tests/e2e/switch_at_instructions.sh VMBT GUEST_ELF EXPECT
#
# `--switch-at-instructions N` moves the guest after exactly N instructions: the EIP vmbt reports
# for the switch must be the address of instruction N (counting from 0) of the entry code as
# objdump disassembles it (the oracle), for N = 0..4, from bt to kvm and from kvm to bt; and the
# guest's output must be the expected one.
# Exit status: 0 pass, 1 fail, 77 skipped (no usable /dev/kvm).
set -u
vmbt=$1 elf=$2 expect=$3
[[ -r /dev/kvm && -w /dev/kvm ]] || { echo "SKIP: no usable /dev/kvm"; exit 77; }
entry=$(readelf -h "$elf" | sed -n 's/.*Entry point address:[[:space:]]*0x\([0-9a-f]*\).*/\1/p')
mapfile -t addrs < <(objdump -d --start-address="0x$entry" "$elf" |
  sed -n 's/^ *\([0-9a-f]*\):\t.*/\1/p' | head -5)
[[ ${#addrs[@]} -eq 5 ]] || { echo "FAIL: objdump gave no instructions at 0x$entry"; exit 1; }
want=$(grep -v '^#!' "$expect")
for from in bt kvm; do
  for n in 0 1 2 3 4; do
    err=$("$vmbt" run --engine "$from" --switch-at-instructions "$n" --kernel "$elf" 2>&1 >/tmp/vmbt-sai.$$)
    got=$(tr -d '\r' </tmp/vmbt-sai.$$)
    rm -f /tmp/vmbt-sai.$$
    at=$(sed -n 's/.*switched from [a-z]* to [a-z]* at EIP 0x0*\([0-9a-f]*\).*/\1/p' <<<"$err")
    [[ $at == "${addrs[$n]}" ]] || {
      echo "FAIL: from $from after $n instructions: switched at 0x$at, want 0x${addrs[$n]}"
      echo "$err"
      exit 1
    }
    [[ $got == "$want" ]] || { echo "FAIL: from $from after $n: the output differs"; exit 1; }
  done
  echo "ok switch_at_instructions: from $from after 0-4 instructions, at the objdump addresses"
done
