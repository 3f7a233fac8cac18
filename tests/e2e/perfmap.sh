#!/usr/bin/env bash
# tests/e2e/perfmap.sh VMBT GUEST_ELF
#
# `vmbt run --perfmap` writes Linux perf's JIT symbol map, /tmp/perf-PID.map ("START SIZE NAME"
# lines in hex, tools/perf/Documentation/jit-interface.txt): bt's stubs by name, and every
# translated block as guest_LINEAR. The oracle for the guest side is the ELF's entry point
# (readelf): the first block translated starts there.
# Exit status: 0 pass, 1 fail.
set -u
vmbt=$1 elf=$2
"$vmbt" run --engine bt --perfmap --kernel "$elf" </dev/null >/dev/null 2>&1 &
pid=$!
wait $pid
map=/tmp/perf-$pid.map
trap 'rm -f "$map"' EXIT
[[ -s $map ]] || { echo "FAIL perfmap: $map is missing or empty"; exit 1; }
entry=$(readelf -h "$elf" | sed -n 's/.*Entry point address:[[:space:]]*0x\([0-9a-f]*\).*/\1/p')
want=$(printf 'guest_%08x' "0x$entry")
bad=$(grep -Evc '^[0-9a-f]+ [0-9a-f]+ (guest_[0-9a-f]{8}|vmbt_stub_[a-z_]+)$' "$map")
grep -q " $want\$" "$map" || { echo "FAIL perfmap: no block named $want (the entry point) in $map"; exit 1; }
grep -q " vmbt_stub_enter\$" "$map" || { echo "FAIL perfmap: the stubs are not named in $map"; exit 1; }
[[ $bad -eq 0 ]] || { echo "FAIL perfmap: $bad lines of $map are not 'START SIZE NAME'"; exit 1; }
echo "ok perfmap: $(wc -l <"$map") symbols, the entry block $want among them"
