#!/usr/bin/env bash
# tests/e2e/sandbox.sh VMBT SPIN_ELF
#
# `vmbt run` confines itself with seccomp once the guest is loaded (vmm/sandbox.h): while a guest
# runs, /proc/PID/status says "Seccomp: 2" (filter mode, Linux's proc(5)); with --no-sandbox it
# says "Seccomp: 0". The guest spins until --timeout ends the run.
# Exit status: 0 pass, 1 fail.
set -u
vmbt=$1 spin=$2
check() {  # expected-mode flags...
  local want=$1
  shift
  "$vmbt" run --kernel "$spin" --timeout 5 "$@" </dev/null >/dev/null 2>&1 &
  local pid=$! mode=
  for _ in $(seq 50); do
    sleep 0.1
    mode=$(sed -n 's/^Seccomp:[[:space:]]*//p' /proc/$pid/status 2>/dev/null)
    [[ $mode == "$want" ]] && break
  done
  kill $pid 2>/dev/null
  wait $pid 2>/dev/null
  if [[ $mode != "$want" ]]; then
    echo "FAIL sandbox: vmbt run $* showed Seccomp: '$mode' while the guest ran, want $want"
    exit 1
  fi
  echo "ok vmbt run $* runs the guest with Seccomp: $mode"
}
check 2
check 0 --no-sandbox
