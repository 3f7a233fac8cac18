#include <fmt/format.h>

#include <fstream>

#include "cli/commands.h"
#include "cli/compare_report.h"
#include "cli/guest_session.h"

namespace vmbt {

namespace {

/// `live`: start on bt and switch every args.live_every_seconds.
EngineOutcome run_on(EngineKind engine, const CompareArgs& args, bool live = false) {
  GuestRunSpec spec;
  spec.guest = args.guest;
  spec.guest.engine = engine;
  if (live) spec.guest.switch_every_seconds = args.live_every_seconds;
  spec.capture_serial = true;
  spec.fatal_dump = nullptr;  // the table says how each run ended
  EngineOutcome out;
  out.engine = live ? "live" : engine_name(engine);
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
  c.kernel = args.guest.kernel;
  c.append = args.guest.append;
  c.memory = format_memory_size(args.guest.ram_bytes);
  c.bt = run_on(EngineKind::kBt, args);
  c.kvm = run_on(EngineKind::kKvm, args);
  if (args.live) c.live = run_on(EngineKind::kBt, args, true);
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
