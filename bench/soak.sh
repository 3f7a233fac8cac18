#!/usr/bin/env bash
# bench/soak.sh [BUILD_DIR] [SECONDS]
#
# A soak run (issue 17): Debian's kernel under bt running a fork/exec + memory workload in a loop
# for SECONDS (default 600). Every 30 s it prints vmbt's resident set (VmRSS), its host mappings
# (lines of /proc/PID/maps, against vm.max_map_count) and the guest clock's drift from the host's
# (the guest prints its /proc/uptime after each round). It ends non-zero when the RSS or the
# mappings keep growing (the last sample more than 1.5x the one a third of the way in, plus
# 32 MiB / 2048 mappings of slack), the mappings come within 10% of vm.max_map_count, or the
# guest clock drifts by more than 1%.
set -u
build=${1:-build}
seconds=${2:-600}
src=$(cd "$(dirname "$0")/.." && pwd)
vmbt=$build/vmbt
[[ -x $vmbt ]] || { echo "soak.sh: $vmbt not found (build first)" >&2; exit 2; }
round='i=0; while [ $i -lt 50 ]; do /bin/true; i=$((i+1)); done; dd if=/dev/zero bs=16M count=1 of=/dev/null 2>/dev/null'
script="while true; do $round; echo SOAK-TICK \$(cut -d' ' -f1 /proc/uptime); done"
img=$("$src/scripts/get-debian-guest" --oneshot "$script") || { echo "soak.sh: no guest" >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"; kill $pid 2>/dev/null' EXIT
"$vmbt" run --engine bt --kernel "$src/guest-cache/vmlinuz-686" --initrd "$img" --memory 256M \
  --timeout "$((seconds + 30))" </dev/null >"$out" 2>&1 &
pid=$!
max_maps=$(cat /proc/sys/vm/max_map_count)
start=$(date +%s.%N)
first_tick= first_tick_host=
rss=() maps=()
printf '%8s %10s %10s %12s\n' "seconds" "rss MiB" "mappings" "clock drift"
for ((t = 30; t <= seconds; t += 30)); do
  sleep 30
  kill -0 $pid 2>/dev/null || { echo "soak.sh: vmbt ended early:"; tail -5 "$out"; exit 1; }
  r=$(awk '/^VmRSS/ {print int($2 / 1024)}' /proc/$pid/status)
  m=$(wc -l </proc/$pid/maps)
  now=$(date +%s.%N)
  tick=$(tr -d '\r' <"$out" | sed -n 's/^SOAK-TICK \([0-9.]*\).*/\1/p' | tail -1)
  drift="-"
  if [[ -n $tick ]]; then
    if [[ -z $first_tick ]]; then
      first_tick=$tick first_tick_host=$now
    elif awk "BEGIN{exit !($now - $first_tick_host > 20)}"; then
      drift=$(awk "BEGIN{printf \"%.3f%%\", (($tick - $first_tick) / ($now - $first_tick_host) - 1) * 100}")
    fi
  fi
  rss+=("$r") maps+=("$m")
  printf '%8s %10s %10s %12s\n' "$t" "$r" "$m" "$drift"
done
kill $pid 2>/dev/null
n=${#rss[@]}
third=$((n / 3))
status=0
if ((rss[n - 1] > rss[third] * 3 / 2 + 32)); then
  echo "FAIL: the RSS kept growing (${rss[third]} MiB -> ${rss[n - 1]} MiB)"; status=1
fi
if ((maps[n - 1] > maps[third] * 3 / 2 + 2048)); then
  echo "FAIL: the host mappings kept growing (${maps[third]} -> ${maps[n - 1]})"; status=1
fi
if ((maps[n - 1] > max_maps * 9 / 10)); then
  echo "FAIL: ${maps[n - 1]} host mappings, within 10% of vm.max_map_count ($max_maps)"; status=1
fi
if [[ $drift != "-" ]] && awk "BEGIN{d = \"$drift\" + 0; exit !(d > 1 || d < -1)}"; then
  echo "FAIL: the guest clock drifted by $drift"; status=1
fi
[[ $status -eq 0 ]] && echo "ok: bounded RSS and mappings, clock drift $drift over ${seconds}s"
exit $status
