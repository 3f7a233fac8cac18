// The contract between the run loop and an execution engine (bt or kvm). See docs/bt.md and the
// README ("The machine").
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/cpu_state.h"
#include "vmm/stats.h"

namespace vmbt {

class GuestMemory;
class InterruptSource;
class MsrModel;
struct CpuModel;

/// A guest-physical range an engine maps to something other than guest RAM at the same address:
/// the firmware ROM below 4 GiB, and the BIOS area as the chipset's PAM registers set it
/// (vmm/machine/firmware_memory.h). Outside every window, RAM is mapped as it is; inside one the
/// window decides. An access the engine cannot make directly (a write to a read-only window,
/// any access to a window without host memory) is an MMIO exit, which the machine answers.
struct MemoryWindow {
  uint64_t gpa = 0;         ///< first byte (4 KiB aligned)
  uint64_t size = 0;        ///< bytes (a multiple of 4 KiB)
  uint8_t* host = nullptr;  ///< the host memory it maps (page aligned); nullptr: none, all MMIO
  bool read_only = false;   ///< writes are MMIO exits
  /// The file `host` maps (a memfd), and the offset of `host` in it, for an engine that maps
  /// memory by file (bt's shadow MMU); -1 where `host` is guest RAM or nothing.
  int fd = -1;
  uint64_t fd_offset = 0;
  bool operator==(const MemoryWindow&) const = default;
};

/// Why Engine::run() returned.
enum class ExitReason {
  kIo,             ///< port I/O: the run loop performs `io` on the I/O bus
  kMmio,           ///< a load/store to a non-RAM guest-physical address: performs `mmio`
  kHalt,           ///< HLT executed; EIP is past it. With IF=0 the run ends ("guest halted")
  kShutdown,       ///< triple fault or another shutdown condition
  kKicked,         ///< Engine::kick() was called (timer, signal, console input)
  kInternalError,  ///< the engine cannot go on (message says why)
  kDebug,          ///< a debug stop asked for with Engine::set_debug(): Exit::debug says which
};

/// What a debugger (the GDB stub) asks of an engine.
struct DebugSettings {
  /// Stop (ExitReason::kDebug, kStep) after the next instruction. No interrupt is taken while
  /// stepping (as QEMU's gdbstub steps by default), so a step stays in the code being debugged.
  bool single_step = false;
  /// Guest linear addresses (CS base + EIP), sorted: stop (kBreakpoint) before the instruction
  /// there runs, without writing guest memory. The first instruction after set_debug() runs even
  /// if it is one (as EFLAGS.RF lets a debugger resume past its breakpoint, Intel SDM Vol. 3A
  /// §17.3.1.1).
  std::vector<uint32_t> breakpoints;
  /// Watchpoints: stop (kWatchpoint) after an instruction accessed one of these ranges of guest
  /// linear addresses as `kind` says (as a debug register's data breakpoint, Intel SDM Vol. 3A
  /// §17.2.5: a trap, reported after the instruction).
  struct Watch {
    enum class Kind { kWrite, kRead, kAccess };  ///< GDB's watch, rwatch, awatch (Z2, Z3, Z4)
    uint32_t linear = 0;
    uint32_t length = 1;  ///< bytes
    Kind kind = Kind::kWrite;
  };
  std::vector<Watch> watchpoints;
};

/// Why a kDebug exit stopped.
enum class DebugStop {
  kBreakpoint,  ///< EIP is at one of DebugSettings::breakpoints; the instruction has not run
  kStep,        ///< DebugSettings::single_step: one instruction (or exception delivery) ran
  kWatchpoint,  ///< an instruction accessed a watched range: Exit::debug_address says where,
                ///< Exit::debug_watch how
};

/// A port-I/O exit. For string I/O `count` > 1 and `data` holds count * size bytes.
/// For a read the run loop fills `data`; the engine consumes it at the next run().
struct IoAccess {
  uint16_t port = 0;
  uint8_t size = 1;  ///< bytes: 1, 2 or 4
  bool write = false;
  uint32_t count = 1;
  uint8_t* data = nullptr;  ///< engine-owned buffer
};

/// An MMIO exit: `size` bytes at `data` (engine-owned), little-endian. For a write they hold the
/// stored value; for a read the run loop fills them and the engine consumes them at the next run().
struct MmioAccess {
  uint64_t gpa = 0;
  uint8_t size = 4;  ///< bytes: 1, 2, 4 or 8
  bool write = false;
  uint8_t* data = nullptr;
};

struct Exit {
  Exit() = default;
  explicit Exit(ExitReason r, std::string why = {}) : reason(r), message(std::move(why)) {}

  ExitReason reason = ExitReason::kKicked;
  IoAccess io;
  MmioAccess mmio;
  std::string message;  ///< for kShutdown / kInternalError: the reason in a user's words
  /// For kInternalError: the engine cannot go on here, but the guest did nothing wrong and the
  /// state is at an instruction boundary (the instruction not run): another engine can take it
  /// as it is (kvm-pvm's emulation failures and its refusal of CR0.PG).
  bool engine_limit = false;
  DebugStop debug = DebugStop::kStep;  ///< for kDebug
  uint32_t debug_address = 0;          ///< for kWatchpoint: a watched byte it accessed
  DebugSettings::Watch::Kind debug_watch = DebugSettings::Watch::Kind::kWrite;  ///< its kind
};

/// An execution engine: runs one vCPU over guest RAM until an exit.
///
/// Contract: set_state() before the first run(); run() executes guest code until something the
/// run loop must handle. Before entering guest code, run() completes the previous exit's I/O read
/// data and, when `interrupts` has a pending request and the guest can take it (EFLAGS.IF=1, no
/// interrupt shadow), delivers it through the guest IDT. kick() may be called from a signal handler
/// or another thread and makes run() return kKicked soon (within one translation block for bt).
class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string_view name() const = 0;
  virtual void set_state(const VcpuState& state) = 0;
  virtual VcpuState state() = 0;
  virtual Exit run() = 0;
  /// Async-signal-safe. `signal_context` is the ucontext_t of the signal handler that kicks, or
  /// nullptr outside one (bt uses it to cut the chain of the block that was interrupted).
  virtual void kick(const void* signal_context = nullptr) = 0;
  /// The run loop's port I/O handler, for an engine that can perform port I/O itself without an
  /// exit (bt, from translated code): it performs `access` on the machine's I/O bus, counts it as
  /// the run loop counts exits, and returns false when the run must stop (a debug-exit write or a
  /// reset request; the engine then returns from run() soon). Engines that exit for I/O ignore it.
  virtual void set_port_io(std::function<bool(IoAccess&)> /*port_io*/) {}
  /// The platform's MSRs (IA32_APIC_BASE, MTRRs, PAT, IA32_TSC_DEADLINE: vmm/msr_model.h), for
  /// an engine that executes RDMSR/WRMSR itself (bt). Without them those MSRs raise #GP. The kvm
  /// engine leaves MSRs to KVM.
  virtual void set_platform_msrs(MsrModel* /*msrs*/) {}
  /// Adds the engine's own counters (under "bt." or "kvm.") to `stats`.
  virtual void collect_stats(Stats& stats) = 0;
  /// What the engine knows that helps debug a failed run, beyond the registers (bt: the blocks
  /// it dispatched last). Empty by default.
  virtual std::string debug_notes() { return {}; }
  /// Writes every block of generated host code, as it is made, to Linux perf's JIT symbol map
  /// /tmp/perf-PID.map ("START SIZE NAME" lines, tools/perf/Documentation/jit-interface.txt) so
  /// `perf report` names it after the guest address it came from (QEMU's -perfmap). Returns
  /// false for an engine that generates no host code.
  virtual bool enable_perf_map() { return false; }
  /// Applies a debugger's breakpoints and single-stepping from the next run() on. Returns an
  /// empty string, or why this engine cannot do it here (a reply for the user).
  virtual std::string set_debug(const DebugSettings& /*settings*/) {
    return "this engine has no debug support";
  }
  /// Reads (write=false) or writes `size` bytes at guest linear address `linear` for a
  /// debugger: translated through the guest's page tables without setting accessed or dirty
  /// bits, writes seen by the engine as the guest's own would be (translated code, shadow page
  /// tables). False, with nothing written, when a byte is not mapped or not RAM.
  virtual bool debug_access(uint32_t /*linear*/, uint8_t* /*data*/, size_t /*size*/,
                            bool /*write*/) {
    return false;
  }

  // Handing a running guest to another engine (vmm/switching_engine.h).
  /// Why state() would not be the whole story right now (an interrupt shadow, an event being
  /// delivered, an instruction half-done), or empty when the guest may move.
  virtual std::string hand_over_blocker() { return {}; }
  /// The guest may move to an engine whose IA32_TSC_DEADLINE does not reach vmbt's local APIC
  /// (kvm: KVM keeps that MSR): do not offer TSC-deadline mode (CPUID.1:ECX[24]), so that the
  /// guest never depends on it and both engines present the same CPU.
  virtual void withhold_tsc_deadline() {}
  /// NMIs are blocked (an NMI handler runs and has not executed IRET): a waiting NMI does not
  /// end a HLT (Intel SDM Vol. 3A §6.7.1).
  virtual bool nmis_blocked() { return false; }
  /// Why this engine cannot run a guest in `state` here (a reason for the user), or empty.
  virtual std::string cannot_run(const VcpuState& /*state*/) { return {}; }
  /// Drops everything derived from guest memory (translated code, shadow page tables): another
  /// engine ran the guest meanwhile and changed memory without this one seeing it.
  virtual void forget_guest_memory() {}
  /// Maps `windows` (sorted by address, not overlapping) over guest RAM, replacing the previous
  /// set; the machine calls it whenever they change (a PAM write), between run()s. Returns an
  /// empty string, or why this engine cannot (the default: it maps guest RAM only).
  virtual std::string set_memory_windows(const std::vector<MemoryWindow>& /*windows*/) {
    return "it maps guest RAM only (no firmware ROM, no PAM-shadowed BIOS area)";
  }
  /// The A20 gate (port 0x92 bit 1, the 8042's output port bit 1): while `enabled` is false
  /// physical address bit 20 reads as 0, so addresses wrap at 1 MiB as on an 8086. Called
  /// between run()s or from an I/O access inside run(). Returns why this engine cannot, or empty
  /// (the default: it cannot, and addresses never wrap).
  virtual std::string set_a20(bool /*enabled*/) {
    return "this engine does not model the A20 gate: addresses do not wrap at 1 MiB";
  }
  /// Sets the guest's time-stamp counter (IA32_TIME_STAMP_COUNTER, Intel SDM Vol. 3B §18.17).
  virtual void set_tsc(uint64_t /*tsc*/) {}
};

}  // namespace vmbt
