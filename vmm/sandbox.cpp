// The seccomp filter (libseccomp) and the SIGSYS handler that names a refused system call.
#include "vmm/sandbox.h"

#include <seccomp.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>

#include <fmt/format.h>

#include "vmm/error.h"

namespace vmbt {

namespace {

/// Async-signal-safe: write(2) and _exit(2) only; the syscall's name comes from libseccomp's
/// static table.
void on_sigsys(int, siginfo_t* info, void*) {
  char number[12];  // the syscall number in decimal, written backwards from the end
  char* digits = number + sizeof number;
  unsigned v = static_cast<unsigned>(info->si_syscall);
  do {
    *--digits = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  const char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, info->si_syscall);
  auto put = [](const char* s, size_t len) { (void)!write(STDERR_FILENO, s, len); };
  static const char kHead[] = "\nvmbt: the sandbox stopped system call ";
  static const char kTail[] =
      "): the run loop does not use it, so the monitor ends here. Run with --no-sandbox to allow "
      "every system call, and report this.\n";
  put(kHead, sizeof kHead - 1);
  if (name) put(name, std::strlen(name));
  put(" (number ", 9);
  put(digits, static_cast<size_t>(number + sizeof number - digits));
  put(kTail, sizeof kTail - 1);
  _exit(1);
}

/// The run loop's system calls (what strace shows while guests run on both engines), plus the
/// C library's own (heap, stdio, raise/abort).
constexpr int kAllowed[] = {
    // memory: windows, translation cache, heap
    SCMP_SYS(mmap),
    SCMP_SYS(munmap),
    SCMP_SYS(mprotect),
    SCMP_SYS(madvise),
    SCMP_SYS(mremap),
    SCMP_SYS(brk),
    // signals: host faults, kicks, the alternate stack
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(sigaltstack),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(getpid),
    SCMP_SYS(gettid),
    SCMP_SYS(tgkill),
    // the run loop's timer and clock, waiting in HLT
    SCMP_SYS(timer_create),
    SCMP_SYS(timer_settime),
    SCMP_SYS(timer_gettime),
    SCMP_SYS(timer_delete),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep),
    SCMP_SYS(gettimeofday),
    // descriptors already open: console, disk images, output files; KVM_RUN and terminal modes
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(readv),
    SCMP_SYS(writev),
    SCMP_SYS(pread64),
    SCMP_SYS(pwrite64),
    SCMP_SYS(lseek),
    SCMP_SYS(fsync),
    SCMP_SYS(fdatasync),
    SCMP_SYS(close),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    SCMP_SYS(ioctl),
    SCMP_SYS(fcntl),
    // the C library
    SCMP_SYS(futex),
    SCMP_SYS(sched_yield),
    SCMP_SYS(getrandom),
    // the end
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
#ifdef VMBT_SANITIZE_BUILD
    // the sanitizers' runtime (it checks whether memory is readable through a pipe; reports)
    SCMP_SYS(pipe),
    SCMP_SYS(pipe2),
    SCMP_SYS(sched_getaffinity),
    SCMP_SYS(readlink),
    SCMP_SYS(openat),
    SCMP_SYS(prctl),
    SCMP_SYS(getrusage),
#endif
};

/// `--net user`: libslirp's sockets (the guest's TCP connections and UDP flows, ICMP echo, host
/// forwards) and its stat of /etc/resolv.conf.
constexpr int kUserNetwork[] = {
    SCMP_SYS(socket),      SCMP_SYS(connect),     SCMP_SYS(bind),       SCMP_SYS(listen),
    SCMP_SYS(accept),      SCMP_SYS(accept4),     SCMP_SYS(sendto),     SCMP_SYS(recvfrom),
    SCMP_SYS(sendmsg),     SCMP_SYS(recvmsg),     SCMP_SYS(setsockopt), SCMP_SYS(getsockopt),
    SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(shutdown),   SCMP_SYS(stat),
};

}  // namespace

void enter_sandbox(bool debugger_socket, bool user_network) {
  // The C library reads the time zone (/etc/localtime) on its first time conversion (the RTC's
  // gmtime_r): done now, while opening files is allowed.
  tzset();
  struct sigaction sa {};
  sa.sa_sigaction = on_sigsys;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSYS, &sa, nullptr) != 0) {
    throw Error(
        fmt::format("cannot install the sandbox's SIGSYS handler: {}", std::strerror(errno)));
  }
  std::unique_ptr<void, void (*)(scmp_filter_ctx)> ctx(seccomp_init(SCMP_ACT_TRAP),
                                                       seccomp_release);
  if (!ctx) throw Error("cannot create the seccomp filter (libseccomp)");
  for (int nr : kAllowed) {
    if (nr < 0) continue;  // not on this architecture
    if (seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, nr, 0) != 0) {
      throw Error(fmt::format("cannot add system call {} to the seccomp filter", nr));
    }
  }
  if (debugger_socket) {
    // (sysinfo: glibc's qsort asks it for the memory size; `monitor trace on` disassembles.)
    for (int nr : {SCMP_SYS(accept4), SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(setsockopt),
                   SCMP_SYS(sysinfo)}) {
      if (seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, nr, 0) != 0) {
        throw Error(fmt::format("cannot add system call {} to the seccomp filter", nr));
      }
    }
  }
  if (user_network) {
    for (int nr : kUserNetwork) {
      if (nr < 0) continue;  // not on this architecture
      if (seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, nr, 0) != 0) {
        throw Error(fmt::format("cannot add system call {} to the seccomp filter", nr));
      }
    }
    // Its DNS forwarder reads /etc/resolv.conf: refused quietly, it then asks 127.0.0.1. (The
    // sanitizer build allows openat for its runtime.)
#ifdef VMBT_SANITIZE_BUILD
    for (int nr : {SCMP_SYS(open)}) {
#else
    for (int nr : {SCMP_SYS(open), SCMP_SYS(openat)}) {
#endif
      if (nr < 0) continue;
      if (seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EACCES), nr, 0) != 0) {
        throw Error(fmt::format("cannot add system call {} to the seccomp filter", nr));
      }
    }
  }
  if (seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1) != 0 ||
      seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 1) != 0) {
    throw Error("cannot set the seccomp filter's attributes");
  }
  if (int rc = seccomp_load(ctx.get()); rc != 0) {
    throw Error(fmt::format(
        "this host's kernel refused the seccomp sandbox ({}); run with --no-sandbox to go on "
        "without it",
        std::strerror(-rc)));
  }
}

}  // namespace vmbt
