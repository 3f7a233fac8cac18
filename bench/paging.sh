#!/usr/bin/env bash
# bench/paging.sh [BUILD_DIR]
#
# Runs the paging micro-benchmark guests (bench/paging/*.S, built into BUILD_DIR/bench/paging by
# the bench_paging target) and prints a table of cycles and nanoseconds per operation:
#
#   pf_heavy    fresh pages written once each; every store takes a #PF whose handler maps a frame
#   cr3_switch  CR3 alternates between two address spaces, one read-modify-write in each
#   ptemod      a PTE is pointed to another frame, INVLPG, then the page is read
#
# Each guest measures itself with RDTSC and prints "BENCH name ops=N cycles_per_op=C" lines (see
# bench/paging/bench.inc); the guest's TSC runs at the host's TSC rate, so nanoseconds are
# cycles / (TSC MHz / 1000), with the TSC frequency measured by BUILD_DIR/bench/tsc_mhz (or,
# without it, /proc/cpuinfo's "cpu MHz"). Numbers are per operation as the guest sees it,
# including the exits, host signals and monitor work the engine spends on it.
#
# Engines: bt always; kvm when /dev/kvm is usable. A host without VT-x/AMD-V (kvm-pvm) refuses
# 32-bit paging, so there the kvm column says so instead of giving numbers.
set -u

build=${1:-build}
vmbt=$build/vmbt
dir=$build/bench/paging
guests=(pf_heavy cr3_switch ptemod)

[[ -x $vmbt ]] || { echo "paging.sh: $vmbt not found (build first)" >&2; exit 2; }
for g in "${guests[@]}"; do
  [[ -f $dir/$g.elf ]] || { echo "paging.sh: $dir/$g.elf missing (build target bench_paging)" >&2; exit 2; }
done

if [[ -x $build/bench/tsc_mhz ]]; then
  mhz=$("$build/bench/tsc_mhz")
  mhz_from="measured by $build/bench/tsc_mhz"
else
  mhz=$(awk -F: '/^cpu MHz/ { gsub(/ /, "", $2); print $2; exit }' /proc/cpuinfo)
  mhz_from="/proc/cpuinfo cpu MHz"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmbt-paging-bench.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

kvm_usable=0
[[ -r /dev/kvm && -w /dev/kvm ]] && kvm_usable=1
kvm_note=
declare -A bt_cpo kvm_cpo ops_of
order=()

run() {  # run ENGINE GUEST -> $tmp/ENGINE.GUEST.{out,err,status}
  local engine=$1 g=$2
  timeout -k 5 300 "$vmbt" run --engine "$engine" --kernel "$dir/$g.elf" --timeout 240 \
    </dev/null >"$tmp/$engine.$g.out" 2>"$tmp/$engine.$g.err"
  echo $? >"$tmp/$engine.$g.status"
}

for g in "${guests[@]}"; do
  for engine in bt kvm; do
    if [[ $engine == kvm ]]; then
      [[ $kvm_usable -eq 1 ]] || { kvm_note="kvm: /dev/kvm is not usable here"; continue; }
      [[ -n $kvm_note ]] && continue  # refused once: refused for every paged guest
    fi
    start=$(date +%s.%N)
    run "$engine" "$g"
    end=$(date +%s.%N)
    status=$(cat "$tmp/$engine.$g.status")
    # (vmbt exits with 1 both for a refusal and for a guest's EXIT(0): look at the message.)
    if [[ $engine == kvm ]] && grep -qF "cannot run 32-bit paged guests" "$tmp/$engine.$g.err"; then
      kvm_note="kvm: no numbers on this host: $(grep -F 'cannot run 32-bit paged guests' "$tmp/$engine.$g.err" | head -1)"
      continue
    fi
    if [[ $status -ne 1 ]] || grep -q '^FAIL' "$tmp/$engine.$g.out" ||
      ! grep -q '^BENCH ' "$tmp/$engine.$g.out"; then
      echo "paging.sh: $g on $engine failed (exit status $status):" >&2
      cat "$tmp/$engine.$g.out" "$tmp/$engine.$g.err" >&2
      continue
    fi
    printf '%-4s %-11s ran in %.2f s\n' "$engine" "$g" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" >&2
    while read -r _ name ops cpo; do
      ops=${ops#ops=} cpo=${cpo#cycles_per_op=}
      [[ -v ops_of[$name] ]] || order+=("$name")
      ops_of[$name]=$ops
      if [[ $engine == bt ]]; then bt_cpo[$name]=$cpo; else kvm_cpo[$name]=$cpo; fi
    done < <(grep '^BENCH ' "$tmp/$engine.$g.out")
  done
done

ns() { awk -v c="$1" -v m="$mhz" 'BEGIN { printf "%.1f", c * 1000 / m }'; }

echo
echo "TSC: $mhz MHz ($mhz_from)"
printf '%-28s %6s %14s %12s %14s %12s\n' benchmark ops "bt cycles/op" "bt ns/op" "kvm cycles/op" "kvm ns/op"
for name in "${order[@]}"; do
  b=${bt_cpo[$name]-} k=${kvm_cpo[$name]-}
  printf '%-28s %6s %14s %12s %14s %12s\n' "$name" "${ops_of[$name]}" "${b:--}" \
    "$([[ -n $b ]] && ns "$b" || echo -)" "${k:--}" "$([[ -n $k ]] && ns "$k" || echo -)"
done
[[ -n $kvm_note ]] && echo "$kvm_note"
exit 0
