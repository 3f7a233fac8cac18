// The `vmbt` subcommands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vmm/guest_config.h"

namespace vmbt {

/// Options of `vmbt run`.
struct RunArgs {
  RunArgs() { guest.engine = EngineKind::kAuto; }
  GuestConfig guest;
  bool stats = false;
  std::string stats_json;
  bool perfmap = false;      ///< write /tmp/perf-PID.map for perf (bt)
  bool no_sandbox = false;   ///< run without the seccomp sandbox
  std::string gdb;           ///< `--gdb tcp::PORT` (`-s`: tcp::1234): a GDB stub listens there
  bool gdb_default = false;  ///< `-s`: --gdb tcp::1234
  bool gdb_wait = false;     ///< `-S`: stopped at the first instruction until GDB continues
};

/// `vmbt run`: boots the kernel on the chosen engine; returns vmbt's exit status.
int run_command(const RunArgs& args);

/// `vmbt probe`: prints what this host's KVM can do; returns 0.
int probe_command(bool json);

/// Options of `vmbt compare`.
struct CompareArgs {
  GuestConfig guest;  ///< its engine is set for each side; its timeout is per engine
  std::string json;   ///< write the report as JSON here when set
  /// `--live`: a third run that starts on bt and moves the guest between the engines every
  /// `live_every_seconds` (README "Switching engines").
  bool live = false;
  double live_every_seconds = 0.001;
};

/// `vmbt compare`: runs the guest on bt and on kvm and prints them side by side; returns 0 when
/// the report was produced (whatever the guest did).
int compare_command(const CompareArgs& args);

/// Options of `vmbt bench micro`.
struct BenchMicroArgs {
  /// "bt", "kvm", "qemu" (QEMU TCG), "both" (bt and kvm) or "all" (both, and QEMU when
  /// installed); the host floors come with any of them.
  std::string engine = "all";
  unsigned runs = 5;              ///< runs per benchmark and engine; the median is reported
  bool quick = false;             ///< few iterations (for tests): fast, noisier
  std::vector<std::string> only;  ///< benchmark names to run (empty: all)
  std::string json;
  std::string plot;
  std::string guest_dir;        ///< where NAME.elf are; empty: next to the vmbt binary
  double timeout_seconds = 30;  ///< per guest run
};

/// `vmbt bench micro`: runs the micro-benchmark guests and prints cycles and ns per operation.
int bench_micro_command(const BenchMicroArgs& args);

/// Options of `vmbt trace`.
struct TraceArgs {
  GuestConfig guest;             ///< always run on bt
  bool trace_sensitive = false;  ///< log callouts to stderr
  uint64_t trace_every = 1;      ///< log every Nth callout
  std::string symbols;           ///< System.map or ELF; empty: the kernel's own symbols if any
  std::string summary_json;
  size_t top = 40;  ///< rows of the by-function table (0: all)
};

/// `vmbt trace`: runs the guest on bt, observing every callout; returns vmbt's exit status.
int trace_command(const TraceArgs& args);

}  // namespace vmbt
