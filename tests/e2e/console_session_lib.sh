# tests/e2e/console_session_lib.sh: sourced by the end-to-end tests that drive a guest through its
# serial console (linux_debian_image.sh, linux_bios_disk.sh, linux_nmi.sh).
#
# console_session_start: a scratch directory $work (the console's output in $work/out, vmbt's
#   stderr in $work/err, its input FIFO at $work/in) and an EXIT trap that kills the vmbt whose
#   PID the caller puts in $vm, closes fd 3 (the FIFO's writing end) and removes $work.
# console_show [LINES]: the tail of the console (default 25 lines) and the start of vmbt's stderr,
#   for a failure's report.

console_session_start() {
  work=$(mktemp -d)
  vm=
  trap console_session_end EXIT
}

console_session_end() {
  [[ -z $vm ]] || kill "$vm" 2>/dev/null
  exec 3>&- 2>/dev/null
  rm -rf "$work"
}

console_show() {
  echo "--- console tail:"
  tr -d '\r' <"$work/out" | tail -"${1:-25}"
  if [[ -s $work/err ]]; then
    echo "--- stderr:"
    head -40 "$work/err"
  fi
}
