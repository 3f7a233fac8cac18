// The bt engine's system-instruction emulator: executes one privileged or sensitive IA-32
// instruction with the Intel SDM's semantics on the architectural state, and delivers exceptions
// and interrupts through the guest IDT (Intel SDM Vol. 2, Vol. 3A ch. 3, 5, 6, 7).
#pragma once

#include <Zydis/Zydis.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "bt/system/guest_access.h"
#include "vmm/cpu_model.h"
#include "vmm/cpu_state.h"

namespace vmbt::bt {

namespace sys {
struct Insn;
struct Event;
struct StackPtr;
}  // namespace sys

/// A port I/O access the engine must perform (IN/OUT/INS/OUTS). String I/O batches up to what fits:
/// never crossing a page of the memory operand, never more than ECX elements with REP.
struct IoRequest {
  size_t bytes() const { return size_t{count} * size; }

  uint16_t port = 0;
  uint8_t size = 0;    ///< element size in bytes: 1, 2 or 4
  bool write = false;  ///< true = OUT/OUTS (data holds the elements), false = IN/INS
  uint32_t count = 0;  ///< number of elements at `data` (1 for IN/OUT)
  /// count * size bytes in the emulator's I/O buffer (SystemEmulator::kIoBufferBytes): the
  /// elements written, or where the engine puts those read for finish_io(). Valid until the
  /// emulator's next instruction. (A pointer, not the buffer: every StepResult carries one, and a
  /// callout must not copy 4 KiB it does not use.)
  uint8_t* data = nullptr;
};

enum class StepKind { kDone, kIo, kHalt, kShutdown, kUnsupported };

struct StepResult {
  StepResult() = default;
  StepResult(StepKind k, const IoRequest& request, std::string why)
      : kind(k), io(request), message(std::move(why)) {}

  StepKind kind = StepKind::kDone;
  IoRequest io;
  std::string message;  ///< for kShutdown and kUnsupported: what happened, naming the EIP
};

/// Hooks the emulator needs from the engine.
class SystemHooks {
 public:
  virtual ~SystemHooks() = default;
  /// The guest TSC (engine-defined offset from the host's).
  virtual uint64_t read_tsc() = 0;
  /// WRMSR IA32_TIME_STAMP_COUNTER: the guest sets its TSC (the engine adjusts its offset).
  virtual void write_tsc(uint64_t /*value*/) {}
  /// RDMSR of an MSR the platform keeps (vmm/msr_model.h): its value, or nullopt for #GP(0).
  virtual std::optional<uint64_t> read_platform_msr(uint32_t /*index*/) { return std::nullopt; }
  /// WRMSR of such an MSR: false for #GP(0).
  virtual bool write_platform_msr(uint32_t /*index*/, uint64_t /*value*/) { return false; }
  /// CPUID.EAX=function,ECX=index as the platform presents it now (CpuModel::query, with the
  /// APIC feature bit following IA32_APIC_BASE.EN).
  virtual CpuidEntry cpuid(uint32_t function, uint32_t index) {
    return CpuModel::query(function, index);
  }
  /// CR0.PG/WP/PE, CR3, CR4.PSE/PGE/PAE, the PDPTE registers or IA32_EFER.NXE written: the MMU
  /// must flush or switch.
  virtual void on_paging_changed(const VcpuState&) {}
  /// Reads the four PDPTEs of PAE paging from the page-directory-pointer table at `cr3` bits
  /// 31:5 into `*pdpte` (Intel SDM Vol. 3A §4.4.1); false where loading them is a #GP(0): a
  /// present PDPTE with a reserved bit set, or a PDPT outside RAM. (No MMU: always false.)
  virtual bool load_pdptes(uint32_t /*cr3*/, std::array<uint64_t, 4>* /*pdpte*/) { return false; }
  /// INVLPG executed at CPL0 for this linear address.
  virtual void on_invlpg(uint32_t /*linear*/) {}
  /// MOV to DR0-DR3 or DR7 (DR5 with CR4.DE=0) wrote a breakpoint register: the engine
  /// re-reads the guest's breakpoints (Intel SDM Vol. 3B §17.2).
  virtual void on_debug_registers_changed(const VcpuState&) {}
};

/// A data access an emulated instruction made through its own operands (not a descriptor read,
/// a stack frame of an event, nor any other implicit access): what the guest's data breakpoints
/// are checked against (Intel SDM Vol. 3B §17.2.5).
struct DataAccess {
  uint32_t linear = 0;
  uint32_t size = 0;
  bool write = false;
};

/// Emulates privileged/sensitive instructions and delivers events for one vCPU.
class SystemEmulator {
 public:
  SystemEmulator(LinearMemory& mem, SystemHooks& hooks);

  /// Executes the instruction at CS.base+EIP (decoded with Zydis from `mem` with the CPL's rights).
  /// On success advances EIP (or transfers control). Exceptions it raises are delivered through the
  /// IDT before returning (kDone with the state at the handler); double fault escalation; triple
  /// fault -> kShutdown. IN/OUT/INS/OUTS that pass the permission checks return kIo WITHOUT
  /// advancing: the engine performs the request and calls finish_io. HLT at CPL0 -> kHalt with EIP
  /// advanced. Instructions that are not system instructions -> kUnsupported (state unchanged).
  StepResult execute(VcpuState& s);

  /// The same for an instruction decoded beforehand (predecoded) at `s.eip` whose bytes are
  /// known to be unchanged (a callout site in translated code, whose page is write-protected): no
  /// fetch, no second decode.
  StepResult execute(VcpuState& s, const sys::Insn& decoded);

  /// Completes `out` from the translator's decoding of the instruction at `eip` (Zydis, in the
  /// mode `code32` says): copies it and fills in the sizes and next EIP as execute() would. False
  /// where execute() would raise #UD while decoding (an encoding or ISA extension outside the
  /// CPU model: policy::model_executes); the caller then leaves the instruction to execute().
  static bool predecoded(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* ops,
                         uint32_t eip, bool code32, sys::Insn& out);

  /// Completes the I/O step returned by the last execute(): IN writes AL/AX/EAX; INS stores `data`
  /// to ES:EDI and updates EDI/ECX; OUTS updates ESI/ECX. Advances EIP when the (REP) instruction
  /// is complete, else leaves EIP at the instruction so it re-executes for the next batch. Returns
  /// kDone, or kShutdown if an exception raised while completing (a store fault, a single-step
  /// trap) escalated to a triple fault.
  StepResult finish_io(VcpuState& s, const IoRequest& io);

  /// Delivers an exception raised by translated code. EIP must already be the faulting
  /// instruction's (faults) or the next one (traps). Whether an error code is pushed follows the
  /// SDM (Table 6-1: vectors 8, 10-14, 17); `error_code` is its value. Returns kShutdown on triple
  /// fault. In virtual-8086 mode events go to the protected-mode handler (Intel SDM Vol. 3A
  /// §20.3.1.1).
  StepResult raise(VcpuState& s, uint8_t vector, bool has_error_code = false,
                   uint32_t error_code = 0);

  /// SYSENTER or SYSEXIT (`in`) in the common case, without the general entry's bookkeeping:
  /// protected mode, EFLAGS.TF and VM clear, IA32_SYSENTER_CS[15:2] != 0 and, for SYSEXIT,
  /// CPL 0. Then it performs the instruction as execute() would and returns true; otherwise it
  /// changes nothing and returns false (execute() then raises what Intel SDM Vol. 2B says).
  bool fast_system_call(VcpuState& s, const sys::Insn& in);
  /// Whether SYSENTER (or, at CPL 0, SYSEXIT) takes its common case in `s`: protected mode,
  /// EFLAGS.TF and VM clear, IA32_SYSENTER_CS[15:2] != 0 (Intel SDM Vol. 2B SYSENTER, SYSEXIT:
  /// no #GP, no trap after it). fast_system_call's test, and the inline one's.
  static bool system_call_common_case(const VcpuState& s) {
    return (s.cr0 & cr0::kPe) && !(s.eflags & (eflags::kVm | eflags::kTf)) &&
           (s.sysenter_cs & 0xfffc) != 0;
  }
  /// Loads CS and SS as SYSENTER (`enter`) or SYSEXIT does, from IA32_SYSENTER_CS (Intel SDM
  /// Vol. 2B SYSENTER, SYSEXIT): flat, CPL 0 or 3. Nothing else changes, nothing is checked.
  static void load_system_call_segments(VcpuState& s, bool enter);

  /// INT n (CD ib) or INT3 in the common case (fast_deliver()): delivers it as execute() would
  /// and returns true; otherwise changes nothing (CR2 included) and returns false.
  bool fast_software_interrupt(VcpuState& s, const sys::Insn& in);
  /// IRET with a 32-bit operand in the common case (Intel SDM Vol. 2A IRET, protected mode):
  /// EFLAGS.NT, TF and VM clear, the popped EFLAGS without VM; the return CS in the GDT,
  /// present, accessed, at the same level or an outer one, whose SS then is in the GDT,
  /// present, writable, expand-up, 32-bit and accessed; the current stack expand-up and 32-bit.
  /// Returns true having returned as execute() would; otherwise changes nothing (CR2
  /// included) and returns false.
  bool fast_iret(VcpuState& s, const sys::Insn& in);

  /// For the differential tests: false sends every delivery and IRET down the general path
  /// (fast_deliver() and fast_iret() decline), the oracle the fast paths are compared with.
  void set_fast_paths(bool enabled) { fast_paths_ = enabled; }
  /// Deliveries and IRETs the fast paths performed (the rest went the general way).
  uint64_t fast_paths_taken() const { return fast_paths_taken_; }

  /// Delivers an external maskable interrupt (caller checked EFLAGS.IF and the shadow): no gate-DPL
  /// check, EXT bit in error codes of faults during delivery. Results as for raise().
  StepResult deliver_interrupt(VcpuState& s, uint8_t vector);

  /// Delivers an NMI (vector 2 through the IDT, no gate-DPL check, as an external event) and
  /// blocks NMIs until the next IRET (Intel SDM Vol. 3A §6.7.1). Results as for raise().
  StepResult deliver_nmi(VcpuState& s);
  /// NMIs are blocked: an NMI handler runs and has not executed IRET yet.
  bool nmi_blocked = false;

  /// One-instruction interrupt shadow (SDM Vol. 3A §6.8.3): set by STI when IF went 0->1 and by
  /// MOV SS / POP SS. Every entry point clears it first; the engine clears it after the next
  /// instruction or block it runs itself.
  bool interrupt_shadow = false;

  /// While set, the explicit memory accesses of each instruction the emulator executes go to
  /// `log` (cleared when an instruction faults: a faulting instruction triggers no data
  /// breakpoint); the engine empties it. nullptr (the default) records nothing.
  void set_data_access_log(std::vector<DataAccess>* log) { data_log_ = log; }

  /// Bytes of the buffer IoRequest::data points into: the most one string I/O step moves (a
  /// page of its memory operand).
  static constexpr size_t kIoBufferBytes = 4096;

 private:
  std::array<uint8_t, kIoBufferBytes> io_buffer_;
  bool fast_paths_ = true;
  uint64_t fast_paths_taken_ = 0;
  struct PendingIo {
    bool active = false;
    bool string = false;  ///< INS/OUTS
    bool in = false;
    bool rep = false;
    uint8_t size = 0;
    uint8_t asize = 4;  ///< address size of the string instruction (2 or 4)
    uint16_t port = 0;
    uint32_t count = 0;
    uint32_t eip = 0, next_eip = 0;
    bool single_step = false;  ///< TF was set when the instruction started
  };

  /// Delivers `ev` in the common case a protected-mode kernel sets up (Intel SDM Vol. 3A
  /// §6.12.1, Vol. 2A INT n): EFLAGS.TF and VM clear; a present 32-bit interrupt or trap gate
  /// (DPL >= CPL for a software interrupt); its code segment in the GDT, present,
  /// non-conforming, accessed, at CPL (the same stack) or below it (the TSS's 32-bit stack for
  /// that level: in the GDT, present, writable, expand-up, 32-bit, accessed); the frame written
  /// at once. Returns false having changed nothing (CR2 included) otherwise: deliver_event's
  /// general path then decides (faults during delivery, #DF, 16-bit gates, task gates...).
  bool fast_deliver(VcpuState& s, const sys::Event& ev);
  /// fast_iret() without telling the engine about the segments (iret() tries it first too).
  bool fast_iret_core(VcpuState& s, const sys::Insn& in);

  // emulator.cpp: decode, dispatch, operand access.
  void fetch_decode(const VcpuState& s, sys::Insn& in);
  StepResult run_instruction(VcpuState& s, const sys::Insn* decoded);
  StepResult dispatch(VcpuState& s, const sys::Insn& in);
  [[gnu::noinline]] StepResult fetch_and_dispatch(VcpuState& s);
  uint32_t mem_read(const VcpuState& s, unsigned seg, uint32_t offset, unsigned size);
  void mem_write(const VcpuState& s, unsigned seg, uint32_t offset, uint32_t value, unsigned size);
  uint32_t data_linear(const VcpuState& s, unsigned seg, uint32_t offset, unsigned size,
                       bool write);
  uint32_t read_operand(const VcpuState& s, const sys::Insn& in, unsigned i, unsigned size);
  void write_operand(VcpuState& s, const sys::Insn& in, unsigned i, uint32_t value, unsigned size);
  /// A #DB trap after the instruction (EIP already past it) with `dr6_bits` set in DR6.
  StepResult debug_trap(VcpuState& s, uint32_t dr6_bits);

  // flags.cpp (SDM Vol. 2: CLI, STI, PUSHF, POPF).
  StepResult cli(VcpuState& s, const sys::Insn& in);
  StepResult sti(VcpuState& s, const sys::Insn& in);
  StepResult pushf(VcpuState& s, const sys::Insn& in);
  StepResult popf(VcpuState& s, const sys::Insn& in);

  // segments.cpp (SDM Vol. 3A §3.4-3.5, §5.5-5.10; Vol. 2 MOV, POP, PUSH, LDS, LAR, LSL, VERR).
  void load_data_segment(VcpuState& s, unsigned seg, uint16_t selector);
  StepResult mov_sreg(VcpuState& s, const sys::Insn& in);
  StepResult mov_from_sreg(VcpuState& s, const sys::Insn& in);
  StepResult push_sreg(VcpuState& s, const sys::Insn& in);
  StepResult pop_sreg(VcpuState& s, const sys::Insn& in);
  StepResult load_far_pointer(VcpuState& s, const sys::Insn& in);
  StepResult lar_lsl(VcpuState& s, const sys::Insn& in);
  StepResult verr_verw(VcpuState& s, const sys::Insn& in);
  StepResult arpl(VcpuState& s, const sys::Insn& in);

  // control_transfer.cpp (SDM Vol. 2 JMP, CALL, RET, IRET, INT n, SYSENTER, SYSEXIT).
  StepResult far_jmp_call(VcpuState& s, const sys::Insn& in);
  void far_transfer(VcpuState& s, const sys::Insn& in, bool call, uint16_t selector,
                    uint32_t offset);
  void call_gate(VcpuState& s, const sys::Insn& in, bool call, uint16_t gate_selector,
                 uint32_t gate_lo, uint32_t gate_hi);
  StepResult far_ret(VcpuState& s, const sys::Insn& in);
  StepResult iret(VcpuState& s, const sys::Insn& in);
  StepResult software_interrupt(VcpuState& s, const sys::Insn& in);
  StepResult sysenter(VcpuState& s, const sys::Insn& in);
  StepResult sysexit(VcpuState& s, const sys::Insn& in);
  void read_tss_stack(const VcpuState& s, unsigned dpl, uint32_t ext, uint16_t* ss, uint32_t* esp);
  /// Why a task switch happens (Intel SDM Vol. 3A §8.3): the busy bits, the back link and NT
  /// follow it.
  enum class TaskSwitch { kCall, kJmp, kIret, kEvent };
  static const char* task_switch_name(TaskSwitch reason);
  /// Switches to the task of 32-bit TSS `tss_sel` (bt/system/task_switch.cpp): the old task's
  /// registers, with `old_eip` and `old_eflags`, saved in its TSS; the new task's loaded, checked
  /// as Table 8-1 says; `event`, for kEvent, whose error code goes on the new task's stack. The
  /// caller has made the checks of its own path (gate or TSS privilege and presence). Throws
  /// GuestFault before changing anything but accessed bits; sys::FaultInNewTask for a fault on
  /// the new task's stack; sys::Unsupported for 16-bit TSSs. A TSS with EFLAGS.VM = 1 starts
  /// a virtual-8086 task (Intel SDM Vol. 3A §20.2.5).
  void task_switch(VcpuState& s, uint16_t tss_sel, TaskSwitch reason, uint32_t old_eip,
                   uint32_t old_eflags, const sys::Event* event = nullptr);
  /// Rolls `s` back to `before` after a fault (sys::restore_state), telling the MMU when the
  /// rolled-back instruction had switched the address space (a task switch loads CR3).
  void roll_back(VcpuState& s, const VcpuRegisters& before);
  static void null_outer_data_segments(VcpuState& s);

  // real_mode.cpp (SDM Vol. 3A ch. 20; the REAL-ADDRESS-MODE parts of the Vol. 2 pseudocode).
  void load_real_mode_segment(VcpuState& s, unsigned seg, uint16_t selector);
  void far_transfer_real_mode(VcpuState& s, const sys::Insn& in, bool call, uint16_t selector,
                              uint32_t offset);
  StepResult far_ret_real_mode(VcpuState& s, const sys::Insn& in);
  StepResult iret_real_mode(VcpuState& s, const sys::Insn& in);
  void deliver_real_mode(VcpuState& s, const sys::Event& ev);
  StepResult iret_from_vm86(VcpuState& s, const sys::Insn& in);
  void iret_to_vm86(VcpuState& s, const sys::StackPtr& sp, const uint32_t* popped);

  // exceptions.cpp (SDM Vol. 3A §6.4-6.15).
  StepResult deliver_event(VcpuState& s, sys::Event ev);
  void deliver_once(VcpuState& s, const sys::Event& ev);

  // io.cpp (SDM Vol. 1 §19.5; Vol. 2 IN, OUT, INS, OUTS).
  void check_io_permission(const VcpuState& s, uint16_t port, unsigned size);
  StepResult in_out(VcpuState& s, const sys::Insn& in);
  StepResult string_io(VcpuState& s, const sys::Insn& in);

  // system_registers.cpp (SDM Vol. 2 LGDT ... INVLPG; Vol. 3A §2.5, §17.2).
  StepResult lgdt_lidt(VcpuState& s, const sys::Insn& in);
  StepResult sgdt_sidt(VcpuState& s, const sys::Insn& in);
  StepResult lldt(VcpuState& s, const sys::Insn& in);
  StepResult ltr(VcpuState& s, const sys::Insn& in);
  StepResult sldt_str(VcpuState& s, const sys::Insn& in);
  StepResult smsw(VcpuState& s, const sys::Insn& in);
  StepResult lmsw(VcpuState& s, const sys::Insn& in);
  StepResult mov_cr(VcpuState& s, const sys::Insn& in);
  StepResult mov_dr(VcpuState& s, const sys::Insn& in);
  StepResult clts(VcpuState& s, const sys::Insn& in);
  StepResult cache_control(VcpuState& s, const sys::Insn& in);
  StepResult invlpg(VcpuState& s, const sys::Insn& in);

  // misc.cpp (SDM Vol. 2 CPUID, RDTSC, RDMSR, WRMSR, RDPMC, HLT).
  StepResult cpuid(VcpuState& s, const sys::Insn& in);
  StepResult rdtsc(VcpuState& s, const sys::Insn& in);
  StepResult rdpmc(VcpuState& s, const sys::Insn& in);
  StepResult rdmsr(VcpuState& s, const sys::Insn& in);
  StepResult wrmsr(VcpuState& s, const sys::Insn& in);
  StepResult hlt(VcpuState& s, const sys::Insn& in);

  LinearMemory& mem_;
  SystemHooks& hooks_;
  PendingIo pending_;
  bool event_delivered_ = false;       ///< the current instruction delivered an exception/interrupt
  bool suppress_single_step_ = false;  ///< MOV SS/POP SS: no single-step trap after it
  bool keep_rf_ = false;               ///< IRET loaded RF: do not clear it after the instruction
  /// A task switch entered a task whose TSS has the T flag: a #DB trap with DR6.BT is due before
  /// its first instruction (Intel SDM Vol. 3B §17.3.1.5), taken once the switch is complete.
  bool task_trap_pending_ = false;
  std::vector<DataAccess>* data_log_ = nullptr;  ///< set_data_access_log
  void log_data_access(uint32_t linear, uint32_t size, bool write) {
    if (data_log_) data_log_->push_back({linear, size, write});
  }
};

}  // namespace vmbt::bt
