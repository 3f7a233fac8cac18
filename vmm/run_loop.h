// The run loop: drives an engine, answers its exits with the machine, and decides when a run ends.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

#include "vmm/engine.h"
#include "vmm/machine/machine.h"
#include "vmm/stats.h"

namespace vmbt {

class TerminalConsole;
namespace gdb {
class GdbServer;
}

/// How a run ended.
struct RunResult {
  /// vmbt's exit status: the guest's isa-debug-exit status ((V << 1) | 1), 0 for HLT with IF=0,
  /// 2 for a guest shutdown (triple fault), 1 for an engine that cannot go on, 128 + signal.
  int status = 0;
  std::string reason;  ///< a sentence for the user ("guest halted", "guest shutdown …")
  double seconds = 0;  ///< wall time of the run
};

struct RunLoopOptions {
  TerminalConsole* console = nullptr;  ///< polled for Ctrl-A x; may be null (tests)
  /// Period of the timer that kicks the engine so devices are polled while the guest runs (ns).
  uint64_t kick_period_ns = 1'000'000;
  /// End the run after this much wall time (0 = never): a guard for tests and benchmarks.
  uint64_t timeout_ns = 0;
  /// Where a fatal end (shutdown, engine error, timeout) dumps the guest registers and the
  /// engine's notes; nullptr for none.
  FILE* fatal_dump = stderr;
  /// A GDB stub for the run (`--gdb`), or nullptr. It may stop the guest between engine runs.
  gdb::GdbServer* gdb = nullptr;
  /// `-S`: the guest stays stopped at its first instruction until a debugger continues it.
  bool gdb_wait = false;
  /// Ctrl-A s on the console: moves the guest to the other engine (a SwitchingEngine's
  /// request_switch); empty when the run has one engine.
  std::function<void()> request_switch;
};

/// Runs `engine` over `machine` until the guest or the user ends the run. Counts exits by reason
/// ("exits.<reason>") and port I/O by port ("io_ports.<port>") in `stats`. SIGINT/SIGTERM end the
/// run cleanly (status 128 + signal).
RunResult run_guest(Machine& machine, Engine& engine, Stats& stats,
                    const RunLoopOptions& options = {});

}  // namespace vmbt
