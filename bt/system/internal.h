// Internal helpers of the system emulator: descriptors, faults, stacks, decoded instructions.
// Not part of the bt engine's interface.
#pragma once

#include <Zydis/Zydis.h>

#include <cstdint>
#include <string>

#include "bt/system/decoded_insn.h"
#include "bt/system/guest_access.h"
#include "vmm/cpu_state.h"

namespace vmbt::bt::sys {

/// Exception vectors (Intel SDM Vol. 3A Table 6-1).
namespace vec = ::vmbt::exc;  ///< the exception vectors (vmm/cpu_state.h)

/// Whether an exception pushes an error code (Intel SDM Vol. 3A Table 6-1).
constexpr bool exception_has_error_code(uint8_t v) {
  return v == vec::kDf || v == vec::kTs || v == vec::kNp || v == vec::kSs || v == vec::kGp ||
         v == vec::kPf || v == vec::kAc;
}

/// Fault-class exceptions: the EFLAGS image pushed for them has RF=1 (Intel SDM Vol. 3A §17.3.1.1).
constexpr bool exception_is_fault(uint8_t v) {
  return v == vec::kDe || v == vec::kBr || v == vec::kUd || v == vec::kNm || v == vec::kTs ||
         v == vec::kNp || v == vec::kSs || v == vec::kGp || v == vec::kPf || v == vec::kMf ||
         v == vec::kAc || v == vec::kXm || v == 20;
}

[[noreturn]] inline void fault(uint8_t vector, uint32_t code) {
  throw GuestFault{vector, true, code};
}
[[noreturn]] inline void gp(uint32_t code) {
  fault(vec::kGp, code);
}
[[noreturn]] inline void ud() {
  throw GuestFault{vec::kUd, false, 0};
}

/// Thrown for what the emulator deliberately does not do (16-bit tasks, VM86); caught at the
/// entry points and reported as StepKind::kUnsupported with the state rolled back.
struct Unsupported {
  std::string message;
};

/// A fault raised after a task switch through a task gate committed (the error code's push on
/// the new task's stack): delivered in the new task, whose state stands (Intel SDM Vol. 3A §8.3).
struct FaultInNewTask {
  GuestFault fault;
};

/// Selector error code: index and TI of the selector, EXT in bit 0 (Intel SDM Vol. 3A §6.13).
constexpr uint32_t sel_code(uint16_t selector, uint32_t ext) {
  return (selector & 0xfffcu) | ext;
}
constexpr bool is_null_selector(uint16_t selector) {
  return (selector & 0xfffcu) == 0;
}

/// Rolls the state back to `before` after a fault, keeping CR2 (a #PF sets it) and DR6.
inline void restore_state(VcpuState& s, const VcpuRegisters& before) {
  const uint32_t cr2 = s.cr2;
  const uint32_t dr6 = s.dr[6];
  static_cast<VcpuRegisters&>(s) = before;
  s.cr2 = cr2;
  s.dr[6] = dr6;
}

/// CPL (VcpuRegisters::cpl).
inline unsigned cpl(const VcpuState& s) {
  return s.cpl();
}
inline unsigned iopl(const VcpuState& s) {
  return (s.eflags >> 12) & 3;
}
/// Virtual-8086 mode: CR0.PE = 1 and EFLAGS.VM = 1 (Intel SDM Vol. 3A §20.2.1).
inline bool vm86(const VcpuState& s) {
  return (s.cr0 & cr0::kPe) && (s.eflags & eflags::kVm);
}
/// Segment registers load as on the 8086 (base = selector * 16): real mode or virtual-8086 mode
/// (Intel SDM Vol. 3A §20.1.1, §20.2.1).
inline bool segments_8086(const VcpuState& s) {
  return !(s.cr0 & cr0::kPe) || (s.eflags & eflags::kVm);
}

/// An 8-byte segment or gate descriptor (Intel SDM Vol. 3A §3.4.5, §5.8.3, §6.11).
struct Descriptor {
  uint32_t lo = 0, hi = 0;

  uint32_t base() const { return (lo >> 16) | ((hi & 0xffu) << 16) | (hi & 0xff000000u); }
  uint32_t raw_limit() const { return (lo & 0xffffu) | (hi & 0xf0000u); }
  bool g() const { return hi & (1u << 23); }
  /// Byte-granular limit (scaled by G).
  uint32_t limit() const { return g() ? (raw_limit() << 12) | 0xfffu : raw_limit(); }
  uint8_t type() const { return (hi >> 8) & 0xf; }
  bool s() const { return hi & (1u << 12); }
  unsigned dpl() const { return (hi >> 13) & 3; }
  bool present() const { return hi & (1u << 15); }
  bool avl() const { return hi & (1u << 20); }
  bool db() const { return hi & (1u << 22); }
  bool is_code() const { return s() && (type() & 8); }
  bool is_data() const { return s() && !(type() & 8); }
  bool conforming() const { return is_code() && (type() & 4); }
  bool readable() const { return is_data() || (is_code() && (type() & 2)); }
  bool writable() const { return is_data() && (type() & 2); }
  // Gate fields.
  uint16_t gate_selector() const { return static_cast<uint16_t>(lo >> 16); }
  uint32_t gate_offset() const { return (hi & 0xffff0000u) | (lo & 0xffffu); }
  unsigned gate_params() const { return hi & 0x1f; }
};

/// System descriptor types (Intel SDM Vol. 3A Table 3-2).
enum SystemType : uint8_t {
  kTss16Avail = 1,
  kLdt = 2,
  kTss16Busy = 3,
  kCallGate16 = 4,
  kTaskGate = 5,
  kIntGate16 = 6,
  kTrapGate16 = 7,
  kTss32Avail = 9,
  kTss32Busy = 11,
  kCallGate32 = 12,
  kIntGate32 = 14,
  kTrapGate32 = 15,
};

/// The hidden part loaded from a descriptor (Intel SDM Vol. 3A §3.4.3).
SegmentReg segment_from(uint16_t selector, const Descriptor& d);
/// A segment register loaded with a null selector: unusable.
SegmentReg null_segment(uint16_t selector);
/// Whether [offset, offset+len) is inside the segment's limit (expand-up or expand-down;
/// Intel SDM Vol. 3A §5.3).
bool in_limit(const SegmentReg& seg, uint32_t offset, uint32_t len);

uint32_t read_u(LinearMemory& m, uint32_t linear, unsigned size, bool user);
void write_u(LinearMemory& m, uint32_t linear, uint32_t value, unsigned size, bool user);

/// Linear address of the descriptor for `selector` (GDT or LDT by TI), or false if it is outside
/// the table (or TI=1 with no usable LDT).
bool descriptor_address(const VcpuState& s, uint16_t selector, uint32_t* addr);
Descriptor read_descriptor(LinearMemory& m, uint32_t addr);
/// Descriptor of a non-null selector; raises `vector`(selector|ext) if outside its table.
Descriptor fetch_descriptor(LinearMemory& m, const VcpuState& s, uint16_t selector, uint8_t vector,
                            uint32_t ext, uint32_t* addr);
/// Sets the Accessed bit of a code/data descriptor in memory (Intel SDM Vol. 3A §3.4.5.1).
void set_accessed(LinearMemory& m, uint32_t addr, Descriptor& d);
/// Sets or clears the busy bit of the TSS descriptor `d` at `addr` in memory (Intel SDM Vol. 3A
/// §8.2.2), in `d` too.
void set_busy(LinearMemory& m, uint32_t addr, Descriptor& d, bool busy);

/// A stack being read or built: SS attributes and stack pointer (SS.B selects ESP or SP).
struct StackPtr {
  SegmentReg ss;
  uint32_t esp = 0;
  bool user = false;
  uint32_t mask() const { return ss.db ? 0xffffffffu : 0xffffu; }
};
StackPtr current_stack(const VcpuState& s);
/// What a far RET [imm16] pops, read without popping (Intel SDM Vol. 2B RET): the offset and CS
/// at the top of the current stack (#SS(0) where they are outside it) and the immediate.
struct FarReturn {
  StackPtr sp;
  uint32_t eip = 0;
  uint16_t cs = 0;
  uint32_t imm = 0;  ///< bytes of parameters to release
};
FarReturn peek_far_return(LinearMemory& m, const VcpuState& s, const Insn& in);
/// Writes the stack pointer back into ESP (only SP for a 16-bit stack).
void commit_esp(VcpuState& s, const StackPtr& sp);
/// Raises vector(code) unless `bytes` can be pushed below the stack pointer.
void check_push_room(const StackPtr& sp, uint32_t bytes, uint8_t vector, uint32_t code);
/// Raises vector(code) unless `bytes` at and above the stack pointer are inside the limit.
void check_pop_room(const StackPtr& sp, uint32_t bytes, uint8_t vector, uint32_t code);
void push(LinearMemory& m, StackPtr& sp, uint32_t value, unsigned size);
uint32_t pop(LinearMemory& m, StackPtr& sp, unsigned size);
/// Reads at stack pointer + delta without popping (#SS(0) outside the limit).
uint32_t peek(LinearMemory& m, const StackPtr& sp, uint32_t delta, unsigned size);
/// Pushes `count` values of `size` bytes, values[0] first (so it ends up highest), as that many
/// push() calls would, with one guest-memory write when the frame does not wrap the stack's
/// address space (exception frames: Intel SDM Vol. 3A §6.12.1, Figure 6-4).
void push_frame(LinearMemory& m, StackPtr& sp, const uint32_t* values, unsigned count,
                unsigned size);
/// Reads `count` values of `size` bytes at stack pointer + delta upwards, as that many peek()
/// calls would, with one guest-memory read when the range does not wrap (IRET's frame).
void peek_frame(LinearMemory& m, const StackPtr& sp, uint32_t delta, uint32_t* values,
                unsigned count, unsigned size);

/// Index of a segment register operand (ES..GS), or -1.
int sreg_index(ZydisRegister r);
/// Reads/writes a general-purpose register named by Zydis (8/16/32-bit, AH..BH included).
uint32_t read_reg(const VcpuState& s, ZydisRegister r);
void write_reg(VcpuState& s, ZydisRegister r, uint32_t value);
/// Effective address (offset in its segment) of a memory operand (Intel SDM Vol. 1 §3.7.5).
uint32_t effective_offset(const VcpuState& s, const Insn& in, const ZydisDecodedOperand& op);

/// An event to deliver through the IDT.
struct Event {
  enum class Kind {
    kException,  ///< processor exception: no DPL check, EXT=1, error code per Table 6-1
    kSoftware,   ///< INT n, INT3, INTO: gate DPL >= CPL, EXT=0
    kIcebp,      ///< INT1: no DPL check, EXT=1
    kExternal,   ///< maskable interrupt: no DPL check, EXT=1
  };
  uint8_t vector = 0;
  Kind kind = Kind::kException;
  uint32_t error_code = 0;
  uint32_t return_eip = 0;  ///< EIP pushed for the handler's IRET
  bool fault = false;       ///< push EFLAGS with RF=1

  bool ext() const { return kind != Kind::kSoftware; }
  bool pushes_error_code() const {
    return kind == Kind::kException && exception_has_error_code(vector);
  }
};

}  // namespace vmbt::bt::sys
