# Sourced by the gdb tests (gdb_session.sh, linux_gdb.sh): runs vmbt with its GDB stub on a free
# port and waits until it says where.
#
# start_vmbt_with_stub DIR VMBT_ARGS...: starts `vmbt VMBT_ARGS... --gdb tcp:127.0.0.1:0 -S` in
# the background, stdout to DIR/vmbt.out and stderr to DIR/vmbt.err; sets vmbt_pid, and port to
# the port the stub listens on (empty if vmbt did not say within 10 s).
start_vmbt_with_stub() {
  local dir=$1
  shift
  "$@" --gdb tcp:127.0.0.1:0 -S </dev/null >"$dir/vmbt.out" 2>"$dir/vmbt.err" &
  vmbt_pid=$!
  port=
  for _ in $(seq 100); do
    port=$(sed -n 's/.*GDB stub on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/vmbt.err")
    [[ -n $port ]] && return
    sleep 0.1
  done
}
