#include "vmm/run_loop.h"

#include <fmt/format.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>
#include <vector>

#include "vmm/cpu_state_format.h"
#include "vmm/devices/console.h"
#include "vmm/gdb/gdb_server.h"
#include "vmm/machine/irq.h"
#include "vmm/signal_stack.h"

namespace vmbt {

namespace {

std::atomic<Engine*> g_engine{nullptr};
volatile sig_atomic_t g_stop_signal = 0;

void on_kick_signal(int, siginfo_t*, void* uc) {
  clear_alignment_check();
  if (Engine* e = g_engine.load()) e->kick(uc);
}

void on_stop_signal(int sig, siginfo_t*, void* uc) {
  clear_alignment_check();
  g_stop_signal = sig;
  if (Engine* e = g_engine.load()) e->kick(uc);
}

/// The timer signal that kicks the engine (SIGRTMIN+3 is unused by glibc and by KVM).
int kick_signal() {
  return SIGRTMIN + 3;
}

/// Installs the signal handlers and the periodic kick timer for one run; undoes it on destruction.
class RunSignals {
 public:
  RunSignals(Engine& engine, uint64_t period_ns) {
    g_engine = &engine;
    g_stop_signal = 0;
    ensure_signal_alt_stack();
    struct sigaction sa {};
    sa.sa_sigaction = on_kick_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(kick_signal(), &sa, &old_kick_);
    sa.sa_sigaction = on_stop_signal;
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);

    sigevent sev{};
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = kick_signal();
    sev._sigev_un._tid = gettid();
    if (timer_create(CLOCK_MONOTONIC, &sev, &timer_) == 0) {
      itimerspec its{};
      its.it_interval.tv_sec = static_cast<time_t>(period_ns / 1'000'000'000);
      its.it_interval.tv_nsec = static_cast<long>(period_ns % 1'000'000'000);
      its.it_value = its.it_interval;
      timer_settime(timer_, 0, &its, nullptr);
      have_timer_ = true;
    }
  }
  ~RunSignals() {
    if (have_timer_) timer_delete(timer_);
    sigaction(kick_signal(), &old_kick_, nullptr);
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    g_engine = nullptr;
  }

 private:
  struct sigaction old_kick_ {
  }, old_int_{}, old_term_{};
  timer_t timer_{};
  bool have_timer_ = false;
};

const char* reason_name(ExitReason r) {
  switch (r) {
    case ExitReason::kIo:
      return "io";
    case ExitReason::kMmio:
      return "mmio";
    case ExitReason::kHalt:
      return "hlt";
    case ExitReason::kShutdown:
      return "shutdown";
    case ExitReason::kKicked:
      return "kicked";
    case ExitReason::kInternalError:
      return "internal_error";
    case ExitReason::kDebug:
      return "debug";
  }
  return "unknown";
}

}  // namespace

RunResult run_guest(Machine& machine, Engine& engine, Stats& stats, const RunLoopOptions& options) {
  RunResult result;
  const uint64_t start = host_now_ns();
  const uint64_t end_by = options.timeout_ns ? start + options.timeout_ns : UINT64_MAX;
  RunSignals signals(engine, options.kick_period_ns);

  bool fatal = false;  // the run ended in a way worth a register dump
  auto finish = [&](int status, std::string reason, bool is_fatal = false) {
    result.status = status;
    result.reason = std::move(reason);
    fatal = is_fatal;
    return true;
  };
  // Checks the conditions that end a run from outside the guest; true when the run is over.
  auto outside_stop = [&]() -> bool {
    if (g_stop_signal) {
      int sig = g_stop_signal;
      return finish(128 + sig, fmt::format("stopped by signal {} ({})", sig, strsignal(sig)));
    }
    if (options.console && options.console->quit_requested()) {
      return finish(0, "stopped from the console (Ctrl-A x)");
    }
    if (options.console && options.console->take_switch_request()) {
      if (options.request_switch) {
        options.request_switch();
      } else {
        fmt::print(stderr,
                   "\r\nvmbt: Ctrl-A s: this run has one engine; start it with "
                   "--switchable to move the guest between bt and kvm\r\n");
      }
    }
    if (options.console && options.console->take_nmi_request()) machine.raise_nmi_line();
    if (host_now_ns() >= end_by) return finish(124, "timed out", true);
    return false;
  };

  // Port I/O, whether it arrives as an exit or from inside the engine (Engine::set_port_io):
  // one path to the devices, which counts each port ("io_ports.<port>", written at the end).
  auto perform_io = [&](IoAccess& io) {
    machine.handle_io(io);
    return !machine.exit_requested();
  };
  engine.set_port_io(perform_io);
  engine.set_platform_msrs(&machine.msrs());

  // The debugger, when there is one: it holds the guest while stopped; true = the run ends.
  gdb::GdbServer* const debugger = options.gdb;
  auto abort_wait = [&] {
    return g_stop_signal != 0 || (options.console && options.console->quit_requested());
  };
  auto debug_stop = [&](gdb::StopSignal signal, std::optional<gdb::WatchStop> watch = {}) {
    if (debugger->serve_stop(signal, abort_wait, watch) != gdb::Resume::kKill) {
      return false;
    }
    if (outside_stop()) return true;
    return finish(0, "ended by the debugger (GDB 'kill')");
  };
  bool done = false;
  if (debugger) {
    debugger->attach(engine, stats);
    if (options.gdb_wait) {
      done = !debugger->wait_for_connection(abort_wait) ? outside_stop()
                                                        : debug_stop(gdb::StopSignal::kTrap);
    }
  }

  while (!done) {
    machine.poll(host_now_ns());
    if (outside_stop()) break;
    if (debugger) {
      if (auto signal = debugger->stop_requested(); signal && debug_stop(*signal)) break;
    }
    Exit exit = engine.run();
    stats.add(std::string("exits.") + reason_name(exit.reason));
    switch (exit.reason) {
      case ExitReason::kIo:
        stats.add("exits.io_accesses", exit.io.count);
        perform_io(exit.io);
        break;
      case ExitReason::kMmio:
        machine.handle_mmio(exit.mmio);
        break;
      case ExitReason::kKicked:
        break;
      case ExitReason::kHalt: {
        InterruptSource& intr = machine.interrupts();
        const bool maskable = engine.state().eflags & eflags::kIf;
        const bool nmi_can_wake = !engine.nmis_blocked();
        if (!maskable && !(nmi_can_wake && intr.nmi_pending())) {
          done = finish(0, "guest halted (HLT with interrupts disabled)");
          break;
        }
        // Wait for an interrupt: sleep until the next device deadline, in slices short enough to
        // notice console input and signals; a network packet ends the sleep at once.
        while (!(maskable && intr.interrupt_pending()) && !(nmi_can_wake && intr.nmi_pending())) {
          if (outside_stop()) {
            done = true;
            break;
          }
          uint64_t now = host_now_ns();
          machine.wait_until(
              std::min<uint64_t>({machine.next_deadline_ns(), now + 2000000, end_by}));
          machine.poll(host_now_ns());
        }
        stats.add("halt_waits");
        break;
      }
      case ExitReason::kShutdown:
        done =
            finish(2, exit.message.empty() ? "guest shutdown (triple fault)" : exit.message, true);
        break;
      case ExitReason::kInternalError:
        done = finish(1, exit.message, true);
        break;
      case ExitReason::kDebug:
        // A breakpoint or a finished step (only a debugger asks for them).
        if (debugger) {
          std::optional<gdb::WatchStop> watch;
          if (exit.debug == DebugStop::kWatchpoint) {
            watch = gdb::WatchStop{exit.debug_watch, exit.debug_address};
          }
          done = debug_stop(gdb::StopSignal::kTrap, watch);
        }
        break;
    }
    if (!done) {
      if (auto status = machine.exit_requested()) {
        done = finish(*status, machine.exit_request_reason());
      }
    }
  }
  engine.set_port_io({});
  engine.set_platform_msrs(nullptr);
  if (debugger) debugger->guest_exited(result.status);
  if (fatal && options.fatal_dump) {
    fmt::print(options.fatal_dump, "vmbt: guest state at the end ({}):\n{}{}", engine.name(),
               format_vcpu_state(engine.state()), engine.debug_notes());
  }
  result.seconds = static_cast<double>(host_now_ns() - start) / 1e9;
  stats.set_value("run_seconds", result.seconds);
  stats.set("io_unclaimed_accesses", machine.io().unclaimed_accesses());
  machine.collect_stats(stats);
  for (unsigned port = 0; port < 0x10000; ++port) {
    const uint64_t n = machine.io().accesses(static_cast<uint16_t>(port));
    if (n) stats.add(fmt::format("io_ports.{:#06x}", port), n);
  }
  engine.collect_stats(stats);
  return result;
}

}  // namespace vmbt
