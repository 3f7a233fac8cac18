// Far control transfers and software interrupts in protected mode (Intel SDM Vol. 2A CALL, INT n,
// IRET, JMP; Vol. 2B RET, SYSENTER, SYSEXIT; Vol. 3A §5.8).
#include <fmt/format.h>

#include <array>
#include <cstring>

#include "bt/system/internal.h"
#include "bt/system/system_emulator.h"

namespace vmbt::bt {

using sys::Descriptor;
using sys::Insn;

namespace {

/// EFLAGS after IRET pops `popped` with operand size `os` (Intel SDM Vol. 2A IRET pseudocode):
/// IF only if CPL <= IOPL, IOPL only at CPL 0, RF/AC/ID only with a 32-bit operand, VM/VIF/VIP
/// only at CPL 0 with one.
uint32_t eflags_after_iret(const VcpuState& s, uint32_t popped, unsigned os) {
  const unsigned c = sys::cpl(s);
  uint32_t mask = eflags::kArith | eflags::kTf | eflags::kDf | eflags::kNt;
  if (os == 4) mask |= eflags::kRf | eflags::kAc | eflags::kId;
  if (c <= sys::iopl(s)) mask |= eflags::kIf;
  if (c == 0) {
    mask |= eflags::kIopl;
    if (os == 4) mask |= eflags::kVm | eflags::kVif | eflags::kVip;
  }
  return (s.eflags & ~mask) | (popped & mask) | eflags::kFixed1;
}

/// Checks of a far RET/IRET return CS (Intel SDM Vol. 2B RET, Vol. 2A IRET pseudocode): null ->
/// #GP(0); outside the table, not code, RPL < CPL, conforming with DPL > RPL, non-conforming with
/// DPL != RPL -> #GP(selector); not present -> #NP(selector).
Descriptor check_return_cs(LinearMemory& mem, const VcpuState& s, uint16_t sel, uint32_t* addr) {
  if (sys::is_null_selector(sel)) sys::gp(0);
  const Descriptor d = sys::fetch_descriptor(mem, s, sel, sys::vec::kGp, 0, addr);
  const unsigned rpl = sel & 3;
  const uint32_t code = sys::sel_code(sel, 0);
  if (!d.is_code() || rpl < sys::cpl(s)) sys::gp(code);
  if (d.conforming() ? d.dpl() > rpl : d.dpl() != rpl) sys::gp(code);
  if (!d.present()) sys::fault(sys::vec::kNp, code);
  return d;
}

/// Checks of the return SS of a RET/IRET to an outer level: null -> #GP(0); outside the table,
/// RPL != return CS RPL, not writable data, DPL != return CS RPL -> #GP(selector); not present ->
/// #SS(selector).
Descriptor check_return_ss(LinearMemory& mem, const VcpuState& s, uint16_t sel, unsigned rpl,
                           uint32_t* addr) {
  if (sys::is_null_selector(sel)) sys::gp(0);
  const Descriptor d = sys::fetch_descriptor(mem, s, sel, sys::vec::kGp, 0, addr);
  const uint32_t code = sys::sel_code(sel, 0);
  if ((sel & 3u) != rpl || !d.writable() || d.dpl() != rpl) sys::gp(code);
  if (!d.present()) sys::fault(sys::vec::kSs, code);
  return d;
}

/// Loads ESP after a return to an outer level: a 32-bit SS takes the popped value whole, a
/// 16-bit SS only SP; `add` (RET imm16) is added with the new stack's width.
void load_outer_esp(VcpuState& s, uint32_t value, uint32_t add) {
  if (s.seg[kSs].db) {
    s.gpr[kEsp] = value + add;
  } else {
    s.gpr[kEsp] = (s.gpr[kEsp] & 0xffff0000u) | ((value + add) & 0xffffu);
  }
}

}  // namespace

// After a return to an outer level, ES/DS/FS/GS holding data or non-conforming code segments with
// DPL < CPL become null (Intel SDM Vol. 2A IRET, Vol. 2B RET pseudocode).
void SystemEmulator::null_outer_data_segments(VcpuState& s) {
  const unsigned c = sys::cpl(s);
  for (unsigned seg : {kEs, kFs, kGs, kDs}) {
    const SegmentReg& r = s.seg[seg];
    if (r.unusable) continue;
    const bool data_or_nc_code = r.s && (!(r.type & 8) || !(r.type & 4));
    if (data_or_nc_code && r.dpl < c) s.seg[seg] = sys::null_segment(0);
  }
}

// JMP/CALL ptr16:16/ptr16:32 and m16:16/m16:32.
StepResult SystemEmulator::far_jmp_call(VcpuState& s, const Insn& in) {
  const bool call = in.mnemonic() == ZYDIS_MNEMONIC_CALL;
  const ZydisDecodedOperand& op = in.ops[0];
  uint16_t sel;
  uint32_t offset;
  if (op.type == ZYDIS_OPERAND_TYPE_POINTER) {
    sel = op.ptr.segment;
    offset = op.ptr.offset;
  } else if (op.type == ZYDIS_OPERAND_TYPE_MEMORY) {
    const unsigned mseg = static_cast<unsigned>(sys::sreg_index(op.mem.segment));
    const uint32_t off = sys::effective_offset(s, in, op);
    const uint32_t amask = in.asize == 2 ? 0xffffu : 0xffffffffu;
    offset = mem_read(s, mseg, off, in.osize);
    sel = static_cast<uint16_t>(mem_read(s, mseg, (off + in.osize) & amask, 2));
  } else {
    sys::ud();
  }
  if (sys::segments_8086(s)) {  // real mode, virtual-8086 mode (Intel SDM Vol. 3A §20.2)
    far_transfer_real_mode(s, in, call, sel, offset);
  } else {
    far_transfer(s, in, call, sel, offset);
  }
  return {};
}

// Protected-mode far JMP/CALL to a code segment or through a gate (Intel SDM Vol. 2A CALL, JMP).
void SystemEmulator::far_transfer(VcpuState& s, const Insn& in, bool call, uint16_t sel,
                                  uint32_t offset) {
  const unsigned c = sys::cpl(s);
  if (sys::is_null_selector(sel)) sys::gp(0);
  uint32_t addr = 0;
  Descriptor d = sys::fetch_descriptor(mem_, s, sel, sys::vec::kGp, 0, &addr);
  const uint32_t code = sys::sel_code(sel, 0);
  if (d.is_code()) {
    if (d.conforming() ? d.dpl() > c : ((sel & 3u) > c || d.dpl() != c)) sys::gp(code);
    if (!d.present()) sys::fault(sys::vec::kNp, code);
    sys::StackPtr sp = sys::current_stack(s);
    if (call) sys::check_push_room(sp, 2 * in.osize, sys::vec::kSs, 0);
    const uint32_t new_eip = in.osize == 2 ? offset & 0xffff : offset;
    if (new_eip > d.limit()) sys::gp(0);
    sys::set_accessed(mem_, addr, d);
    if (call) {
      sys::push(mem_, sp, s.seg[kCs].selector, in.osize);
      sys::push(mem_, sp, in.next_eip, in.osize);
      sys::commit_esp(s, sp);
    }
    s.seg[kCs] = sys::segment_from(static_cast<uint16_t>((sel & 0xfffc) | c), d);
    s.eip = new_eip;
    return;
  }
  if (d.s()) sys::gp(code);  // data segment
  switch (d.type()) {
    case sys::kCallGate16:
    case sys::kCallGate32:
      call_gate(s, in, call, sel, d.lo, d.hi);
      return;
    case sys::kTaskGate:
    case sys::kTss16Avail:
    case sys::kTss32Avail: {
      // Intel SDM Vol. 2A CALL/JMP "TASK-GATE" and "TASK-STATE-SEGMENT": DPL >= CPL and RPL.
      if (d.dpl() < c || d.dpl() < (sel & 3u)) sys::gp(code);
      if (!d.present()) sys::fault(sys::vec::kNp, code);
      const uint16_t tss_sel = d.type() == sys::kTaskGate ? d.gate_selector() : sel;
      task_switch(s, tss_sel, call ? TaskSwitch::kCall : TaskSwitch::kJmp, in.next_eip, s.eflags);
      return;
    }
    default:
      sys::gp(code);  // busy TSS, LDT, interrupt/trap gate, reserved
  }
}

// Far CALL/JMP through a call gate (Intel SDM Vol. 2A CALL "CALL-GATE", JMP "CALL-GATE";
// Vol. 3A §5.8.5-5.8.6): CALL to a more privileged non-conforming segment switches to the TSS
// stack of the new level and copies the gate's parameter count of words/doublewords.
void SystemEmulator::call_gate(VcpuState& s, const Insn& in, bool call, uint16_t gate_sel,
                               uint32_t gate_lo, uint32_t gate_hi) {
  const Descriptor gate{gate_lo, gate_hi};
  const unsigned c = sys::cpl(s);
  if (gate.dpl() < c || (gate_sel & 3u) > gate.dpl()) sys::gp(sys::sel_code(gate_sel, 0));
  if (!gate.present()) sys::fault(sys::vec::kNp, sys::sel_code(gate_sel, 0));
  const uint16_t cs_sel = gate.gate_selector();
  if (sys::is_null_selector(cs_sel)) sys::gp(0);
  uint32_t cs_addr = 0;
  Descriptor cd = sys::fetch_descriptor(mem_, s, cs_sel, sys::vec::kGp, 0, &cs_addr);
  const uint32_t cs_code = sys::sel_code(cs_sel, 0);
  const bool gate32 = gate.type() == sys::kCallGate32;
  const unsigned psize = gate32 ? 4 : 2;
  const uint32_t new_eip = gate32 ? gate.gate_offset() : gate.gate_offset() & 0xffff;

  if (!call) {
    if (!cd.is_code() || (cd.conforming() ? cd.dpl() > c : cd.dpl() != c)) sys::gp(cs_code);
    if (!cd.present()) sys::fault(sys::vec::kNp, cs_code);
    if (new_eip > cd.limit()) sys::gp(0);
    sys::set_accessed(mem_, cs_addr, cd);
    s.seg[kCs] = sys::segment_from(static_cast<uint16_t>((cs_sel & 0xfffc) | c), cd);
    s.eip = new_eip;
    return;
  }

  if (!cd.is_code() || cd.dpl() > c) sys::gp(cs_code);
  if (!cd.present()) sys::fault(sys::vec::kNp, cs_code);

  if (!cd.conforming() && cd.dpl() < c) {
    // MORE-PRIVILEGE.
    const unsigned new_cpl = cd.dpl();
    uint16_t new_ss;
    uint32_t new_esp;
    read_tss_stack(s, new_cpl, 0, &new_ss, &new_esp);
    const uint32_t ss_code = sys::sel_code(new_ss, 0);
    if (sys::is_null_selector(new_ss)) sys::fault(sys::vec::kTs, ss_code);
    uint32_t ss_addr = 0;
    Descriptor sd = sys::fetch_descriptor(mem_, s, new_ss, sys::vec::kTs, 0, &ss_addr);
    if ((new_ss & 3u) != new_cpl) sys::fault(sys::vec::kTs, ss_code);
    if (sd.dpl() != new_cpl || !sd.writable()) sys::fault(sys::vec::kTs, ss_code);
    if (!sd.present()) sys::fault(sys::vec::kSs, ss_code);
    const unsigned params = gate.gate_params();
    sys::StackPtr nsp;
    nsp.ss = sys::segment_from(new_ss, sd);
    nsp.esp = new_esp;
    nsp.user = new_cpl == 3;
    sys::check_push_room(nsp, (4 + params) * psize, sys::vec::kSs, ss_code);
    if (new_eip > cd.limit()) sys::gp(0);
    const sys::StackPtr osp = sys::current_stack(s);
    uint32_t param_values[32];
    for (unsigned i = 0; i < params; ++i) param_values[i] = sys::peek(mem_, osp, i * psize, psize);
    sys::set_accessed(mem_, ss_addr, sd);
    sys::set_accessed(mem_, cs_addr, cd);
    nsp.ss = sys::segment_from(new_ss, sd);
    sys::push(mem_, nsp, s.seg[kSs].selector, psize);
    sys::push(mem_, nsp, s.gpr[kEsp], psize);
    for (unsigned i = params; i-- > 0;) sys::push(mem_, nsp, param_values[i], psize);
    sys::push(mem_, nsp, s.seg[kCs].selector, psize);
    sys::push(mem_, nsp, in.next_eip, psize);
    s.seg[kSs] = nsp.ss;
    s.gpr[kEsp] = new_esp;
    sys::commit_esp(s, nsp);
    s.seg[kCs] = sys::segment_from(static_cast<uint16_t>((cs_sel & 0xfffc) | new_cpl), cd);
    s.eip = new_eip;
    return;
  }

  // SAME-PRIVILEGE.
  sys::StackPtr sp = sys::current_stack(s);
  sys::check_push_room(sp, 2 * psize, sys::vec::kSs, 0);
  if (new_eip > cd.limit()) sys::gp(0);
  sys::set_accessed(mem_, cs_addr, cd);
  sys::push(mem_, sp, s.seg[kCs].selector, psize);
  sys::push(mem_, sp, in.next_eip, psize);
  sys::commit_esp(s, sp);
  s.seg[kCs] = sys::segment_from(static_cast<uint16_t>((cs_sel & 0xfffc) | c), cd);
  s.eip = new_eip;
}

// RET far [imm16] in protected mode (Intel SDM Vol. 2B RET): same level, or outer level with
// SS:ESP popped and ES/DS/FS/GS nulled when not visible at the new CPL.
StepResult SystemEmulator::far_ret(VcpuState& s, const Insn& in) {
  if (sys::segments_8086(s)) return far_ret_real_mode(s, in);
  const unsigned c = sys::cpl(s);
  const unsigned os = in.osize;
  sys::FarReturn ret = sys::peek_far_return(mem_, s, in);
  sys::StackPtr& sp = ret.sp;
  const uint32_t new_eip = ret.eip, imm = ret.imm;
  const uint16_t cs_sel = ret.cs;
  uint32_t cs_addr = 0;
  Descriptor cd = check_return_cs(mem_, s, cs_sel, &cs_addr);
  const unsigned rpl = cs_sel & 3;
  const uint32_t mask = sp.mask();
  if (rpl == c) {
    if (new_eip > cd.limit()) sys::gp(0);
    sys::set_accessed(mem_, cs_addr, cd);
    sp.esp = (sp.esp & ~mask) | ((sp.esp + 2 * os + imm) & mask);
    sys::commit_esp(s, sp);
    s.seg[kCs] = sys::segment_from(cs_sel, cd);
    s.eip = new_eip;
    return {};
  }
  // RETURN-TO-OUTER-PRIVILEGE-LEVEL.
  sys::check_pop_room(sp, 4 * os + imm, sys::vec::kSs, 0);
  const uint32_t new_esp = sys::peek(mem_, sp, 2 * os + imm, os);
  const uint16_t ss_sel = static_cast<uint16_t>(sys::peek(mem_, sp, 3 * os + imm, 2));
  uint32_t ss_addr = 0;
  Descriptor sd = check_return_ss(mem_, s, ss_sel, rpl, &ss_addr);
  if (new_eip > cd.limit()) sys::gp(0);
  sys::set_accessed(mem_, cs_addr, cd);
  sys::set_accessed(mem_, ss_addr, sd);
  s.seg[kCs] = sys::segment_from(cs_sel, cd);
  s.eip = new_eip;
  s.seg[kSs] = sys::segment_from(ss_sel, sd);
  load_outer_esp(s, new_esp, imm);
  null_outer_data_segments(s);
  return {};
}

// IRET/IRETD in protected mode (Intel SDM Vol. 2A IRET): in virtual-8086 mode IOPL-sensitive
// (iret_from_vm86); NT=1 is a task return to the back link; at CPL 0 a popped EFLAGS with VM=1
// returns to virtual-8086 mode (iret_to_vm86); otherwise same-level or outer-level return with the
// EFLAGS update rules of the pseudocode (IF only if CPL <= IOPL, IOPL only at CPL0, RF/AC/ID only
// with a 32-bit operand size).
StepResult SystemEmulator::iret(VcpuState& s, const Insn& in) {
  nmi_blocked = false;  // IRET ends NMI blocking (Intel SDM Vol. 3A §6.7.1)
  if (!(s.cr0 & cr0::kPe)) return iret_real_mode(s, in);
  if (s.eflags & eflags::kVm) return iret_from_vm86(s, in);  // before NT (Vol. 2A IRET)
  if (fast_iret_core(s, in)) {
    keep_rf_ = true;  // RF as popped
    return {};
  }
  if (s.eflags & eflags::kNt) {
    // A task return (Intel SDM Vol. 2A IRET "TASK-RETURN"): to the task in the back link.
    if (s.tr.unusable || s.tr.limit < 1) sys::fault(sys::vec::kTs, sys::sel_code(s.tr.selector, 0));
    const uint16_t link = static_cast<uint16_t>(sys::read_u(mem_, s.tr.base, 2, false));
    task_switch(s, link, TaskSwitch::kIret, in.next_eip, s.eflags);
    return {};
  }
  const unsigned c = sys::cpl(s);
  const unsigned os = in.osize;
  sys::StackPtr sp = sys::current_stack(s);
  sys::check_pop_room(sp, 3 * os, sys::vec::kSs, 0);
  uint32_t popped[3];  // EIP, CS (the low word of its slot), EFLAGS
  sys::peek_frame(mem_, sp, 0, popped, 3, os);
  const uint32_t new_eip = popped[0];
  const uint16_t cs_sel = static_cast<uint16_t>(popped[1]);
  const uint32_t new_flags = popped[2];
  if (os == 4 && (new_flags & eflags::kVm) && c == 0) {
    iret_to_vm86(s, sp, popped);
    if (s.eip > s.seg[kCs].limit) {
      // The IRET is complete; the first fetch in virtual-8086 mode is past the 64 KiB CS limit:
      // #GP(0) there, with the virtual-8086 frame (Intel SDM Vol. 3A §20.2.1, §5.3).
      sys::Event ev;
      ev.vector = sys::vec::kGp;
      ev.return_eip = s.eip;
      ev.fault = true;
      return deliver_event(s, ev);
    }
    return {};
  }
  uint32_t cs_addr = 0;
  Descriptor cd = check_return_cs(mem_, s, cs_sel, &cs_addr);
  const unsigned rpl = cs_sel & 3;

  const uint32_t flags = eflags_after_iret(s, new_flags, os);
  const uint32_t smask = sp.mask();

  if (rpl == c) {
    if (new_eip > cd.limit()) sys::gp(0);
    sys::set_accessed(mem_, cs_addr, cd);
    sp.esp = (sp.esp & ~smask) | ((sp.esp + 3 * os) & smask);
    sys::commit_esp(s, sp);
    s.seg[kCs] = sys::segment_from(cs_sel, cd);
    s.eip = new_eip;
    s.eflags = flags;
    keep_rf_ = true;
    return {};
  }
  // RETURN-TO-OUTER-PRIVILEGE-LEVEL.
  sys::check_pop_room(sp, 5 * os, sys::vec::kSs, 0);
  uint32_t outer[2];  // ESP, SS
  sys::peek_frame(mem_, sp, 3 * os, outer, 2, os);
  const uint32_t new_esp = outer[0];
  const uint16_t ss_sel = static_cast<uint16_t>(outer[1]);
  uint32_t ss_addr = 0;
  Descriptor sd = check_return_ss(mem_, s, ss_sel, rpl, &ss_addr);
  if (new_eip > cd.limit()) sys::gp(0);
  sys::set_accessed(mem_, cs_addr, cd);
  sys::set_accessed(mem_, ss_addr, sd);
  s.seg[kCs] = sys::segment_from(cs_sel, cd);
  s.eip = new_eip;
  s.eflags = flags;
  s.seg[kSs] = sys::segment_from(ss_sel, sd);
  load_outer_esp(s, new_esp, 0);
  null_outer_data_segments(s);
  keep_rf_ = true;
  return {};
}

// INT n, INT3, INTO (when OF=1) and INT1 (Intel SDM Vol. 2A INT n/INTO/INT3/INT1): the return
// address is the next instruction; INT n/INT3/INTO check the gate DPL against CPL, INT1 does not.
StepResult SystemEmulator::software_interrupt(VcpuState& s, const Insn& in) {
  sys::Event ev;
  ev.kind = sys::Event::Kind::kSoftware;
  ev.return_eip = in.next_eip;
  switch (in.mnemonic()) {
    case ZYDIS_MNEMONIC_INT:
      // IOPL-sensitive in virtual-8086 mode (no CR4.VME): #GP(0) to the monitor when IOPL < 3.
      // INT3 (CC), INTO and INT1 are not (Intel SDM Vol. 2A INT n, Vol. 3A §20.2.7, §20.3.1).
      if (sys::vm86(s) && sys::iopl(s) < 3) sys::gp(0);
      ev.vector = static_cast<uint8_t>(in.ops[0].imm.value.u);
      break;
    case ZYDIS_MNEMONIC_INT3:
      ev.vector = sys::vec::kBp;
      break;
    case ZYDIS_MNEMONIC_INTO:
      if (!(s.eflags & eflags::kOf)) {
        s.eip = in.next_eip;
        return {};
      }
      ev.vector = sys::vec::kOf;
      break;
    default:  // INT1 (ICEBP)
      ev.vector = sys::vec::kDb;
      ev.kind = sys::Event::Kind::kIcebp;
      break;
  }
  return deliver_event(s, ev);
}

namespace {

/// The flat CS and SS that SYSENTER (CPL 0) or SYSEXIT (CPL 3) loads, from IA32_SYSENTER_CS
/// (Intel SDM Vol. 2B SYSENTER, SYSEXIT): CS = SYSENTER_CS & FFFCH and SS = CS + 8 at CPL 0;
/// CS = (SYSENTER_CS + 16) | 3 and SS = (SYSENTER_CS + 24) | 3 at CPL 3.
struct SystemCallSegments {
  uint16_t cs, ss;
  uint8_t cpl;
};
SystemCallSegments system_call_segments(const VcpuState& s, bool enter) {
  if (enter) {
    const auto cs = static_cast<uint16_t>(s.sysenter_cs & 0xfffc);
    return {cs, static_cast<uint16_t>(cs + 8), 0};
  }
  return {static_cast<uint16_t>((s.sysenter_cs + 16) | 3),
          static_cast<uint16_t>((s.sysenter_cs + 24) | 3), 3};
}

}  // namespace

void SystemEmulator::load_system_call_segments(VcpuState& s, bool enter) {
  // In place (SegmentReg::set_flat: no temporary copied in, whose narrow stores the wide loads
  // of the copy could not forward from).
  const SystemCallSegments to = system_call_segments(s, enter);
  s.seg[kCs].set_flat(to.cs, 11, to.cpl);  // execute/read code, accessed
  s.seg[kSs].set_flat(to.ss, 3, to.cpl);   // read/write data, accessed
}

// SYSENTER (Intel SDM Vol. 2B): #GP(0) in real mode or if IA32_SYSENTER_CS[15:2] = 0; VM, IF,
// RF cleared; flat
// CPL0 CS and SS (system_call_segments); ESP/EIP from the MSRs.
StepResult SystemEmulator::sysenter(VcpuState& s, const Insn& /*in*/) {
  if (!(s.cr0 & cr0::kPe) || (s.sysenter_cs & 0xfffc) == 0) sys::gp(0);
  s.eflags &= ~(eflags::kVm | eflags::kIf | eflags::kRf);
  load_system_call_segments(s, true);
  s.gpr[kEsp] = s.sysenter_esp;
  s.eip = s.sysenter_eip;
  return {};
}

bool SystemEmulator::fast_system_call(VcpuState& s, const Insn& in) {
  const bool enter = in.zi.mnemonic == ZYDIS_MNEMONIC_SYSENTER;
  if (!system_call_common_case(s) || (!enter && sys::cpl(s) != 0)) return false;
  interrupt_shadow = false;  // (nothing here can fault: nothing to roll back)
  if (enter) {
    sysenter(s, in);
  } else {
    sysexit(s, in);
  }
  s.eflags &= ~eflags::kRf;
  return true;
}

namespace {

/// A code or data descriptor the fast paths take as is: present, accessed (nothing to write
/// back), in the GDT within its limit.
bool fast_descriptor(LinearMemory& mem, const VcpuState& s, uint16_t sel, Descriptor* d) {
  uint32_t addr = 0;
  if (sys::is_null_selector(sel) || (sel & 4) || !sys::descriptor_address(s, sel, &addr)) {
    return false;
  }
  *d = sys::read_descriptor(mem, addr);
  return d->s() && d->present() && (d->type() & 1);
}

/// A stack segment the fast paths use directly: writable data, expand-up, 32-bit.
bool flat_enough_stack(const Descriptor& d) {
  return d.writable() && !(d.type() & 4) && d.db();
}

}  // namespace

bool SystemEmulator::fast_deliver(VcpuState& s, const sys::Event& ev) {
  if (!fast_paths_ || !(s.cr0 & cr0::kPe) || (s.eflags & (eflags::kVm | eflags::kTf)) ||
      ev.kind == sys::Event::Kind::kIcebp) {
    return false;
  }
  const unsigned old_cpl = sys::cpl(s);
  if (ev.vector * 8u + 7 > s.idtr.limit || !s.seg[kSs].db || (s.seg[kSs].type & 4)) return false;
  const uint32_t cr2 = s.cr2;  // a #PF on the way sets it: put back when the general path decides
  try {
    const Descriptor gate = sys::read_descriptor(mem_, s.idtr.base + ev.vector * 8u);
    const uint8_t type = gate.type();
    if (gate.s() || (type != sys::kIntGate32 && type != sys::kTrapGate32) || !gate.present() ||
        (ev.kind == sys::Event::Kind::kSoftware && gate.dpl() < old_cpl)) {
      return false;
    }
    const uint16_t sel = gate.gate_selector();
    Descriptor cd;
    if (!fast_descriptor(mem_, s, sel, &cd) || !cd.is_code() || cd.conforming() ||
        cd.dpl() > old_cpl || gate.gate_offset() > cd.limit()) {
      return false;
    }
    const unsigned new_cpl = cd.dpl();
    // RF in the pushed image (Intel SDM Vol. 3A §17.3.1.1), as deliver_once().
    uint32_t flags_image = s.eflags;
    if (ev.fault) flags_image |= eflags::kRf;
    if (!ev.ext()) flags_image &= ~eflags::kRf;
    const bool push_err = ev.pushes_error_code();
    // The frame from the lowest address: [error code,] EIP, CS, EFLAGS[, ESP, SS].
    uint32_t frame[6];
    unsigned n = 0;
    if (push_err) frame[n++] = ev.error_code;
    frame[n++] = ev.return_eip;
    frame[n++] = s.seg[kCs].selector;
    frame[n++] = flags_image;
    SegmentReg new_ss = s.seg[kSs];
    uint32_t new_esp = s.gpr[kEsp];
    bool user = old_cpl == 3;
    if (new_cpl < old_cpl) {
      const SegmentReg& tr = s.tr;
      const uint32_t at = (new_cpl << 3) + 4;
      if (tr.unusable || (tr.type != sys::kTss32Avail && tr.type != sys::kTss32Busy) ||
          at + 5 > tr.limit) {
        return false;
      }
      uint8_t stack[6];
      mem_.read(tr.base + at, stack, 6, false);
      uint16_t ss_sel = 0;
      std::memcpy(&new_esp, stack, 4);
      std::memcpy(&ss_sel, stack + 4, 2);
      Descriptor sd;
      if ((ss_sel & 3u) != new_cpl || !fast_descriptor(mem_, s, ss_sel, &sd) ||
          !flat_enough_stack(sd) || sd.dpl() != new_cpl) {
        return false;
      }
      new_ss = sys::segment_from(ss_sel, sd);
      frame[n++] = s.gpr[kEsp];
      frame[n++] = s.seg[kSs].selector;
      user = false;
    }
    const uint32_t bytes = 4 * n;
    if (new_esp < bytes || new_esp - 1 > new_ss.limit) return false;
    mem_.write(new_ss.base + new_esp - bytes, frame, bytes, user);  // all or nothing
    s.seg[kSs] = new_ss;
    s.gpr[kEsp] = new_esp - bytes;
    s.seg[kCs] = sys::segment_from(static_cast<uint16_t>((sel & 0xfffc) | new_cpl), cd);
    s.eip = gate.gate_offset();
    s.eflags &= ~(eflags::kTf | eflags::kNt | eflags::kRf | eflags::kVm);
    if (type == sys::kIntGate32) s.eflags &= ~eflags::kIf;
    ++fast_paths_taken_;
    return true;
  } catch (const GuestFault&) {
    s.cr2 = cr2;
    return false;
  }
}

bool SystemEmulator::fast_software_interrupt(VcpuState& s, const Insn& in) {
  sys::Event ev;
  ev.kind = sys::Event::Kind::kSoftware;
  ev.return_eip = in.next_eip;
  if (in.zi.mnemonic == ZYDIS_MNEMONIC_INT && in.osize == 4) {
    ev.vector = static_cast<uint8_t>(in.ops[0].imm.value.u);
  } else if (in.zi.mnemonic == ZYDIS_MNEMONIC_INT3) {
    ev.vector = sys::vec::kBp;
  } else {
    return false;
  }
  if (!fast_deliver(s, ev)) return false;
  interrupt_shadow = false;
  return true;
}

bool SystemEmulator::fast_iret_core(VcpuState& s, const Insn& in) {
  if (!fast_paths_ || !(s.cr0 & cr0::kPe) ||
      (s.eflags & (eflags::kVm | eflags::kTf | eflags::kNt)) || in.osize != 4) {
    return false;
  }
  const SegmentReg& cur_ss = s.seg[kSs];
  const uint32_t esp = s.gpr[kEsp];
  if (!cur_ss.db || (cur_ss.type & 4) || uint64_t{esp} + 12 - 1 > cur_ss.limit) return false;
  const unsigned c = sys::cpl(s);
  const uint32_t cr2 = s.cr2;
  try {
    uint32_t popped[5];
    mem_.read(cur_ss.base + esp, popped, 12, c == 3);
    const uint32_t new_eip = popped[0];
    const uint16_t cs_sel = static_cast<uint16_t>(popped[1]);
    const uint32_t new_flags = popped[2];
    const unsigned rpl = cs_sel & 3;
    Descriptor cd;
    if ((new_flags & eflags::kVm) || rpl < c || !fast_descriptor(mem_, s, cs_sel, &cd) ||
        !cd.is_code() || (cd.conforming() ? cd.dpl() > rpl : cd.dpl() != rpl) ||
        new_eip > cd.limit()) {
      return false;
    }
    const uint32_t flags = eflags_after_iret(s, new_flags, 4);
    if (rpl == c) {
      s.gpr[kEsp] = esp + 12;
      s.seg[kCs] = sys::segment_from(cs_sel, cd);
      s.eip = new_eip;
      s.eflags = flags;
    } else {
      // To an outer level: SS:ESP from the frame too.
      if (uint64_t{esp} + 20 - 1 > cur_ss.limit) return false;
      mem_.read(cur_ss.base + esp + 12, popped + 3, 8, c == 3);
      const uint32_t new_esp = popped[3];
      const uint16_t ss_sel = static_cast<uint16_t>(popped[4]);
      Descriptor sd;
      if ((ss_sel & 3u) != rpl || !fast_descriptor(mem_, s, ss_sel, &sd) ||
          !flat_enough_stack(sd) || sd.dpl() != rpl) {
        return false;
      }
      s.seg[kCs] = sys::segment_from(cs_sel, cd);
      s.eip = new_eip;
      s.eflags = flags;
      s.seg[kSs] = sys::segment_from(ss_sel, sd);
      s.gpr[kEsp] = new_esp;
      null_outer_data_segments(s);
    }
    ++fast_paths_taken_;
    return true;
  } catch (const GuestFault&) {
    s.cr2 = cr2;
    return false;
  }
}

bool SystemEmulator::fast_iret(VcpuState& s, const Insn& in) {
  if (!fast_iret_core(s, in)) return false;
  interrupt_shadow = false;
  nmi_blocked = false;
  return true;
}

// SYSEXIT (Intel SDM Vol. 2B): #GP(0) in real mode, if IA32_SYSENTER_CS[15:2] = 0 or CPL != 0;
// flat CPL3
// CS = SYSENTER_CS + 16 | 3, SS = SYSENTER_CS + 24 | 3; EIP = EDX, ESP = ECX.
StepResult SystemEmulator::sysexit(VcpuState& s, const Insn& /*in*/) {
  if (!(s.cr0 & cr0::kPe) || (s.sysenter_cs & 0xfffc) == 0 || sys::cpl(s) != 0) sys::gp(0);
  load_system_call_segments(s, false);
  s.gpr[kEsp] = s.gpr[kEcx];
  s.eip = s.gpr[kEdx];
  return {};
}

}  // namespace vmbt::bt
