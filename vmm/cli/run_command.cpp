#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "bt/bt_engine.h"
#include "hw/x86/kvm_engine.h"
#include "vmm/boot/kernel_loader.h"
#include "vmm/cli/commands.h"
#include "vmm/cli/size_arg.h"
#include "vmm/devices/console.h"
#include "vmm/error.h"
#include "vmm/machine/machine.h"
#include "vmm/run_loop.h"

namespace vmbt {

namespace {

std::unique_ptr<Engine> make_engine(const std::string& name, Machine& machine) {
  if (name == "kvm") return std::make_unique<KvmEngine>(machine.memory(), machine.interrupts());
  return std::make_unique<bt::BtEngine>(machine.memory(), machine.interrupts());
}

}  // namespace

int run_command(const RunArgs& args) {
  MachineConfig config;
  config.ram_bytes = parse_memory_size(args.memory);
  if (config.ram_bytes < GuestMemory::kMinBytes || config.ram_bytes > GuestMemory::kMaxBytes) {
    throw Error(
        fmt::format("--memory {} is out of range: vmbt guests have 2M to 3G of RAM", args.memory));
  }
  config.trace_io = args.trace_io ? stderr : nullptr;
  auto console = std::make_unique<TerminalConsole>();
  config.console = console.get();
  Machine machine(config);
  BootImage image =
      load_kernel(machine.memory(), machine.memory_map(), args.kernel, args.append, args.initrd);
  std::unique_ptr<Engine> engine = make_engine(args.engine, machine);
  engine->set_state(image.entry);

  Stats stats;
  stats.set_text("engine", std::string(engine->name()));
  RunLoopOptions options;
  options.console = console.get();
  if (args.timeout_seconds > 0) {
    options.timeout_ns = static_cast<uint64_t>(std::llround(args.timeout_seconds * 1e9));
  }
  RunResult result = run_guest(machine, *engine, stats, options);
  console.reset();  // restores the terminal before anything more is printed

  stats.set("exit_status", static_cast<uint64_t>(result.status));
  stats.set_text("exit_reason", result.reason);
  fmt::print(stderr, "vmbt: {}\n", result.reason);
  if (args.stats) fmt::print(stderr, "vmbt statistics:\n{}", stats.to_text());
  if (!args.stats_json.empty()) {
    std::ofstream out(args.stats_json);
    if (!out) throw Error(fmt::format("cannot write --stats-json file '{}'", args.stats_json));
    out << stats.to_json().dump(2) << "\n";
  }
  return result.status;
}

}  // namespace vmbt
