// The side-by-side report of `vmbt compare`: one guest's runs on bt and on kvm as a table and JSON.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "cli/guest_session.h"

namespace vmbt {

/// One engine's side of a comparison.
struct EngineOutcome {
  std::string engine;  ///< "bt", "kvm", or "live" (moved between them while it ran)
  bool ran = false;    ///< false: the engine could not be created; `unavailable` says why
  std::string unavailable;
  GuestRun run;  ///< valid when `ran`

  /// True when the guest ran to its own end: not stopped by an engine that could not go on, a
  /// timeout or a signal.
  bool completed() const;
  /// Why the engine could not run the guest to its end ("" when completed()).
  std::string why_not_completed() const;
};

/// Where two serial outputs first differ.
struct SerialDiff {
  bool identical = true;
  size_t line = 0;             ///< 1-based number of the first differing line
  std::string a_line, b_line;  ///< that line in each output ("(end of output)" past the end)
};

/// Compares two serial outputs line by line (carriage returns ignored).
SerialDiff diff_serial(const std::string& a, const std::string& b);

/// The result of `vmbt compare`.
struct Comparison {
  std::string kernel;
  std::string append;
  std::string memory;
  EngineOutcome bt;
  EngineOutcome kvm;
  std::optional<EngineOutcome> live;  ///< `--live`
};

/// Runs the guest of `args` on bt, then on kvm (then switched between them with --live), serial
/// output captured.
Comparison compare_engines(const CompareArgs& args);

/// The side-by-side table: run facts, serial output, exits by reason, I/O exits by port, bt's
/// callouts by instruction, page-fault classes and blocks translated, KVM's exit reasons.
std::string comparison_table(const Comparison& c);

/// The same data as JSON: {"kernel", "serial", "engines": {"bt", "kvm"}, "rows"}.
nlohmann::json comparison_json(const Comparison& c);

}  // namespace vmbt
