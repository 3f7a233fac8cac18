// The binary-translation engine: runs IA-32 guests on any x86-64 host, no VT-x/AMD-V needed.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <Zydis/Zydis.h>

#include "bt/bt_context.h"
#include "bt/code_cache.h"
#include "bt/debug_registers.h"
#include "bt/guest_linear_memory.h"
#include "bt/indirect_tables.h"
#include "bt/legacy_ops.h"
#include "bt/stubs.h"
#include "bt/system/system_emulator.h"
#include "bt/translator.h"
#include "shadow_mmu/shadow_mmu.h"
#include "vmm/engine.h"
#include "vmm/msr_model.h"

namespace vmbt::bt {

/// What the host fault handler saw in translated code (filled in from the signal handler).
struct HostFault {
  int signal = 0;
  int code = 0;                   ///< si_code
  bool sse = false;               ///< SIGFPE raised by an SSE instruction (#XM, not #MF)
  const void* address = nullptr;  ///< the faulting host address (SIGSEGV/SIGBUS)
  bool write = false;
  uint64_t host_pc = 0;  ///< host RIP of the faulting instruction
};

/// One callout as the monitor saw it (for `vmbt trace`).
struct CalloutEvent {
  uint32_t eip = 0;     ///< offset in CS
  uint32_t linear = 0;  ///< CS.base + EIP
  unsigned cpl = 0;
  uint8_t bytes[16] = {};  ///< the instruction bytes (length `length`)
  unsigned length = 0;
  const char* mnemonic = "";
};

/// The bt engine (docs/bt.md): a dispatcher over a translation cache, the system-instruction
/// emulator for callouts, and guest memory as a host address-space window. One per vCPU thread.
class BtEngine final : public Engine, private SystemHooks, private CodeFetcher {
 public:
  /// `is_mmio(gpa)`: the guest-physical address belongs to an MMIO device (the machine's MMIO
  /// bus); accesses to it become kMmio exits. Without it, non-RAM addresses read all ones.
  BtEngine(GuestMemory& memory, InterruptSource& interrupts,
           std::function<bool(uint64_t)> is_mmio = {});
  ~BtEngine() override;

  std::string_view name() const override { return "bt"; }
  void set_state(const VcpuState& state) override;
  VcpuState state() override;
  Exit run() override;
  void kick(const void* signal_context) override;
  void set_port_io(std::function<bool(IoAccess&)> port_io) override {
    port_io_ = std::move(port_io);
  }
  void set_platform_msrs(MsrModel* msrs) override {
    msrs_ = msrs;
    forget_cpuid_answers();
  }
  void collect_stats(Stats& stats) override;
  std::string debug_notes() override;
  bool enable_perf_map() override;
  std::string set_debug(const DebugSettings& settings) override;
  std::string hand_over_blocker() override;
  bool nmis_blocked() override { return system_.nmi_blocked; }
  void withhold_tsc_deadline() override {
    tsc_deadline_withheld_ = true;
    forget_cpuid_answers();
  }
  void forget_guest_memory() override;
  /// The firmware's ROM and PAM windows (a firmware boot): the shadow MMU maps RAM a window shows
  /// read-only as such and leaves the rest to the MMIO path; code is fetched from the windows'
  /// host memory. Every translation and shadow mapping goes: what an address holds changed.
  std::string set_memory_windows(const std::vector<MemoryWindow>& windows) override;
  /// The A20 gate: the shadow MMU masks physical address bit 20 with paging off while it is off
  /// (applied by the dispatcher, as the windows are).
  std::string set_a20(bool enabled) override;
  void set_tsc(uint64_t tsc) override { write_tsc(tsc); }
  bool debug_access(uint32_t linear, uint8_t* data, size_t size, bool write) override;

  /// Called by the host fault handler for a fault whose RIP is in the translation cache: saves
  /// the guest state as of the faulting guest instruction and makes the signal return into the
  /// exit stub. Returns false when the fault is not the engine's (the handler then crashes).
  bool handle_host_fault(int signal, void* siginfo, void* ucontext);

  /// Called for every callout, before the monitor executes it (sensitive-instruction tracing);
  /// an empty function turns it off. May change while the guest runs (a debugger's `monitor
  /// trace on`): the blocks translated for the other setting are dropped.
  void set_callout_observer(std::function<void(const CalloutEvent&)> observer);

 private:
  /// Guest EFLAGS bits that live in the host RFLAGS while translated code runs.
  static constexpr uint32_t kHostFlagBits = eflags::kArith | eflags::kDf;

  // The dispatcher loop (run), in the phases of one trip through it.
  /// What one trip decided before the block ran and found after it.
  struct DispatchStep {
    bool shadow_step = false;  ///< the STI / MOV SS shadow's one instruction, run alone
    bool trap_flag = false;    ///< EFLAGS.TF: a single-step trap after the instruction
    bool single = false;       ///< one instruction, alone
    bool resume_flag = false;  ///< EFLAGS.RF was set as the instruction started
    bool code_write = false;   ///< a store into its own code page: a one-off block
    uint32_t start_eip = 0;    ///< where the block started
    uint16_t start_cs = 0;     ///< ... and in which code segment
    uint32_t held_hits = 0;    ///< data breakpoints a MOV SS held until this instruction
    TranslationBlock* tb = nullptr;
    bool first_not_run = false;  ///< the block's first instruction did not complete
    bool rep_goes_on = false;    ///< a REP iteration ran and the instruction is not over
    uint32_t db_hits = 0;        ///< B0-B3 of the guest's data breakpoints the access hit
  };
  /// An MMIO read's answer, or an I/O instruction's completion, left by the last exit.
  std::optional<Exit> finish_last_exit();
  /// A kick (BtEngine::kick): the exits it cut are linked again.
  Exit take_kick();
  /// An NMI or interrupt the guest takes now, or the one-instruction shadow before it.
  std::optional<Exit> deliver_pending_event(DispatchStep& step);
  /// The block to run: the mode's, or a one-instruction block (single-step, a store into its
  /// own code, an unchecked segment access, the RF and shadow cases); step.tb = nullptr where
  /// the code cannot be fetched.
  std::optional<Exit> choose_block(DispatchStep& step);
  /// What the block's exit leaves to finish: RF on a retry, REP iterations, the MMIO step's
  /// store, watched accesses.
  std::optional<Exit> after_block(DispatchStep& step);
  /// How the block left: chaining, a callout, a direct call's exit, a host fault, a breakpoint.
  std::optional<Exit> handle_exit();
  /// Links exit `slot` of `from` to the block at EIP in the current mode where that is safe.
  void chain(TranslationBlock* from, unsigned slot);
  /// The traps after an instruction: the debugger's step, data breakpoints, EFLAGS.TF.
  std::optional<Exit> traps_after(DispatchStep& step);

  // SystemHooks
  std::optional<uint64_t> read_platform_msr(uint32_t index) override;
  bool write_platform_msr(uint32_t index, uint64_t value) override;
  CpuidEntry cpuid(uint32_t function, uint32_t index) override;
  uint64_t read_tsc() override;
  void write_tsc(uint64_t value) override;
  void on_paging_changed(const VcpuState& s) override;
  bool load_pdptes(uint32_t cr3, std::array<uint64_t, 4>* pdpte) override;
  void on_invlpg(uint32_t linear) override;
  void on_debug_registers_changed(const VcpuState& s) override;
  // CodeFetcher
  unsigned fetch(uint32_t eip, uint8_t* dst, unsigned len, uint32_t* phys_page) override;
  bool writes_page_tables(uint32_t eip) const override { return table_writers_.count(eip) != 0; }
  bool probes_access(uint32_t eip) const override { return probed_accesses_.count(eip) != 0; }

  /// Drops every translated block and indirect-branch table entry (they were made for settings
  /// that changed: debugger breakpoints, callout observation).
  void drop_translations();
  uint32_t key_flags() const;
  /// The key flags the dispatcher looks blocks up with: key_flags(), one instruction per block
  /// under EFLAGS.TF.
  uint32_t dispatch_flags() const;
  TranslationBlock* lookup(uint32_t eip, uint32_t flags);
  void enter(TranslationBlock* tb);
  /// The architectural state into the context translated code runs on (registers, flags,
  /// segment bases, the window and indirect-branch table of the current mode and space).
  void load_context();
  /// As load_context(), with the current mode's key flags already computed.
  void load_context(uint32_t flags);
  /// The context's registers, flags and EIP back into the architectural state.
  void store_context();
  Exit handle_callout(bool& done);
  /// Executes the sensitive instruction at EIP (decoded: its Zydis decoding; `site`: decoded at
  /// translation, or nullptr to let the system emulator fetch it).
  Exit run_callout(const ZydisDecodedInstruction* insn, const ZydisDecodedOperand* ops,
                   const sys::Insn* predecoded, bool& done);
  /// MASKMOVQ/MASKMOVDQU forms translated code leaves to the monitor (execute_masked_store), on
  /// the guest's vector registers wherever they are at the moment (`in_direct_call`: called
  /// from direct_call(), whose stub keeps them in the units and the context's XMM copy).
  LegacyOutcome run_masked_store(const ZydisDecodedInstruction& insn,
                                 const ZydisDecodedOperand* ops, bool in_direct_call);
  /// Stubs::direct_call's callee (BtContext::direct_call): runs `site` in place and says where
  /// translated code goes on (docs/bt.md, "Callouts as direct calls").
  static uint64_t direct_call_entry(BtContext* ctx, void* site);
  uint64_t direct_call(CalloutSite& site);
  /// Leaves translated code from a direct call: the state goes back into the context.
  uint64_t leave_direct_call();
  /// A site's FastPath on the context alone: the resume address, kLeave (state in the context,
  /// translated code left), or 0 when the system emulator must run it after all.
  uint64_t fast_path(CalloutSite& site);
  static constexpr uint64_t kLeave = 1;
  /// Direct-call continuations: back into the block at the resume address when nothing the
  /// dispatcher must see has happened, else leave.
  uint64_t resume_block(const CalloutSite& site, uint32_t block_flags, uint64_t flushes,
                        const uint8_t* window, uint32_t space);
  /// The dispatcher must see the state before the next instruction runs (a direct call then
  /// leaves translated code instead of going on).
  bool dispatcher_has_work() const;
  /// The two halves of a monitor-assisted page-table store (CalloutSite::Kind::kTableWrite*).
  uint64_t table_write_begin(CalloutSite& site);
  uint64_t table_write_end(CalloutSite& site);
  /// An access probe found its page unmapped for the access (CalloutSite::Kind::kAccessProbe):
  /// what the host fault would have done, without it (docs/bt.md "Access probes").
  uint64_t access_probe(CalloutSite& site);
  /// Delivers the exception the system emulator raised (state in s_) and continues in the
  /// handler's block, as a direct call's control transfer does.
  /// `site`: the direct call that transfers, whose last target is tried before a lookup.
  uint64_t transfer_to(uint32_t flags, CalloutSite* site = nullptr);
  /// The block at EIP for a transfer from `site`: its last target when still right, else lookup().
  TranslationBlock* transfer_target(uint32_t flags, CalloutSite* site);
  Exit handle_fault(bool& done);
  /// The shadow MMU's answer `m` to host fault `f` (or to an access probe's access): a fill to
  /// retry, the guest's #PF, a store run alone, an MMIO access.
  Exit handle_shadow_fault(const ShadowMmu::Fault& m, const HostFault& f, bool& done);
  /// A host signal translated code should never raise: the run ends with an internal error.
  Exit unexpected_host_signal(const HostFault& f, bool& done);
  /// Counts a page fault (true or hidden) of the instruction at the current EIP; the second
  /// makes it an access probe (its block translated again), and a block holding a probed
  /// instruction without its probe (translated before) goes when it faults there.
  void note_faulting_access(const HostFault& f);
  /// Delivers exception `vector` (exc::) through the guest's IDT, with `error_code` when given,
  /// counted for --stats; `done` and the result as finish_step's.
  Exit raise_exception(uint8_t vector, bool& done);
  Exit raise_exception(uint8_t vector, uint32_t error_code, bool& done);
  Exit raise_exception(const GuestFault& f, bool& done);
  /// A direct call delivered an exception (`e`, `done` from raise_exception): where translated
  /// code goes on (the handler's block), or 0 to leave when the run ends.
  uint64_t after_direct_exception(Exit e, bool done);
  Exit finish_step(const StepResult& r, bool& done);
  void protect_code_pages(const TranslationBlock* tb);
  void code_page_written(uint32_t phys_page);
  /// A block no longer valid: its indirect-table entries and kick state go.
  void forget_block(TranslationBlock* tb);
  Exit deliver_fetch_fault(bool& done);
  /// Starts the MMIO access of `fault`; `unchecked`: the instruction ran unchecked (its MMIO
  /// step does too).
  Exit start_mmio(const ShadowMmu::Fault& fault, bool unchecked, bool& done);
  /// Whether host fault `f` came from a block translated unchecked (tb_flags::kSegUnchecked):
  /// an instruction the monitor had checked already.
  bool faulted_unchecked(const HostFault& f);
  /// The exit that asks the run loop to perform the pending MMIO access (mmio_).
  Exit mmio_exit(bool write);
  /// Instruction fetch with the current CPL's rights.
  Access fetch_access() const;
  /// Reads and decodes the guest instruction at CS:EIP (bytes past an unmapped page read as 0).
  bool decode_at_eip(uint8_t (&bytes)[16], ZydisDecodedInstruction& insn, ZydisDecodedOperand* ops);
  /// Enters `tb` (at linear page `page`, frame `phys_page`) in the current indirect-branch table;
  /// the first block of a page brings the page's other blocks of that mode with it.
  void remember_page(TranslationBlock* tb, uint32_t flags, uint32_t page, uint32_t phys_page,
                     bool global);
  /// The indirect-branch table mode for blocks translated with `flags` at the current CPL.
  uint32_t table_mode(uint32_t flags) const;
  /// The current space's indirect-branch table for `mode` and the mode's global one, in the
  /// order translated code at CPL `cpl` probes them; both null when the space has no table for
  /// `mode` and not `create`.
  struct TablePair {
    uint64_t* first = nullptr;
    uint64_t* second = nullptr;
  };
  TablePair tables_for(uint32_t mode, unsigned cpl, bool create);
  /// Points the context at the current space's indirect-branch tables for the mode of `flags`
  /// (the current key flags).
  void select_tables(uint32_t flags);
  /// Prepares SYSENTER and SYSEXIT inline for the current state (BtContext::system_call): what
  /// each loads, the window and tables of the mode it enters, where the common case holds
  /// (protected mode, no VM, TF, RF or alignment checking, IA32_SYSENTER_CS usable, no guest
  /// instruction breakpoint, direct calls on) and the target mode has its table already.
  /// Called with the current tables (select_tables), so both stay right together.
  void prepare_system_calls(uint32_t flags);
  /// Empties BtContext's CPUID table: an answer may have changed (an MSR write, the TSC
  /// deadline withheld). Translated code then asks the monitor again.
  void forget_cpuid_answers();
  /// ShadowMmu's drop hook: linear pages of a space changed.
  void forget_indirect(uint32_t space_id, uint32_t first_page, uint32_t pages, bool global);
  std::string describe_eip() const;

  GuestMemory& memory_;
  InterruptSource& interrupts_;
  VcpuState s_;
  std::unique_ptr<BtContext> ctx_;
  CodeCache cache_;
  Stubs stubs_;
  ShadowMmu mmu_;
  GuestLinearMemory linear_memory_;
  SystemEmulator system_;
  Translator translator_;
  TranslationBlock* entering_ = nullptr;
  TranslationBlock* kicked_ = nullptr;
  HostFault fault_;
  std::function<void(const CalloutEvent&)> callout_observer_;
  IndirectTables tables_;
  struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, FileCloser> perf_map_;  ///< --perfmap's file, or null
  /// Instruction fetches from guest-physical addresses with nothing behind them (#UD, as the bus
  /// reads all ones) and the linear address of the last one, for --stats and the error notes.
  uint64_t fetches_outside_ram_ = 0;
  std::vector<IndirectTables::Entry> page_fill_;  ///< remember_page's blocks (kept: no allocation)
  uint64_t table_page_fills_ = 0;  ///< blocks entered in a table along with their page's first
  uint32_t last_fetch_outside_ram_ = 0;
  uint32_t paging_mode_bits_ = 0;  ///< CR0.PG/WP and CR4.PSE/PGE the global table was made for
  uint32_t table_cs_base_ = 0;  ///< the CS base the indirect-branch tables' entries were made for
  std::array<uint32_t, 16> recent_blocks_{};  ///< EIPs of the last blocks dispatched (ring)
  unsigned recent_next_ = 0;
  /// An MMIO access being emulated: the device's data goes through the MMU's scratch page while
  /// the instruction runs alone (read: filled before; write: collected after).
  struct PendingMmio {
    enum Stage { kNone, kAwaitingRead, kStepping } stage = kNone;
    uint64_t gpa = 0;
    uint32_t linear = 0;
    unsigned size = 0;
    bool reads = false, writes = false;
    /// The access came from an instruction the monitor had checked and run unchecked (a
    /// restricted segment, tb_flags::kSegUnchecked): its MMIO step runs unchecked too.
    bool unchecked = false;
  } mmio_;
  /// Changes of what physical addresses hold, made while the guest ran (set_memory_windows,
  /// set_a20), applied by the dispatcher.
  struct PendingPhysical {
    std::optional<std::vector<MemoryWindow>> windows;
    std::optional<bool> a20;
  } pending_physical_;
  bool physical_change_pending() const {
    return pending_physical_.windows || pending_physical_.a20;
  }
  void apply_physical_changes();
  std::array<uint8_t, 8> mmio_data_{};
  /// The instruction at this EIP runs alone in a one-instruction block (UINT32_MAX: none):
  /// unprotected, after a store into its own code page (SMC), or unchecked, its segment accesses
  /// checked by the monitor already.
  uint32_t single_step_eip_ = UINT32_MAX;
  /// The debugger's requests (set_debug): breakpoints go to the translator; stepping and the
  /// first instruction after a change run as one-instruction blocks that ignore breakpoints.
  DebugSettings debug_;
  bool debug_resume_ = false;  ///< the next instruction runs even at a breakpoint
  /// An access to a watched frame runs alone: the bytes it touches ([linear, linear + size))
  /// and how, checked against the watchpoints once it ran (watch_hit()).
  struct WatchedAccess {
    uint32_t linear = 0, size = 0;
    bool read = false, write = false;
  };
  std::optional<WatchedAccess> watched_access_;
  /// Has the shadow MMU watch the frames debug_.watchpoints map to now.
  void watch_frames();
  /// The watchpoint `access` triggers, and the first watched byte it touched, if any.
  std::optional<std::pair<DebugSettings::Watch::Kind, uint32_t>> watch_hit(
      const WatchedAccess& access) const;
  /// What the instruction at EIP, which faulted at `linear` (a write if `write`) in a watched
  /// frame, accesses: its memory operand (a string instruction: to the end of the page, as it
  /// may repeat).
  WatchedAccess watched_access_at(uint32_t linear, bool write);
  /// The guest's own breakpoints (DR0-DR3 as DR7 enables them; Intel SDM Vol. 3B §17.2,
  /// docs/bt.md "The guest's debug registers"): the linear addresses of its enabled instruction
  /// breakpoints (sorted), which the translator treats as a debugger's, and whether a data
  /// breakpoint is enabled (its frames are watched as a debugger's watchpoints are, and
  /// sensitive instructions are callouts, whose explicit accesses are logged in data_log_).
  std::vector<uint32_t> guest_exec_breakpoints_;
  bool guest_data_breakpoints_ = false;
  bool guest_breakpoints_changed_ = false;  ///< a MOV DR changed them: update once it is over
  /// A REP string instruction that touched a watched frame while the guest has a data
  /// breakpoint runs one iteration alone (ECX made 1), so that a hit is reported at that
  /// iteration's boundary (Intel SDM Vol. 3B §17.3.1.2): its count, EIP and termination.
  struct RepIteration {
    uint32_t count = 0, eip = 0;
    bool repe = false, repne = false;  ///< CMPS/SCAS also end on ZF
  };
  std::optional<RepIteration> rep_iteration_;
  /// Makes the instruction at EIP, about to run alone for watched_access_, a single iteration
  /// when it is a REP string instruction with more than one to go.
  void start_rep_iteration();
  /// What the translator was given: the debugger's breakpoints and the guest's, merged.
  std::vector<uint32_t> translator_breakpoints_;
  std::vector<DataAccess> data_log_;
  /// B0-B3 of the data breakpoints the last callout triggered (delivered by run()).
  uint32_t callout_hits_ = 0;
  /// B0-B3 of data breakpoints a MOV SS / POP SS holds until the next instruction has run
  /// (Intel SDM Vol. 3A §6.8.3).
  uint32_t held_hits_ = 0;
  /// Re-reads the guest's breakpoints from s_.dr (DR writes, set_state).
  void update_guest_breakpoints();
  /// Gives the translator the debugger's and the guest's instruction breakpoints; a change drops
  /// every translation.
  void apply_breakpoints();
  /// Whether the guest has an enabled instruction breakpoint at `linear`.
  bool guest_breakpoint_at(uint32_t linear) const {
    return !guest_exec_breakpoints_.empty() &&
           std::binary_search(guest_exec_breakpoints_.begin(), guest_exec_breakpoints_.end(),
                              linear);
  }
  bool single_step_code_write_ = false;
  bool single_step_unchecked_ = false;
  bool io_pending_ = false;
  StepResult io_step_;
  int64_t tsc_offset_ = 0;

  /// The run loop's port I/O handler (Engine::set_port_io): IN/OUT/INS/OUTS are performed here
  /// instead of ending run() with an I/O exit. Returns false when the run must stop.
  std::function<bool(IoAccess&)> port_io_;
  MsrModel* msrs_ = nullptr;            ///< the platform's MSRs (Engine::set_platform_msrs)
  bool tsc_deadline_withheld_ = false;  ///< Engine::withhold_tsc_deadline
  /// An exit a direct call produced inside translated code (HLT, shutdown, I/O without port_io_):
  /// run() returns it once translated code has been left.
  Exit direct_exit_;
  bool direct_exit_pending_ = false;
  /// A direct call translated the first block that uses the FPU: the guest's FPU state goes into
  /// the host units at the next enter() (it cannot while the monitor runs inside the call).
  bool fpu_activate_pending_ = false;
  /// Linear EIPs of instructions that stored into traced page tables: translated as
  /// monitor-assisted stores from then on (adaptive translation, as VMware's monitor did).
  std::unordered_set<uint32_t> table_writers_;
  /// Access probes (docs/bt.md "Access probes"): page faults taken so far by linear EIP, and
  /// the EIPs whose accesses are probed from then on. Bounded: the counts start over past
  /// kMaxFaultCounts EIPs, and at most kMaxProbedAccesses EIPs are probed.
  static constexpr unsigned kProbeAfterFaults = 2;
  static constexpr size_t kMaxFaultCounts = 1u << 16, kMaxProbedAccesses = 1u << 16;
  std::unordered_map<uint32_t, uint8_t> access_faults_;
  /// (Linear EIP -> TranslatorStats::blocks when it was probed: blocks translated before then
  /// lack its probe.)
  std::unordered_map<uint32_t, uint64_t> probed_accesses_;
  uint64_t access_probe_calls_ = 0, access_probe_fills_ = 0, access_probe_page_faults_ = 0;

  // Statistics.
  std::vector<uint64_t> callouts_by_mnemonic_ = std::vector<uint64_t>(ZYDIS_MNEMONIC_MAX_VALUE + 1);
  uint64_t undecodable_callouts_ = 0;
  std::array<uint64_t, 9> exits_by_kind_{};  ///< block exits by ExitKind
  std::map<unsigned, uint64_t> exceptions_by_vector_;
  uint64_t interrupts_delivered_ = 0, nmis_delivered_ = 0, smc_invalidations_ = 0, chains_ = 0,
           dispatches_ = 0, host_faults_ = 0, direct_calls_ = 0, direct_transfers_ = 0,
           io_in_engine_ = 0;
};

}  // namespace vmbt::bt
