// CLI, STI, PUSHF, POPF in protected mode (Intel SDM Vol. 2A CLI, Vol. 2B STI, PUSHF, POPF).
#include "bt/system/internal.h"
#include "bt/system/system_emulator.h"

namespace vmbt::bt {

using sys::Insn;

namespace {
/// Flags POPF/IRET can ever change (Intel SDM Vol. 1 §3.4.3): reserved bits keep their values
/// (bit 1 = 1; bits 3, 5, 15, 22-31 = 0).
constexpr uint32_t kWritable = eflags::kArith | eflags::kTf | eflags::kIf | eflags::kDf |
                               eflags::kIopl | eflags::kNt | eflags::kRf | eflags::kVm |
                               eflags::kAc | eflags::kVif | eflags::kVip | eflags::kId;
}  // namespace

// CLI: IF <- 0 if CPL <= IOPL, else #GP(0) (no VME/PVI: CR4.VME/PVI are never set). CPL is 3 in
// virtual-8086 mode, so there IOPL < 3 is #GP(0) to the monitor (Intel SDM Vol. 3A §20.2.7).
StepResult SystemEmulator::cli(VcpuState& s, const Insn& in) {
  if (sys::cpl(s) > sys::iopl(s)) sys::gp(0);
  s.eflags &= ~eflags::kIf;
  s.eip = in.next_eip;
  return {};
}

// STI: IF <- 1 if CPL <= IOPL, else #GP(0). If IF was 0, interrupts stay inhibited until the end
// of the next instruction (Intel SDM Vol. 2B STI, Vol. 3A §6.8.3).
StepResult SystemEmulator::sti(VcpuState& s, const Insn& in) {
  if (sys::cpl(s) > sys::iopl(s)) sys::gp(0);
  if (!(s.eflags & eflags::kIf)) interrupt_shadow = true;
  s.eflags |= eflags::kIf;
  s.eip = in.next_eip;
  return {};
}

// PUSHF/PUSHFD (Intel SDM Vol. 2B PUSHF): the 32-bit image has VM and RF cleared (EFLAGS AND
// 00FCFFFFH); the 16-bit form pushes FLAGS[15:0].
StepResult SystemEmulator::pushf(VcpuState& s, const Insn& in) {
  // IOPL-sensitive in virtual-8086 mode (no CR4.VME): #GP(0) when IOPL < 3 (Intel SDM Vol. 2B
  // PUSHF, Vol. 3A §20.2.7).
  if (sys::vm86(s) && sys::iopl(s) < 3) sys::gp(0);
  sys::StackPtr sp = sys::current_stack(s);
  const uint32_t image = in.osize == 4 ? (s.eflags & 0x00fcffffu) : (s.eflags & 0xffffu);
  sys::push(mem_, sp, image, in.osize);
  sys::commit_esp(s, sp);
  s.eip = in.next_eip;
  return {};
}

// POPF/POPFD in protected mode, VM=0 (Intel SDM Vol. 2B POPF pseudocode):
//   CPL 0: all non-reserved flags except (32-bit) RF, VIP, VIF, VM; RF is cleared.
//   CPL > 0 and CPL <= IOPL: also IOPL unchanged.  CPL > IOPL: also IF unchanged (no fault).
//   16-bit: only FLAGS[15:0] with the same IF/IOPL rules.
StepResult SystemEmulator::popf(VcpuState& s, const Insn& in) {
  // Virtual-8086 mode (Intel SDM Vol. 2B POPF, Vol. 3A §20.2.7): #GP(0) when IOPL < 3; with
  // IOPL = 3 as CPL 3 = IOPL below (IF writable; IOPL, VM, VIP, VIF, RF unchanged).
  if (sys::vm86(s) && sys::iopl(s) < 3) sys::gp(0);
  sys::StackPtr sp = sys::current_stack(s);
  const uint32_t value = sys::pop(mem_, sp, in.osize);
  const unsigned c = sys::cpl(s);
  uint32_t mask = kWritable & ~(eflags::kRf | eflags::kVip | eflags::kVif | eflags::kVm);
  if (in.osize == 2) mask &= 0xffffu;
  if (c > 0) mask &= ~eflags::kIopl;
  if (c > sys::iopl(s)) mask &= ~eflags::kIf;
  uint32_t f = (s.eflags & ~mask) | (value & mask);
  if (in.osize == 4) f &= ~eflags::kRf;
  s.eflags = f | eflags::kFixed1;
  sys::commit_esp(s, sp);
  s.eip = in.next_eip;
  return {};
}

}  // namespace vmbt::bt
