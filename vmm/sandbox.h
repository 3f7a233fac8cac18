// The monitor's seccomp sandbox: once the guest is loaded, only the run loop's system calls.
#pragma once

namespace vmbt {

/// Confines the calling process (all its threads, SECCOMP_FILTER_FLAG_TSYNC) to the system calls
/// a running guest needs: memory mapping and protection (the shadow MMU's windows, the heap),
/// signals and timers (kicks, host faults), reads and writes on descriptors already open (console,
/// trace, files), KVM_RUN and terminal ioctls, sleeping and the clock, exit. Everything else, in
/// particular opening files, sockets, process creation and execve, is refused: the call raises
/// SIGSYS (SECCOMP_RET_TRAP), whose handler prints
///   "vmbt: the sandbox stopped system call NAME (number N): ... --no-sandbox ..."
/// and ends the process with status 1. Firecracker confines its vCPU threads the same way.
/// Throws vmbt::Error when the kernel refuses the filter (no seccomp support).
/// `debugger_socket`: also the calls of a GDB stub whose socket is already listening (accepting
/// a connection, reading and writing it, setting TCP_NODELAY) and the C library's sysinfo (its
/// qsort, in `monitor trace`), as `vmbt run --gdb` needs.
/// `user_network`: also the socket calls of libslirp's user networking (`--net user`: socket,
/// connect, bind, listen, accept, send and receive, socket options and names, shutdown); opening
/// files fails with EACCES instead of ending the run (libslirp reads /etc/resolv.conf for the
/// DNS forwarder and falls back to 127.0.0.1 when it cannot).
void enter_sandbox(bool debugger_socket = false, bool user_network = false);

}  // namespace vmbt
