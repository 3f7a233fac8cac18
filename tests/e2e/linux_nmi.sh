#!/usr/bin/env bash
# tests/e2e/linux_nmi.sh VMBT SOURCE_DIR
#
# Ctrl-A n on vmbt's console raises the platform's NMI line (LINT1 of the local APIC, issue 11),
# as QEMU's `nmi` monitor command does. The oracle is Debian's kernel: it programs LVT LINT1 as
# NMI on the boot CPU (setup_local_APIC), and an NMI whose port 0x61 shows neither SERR nor IOCHK
# is "Uhhuh. NMI received for unknown reason ..." in its log, counted in /proc/interrupts' NMI
# line. The escapes work on a terminal only, so vmbt runs under script(1)'s pseudo-terminal.
# Exit status: 0 pass, 1 fail, 77 skipped (no guest: Debian's archive unreachable; no script(1)).
set -u
# shellcheck source=tests/e2e/oneshot_guest_lib.sh
source "$(dirname "$0")/oneshot_guest_lib.sh"
vmbt=$1
src=$2
fail() { echo "FAIL linux.bt.nmi: $*"; exit 1; }
command -v script >/dev/null || { echo "SKIP linux.bt.nmi: script(1) (util-linux) is not installed"; exit 77; }

commands='echo VMBT-NMI-READY
for i in $(seq 1 200); do dmesg | grep -q "NMI received for unknown reason" && break; sleep 0.1; done
dmesg | grep -c "NMI received for unknown reason" | sed "s/^/nmi-logged=/"
awk "/NMI:/ { print \"nmi-counted=\" \$2 }" /proc/interrupts'
oneshot_guest "linux.bt.nmi" "$src" "$commands"

# shellcheck source=tests/e2e/console_session_lib.sh
source "$(dirname "$0")/console_session_lib.sh"
console_session_start
mkfifo "$work/in"
script -q -e -c "'$vmbt' run --engine bt --kernel '$kernel' --initrd '$img' --memory 256M --timeout 120" \
  /dev/null <"$work/in" >"$work/out" 2>&1 &
vm=$!
exec 3>"$work/in"
show() { console_show 20; }
for ((i = 0; i < 1200; i++)); do
  tr -d '\r' <"$work/out" | grep -q VMBT-NMI-READY && break
  kill -0 $vm 2>/dev/null || { show; fail "vmbt ended before the guest was ready"; }
  sleep 0.1
done
tr -d '\r' <"$work/out" | grep -q VMBT-NMI-READY || { show; fail "the guest never got ready"; }
printf '\001n' >&3
wait $vm
vm=
out=$(tr -d '\r' <"$work/out")
grep -q "^nmi-logged=1" <<<"$out" || { show; fail "the guest logged no NMI after Ctrl-A n"; }
grep -q "^nmi-counted=1" <<<"$out" || { show; fail "/proc/interrupts counts no NMI"; }
echo "ok linux.bt.nmi: Ctrl-A n reached Linux as one NMI through LINT1 ($(grep -m1 -o 'NMI received for unknown reason [0-9a-f]*' <<<"$out"))"
