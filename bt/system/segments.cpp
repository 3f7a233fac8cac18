// Segment-register loads and descriptor-visibility instructions (Intel SDM Vol. 3A §3.4-3.5,
// §5.5-5.10; Vol. 2 MOV, POP, PUSH, LDS/LES/LFS/LGS/LSS, LAR, LSL, VERR/VERW, ARPL).
#include "bt/system/internal.h"
#include "bt/system/system_emulator.h"

namespace vmbt::bt {

using sys::Descriptor;
using sys::Insn;

namespace {
void set_zf(VcpuState& s, bool zf) {
  if (zf) {
    s.eflags |= eflags::kZf;
  } else {
    s.eflags &= ~eflags::kZf;
  }
}
}  // namespace

// Protected-mode segment register load (Intel SDM Vol. 2B MOV pseudocode, Vol. 3A §5.10.1):
//   SS: null -> #GP(0); outside table -> #GP(sel); RPL != CPL, not writable data or DPL != CPL ->
//       #GP(sel); not present -> #SS(sel).
//   DS/ES/FS/GS: null -> unusable, no fault; outside table -> #GP(sel); not data or readable code
//       -> #GP(sel); data or non-conforming code with RPL > DPL or CPL > DPL -> #GP(sel); not
//       present -> #NP(sel).
// The Accessed bit is set in the descriptor; the hidden part is loaded (limit scaled by G).
void SystemEmulator::load_data_segment(VcpuState& s, unsigned seg, uint16_t sel) {
  if (sys::segments_8086(s)) {  // real mode, virtual-8086 mode (Intel SDM Vol. 3A §20.2.1)
    load_real_mode_segment(s, seg, sel);
    return;
  }
  const unsigned c = sys::cpl(s);
  const unsigned rpl = sel & 3;
  uint32_t addr = 0;
  if (seg == kSs) {
    if (sys::is_null_selector(sel)) sys::gp(0);
    Descriptor d = sys::fetch_descriptor(mem_, s, sel, sys::vec::kGp, 0, &addr);
    if (rpl != c || !d.writable() || d.dpl() != c) sys::gp(sys::sel_code(sel, 0));
    if (!d.present()) sys::fault(sys::vec::kSs, sys::sel_code(sel, 0));
    sys::set_accessed(mem_, addr, d);
    s.seg[kSs] = sys::segment_from(sel, d);
    return;
  }
  if (sys::is_null_selector(sel)) {
    s.seg[seg] = sys::null_segment(sel);
    return;
  }
  Descriptor d = sys::fetch_descriptor(mem_, s, sel, sys::vec::kGp, 0, &addr);
  if (!d.readable()) sys::gp(sys::sel_code(sel, 0));
  if (!d.conforming() && (rpl > d.dpl() || c > d.dpl())) sys::gp(sys::sel_code(sel, 0));
  if (!d.present()) sys::fault(sys::vec::kNp, sys::sel_code(sel, 0));
  sys::set_accessed(mem_, addr, d);
  s.seg[seg] = sys::segment_from(sel, d);
}

// MOV Sreg, r/m16. MOV SS inhibits interrupts (and debug traps) until after the next instruction.
StepResult SystemEmulator::mov_sreg(VcpuState& s, const Insn& in) {
  const int seg = sys::sreg_index(in.ops[0].reg.value);
  if (seg == kCs) sys::ud();
  const uint16_t sel = static_cast<uint16_t>(read_operand(s, in, 1, 2));
  load_data_segment(s, static_cast<unsigned>(seg), sel);
  if (seg == kSs) {
    interrupt_shadow = true;
    suppress_single_step_ = true;
  }
  s.eip = in.next_eip;
  return {};
}

// MOV r/m16, Sreg: to a 32-bit register the selector is zero-extended (P6 and later); to memory
// 16 bits are written whatever the operand size.
StepResult SystemEmulator::mov_from_sreg(VcpuState& s, const Insn& in) {
  const uint16_t sel = s.seg[sys::sreg_index(in.ops[1].reg.value)].selector;
  write_operand(s, in, 0, sel, 2);
  s.eip = in.next_eip;
  return {};
}

// PUSH Sreg: with a 32-bit operand size ESP decreases by 4 and the selector is written with a
// 16-bit move, as recent processors do (Intel SDM Vol. 2B PUSH).
StepResult SystemEmulator::push_sreg(VcpuState& s, const Insn& in) {
  const uint16_t sel = s.seg[sys::sreg_index(in.ops[0].reg.value)].selector;
  sys::StackPtr sp = sys::current_stack(s);
  sys::check_push_room(sp, in.osize, sys::vec::kSs, 0);
  const uint32_t mask = sp.mask();
  sp.esp = (sp.esp & ~mask) | ((sp.esp - in.osize) & mask);
  sys::write_u(mem_, sp.ss.base + (sp.esp & mask), sel, 2, sp.user);
  log_data_access(sp.ss.base + (sp.esp & mask), 2, true);
  sys::commit_esp(s, sp);
  s.eip = in.next_eip;
  return {};
}

// POP Sreg (ES SS DS FS GS): loads the low 16 bits of the popped operand; POP SS sets the
// interrupt shadow.
StepResult SystemEmulator::pop_sreg(VcpuState& s, const Insn& in) {
  const int seg = sys::sreg_index(in.ops[0].reg.value);
  if (seg == kCs) sys::ud();
  sys::StackPtr sp = sys::current_stack(s);
  const uint32_t top = sp.ss.base + (sp.esp & sp.mask());
  const uint16_t sel = static_cast<uint16_t>(sys::pop(mem_, sp, in.osize));
  log_data_access(top, in.osize, false);
  load_data_segment(s, static_cast<unsigned>(seg), sel);
  sys::commit_esp(s, sp);
  if (seg == kSs) {
    interrupt_shadow = true;
    suppress_single_step_ = true;
  }
  s.eip = in.next_eip;
  return {};
}

// LDS/LES/LFS/LGS/LSS r, m16:16/m16:32: offset then selector from memory; the segment load
// follows the MOV rules (Intel SDM Vol. 2A LDS/LES/LFS/LGS/LSS).
StepResult SystemEmulator::load_far_pointer(VcpuState& s, const Insn& in) {
  unsigned seg;
  switch (in.mnemonic()) {
    case ZYDIS_MNEMONIC_LDS:
      seg = kDs;
      break;
    case ZYDIS_MNEMONIC_LES:
      seg = kEs;
      break;
    case ZYDIS_MNEMONIC_LFS:
      seg = kFs;
      break;
    case ZYDIS_MNEMONIC_LGS:
      seg = kGs;
      break;
    default:
      seg = kSs;
      break;
  }
  if (!in.is_mem(1)) sys::ud();
  const ZydisDecodedOperand& m = in.ops[1];
  const unsigned mseg = static_cast<unsigned>(sys::sreg_index(m.mem.segment));
  const uint32_t off = sys::effective_offset(s, in, m);
  const uint32_t amask = in.asize == 2 ? 0xffffu : 0xffffffffu;
  const uint32_t offset = mem_read(s, mseg, off, in.osize);
  const uint16_t sel = static_cast<uint16_t>(mem_read(s, mseg, (off + in.osize) & amask, 2));
  load_data_segment(s, seg, sel);
  sys::write_reg(s, in.ops[0].reg.value, offset);
  s.eip = in.next_eip;
  return {};
}

// LAR / LSL (Intel SDM Vol. 2A LAR, LSL): ZF=1 and the access rights (masked 00FxFF00H; bits 19:16
// read as 0 here) or the G-scaled limit when the selector is not null, inside its table, of a type
// valid for the instruction, and visible (conforming code, or CPL <= DPL and RPL <= DPL);
// otherwise ZF=0 and the destination is unchanged.
StepResult SystemEmulator::lar_lsl(VcpuState& s, const Insn& in) {
  const bool lar = in.mnemonic() == ZYDIS_MNEMONIC_LAR;
  const uint16_t sel = static_cast<uint16_t>(read_operand(s, in, 1, 2));
  bool ok = false;
  uint32_t addr = 0;
  if (!sys::is_null_selector(sel) && sys::descriptor_address(s, sel, &addr)) {
    const Descriptor d = sys::read_descriptor(mem_, addr);
    bool type_ok = d.s();
    if (!type_ok) {
      switch (d.type()) {
        case sys::kTss16Avail:
        case sys::kLdt:
        case sys::kTss16Busy:
        case sys::kTss32Avail:
        case sys::kTss32Busy:
          type_ok = true;
          break;
        case sys::kCallGate16:
        case sys::kTaskGate:
        case sys::kCallGate32:
          type_ok = lar;
          break;
        default:
          break;
      }
    }
    const bool visible = d.conforming() || (sys::cpl(s) <= d.dpl() && (sel & 3u) <= d.dpl());
    if (type_ok && visible) {
      ok = true;
      uint32_t value = lar ? (d.hi & 0x00f0ff00u) : d.limit();
      if (in.osize == 2) value &= lar ? 0xff00u : 0xffffu;
      sys::write_reg(s, in.ops[0].reg.value, value);
    }
  }
  set_zf(s, ok);
  s.eip = in.next_eip;
  return {};
}

// VERR / VERW (Intel SDM Vol. 2B VERR/VERW): ZF=1 if the segment is a code/data segment visible
// at CPL and RPL (conforming code is always visible) and readable (VERR) / writable (VERW).
StepResult SystemEmulator::verr_verw(VcpuState& s, const Insn& in) {
  const bool verr = in.mnemonic() == ZYDIS_MNEMONIC_VERR;
  const uint16_t sel = static_cast<uint16_t>(read_operand(s, in, 0, 2));
  bool ok = false;
  uint32_t addr = 0;
  if (!sys::is_null_selector(sel) && sys::descriptor_address(s, sel, &addr)) {
    const Descriptor d = sys::read_descriptor(mem_, addr);
    if (d.s()) {
      const bool visible = d.conforming() || (sys::cpl(s) <= d.dpl() && (sel & 3u) <= d.dpl());
      ok = visible && (verr ? d.readable() : d.writable());
    }
  }
  set_zf(s, ok);
  s.eip = in.next_eip;
  return {};
}

// ARPL r/m16, r16 (Intel SDM Vol. 2A ARPL): raises the destination's RPL to the source's, ZF=1 if
// it was lower, else ZF=0.
StepResult SystemEmulator::arpl(VcpuState& s, const Insn& in) {
  const uint32_t dest = read_operand(s, in, 0, 2);
  const uint32_t src = read_operand(s, in, 1, 2);
  if ((dest & 3) < (src & 3)) {
    write_operand(s, in, 0, (dest & ~3u) | (src & 3), 2);
    set_zf(s, true);
  } else {
    set_zf(s, false);
  }
  s.eip = in.next_eip;
  return {};
}

}  // namespace vmbt::bt
