// System registers and tables: LGDT LIDT SGDT SIDT LLDT LTR SLDT STR SMSW LMSW, MOV CRn/DRn, CLTS,
// INVD, WBINVD, INVLPG (Intel SDM Vol. 2; Vol. 3A §2.5, §2.7, §17.2).
#include "bt/system/internal.h"
#include "bt/system/system_emulator.h"
#include "vmm/cpu_model.h"

namespace vmbt::bt {

using sys::Descriptor;
using sys::Insn;

namespace {

void require_cpl0(const VcpuState& s) {
  if (sys::cpl(s) != 0) sys::gp(0);
}

/// CR0 bits that exist on the P6 model; writes to the other (reserved) bits are ignored and ET is
/// hardwired to 1 (Intel SDM Vol. 3A §2.5).
constexpr uint32_t kCr0Bits = cr0::kPe | cr0::kMp | cr0::kEm | cr0::kTs | cr0::kEt | cr0::kNe |
                              cr0::kWp | cr0::kAm | cr0::kNw | cr0::kCd | cr0::kPg;
constexpr uint32_t kCr4Mce = 1u << 6, kCr4Pce = 1u << 8;

/// CR4 bits the CPU model supports: a bit whose CPUID feature is not advertised is reserved and
/// setting it raises #GP(0) (Intel SDM Vol. 3A §2.5, Vol. 2B MOV CRn).
uint32_t cr4_allowed() {
  const uint32_t edx = CpuModel::kFeaturesEdx;
  uint32_t allowed = kCr4Pce;  // RDPMC exists on every P6
  if (edx & (1u << 1)) allowed |= cr4::kVme | cr4::kPvi;
  if (edx & (1u << 2)) allowed |= cr4::kDe;
  if (edx & (1u << 3)) allowed |= cr4::kPse;
  if (edx & (1u << 4)) allowed |= cr4::kTsd;
  if (edx & (1u << 6)) allowed |= cr4::kPae;
  if (edx & (1u << 7)) allowed |= kCr4Mce;
  if (edx & (1u << 13)) allowed |= cr4::kPge;
  if (edx & (1u << 24)) allowed |= cr4::kOsfxsr;
  if (edx & (1u << 25)) allowed |= cr4::kOsxmmexcpt;
  return allowed;
}

}  // namespace

// LGDT/LIDT m16&32: CPL0 only (#GP(0)); a 16-bit operand size loads 24 bits of base.
StepResult SystemEmulator::lgdt_lidt(VcpuState& s, const Insn& in) {
  require_cpl0(s);
  if (!in.is_mem(0)) sys::ud();
  const unsigned seg = static_cast<unsigned>(sys::sreg_index(in.ops[0].mem.segment));
  const uint32_t off = sys::effective_offset(s, in, in.ops[0]);
  const uint32_t amask = in.asize == 2 ? 0xffffu : 0xffffffffu;
  const uint16_t limit = static_cast<uint16_t>(mem_read(s, seg, off, 2));
  uint32_t base = mem_read(s, seg, (off + 2) & amask, 4);
  if (in.osize == 2) base &= 0x00ffffffu;
  TableReg& t = in.mnemonic() == ZYDIS_MNEMONIC_LGDT ? s.gdtr : s.idtr;
  t.base = base;
  t.limit = limit;
  s.eip = in.next_eip;
  return {};
}

// SGDT/SIDT m: not privileged (no UMIP): stores the limit and the full 32-bit base.
StepResult SystemEmulator::sgdt_sidt(VcpuState& s, const Insn& in) {
  if (!in.is_mem(0)) sys::ud();
  const TableReg& t = in.mnemonic() == ZYDIS_MNEMONIC_SGDT ? s.gdtr : s.idtr;
  const unsigned seg = static_cast<unsigned>(sys::sreg_index(in.ops[0].mem.segment));
  const uint32_t off = sys::effective_offset(s, in, in.ops[0]);
  const uint32_t amask = in.asize == 2 ? 0xffffu : 0xffffffffu;
  // Check both parts before writing either.
  data_linear(s, seg, off, 2, true);
  data_linear(s, seg, (off + 2) & amask, 4, true);
  mem_write(s, seg, off, t.limit, 2);
  mem_write(s, seg, (off + 2) & amask, t.base, 4);
  s.eip = in.next_eip;
  return {};
}

// LLDT r/m16: CPL0; a null selector marks LDTR unusable; TI=1, outside the GDT or not an LDT
// descriptor -> #GP(sel); not present -> #NP(sel).
StepResult SystemEmulator::lldt(VcpuState& s, const Insn& in) {
  require_cpl0(s);
  const uint16_t sel = static_cast<uint16_t>(read_operand(s, in, 0, 2));
  if (sys::is_null_selector(sel)) {
    s.ldtr = sys::null_segment(sel);
    s.eip = in.next_eip;
    return {};
  }
  const uint32_t code = sys::sel_code(sel, 0);
  if (sel & 4) sys::gp(code);
  const Descriptor d = sys::fetch_descriptor(mem_, s, sel, sys::vec::kGp, 0, nullptr);
  if (d.s() || d.type() != sys::kLdt) sys::gp(code);
  if (!d.present()) sys::fault(sys::vec::kNp, code);
  s.ldtr = sys::segment_from(sel, d);
  s.eip = in.next_eip;
  return {};
}

// LTR r/m16: CPL0; null -> #GP(0); TI=1, outside the GDT, not an available TSS -> #GP(sel); not
// present -> #NP(sel). The TSS descriptor is marked busy in the GDT.
StepResult SystemEmulator::ltr(VcpuState& s, const Insn& in) {
  require_cpl0(s);
  const uint16_t sel = static_cast<uint16_t>(read_operand(s, in, 0, 2));
  if (sys::is_null_selector(sel)) sys::gp(0);
  const uint32_t code = sys::sel_code(sel, 0);
  if (sel & 4) sys::gp(code);
  uint32_t addr = 0;
  Descriptor d = sys::fetch_descriptor(mem_, s, sel, sys::vec::kGp, 0, &addr);
  if (d.s() || (d.type() != sys::kTss16Avail && d.type() != sys::kTss32Avail)) sys::gp(code);
  if (!d.present()) sys::fault(sys::vec::kNp, code);
  sys::set_busy(mem_, addr, d, true);
  s.tr = sys::segment_from(sel, d);
  s.eip = in.next_eip;
  return {};
}

// SLDT/STR r/m16: to a 32-bit register the selector is zero-extended (P6 and later); to memory
// 16 bits whatever the operand size. Not privileged.
StepResult SystemEmulator::sldt_str(VcpuState& s, const Insn& in) {
  const uint16_t sel = in.mnemonic() == ZYDIS_MNEMONIC_SLDT ? s.ldtr.selector : s.tr.selector;
  write_operand(s, in, 0, sel, 2);
  s.eip = in.next_eip;
  return {};
}

// SMSW r/m: to memory or a 16-bit register the low 16 bits of CR0; to a 32-bit register all of
// CR0 (the SDM leaves the upper half undefined; P6 and later store CR0). Not privileged.
StepResult SystemEmulator::smsw(VcpuState& s, const Insn& in) {
  if (in.is_reg(0)) {
    sys::write_reg(s, in.ops[0].reg.value, s.cr0);
  } else {
    write_operand(s, in, 0, s.cr0 & 0xffff, 2);
  }
  s.eip = in.next_eip;
  return {};
}

// LMSW r/m16: CPL0; loads CR0.PE/MP/EM/TS from the low 4 bits; PE can be set but not cleared.
StepResult SystemEmulator::lmsw(VcpuState& s, const Insn& in) {
  require_cpl0(s);
  const uint32_t v = read_operand(s, in, 0, 2);
  s.cr0 = (s.cr0 & ~0xfu) | (v & 0xfu) | (s.cr0 & cr0::kPe);
  s.eip = in.next_eip;
  return {};
}

// MOV to/from CR0, CR2, CR3, CR4 (Intel SDM Vol. 2B MOV—Move to/from Control Registers): CPL0;
// CR0: reserved bits ignored, PG without PE or NW without CD -> #GP(0); CR4: unsupported bits ->
// #GP(0). Where PAE paging is in use after the write, the PDPTE registers are loaded from the
// PDPT at CR3 by MOV CR3, and by MOV CR0 / MOV CR4 that modify CR0.CD/NW/PG or CR4.PAE/PGE/PSE
// (Intel SDM Vol. 3A §4.4.1); a present PDPTE with a reserved bit is a #GP(0) and the register
// keeps its old value. Paging-relevant writes are reported to the MMU.
StepResult SystemEmulator::mov_cr(VcpuState& s, const Insn& in) {
  require_cpl0(s);
  const bool to_cr = ZydisRegisterGetClass(in.ops[0].reg.value) == ZYDIS_REGCLASS_CONTROL;
  const ZydisRegister cr = in.ops[to_cr ? 0 : 1].reg.value;
  const unsigned n = static_cast<unsigned>(cr - ZYDIS_REGISTER_CR0);
  if (n != 0 && n != 2 && n != 3 && n != 4) sys::ud();
  if (!to_cr) {
    const uint32_t v = n == 0 ? s.cr0 : n == 2 ? s.cr2 : n == 3 ? s.cr3 : s.cr4;
    sys::write_reg(s, in.ops[0].reg.value, v);
    s.eip = in.next_eip;
    return {};
  }
  const uint32_t v = sys::read_reg(s, in.ops[1].reg.value);
  bool paging_changed = false;
  // PAE paging in use after the write (CR0.PG=1, CR4.PAE=1; no IA-32e mode): the PDPTEs at `cr3`
  // are loaded into `pdpte`, or the instruction faults before changing anything.
  std::array<uint64_t, 4> pdpte = s.pdpte;
  auto load_pdptes = [&](uint32_t cr3) {
    if (!hooks_.load_pdptes(cr3, &pdpte)) sys::gp(0);
  };
  switch (n) {
    case 0: {
      const uint32_t nv = (v & kCr0Bits) | cr0::kEt;
      if ((nv & cr0::kPg) && !(nv & cr0::kPe)) sys::gp(0);
      if ((nv & cr0::kNw) && !(nv & cr0::kCd)) sys::gp(0);
      const bool pdpte_load = (nv & cr0::kPg) && (s.cr4 & cr4::kPae) &&
                              ((s.cr0 ^ nv) & (cr0::kPg | cr0::kCd | cr0::kNw));
      if (pdpte_load) load_pdptes(s.cr3);
      paging_changed = pdpte_load || ((s.cr0 ^ nv) & (cr0::kPg | cr0::kWp | cr0::kPe)) != 0;
      s.cr0 = nv;
      break;
    }
    case 2:
      s.cr2 = v;
      break;
    case 3:
      if ((s.cr0 & cr0::kPg) && (s.cr4 & cr4::kPae)) load_pdptes(v);
      s.cr3 = v;
      paging_changed = true;  // flushes non-global TLB entries even if unchanged
      break;
    default: {
      if (v & ~cr4_allowed()) sys::gp(0);
      const uint32_t pdpte_bits = cr4::kPae | cr4::kPge | cr4::kPse;
      const bool pdpte_load = (s.cr0 & cr0::kPg) && (v & cr4::kPae) && ((s.cr4 ^ v) & pdpte_bits);
      if (pdpte_load) load_pdptes(s.cr3);
      paging_changed = ((s.cr4 ^ v) & (cr4::kPse | cr4::kPge | cr4::kPae)) != 0;
      s.cr4 = v;
      break;
    }
  }
  s.pdpte = pdpte;
  s.eip = in.next_eip;
  if (paging_changed) hooks_.on_paging_changed(s);
  return {};
}

// MOV to/from DR0-DR7 (Intel SDM Vol. 2B MOV—Move to/from Debug Registers, Vol. 3A §17.2): CPL0;
// DR4/DR5 alias DR6/DR7 when CR4.DE=0, #UD when CR4.DE=1; DR7.GD=1 -> #DB (fault) with DR6.BD
// set and GD cleared; fixed bits of DR6/DR7 forced.
StepResult SystemEmulator::mov_dr(VcpuState& s, const Insn& in) {
  require_cpl0(s);
  const bool to_dr = ZydisRegisterGetClass(in.ops[0].reg.value) == ZYDIS_REGCLASS_DEBUG;
  const ZydisRegister dr = in.ops[to_dr ? 0 : 1].reg.value;
  unsigned n = static_cast<unsigned>(dr - ZYDIS_REGISTER_DR0);
  if (n == 4 || n == 5) {
    if (s.cr4 & cr4::kDe) sys::ud();
    n += 2;
  }
  if (s.dr[7] & (1u << 13)) {
    s.dr[6] |= 1u << 13;
    s.dr[7] &= ~(1u << 13);
    sys::Event ev;
    ev.vector = sys::vec::kDb;
    ev.return_eip = s.eip;
    ev.fault = false;  // RF is not set for debug exceptions
    return deliver_event(s, ev);
  }
  if (!to_dr) {
    sys::write_reg(s, in.ops[0].reg.value, s.dr[n]);
  } else {
    const uint32_t v = sys::read_reg(s, in.ops[1].reg.value);
    if (n == 6) {
      s.dr[6] = (v & 0x0000e00fu) | 0xffff0ff0u;
    } else if (n == 7) {
      s.dr[7] = (v & 0xffff23ffu) | 0x400u;
    } else {
      s.dr[n] = v;
    }
    if (n != 6) hooks_.on_debug_registers_changed(s);
  }
  s.eip = in.next_eip;
  return {};
}

// CLTS: CPL0; clears CR0.TS.
StepResult SystemEmulator::clts(VcpuState& s, const Insn& in) {
  require_cpl0(s);
  s.cr0 &= ~cr0::kTs;
  s.eip = in.next_eip;
  return {};
}

// INVD/WBINVD: CPL0; caches are not modelled.
StepResult SystemEmulator::cache_control(VcpuState& s, const Insn& in) {
  require_cpl0(s);
  s.eip = in.next_eip;
  return {};
}

// INVLPG m: CPL0; the linear address of the operand (no limit check) goes to the MMU.
StepResult SystemEmulator::invlpg(VcpuState& s, const Insn& in) {
  require_cpl0(s);
  if (!in.is_mem(0)) sys::ud();
  const unsigned seg = static_cast<unsigned>(sys::sreg_index(in.ops[0].mem.segment));
  const uint32_t linear = s.seg[seg].base + sys::effective_offset(s, in, in.ops[0]);
  s.eip = in.next_eip;
  hooks_.on_invlpg(linear);
  return {};
}

}  // namespace vmbt::bt
