#include "cli/guest_session.h"

#include <fmt/format.h>

#include <cmath>
#include <memory>

#include "bt/bt_engine.h"
#include "hw/x86/kvm_engine.h"
#include "hw/x86/kvm_probe.h"
#include "vmm/boot/boot_state.h"
#include "vmm/boot/kernel_loader.h"
#include "vmm/cpu_model.h"
#include "vmm/devices/buffer_console.h"
#include "vmm/devices/console.h"
#include "vmm/devices/prompt_watch.h"
#include "vmm/machine/machine.h"
#include "vmm/sandbox.h"
#include "vmm/switching_engine.h"

namespace vmbt {

namespace {

/// An engine of `kind` over `machine`; bt is handed to spec.configure_bt as itself (the
/// builder made it, so no caller casts an Engine).
std::unique_ptr<Engine> make_engine(const GuestRunSpec& spec, EngineKind kind, Machine& machine) {
  try {
    if (kind == EngineKind::kKvm) {
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

EngineChoice choose_engine(const KvmProbeResult& kvm) {
  if (!kvm.available) return {EngineKind::kBt, fmt::format("no usable KVM: {}", kvm.unavailable)};
  if (!kvm.vmx && !kvm.svm) {
    return {EngineKind::kBt, kvm.pvm ? "this host's KVM is kvm-pvm (no VT-x/AMD-V): it refuses "
                                       "32-bit paging and emulates every instruction in software"
                                     : "this host has no VT-x/AMD-V"};
  }
  if (!kvm.paged_guest_runs) {
    return {EngineKind::kBt,
            fmt::format("this host's KVM refuses 32-bit paging ({})", kvm.paged_detail)};
  }
  if (!kvm.cpuid_model_set) {
    return {EngineKind::kBt, "this host's KVM refuses the vmbt CPU model (KVM_SET_CPUID2)"};
  }
  return {EngineKind::kKvm, fmt::format("{} runs 32-bit paged guests with the vmbt CPU model",
                                        kvm.vmx ? "VT-x" : "AMD-V")};
}

GuestRun run_guest_once(const GuestRunSpec& spec) {
  const GuestConfig& guest = spec.guest;
  BufferConsole buffer;
  std::unique_ptr<TerminalConsole> terminal;
  if (!spec.capture_serial) terminal = std::make_unique<TerminalConsole>();
  PromptWatch prompt(spec.capture_serial ? static_cast<CharBackend&>(buffer) : *terminal);
  Machine machine(guest, prompt);
  BootImage image;
  if (machine.firmware_boot()) {
    // The CPU at RESET, in the BIOS (SDM Vol. 3A §9.1.1): EDX holds the CPUID signature.
    image.entry = reset_state(CpuModel::query(1, 0).eax);
  } else {
    image = load_kernel(machine.memory(), machine.memory_map(), guest.kernel, guest.append,
                        guest.initrd);
  }
  EngineKind kind = guest.engine;
  if (kind == EngineKind::kAuto) {
    const KvmProbeResult kvm = probe_kvm();
    const EngineChoice choice = choose_engine(kvm);
    kind = choice.kind;
    if (spec.announce_engine) {
      fmt::print(stderr, "vmbt: engine {}: {}\n", engine_name(kind), choice.why);
    }
  }
  // (auto picks kvm only where paged guests run: no second probe then.)
  if (kind == EngineKind::kKvm && guest.engine != EngineKind::kAuto && image.enables_paging &&
      !probe_kvm().paged_guest_runs) {
    // Say so now rather than after emulating the whole decompressor instruction by instruction.
    throw EngineUnavailable(
        "this host's KVM cannot run 32-bit paged guests, and this kernel turns paging on; use "
        "--engine bt");
  }
  std::unique_ptr<Engine> engine = make_engine(spec, kind, machine);
  SwitchingEngine* switching = nullptr;
  double switch_after = guest.switch_after_seconds;
  if (switch_after < 0 && guest.switch_every_seconds > 0) switch_after = guest.switch_every_seconds;
  if (guest.switchable || switch_after >= 0 || guest.switch_after_instructions >= 0) {
    // The other engine stands by over the same RAM and devices.
    const EngineKind other = kind == EngineKind::kKvm ? EngineKind::kBt : EngineKind::kKvm;
    auto both = std::make_unique<SwitchingEngine>(
        std::move(engine), make_engine(spec, other, machine),
        [quiet = spec.capture_serial](const std::string& line) {
          if (!quiet) fmt::print(stderr, "\r\nvmbt: {}\r\n", line);  // (--stats counts them)
        });
    if (switch_after >= 0) {
      both->schedule(static_cast<uint64_t>(std::llround(switch_after * 1e9)),
                     static_cast<uint64_t>(std::llround(guest.switch_every_seconds * 1e9)));
    }
    switching = both.get();
    engine = std::move(both);
  }
  if (machine.firmware_boot()) {
    if (std::string why = engine->set_memory_windows(machine.memory_windows()); !why.empty()) {
      throw EngineUnavailable(
          fmt::format("a firmware boot (no --kernel) cannot run on the {} "
                      "engine: {}",
                      engine->name(), why));
    }
    machine.set_on_memory_windows_change([&engine](const std::vector<MemoryWindow>& windows) {
      if (std::string why = engine->set_memory_windows(windows); !why.empty()) throw Error(why);
    });
  }
  // The A20 gate: where the engine cannot mask bit 20, addresses simply never wrap at 1 MiB (the
  // guests vmbt runs leave A20 on), so a refusal is not an error.
  machine.set_on_a20_change([&engine](bool enabled) { engine->set_a20(enabled); });
  engine->set_state(image.entry);
  if (switching && guest.switch_after_instructions >= 0) {
    switching->switch_after_instructions(static_cast<uint64_t>(guest.switch_after_instructions));
  }
  if (spec.configure) spec.configure(*engine);
  if (spec.sandbox) enter_sandbox(spec.gdb != nullptr, guest.net.user);

  GuestRun run;
  run.stats.set_text("engine", std::string(engine->name()));
  RunLoopOptions options;
  options.console = terminal.get();
  options.fatal_dump = spec.fatal_dump;
  options.gdb = spec.gdb;
  options.gdb_wait = spec.gdb_wait;
  if (switching) options.request_switch = [switching] { switching->request_switch(); };
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
