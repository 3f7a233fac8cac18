#include <fmt/format.h>

#include <fstream>
#include <memory>

#include "bt/bt_engine.h"
#include "cli/commands.h"
#include "cli/guest_session.h"
#include "cli/trace_recorder.h"
#include "vmm/error.h"

namespace vmbt {

int trace_command(const TraceArgs& args) {
  SymbolTable symbols = args.symbols.empty() ? SymbolTable::load_elf_if_any(args.guest.kernel)
                                             : SymbolTable::load(args.symbols);
  TraceRecorder recorder(std::move(symbols), args.trace_sensitive ? stderr : nullptr,
                         args.trace_every);

  GuestRunSpec spec;
  spec.guest = args.guest;
  spec.guest.engine = EngineKind::kBt;
  spec.configure_bt = [&recorder](bt::BtEngine& engine) {
    engine.set_callout_observer(
        [&recorder](const bt::CalloutEvent& e) { recorder.record(traced_instruction(e)); });
  };
  GuestRun run = run_guest_once(spec);

  fmt::print(stderr, "vmbt: {}\n", run.result.reason);
  fmt::print(stderr, "{}", recorder.summary_text(args.top));
  if (!args.summary_json.empty()) {
    std::ofstream out(args.summary_json);
    if (!out) throw Error(fmt::format("cannot write --summary-json file '{}'", args.summary_json));
    nlohmann::json j = recorder.summary_json();
    j["kernel"] = args.guest.kernel;
    j["exit_status"] = run.result.status;
    j["exit_reason"] = run.result.reason;
    out << j.dump(2) << "\n";
  }
  return run.result.status;
}

}  // namespace vmbt
