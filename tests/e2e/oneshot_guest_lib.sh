# tests/e2e/oneshot_guest_lib.sh: sourced by the Linux end-to-end tests.
#
# oneshot_guest TEST SRC COMMANDS [pae]: builds (or finds cached) Debian's kernel and a one-shot
# busybox initramfs whose /init runs COMMANDS and powers off (scripts/get-debian-guest --oneshot),
# and sets `img` (the initramfs) and `kernel` (with `pae`: Debian's 686-pae kernel, --pae). Exits
# 77 with a SKIP line when Debian's archive cannot be reached or root is needed (get-debian-guest's
# exit 3 or 4), 1 with its log on other failures.
oneshot_guest() {
  local test=$1 src=$2 commands=$3 flavour=${4:-} log=${TMPDIR:-/tmp}/vmbt-get-guest.log rc
  local args=(--oneshot "$commands")
  [[ $flavour == pae ]] && args+=(--pae)
  img=$("$src/scripts/get-debian-guest" "${args[@]}" 2>"$log")
  rc=$?
  if [[ $rc -eq 3 || $rc -eq 4 ]]; then
    echo "SKIP $test: scripts/get-debian-guest could not fetch the guest (exit $rc):"
    tail -3 "$log"
    exit 77
  fi
  if [[ $rc -ne 0 || ! -f $img ]]; then
    cat "$log"
    echo "FAIL $test: get-debian-guest failed"
    exit 1
  fi
  kernel=$src/guest-cache/vmlinuz-686
  [[ $flavour == pae ]] && kernel=$src/guest-cache/vmlinuz-686-pae
  return 0
}
