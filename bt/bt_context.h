// The per-vCPU block that translated code addresses through r14.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "vmm/cpu_state.h"

namespace vmbt::bt {

struct TranslationBlock;

/// Host register roles inside translated code (see docs/bt.md, "register pinning"):
///   rax..rdi  guest EAX..EDI in their low halves, upper halves always zero
///   r15       base of the current linear window (guest linear 0)
///   r14       the BtContext
///   r13       minus the window base (to turn host pointers back into guest offsets without flags)
///   r8-r11    scratch
/// Guest arithmetic flags and DF live in the host RFLAGS.
enum class ExitKind : uint32_t {
  kNone = 0,
  kBranch,      ///< a direct branch to a block not chained yet: look up `eip`
  kIndirect,    ///< an indirect branch or return to `eip` missed the indirect-branch table
  kCallout,     ///< the instruction at `eip` needs the monitor (privileged or sensitive)
  kFault,       ///< a host fault in translated code; the fault handler filled in the details
  kUnlinked,    ///< a chained exit was cut by a kick: look up `eip`, then relink
  kIrqWindow,   ///< inline STI enabled interrupts with one pending: deliver it after one more block
  kDirectCall,  ///< a direct call executed its instruction in place and left for the dispatcher
  kDebugStop,   ///< a debugger's breakpoint at `eip`: nothing of the block ran
};

/// Entries in an indirect-branch table: indexed by the low bits of the guest target EIP; each
/// holds the host address of a block's indirect entry (which checks the full EIP). One table per
/// guest address space, because a linear EIP means different code in different spaces. Two-way:
/// a target whose slot i another block holds is looked for in slot i + 1 too (its victim slot),
/// so two hot targets 64 KiB apart do not evict each other at every call.
constexpr size_t kIndirectTableBits = 16;  // indexed with a flag-free movzx of the low word
constexpr size_t kIndirectTableSize = size_t{1} << kIndirectTableBits;
/// Slots of a table: one more than the index reaches, the victim slot of the last.
constexpr size_t kIndirectTableSlots = kIndirectTableSize + 1;

/// What an inline SYSENTER or SYSEXIT loads (docs/bt.md, "System calls inline"), prepared by the
/// monitor for the current state (BtEngine::prepare_system_calls) every time it points the
/// context at the current mode's tables: translated code then switches mode without the monitor.
struct SystemCallSwitch {
  /// 0: translated code may perform the instruction inline; otherwise it calls the monitor (the
  /// common case does not hold, or the target mode has no table yet).
  uint32_t not_ready = 1;
  uint32_t esp = 0;                     ///< SYSENTER: IA32_SYSENTER_ESP (SYSEXIT takes ECX)
  uint32_t eip = 0;                     ///< SYSENTER: IA32_SYSENTER_EIP (SYSEXIT takes EDX)
  std::array<uint16_t, 2> selectors{};  ///< CS and SS (the context's seg_sel copies)
  uint64_t window_base = 0, window_neg = 0, window_high = 0;  ///< r15, r13, r12 at the new CPL
  /// The new mode's first table, and the kick table: indexed by kick_pending, so a kick that
  /// came before the switch is not undone by it (BtEngine::kick).
  std::array<uint64_t*, 2> tables{};
  uint64_t* second_table = nullptr;
  uint64_t indirect_table_neg = 0, second_table_neg = 0;
  /// CS and SS as the instruction loads them, copied into the monitor's state (state_cs).
  std::array<SegmentReg, 2> segments{};
};

struct alignas(64) BtContext {
  std::array<uint32_t, 8> gpr{};  ///< guest GPRs at an exit / to load at entry
  uint32_t eip = 0;               ///< guest EIP to resume at (set by the exit path)
  uint32_t host_flags = 0x2;      ///< guest arithmetic flags + DF as host RFLAGS bits
  uint64_t host_rsp = 0;          ///< the monitor's stack pointer while translated code runs
  uint64_t window_base = 0;       ///< r15
  uint64_t window_neg = 0;        ///< r13
  /// r12: window_base + 4 GiB, the base of the direct form of an address with a displacement
  /// below -496 MiB or above 2 GiB (BlockEmitter::direct_window_address).
  uint64_t window_high = 0;
  ExitKind exit_kind = ExitKind::kNone;
  uint32_t exit_slot = 0;  ///< which exit of `exit_tb` was taken (for chaining)
  TranslationBlock* exit_tb = nullptr;
  /// Set (to 1) from signal handlers; read by the dispatcher. Only ever 0 or 1: an inline
  /// SYSENTER/SYSEXIT indexes SystemCallSwitch::tables with it.
  volatile uint32_t kick_pending = 0;
  uint32_t fpu_active = 0;             ///< guest x87/SSE state lives in `guest_fx` when 0
  std::array<uint32_t, 6> seg_base{};  ///< guest segment bases (ES CS SS DS FS GS)
  uint32_t fpu_ip = 0;                 ///< guest EIP of the last non-control x87 instruction (FIP)
  uint32_t fpu_dp = 0;                 ///< its memory operand's offset (FDP)
  /// Guest segment selectors (ES CS SS DS FS GS): FCS/FDS in stored x87 environments, and PUSH
  /// Sreg inline.
  std::array<uint16_t, 6> seg_sel{};
  uint8_t vif = 0;          ///< the guest's EFLAGS.IF (virtual; CLI/STI at CPL0 run inline)
  uint8_t irq_pending = 0;  ///< a device interrupt is waiting (sampled at entry)
  uint32_t vflags = 0;      ///< the guest's EFLAGS without the host-held bits and IF
  alignas(16) std::array<uint64_t, 4> scratch_stack{};  ///< for PUSHFQ/POPFQ in inline PUSHF
  alignas(16) std::array<uint8_t, 512> guest_fx{};
  alignas(16) std::array<uint8_t, 512> host_fx{};
  /// The indirect-branch table translated code probes first (kIndirectTableSlots slots), and the
  /// one Stubs::indirect_miss probes when that misses, with their negations (for a flag-free
  /// comparison with the table just probed): the current address space's and the current mode's
  /// global table, in the order that hits first most often (IndirectTables).
  uint64_t* indirect_table = nullptr;
  uint64_t* second_table = nullptr;
  uint64_t indirect_table_neg = 0;
  uint64_t second_table_neg = 0;

  // Direct calls (docs/bt.md, "Callouts as direct calls"): translated code calls the monitor in
  // place through Stubs::direct_call, on the monitor's stack, and goes on where it returns.
  /// The monitor's routine: executes a callout site's instruction on the state in this context
  /// and returns the host address to go on at (the site's resume address, or a block's entry),
  /// or 0 to leave translated code for the dispatcher (state already in this context).
  uint64_t (*direct_call)(BtContext* ctx, void* site) = nullptr;
  void* engine = nullptr;    ///< the engine direct_call works for
  uint64_t resume = 0;       ///< host address after the call sequence (set by the stub)
  uint32_t fpu_live = 0;     ///< fpu_active when the stub was entered (guest XMM saved below)
  uint32_t guest_mxcsr = 0;  ///< the guest's MXCSR while the monitor runs with its own
  uint32_t monitor_mxcsr = 0x1f80;  ///< all exceptions masked, round to nearest (the ABI's)
  alignas(16) std::array<uint8_t, 128> guest_xmm{};  ///< XMM0-7 (the only ones IA-32 guests have)
  /// A page-table store made through the monitor (CalloutSite::Kind::kTableWriteBegin): the
  /// guest linear address translated code computed, and the host address the store then uses,
  /// as an offset from the window base (so the instruction's [r15 + r8] form reaches it).
  uint32_t table_linear = 0;
  uint64_t table_offset = 0;

  /// SYSENTER (0) and SYSEXIT (1) inline, and the monitor's CS (its SS follows) that they load.
  static constexpr size_t kSysenter = 0, kSysexit = 1;
  std::array<SystemCallSwitch, 2> system_call{};
  SegmentReg* state_cs = nullptr;
  uint64_t inline_system_calls = 0;  ///< SYSENTERs and SYSEXITs performed inline (--stats)

  /// Access probes (docs/bt.md "Access probes"): an instruction that kept taking page faults
  /// checks its page's shadow entry first. `shadow_entries`: the current address space's
  /// (ShadowMmu::shadow_entries, reloaded with the window base). Per access class
  /// (probe_class), whether an entry's bits 20-27 (`probe_low`, indexed by them) and 29-31
  /// (`probe_high`) let the access run: 0 yes, 1 no; both 0 means every
  /// ShadowMmu::probe_required bit is set.
  /// `probe_linear`: the address a probe calls the monitor for (CalloutSite::Kind::kAccessProbe).
  const uint32_t* shadow_entries = nullptr;
  uint32_t probe_linear = 0;
  std::array<uint8_t, 4 * 256> probe_low{};
  std::array<uint8_t, 4 * 8> probe_high{};
  static constexpr size_t probe_class(bool write, bool user) {
    return (user ? 2 : 0) + (write ? 1 : 0);
  }

  /// CPUID answered in translated code (docs/bt.md, "CPUID"): leaves the monitor answered
  /// before, by slot cpuid_slot(EAX). A slot matches when its tag plus EAX is zero (a flag-free
  /// test); an empty slot's tag matches no EAX that maps to it. The engine empties the table
  /// whenever an answer may change (an MSR write that changes CPUID, the TSC-deadline bit).
  static constexpr size_t kCpuidSlots = 512;
  /// The slot of leaf `eax`: its low byte plus its high byte (basic leaves 0-0xFF, extended
  /// leaves 0x80000000-0x8000007F at 0x80-0xFF + low byte), computable without flags.
  static constexpr size_t cpuid_slot(uint32_t eax) { return (eax & 0xff) + (eax >> 24); }
  /// A tag no EAX mapping to `slot` matches (so the slot misses).
  static constexpr uint32_t cpuid_empty_tag(size_t slot) {
    return 0u - (slot == cpuid_slot(0xffffffffu) ? 0xfffffffeu : 0xffffffffu);
  }
  std::array<uint32_t, kCpuidSlots> cpuid_tag{};  ///< 0 - EAX of the leaf held
  struct CpuidAnswer {
    uint32_t eax, ebx, ecx, edx;
  };
  alignas(16) std::array<CpuidAnswer, kCpuidSlots> cpuid_answer{};
};

}  // namespace vmbt::bt
