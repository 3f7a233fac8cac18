#!/usr/bin/env bash
# run_guest.sh VMBT ENGINE ELF EXPECT
#
# Runs one test guest through the real vmbt binary and checks it against an expectation file:
#
#   VMBT run --engine ENGINE --kernel ELF   < /dev/null, 60 s timeout
#
# ENGINE is bt or kvm, or a switching mode (README "Switching engines"): `switch` starts on bt
# and moves the guest to kvm and back every millisecond; `bt_to_kvm` and `kvm_to_bt` move it
# once, after a millisecond. The serial output must be the single-engine one. Both modes
# run part of the guest on kvm, so the kvm rules below apply to them too; a paged guest under
# `switch` on a KVM that refuses paging stays on bt (tests/e2e/switch_refusal.sh checks that vmbt
# says so).
#
# vmbt prints the guest's serial console (COM1) on stdout and its own diagnostics on stderr.
#
# Expectation file format (tests/guests/NAME.expect):
#   Lines starting with "#!" are directives:
#     #! status N             required: vmbt's expected exit status. isa-debug-exit with value V
#                             gives (V << 1) | 1; HLT with interrupts off gives 0; a guest triple
#                             fault gives 2; a user-facing error gives 1.
#     #! paged                the guest turns on paging. On the kvm engine, a host without VT-x/
#                             AMD-V (whose KVM, e.g. kvm-pvm, refuses 32-bit paging) may instead
#                             make vmbt refuse: the test passes when vmbt exits non-zero with
#                             "cannot run 32-bit paged guests" on stderr, and says it checked the
#                             refusal. On any other host/engine the normal checks apply.
#     #! stderr-contains TEXT vmbt's stderr must contain TEXT (a fixed string; may repeat).
#     #! skip-on-kvm-pvm WHY  on the kvm engine, when the host's KVM is kvm-pvm (module kvm_pvm
#                             loaded: no VT-x/AMD-V, every instruction emulated), skip the test
#                             (exit 77) and print WHY: for what kvm-pvm cannot do at all.
#     #! kvm-pvm-falls-back   what kvm-pvm cannot do in this guest it stops at (emulation failures,
#                             no guest-visible difference): the switching modes, which hand the
#                             guest back to bt there, run it despite skip-on-kvm-pvm.
#     #! switch-skip-on-kvm-pvm WHY  in the switching modes on kvm-pvm, skip the test and print WHY:
#                             for state kvm-pvm keeps where vmbt cannot read it back (MSRs, DRs).
#     #! skip-on-engine E WHY skip the test (exit 77) on engine E and print WHY: for a feature
#                             that engine does not have yet (the reason names what is missing).
#     #! max-rss-mib N        vmbt's peak resident set (GNU time's %M) must stay at or below N MiB:
#                             for guests that try to grow host memory without bound.
#   Every other line is one line of expected serial output. The expected stdout is those lines,
#   each ending in "\n", compared exactly with vmbt's stdout (carriage returns removed first).
#   A "#!" line with an unknown directive is an error, so typos cannot disable a check.
#
# Exit status: 0 pass, 1 fail, 77 skipped (ctest SKIP_RETURN_CODE), 2 usage/expectation error.
set -u

if [[ $# -ne 4 ]]; then
  echo "usage: $0 VMBT ENGINE ELF EXPECT" >&2
  exit 2
fi
vmbt=$1 engine=$2 elf=$3 expect=$4
name=$(basename "$elf" .elf)

fail() {
  echo "FAIL guest.$engine.$name: $*"
  exit 1
}

[[ -x $vmbt ]] || fail "vmbt binary '$vmbt' is missing or not executable"
[[ -f $elf ]] || fail "guest '$elf' is missing (build the 'guests' target)"
[[ -f $expect ]] || fail "expectation file '$expect' is missing"

engine_args=(--engine "$engine")
kvm_like=0
case $engine in
  kvm) kvm_like=1 ;;
  switch) engine_args=(--engine bt --switch-every 0.001) kvm_like=1 ;;
  bt_to_kvm) engine_args=(--engine bt --switch-after 0.001) kvm_like=1 ;;
  kvm_to_bt) engine_args=(--engine kvm --switch-after 0.001) kvm_like=1 ;;
esac
starts_on_kvm=0
[[ ${engine_args[1]} == kvm ]] && starts_on_kvm=1

if [[ $kvm_like -eq 1 ]]; then
  if [[ ! -e /dev/kvm ]]; then
    echo "SKIP guest.$engine.$name: /dev/kvm does not exist on this host (no KVM)"
    exit 77
  fi
  if [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
    echo "SKIP guest.$engine.$name: /dev/kvm is not readable and writable by $(id -un)" \
      "(add the user to group kvm)"
    exit 77
  fi
fi

# Parse the expectation file.
want_status=
paged=0
pvm_skip_reason=
pvm_falls_back=0
pvm_switch_skip_reason=
engine_skip_reason=
max_rss_mib=
stderr_needles=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmbt-guest-$name.XXXXXX") || fail "mktemp failed"
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/want"
lineno=0
while IFS= read -r line || [[ -n $line ]]; do
  lineno=$((lineno + 1))
  if [[ $line == '#!'* ]]; then
    directive=${line#'#!'}
    directive=${directive#"${directive%%[![:space:]]*}"}  # trim leading blanks
    case $directive in
      status\ *)
        want_status=${directive#status }
        [[ $want_status =~ ^[0-9]+$ ]] || {
          echo "$expect:$lineno: bad status '$want_status'" >&2
          exit 2
        }
        ;;
      paged) paged=1 ;;
      stderr-contains\ *) stderr_needles+=("${directive#stderr-contains }") ;;
      skip-on-kvm-pvm\ *) pvm_skip_reason=${directive#skip-on-kvm-pvm } ;;
      kvm-pvm-falls-back) pvm_falls_back=1 ;;
      switch-skip-on-kvm-pvm\ *)
        [[ $engine == switch || $engine == bt_to_kvm || $engine == kvm_to_bt ]] &&
          pvm_switch_skip_reason=${directive#switch-skip-on-kvm-pvm } ;;
      skip-on-engine\ "$engine"\ *) engine_skip_reason=${directive#skip-on-engine "$engine" } ;;
      skip-on-engine\ kvm\ *)
        [[ $kvm_like -eq 1 ]] && engine_skip_reason="(part of the run is on kvm) ${directive#skip-on-engine kvm }" ;;
      skip-on-engine\ *) ;;
      max-rss-mib\ *)
        max_rss_mib=${directive#max-rss-mib }
        [[ $max_rss_mib =~ ^[0-9]+$ ]] || {
          echo "$expect:$lineno: bad max-rss-mib '$max_rss_mib'" >&2
          exit 2
        }
        ;;
      *)
        echo "$expect:$lineno: unknown directive '#! $directive'" >&2
        exit 2
        ;;
    esac
  else
    printf '%s\n' "$line" >>"$tmp/want"
  fi
done <"$expect"
if [[ -z $want_status ]]; then
  echo "$expect: missing the required '#! status N' directive" >&2
  exit 2
fi

if [[ $pvm_falls_back -eq 1 && $engine != kvm ]]; then
  pvm_skip_reason=  # a switching run hands the guest to bt where kvm-pvm stops
fi
if [[ -n $pvm_switch_skip_reason ]]; then
  pvm_skip_reason=$pvm_switch_skip_reason
fi
if [[ -n $pvm_skip_reason && $kvm_like -eq 1 && -d /sys/module/kvm_pvm ]]; then
  echo "SKIP guest.$engine.$name: this host's KVM is kvm-pvm: $pvm_skip_reason"
  exit 77
fi

if [[ -n $engine_skip_reason ]]; then
  echo "SKIP guest.$engine.$name: $engine_skip_reason"
  exit 77
fi

# Run the guest.
measure=()
if [[ -n $max_rss_mib ]]; then
  [[ -x /usr/bin/time ]] || fail "max-rss-mib needs GNU time (/usr/bin/time: scripts/setup installs it)"
  measure=(/usr/bin/time -f %M -o "$tmp/rss_kib")
fi
timeout -k 5 60 ${measure[@]+"${measure[@]}"} "$vmbt" run "${engine_args[@]}" --kernel "$elf" \
  </dev/null >"$tmp/stdout" 2>"$tmp/stderr"
status=$?
tr -d '\r' <"$tmp/stdout" >"$tmp/got"

show_run() {
  echo "--- command: $vmbt run --engine $engine --kernel $elf"
  echo "--- exit status: $status (expected $want_status)"
  echo "--- stderr:"
  cat "$tmp/stderr"
  echo "--- stdout vs expected (diff -u expected actual):"
  diff -u --label expected --label actual "$tmp/want" "$tmp/got"
  echo "---"
}

if [[ $status -eq 124 || $status -eq 137 ]]; then
  show_run
  fail "vmbt did not finish within 60 s (killed by timeout)"
fi

# A paged guest on a KVM that cannot do 32-bit paging: the clear refusal is the expected outcome.
refusal="cannot run 32-bit paged guests"
if [[ $paged -eq 1 && $starts_on_kvm -eq 1 && $status -ne 0 ]] && grep -qF "$refusal" "$tmp/stderr"; then
  if grep -qwE 'vmx|svm' /proc/cpuinfo 2>/dev/null; then
    show_run
    fail "vmbt refused a paged guest although this host has VT-x/AMD-V"
  fi
  echo "PASS guest.$engine.$name: checked the refusal: this host's KVM cannot run 32-bit paged" \
    "guests and vmbt said so (status $status):"
  grep -F "$refusal" "$tmp/stderr" | sed 's/^/  /'
  exit 0
fi

problems=()
[[ $status -eq $want_status ]] || problems+=("exit status $status, expected $want_status")
cmp -s "$tmp/want" "$tmp/got" || problems+=("serial output differs from $expect")
if [[ -n $max_rss_mib ]]; then
  rss_kib=$(tail -1 "$tmp/rss_kib" 2>/dev/null)
  if [[ ! $rss_kib =~ ^[0-9]+$ ]]; then
    problems+=("no peak RSS measured")
  elif ((rss_kib > max_rss_mib * 1024)); then
    problems+=("peak RSS $((rss_kib / 1024)) MiB, above the bound of $max_rss_mib MiB")
  fi
fi
for needle in ${stderr_needles[@]+"${stderr_needles[@]}"}; do
  grep -qF -- "$needle" "$tmp/stderr" || problems+=("stderr does not contain '$needle'")
done

if [[ ${#problems[@]} -ne 0 ]]; then
  show_run
  for p in "${problems[@]}"; do echo "problem: $p"; done
  fail "${problems[0]}"
fi
echo "PASS guest.$engine.$name (status $status, $(wc -l <"$tmp/got") lines of serial output)"
exit 0
