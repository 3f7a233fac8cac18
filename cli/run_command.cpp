#include <fmt/format.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "bt/bt_engine.h"
#include "cli/commands.h"
#include "cli/guest_session.h"
#include "cli/trace_recorder.h"
#include "vmm/error.h"
#include "vmm/gdb/gdb_server.h"

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
  spec.announce_engine = true;
  std::unique_ptr<gdb::GdbServer> gdb;
  // `monitor trace on|off` from gdb: vmbt trace's --trace-sensitive lines on stderr (bt only).
  bt::BtEngine* bt_engine = nullptr;
  std::unique_ptr<TraceRecorder> trace;
  if (!args.gdb.empty() || args.gdb_default || args.gdb_wait) {
    gdb = std::make_unique<gdb::GdbServer>(args.gdb.empty() ? "tcp::1234" : args.gdb);
    fmt::print(stderr, "vmbt: GDB stub on {}{} (in gdb: target remote {})\n", gdb->address(),
               args.gdb_wait ? ", the guest waits for it" : "", gdb->address());
    spec.gdb = gdb.get();
    spec.gdb_wait = args.gdb_wait;
    spec.configure_bt = [&bt_engine](bt::BtEngine& engine) { bt_engine = &engine; };
    trace =
        std::make_unique<TraceRecorder>(SymbolTable::load_elf_if_any(args.guest.kernel), stderr, 1);
    gdb->set_monitor_commands([&](std::string_view command) -> std::optional<std::string> {
      if (command == "help") {
        return "  trace on|off   log every sensitive instruction to vmbt's stderr, as `vmbt "
               "trace --trace-sensitive` (bt)\n";
      }
      if (command != "trace on" && command != "trace off") return std::nullopt;
      if (!bt_engine)
        return "monitor trace: the bt engine traces sensitive instructions; this "
               "run is on kvm\n";
      if (command == "trace off") {
        bt_engine->set_callout_observer({});
        return fmt::format("tracing off ({} sensitive instructions traced)\n", trace->total());
      }
      bt_engine->set_callout_observer(
          [&](const bt::CalloutEvent& e) { trace->record(traced_instruction(e)); });
      return "tracing sensitive instructions to vmbt's stderr\n";
    });
  }
  GuestRun run = run_guest_once(spec);

  fmt::print(stderr, "vmbt: {}\n", run.result.reason);
  if (args.stats) fmt::print(stderr, "vmbt statistics:\n{}", run.stats.to_text());
  if (stats_json.is_open()) stats_json << run.stats.to_json().dump(2) << "\n";
  return run.result.status;
}

}  // namespace vmbt
