#!/usr/bin/env bash
# tests/e2e/switch_refusal.sh VMBT GUEST_ELF
#
# A switch the other engine cannot take is refused with the reason, and the guest runs on where it
# was: tests/guests/many_spaces.S turns paging on and runs for a while; on a KVM that refuses
# 32-bit paging (kvm-pvm) every switch to kvm from then on must be refused, saying so, and the
# guest must still pass all its checks on bt. Elsewhere the switches happen and it passes too.
# Exit status: 0 pass, 1 fail, 77 skipped (no usable /dev/kvm).
set -u
vmbt=$1 elf=$2
[[ -r /dev/kvm && -w /dev/kvm ]] || { echo "SKIP: no usable /dev/kvm"; exit 77; }
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
timeout -k 5 60 "$vmbt" run --engine bt --switch-every 0.001 --stats --kernel "$elf" \
  </dev/null >"$out" 2>"$err"
status=$?
fail() { echo "FAIL switch_refusal: $*"; tail -20 "$err"; exit 1; }
[[ $status -eq 1 ]] && grep -q "all checks passed" "$out" || fail "the guest did not pass (status $status)"
if grep -qwE 'vmx|svm' /proc/cpuinfo; then
  grep -Eq "switch.switches +[1-9]" "$err" || fail "no switch happened on a host with VT-x/AMD-V"
  echo "ok switch_refusal: this host's KVM runs paged guests: the switches happened"
  exit 0
fi
grep -q "refused at EIP .*refuses 32-bit paging, which the guest has on; the guest stays on bt" \
  "$err" || fail "no switch was refused with the reason"
grep -Eq "switch.refused +[1-9]" "$err" || fail "--stats counts no refusal"
echo "ok switch_refusal: $(grep -c 'refused at EIP' "$err") switches refused with the reason; the guest passed on bt"
