#include <fmt/format.h>

#include <fstream>

#include "cli/commands.h"
#include "cli/compare_report.h"
#include "cli/guest_session.h"

namespace vmbt {

namespace {

EngineOutcome run_on(const std::string& engine, const CompareArgs& args) {
  GuestRunSpec spec;
  spec.engine = engine;
  spec.kernel = args.kernel;
  spec.initrd = args.initrd;
  spec.append = args.append;
  spec.memory = args.memory;
  spec.timeout_seconds = args.timeout_seconds;
  spec.capture_serial = true;
  spec.fatal_dump = nullptr;  // the table says how each run ended
  EngineOutcome out;
  out.engine = engine;
  try {
    out.run = run_guest_once(spec);
    out.ran = true;
  } catch (const EngineUnavailable& e) {
    out.unavailable = e.what();
  }
  return out;
}

}  // namespace

Comparison compare_engines(const CompareArgs& args) {
  Comparison c;
  c.kernel = args.kernel;
  c.append = args.append;
  c.memory = args.memory;
  c.bt = run_on("bt", args);
  c.kvm = run_on("kvm", args);
  return c;
}

int compare_command(const CompareArgs& args) {
  Comparison c = compare_engines(args);
  fmt::print("{}", comparison_table(c));
  if (!args.json.empty()) {
    std::ofstream out(args.json);
    if (!out) throw Error(fmt::format("cannot write --json file '{}'", args.json));
    out << comparison_json(c).dump(2) << "\n";
  }
  return 0;
}

}  // namespace vmbt
