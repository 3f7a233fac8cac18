#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/guest_session.h"
#include "vmm/error.h"

namespace vmbt {

int run_command(const RunArgs& args) {
  GuestRunSpec spec;
  spec.guest = args.guest;
  if (args.perfmap) {
    spec.configure = [](Engine& engine) {
      if (!engine.enable_perf_map()) {
        fmt::print(stderr, "vmbt: --perfmap: the {} engine generates no host code; ignored\n",
                   engine.name());
      }
    };
  }
  // Files are opened before the guest runs: the sandbox allows no opening afterwards.
  std::ofstream stats_json;
  if (!args.stats_json.empty()) {
    stats_json.open(args.stats_json);
    if (!stats_json)
      throw Error(fmt::format("cannot write --stats-json file '{}'", args.stats_json));
  }
  spec.sandbox = !args.no_sandbox;
  GuestRun run = run_guest_once(spec);

  fmt::print(stderr, "vmbt: {}\n", run.result.reason);
  if (args.stats) fmt::print(stderr, "vmbt statistics:\n{}", run.stats.to_text());
  if (stats_json.is_open()) stats_json << run.stats.to_json().dump(2) << "\n";
  return run.result.status;
}

}  // namespace vmbt
