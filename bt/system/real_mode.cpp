// Real-address mode (CR0.PE = 0): segment loads, far transfers, IRET and interrupt delivery
// through the interrupt vector table (Intel SDM Vol. 3A §20.1, and the REAL-ADDRESS-MODE parts of
// the Vol. 2 pseudocode of MOV, JMP, CALL, RET, IRET and INT n). Virtual-8086 mode (EFLAGS.VM = 1,
// §20.2-20.3): its segment loads, far transfers and IRET, and the IRET that enters it.
#include "bt/system/internal.h"
#include "bt/system/system_emulator.h"

namespace vmbt::bt {

using sys::Insn;

// A segment load in real mode sets the selector and base = selector * 16 (Intel SDM Vol. 3A
// §20.1.1); the limit and attributes stay as they were, so a 4 GiB limit loaded in protected
// mode is kept ("big real" mode, as on the CPU and QEMU). A register left unusable or not a
// writable data segment by protected mode (a null selector, a code segment) becomes the plain
// 64 KiB read/write data segment of real mode: the CPU does not check it in real mode either.
//
// In virtual-8086 mode every segment register load, CS and SS included, sets the whole hidden
// part: base = selector * 16, limit 0xFFFF, a present, accessed read/write data segment of DPL 3,
// 16-bit, byte granular (Intel SDM Vol. 3A §20.2.1; the access rights 0xF3 that Vol. 3C §26.3.1.2
// requires of a virtual-8086 guest; QEMU's load_seg_vm).
void SystemEmulator::load_real_mode_segment(VcpuState& s, unsigned seg, uint16_t sel) {
  SegmentReg& r = s.seg[seg];
  r.selector = sel;
  r.base = uint32_t{sel} << 4;
  if (sys::vm86(s)) {
    r.limit = 0xffff;
    r.type = 3;
    r.s = true;
    r.dpl = 3;
    r.present = true;
    r.db = false;
    r.g = false;
    r.avl = false;
    r.unusable = false;
    return;
  }
  if (seg == kCs) return;
  const bool writable_data = !r.unusable && r.present && r.s && !(r.type & 8) && (r.type & 2);
  if (!writable_data) {
    r.unusable = false;
    r.present = true;
    r.s = true;
    r.type = 3;  // read/write, accessed
    r.dpl = 0;
    r.db = false;
    r.g = false;
    r.limit = 0xffff;
  }
}

// Far JMP/CALL in real mode: CS:EIP from the operand, the return CS and IP (EIP with a 32-bit
// operand size) pushed by CALL; EIP is the offset's low 16 bits with a 16-bit operand size.
void SystemEmulator::far_transfer_real_mode(VcpuState& s, const Insn& in, bool call, uint16_t sel,
                                            uint32_t offset) {
  // Virtual-8086 mode's CS limit is 0xFFFF: a 32-bit offset past it is #GP(0) (Intel SDM Vol. 2A
  // CALL, JMP, "Virtual-8086 Mode Exceptions").
  if (sys::vm86(s) && in.osize == 4 && offset > 0xffff) sys::gp(0);
  if (call) {
    sys::StackPtr sp = sys::current_stack(s);
    sys::check_push_room(sp, 2 * in.osize, sys::vec::kSs, 0);
    sys::push(mem_, sp, s.seg[kCs].selector, in.osize);
    sys::push(mem_, sp, in.next_eip, in.osize);
    sys::commit_esp(s, sp);
  }
  load_real_mode_segment(s, kCs, sel);
  s.eip = in.osize == 2 ? offset & 0xffff : offset;
}

// Far RET [imm16] in real mode: IP (or EIP), then CS, popped; the stack pointer passes the
// immediate.
StepResult SystemEmulator::far_ret_real_mode(VcpuState& s, const Insn& in) {
  const unsigned os = in.osize;
  sys::FarReturn ret = sys::peek_far_return(mem_, s, in);
  sys::StackPtr& sp = ret.sp;
  const uint32_t new_eip = ret.eip, imm = ret.imm;
  const uint16_t cs_sel = ret.cs;
  if (sys::vm86(s) && new_eip > 0xffff) sys::gp(0);  // past virtual-8086 mode's CS limit
  const uint32_t mask = sp.mask();
  sp.esp = (sp.esp & ~mask) | ((sp.esp + 2 * os + imm) & mask);
  sys::commit_esp(s, sp);
  load_real_mode_segment(s, kCs, cs_sel);
  s.eip = os == 2 ? new_eip & 0xffff : new_eip;
  return {};
}

// IRET in real mode (Intel SDM Vol. 2A IRET, REAL-ADDRESS-MODE): IP, CS and FLAGS popped; with a
// 16-bit operand size FLAGS[15:0] is loaded, with a 32-bit one EFLAGS = (popped AND 257FD5H) OR
// (EFLAGS AND 1A0000H): VM, VIF and VIP kept.
StepResult SystemEmulator::iret_real_mode(VcpuState& s, const Insn& in) {
  const unsigned os = in.osize;
  sys::StackPtr sp = sys::current_stack(s);
  sys::check_pop_room(sp, 3 * os, sys::vec::kSs, 0);
  uint32_t popped[3];  // EIP, CS, EFLAGS
  sys::peek_frame(mem_, sp, 0, popped, 3, os);
  const uint32_t mask = sp.mask();
  sp.esp = (sp.esp & ~mask) | ((sp.esp + 3 * os) & mask);
  sys::commit_esp(s, sp);
  load_real_mode_segment(s, kCs, static_cast<uint16_t>(popped[1]));
  s.eip = os == 2 ? popped[0] & 0xffff : popped[0];
  uint32_t f = os == 2 ? (s.eflags & ~0xffffu) | (popped[2] & 0xffffu)
                       : (popped[2] & 0x257fd5u) | (s.eflags & 0x1a0000u);
  f &= ~((1u << 3) | (1u << 5) | (1u << 15));  // reserved: always 0 (Intel SDM Vol. 1 §3.4.3)
  s.eflags = f | eflags::kFixed1;
  keep_rf_ = os == 4;
  return {};
}

// Interrupts and exceptions in real mode (Intel SDM Vol. 3A §20.1.4, Vol. 2A INT n
// REAL-ADDRESS-MODE): the vector's 4-byte entry in the interrupt vector table at IDTR.base
// (#GP when it lies past IDTR.limit), FLAGS, CS and IP pushed (no error code), IF, TF, AC and RF
// cleared, CS:IP from the entry.
void SystemEmulator::deliver_real_mode(VcpuState& s, const sys::Event& ev) {
  const uint32_t entry = ev.vector * 4u;
  if (entry + 3 > s.idtr.limit) sys::gp(ev.vector * 8u + 2);
  const uint32_t vector = sys::read_u(mem_, s.idtr.base + entry, 4, false);
  sys::StackPtr sp = sys::current_stack(s);
  sys::check_push_room(sp, 6, sys::vec::kSs, 0);
  const uint32_t frame[3] = {s.eflags & 0xffffu, s.seg[kCs].selector, ev.return_eip & 0xffffu};
  sys::push_frame(mem_, sp, frame, 3, 2);
  sys::commit_esp(s, sp);
  s.eflags &= ~(eflags::kIf | eflags::kTf | eflags::kAc | eflags::kRf);
  load_real_mode_segment(s, kCs, static_cast<uint16_t>(vector >> 16));
  s.eip = vector & 0xffff;
}

// IRET in virtual-8086 mode (Intel SDM Vol. 2A IRET, RETURN-FROM-VIRTUAL-8086-MODE; Vol. 3A
// §20.2.7): #GP(0) when IOPL < 3 (no CR4.VME here), to the monitor's handler. With IOPL = 3: IP,
// CS and FLAGS popped as in real mode; a 32-bit operand size loads EFLAGS but VM, IOPL, VIP and
// VIF and checks EIP against the CS limit (#GP(0)); a 16-bit one loads FLAGS[15:0] but IOPL.
StepResult SystemEmulator::iret_from_vm86(VcpuState& s, const Insn& in) {
  if (sys::iopl(s) < 3) sys::gp(0);
  const unsigned os = in.osize;
  sys::StackPtr sp = sys::current_stack(s);
  sys::check_pop_room(sp, 3 * os, sys::vec::kSs, 0);
  uint32_t popped[3];  // EIP, CS, EFLAGS
  sys::peek_frame(mem_, sp, 0, popped, 3, os);
  if (os == 4 && popped[0] > 0xffff) sys::gp(0);  // the CS limit of virtual-8086 mode
  const uint32_t mask = sp.mask();
  sp.esp = (sp.esp & ~mask) | ((sp.esp + 3 * os) & mask);
  sys::commit_esp(s, sp);
  load_real_mode_segment(s, kCs, static_cast<uint16_t>(popped[1]));
  s.eip = popped[0] & 0xffff;
  const uint32_t keep = eflags::kVm | eflags::kIopl | eflags::kVip | eflags::kVif;
  uint32_t writable = 0x003f7fd5u & ~keep;  // the defined flags (bit 1 stays 1, 3/5/15 stay 0)
  if (os == 2) writable &= 0xffffu;
  s.eflags = (s.eflags & ~writable) | (popped[2] & writable) | eflags::kFixed1;
  keep_rf_ = os == 4;
  return {};
}

// IRET at CPL 0 whose popped EFLAGS (32-bit operand size) has VM = 1 (Intel SDM Vol. 2A IRET,
// RETURN-TO-VIRTUAL-8086-MODE; Vol. 3A §20.2.7): EIP, CS and EFLAGS were popped; then ESP, SS,
// ES, DS, FS and GS (each a doubleword, the selector in its low word), #SS(0) unless all nine
// doublewords lie inside the stack's limit. EFLAGS is loaded whole, every segment register as
// virtual-8086 mode loads it, and the CPL becomes 3.
void SystemEmulator::iret_to_vm86(VcpuState& s, const sys::StackPtr& sp, const uint32_t* popped) {
  sys::check_pop_room(sp, 9 * 4, sys::vec::kSs, 0);
  uint32_t rest[6];  // ESP, SS, ES, DS, FS, GS
  sys::peek_frame(mem_, sp, 12, rest, 6, 4);
  s.eflags = (popped[2] & 0x003f7fd5u) | eflags::kFixed1;
  s.gpr[kEsp] = rest[0];
  const unsigned order[5] = {kSs, kEs, kDs, kFs, kGs};
  for (unsigned i = 0; i < 5; ++i)
    load_real_mode_segment(s, order[i], static_cast<uint16_t>(rest[i + 1]));
  load_real_mode_segment(s, kCs, static_cast<uint16_t>(popped[1]));
  s.eip = popped[0];
  keep_rf_ = true;
}

}  // namespace vmbt::bt
