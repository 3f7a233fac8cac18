// Runs a guest once on one engine and collects what happened: the core `run`, `compare`,
// `bench micro` and `trace` share.
#pragma once

#include <cstdio>
#include <functional>
#include <string>

#include "vmm/engine.h"
#include "vmm/error.h"
#include "vmm/guest_config.h"
#include "vmm/run_loop.h"
#include "vmm/stats.h"

namespace vmbt {

struct KvmProbeResult;
namespace gdb {
class GdbServer;
}
namespace bt {
class BtEngine;
}

/// One run: the guest (and its engine), and how this process runs it.
struct GuestRunSpec {
  GuestConfig guest;
  /// true: the guest's serial output is captured into GuestRun::serial and its input is empty;
  /// false: the terminal is the serial console (raw mode, Ctrl-A escapes), as in `vmbt run`.
  bool capture_serial = false;
  /// Where a fatal end (shutdown, engine error, timeout) dumps the guest state; nullptr: nowhere.
  FILE* fatal_dump = stderr;
  /// Called once the engine exists, before the guest starts (e.g. to install a callout observer).
  std::function<void(Engine&)> configure;
  /// Called with the bt engine itself when the guest runs on bt, before `configure` (e.g. to
  /// observe its callouts, as `vmbt trace` does).
  std::function<void(bt::BtEngine&)> configure_bt;
  /// Confine the process with the seccomp sandbox (vmm/sandbox.h) once the guest is loaded and
  /// `configure` has run: for a process that runs this one guest and nothing after it.
  bool sandbox = false;
  /// With `--engine auto`: print which engine runs and why (one line on stderr), as `vmbt run`.
  bool announce_engine = false;
  /// A GDB stub for the run (`--gdb`), listening already; `gdb_wait`: `-S`.
  gdb::GdbServer* gdb = nullptr;
  bool gdb_wait = false;
};

/// What `--engine auto` picks on a host whose KVM is `kvm` (hw/x86/kvm_probe.h): kvm where it
/// runs 32-bit paged guests with the vmbt CPU model (VT-x/AMD-V), bt otherwise; and why.
struct EngineChoice {
  EngineKind kind = EngineKind::kBt;
  std::string why;  ///< one clause for the user
};
EngineChoice choose_engine(const KvmProbeResult& kvm);

/// What one run produced.
struct GuestRun {
  RunResult result;  ///< exit status, reason, wall time
  Stats stats;       ///< run-loop and engine counters, plus "engine", "exit_status", "exit_reason"
  std::string serial;  ///< the guest's serial output (capture_serial only)
};

/// The engine named in a spec could not be created (e.g. no usable /dev/kvm): the guest never ran.
class EngineUnavailable : public Error {
 public:
  using Error::Error;
};

/// The builder (Firecracker's builder.rs is the model): builds the machine and the engine from
/// `spec.guest`, loads the kernel, runs it to the end and returns the outcome. Throws vmbt::Error
/// for bad arguments or images, EngineUnavailable when the engine cannot be created. The terminal
/// (when it is the console) is restored before this returns.
GuestRun run_guest_once(const GuestRunSpec& spec);

}  // namespace vmbt
