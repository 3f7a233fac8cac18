// The `vmbt` subcommands.
#pragma once

#include <cstdint>
#include <string>

namespace vmbt {

/// Options of `vmbt run`.
struct RunArgs {
  std::string engine = "bt";
  std::string kernel;
  std::string initrd;
  std::string append;
  std::string memory = "256M";
  bool stats = false;
  std::string stats_json;
  bool trace_io = false;
  double timeout_seconds = 0;  ///< 0 = no limit
};

/// `vmbt run`: boots the kernel on the chosen engine; returns vmbt's exit status.
int run_command(const RunArgs& args);

/// `vmbt probe`: prints what this host's KVM can do; returns 0.
int probe_command(bool json);

}  // namespace vmbt
