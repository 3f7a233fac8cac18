#include "cli/guest_session.h"

#include <fmt/format.h>

#include <cmath>
#include <memory>

#include "bt/bt_engine.h"
#include "cli/size_arg.h"
#include "hw/x86/kvm_engine.h"
#include "hw/x86/kvm_probe.h"
#include "vmm/boot/kernel_loader.h"
#include "vmm/devices/buffer_console.h"
#include "vmm/devices/console.h"
#include "vmm/devices/prompt_watch.h"
#include "vmm/machine/machine.h"
#include "vmm/sandbox.h"

namespace vmbt {

namespace {

/// The engine `spec` names over `machine`; bt is handed to spec.configure_bt as itself (the
/// builder made it, so no caller casts an Engine).
std::unique_ptr<Engine> make_engine(const GuestRunSpec& spec, Machine& machine) {
  try {
    if (spec.guest.engine == EngineKind::kKvm) {
      return std::make_unique<KvmEngine>(machine.memory(), machine.interrupts());
    }
    auto bt = std::make_unique<bt::BtEngine>(
        machine.memory(), machine.interrupts(),
        [&mmio = machine.mmio()](uint64_t gpa) { return mmio.claims(gpa); });
    if (spec.configure_bt) spec.configure_bt(*bt);
    return bt;
  } catch (const Error& e) {
    throw EngineUnavailable(e.what());
  }
}

}  // namespace

GuestRun run_guest_once(const GuestRunSpec& spec) {
  const GuestConfig& guest = spec.guest;
  MachineConfig config;
  config.ram_bytes = parse_memory_size(guest.memory);
  if (config.ram_bytes < GuestMemory::kMinBytes || config.ram_bytes > GuestMemory::kMaxBytes) {
    throw Error(
        fmt::format("--memory {} is out of range: vmbt guests have 2M to 3G of RAM", guest.memory));
  }
  config.trace_io = guest.trace_io ? stderr : nullptr;
  BufferConsole buffer;
  std::unique_ptr<TerminalConsole> terminal;
  if (!spec.capture_serial) terminal = std::make_unique<TerminalConsole>();
  PromptWatch prompt(spec.capture_serial ? static_cast<CharBackend&>(buffer) : *terminal);
  config.console = &prompt;
  Machine machine(config);
  BootImage image =
      load_kernel(machine.memory(), machine.memory_map(), guest.kernel, guest.append, guest.initrd);
  if (guest.engine == EngineKind::kKvm && image.enables_paging && !probe_kvm().paged_guest_runs) {
    // Say so now rather than after emulating the whole decompressor instruction by instruction.
    throw EngineUnavailable(
        "this host's KVM cannot run 32-bit paged guests, and this kernel turns paging on; use "
        "--engine bt");
  }
  std::unique_ptr<Engine> engine = make_engine(spec, machine);
  engine->set_state(image.entry);
  if (spec.configure) spec.configure(*engine);
  if (spec.sandbox) enter_sandbox(spec.gdb != nullptr);

  GuestRun run;
  run.stats.set_text("engine", std::string(engine->name()));
  RunLoopOptions options;
  options.console = terminal.get();
  options.fatal_dump = spec.fatal_dump;
  options.gdb = spec.gdb;
  options.gdb_wait = spec.gdb_wait;
  if (guest.timeout_seconds > 0) {
    options.timeout_ns = static_cast<uint64_t>(std::llround(guest.timeout_seconds * 1e9));
  }
  const uint64_t start_ns = host_now_ns();
  run.result = run_guest(machine, *engine, run.stats, options);
  if (prompt.prompt_ns() != 0) {
    run.stats.set_value("time_to_prompt_seconds",
                        static_cast<double>(prompt.prompt_ns() - start_ns) / 1e9);
  }
  terminal.reset();  // restores the terminal before the caller prints anything more

  run.stats.set("exit_status", static_cast<uint64_t>(run.result.status));
  run.stats.set_text("exit_reason", run.result.reason);
  run.serial = buffer.output();
  return run;
}

}  // namespace vmbt
