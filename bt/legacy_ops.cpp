#include "bt/legacy_ops.h"

#include <bit>

#include "bt/guest_operands.h"
#include "bt/segment_checks.h"

namespace vmbt::bt {

namespace {

/// EIP past an instruction of `length` bytes: IP wraps at 64 KiB in 16-bit code (CS.D = 0).
uint32_t eip_after(const VcpuState& s, unsigned length) {
  return s.seg[kCs].db ? s.eip + length : (s.eip + length) & 0xffff;
}
void advance_eip(VcpuState& s, unsigned length) {
  s.eip = eip_after(s, length);
}

/// Guest memory through a segment, with the CPL's rights.
class Access {
 public:
  Access(VcpuState& s, LinearMemory& mem) : s_(s), mem_(mem) {}
  uint32_t read(int seg, uint32_t offset, unsigned size) {
    if (auto f = check_access(s_, static_cast<unsigned>(seg), offset, size, false)) throw *f;
    uint32_t v = 0;
    mem_.read(s_.seg[seg].base + offset, &v, size, s_.cpl() == 3);
    return v;
  }
  void write(int seg, uint32_t offset, uint32_t v, unsigned size) {
    if (auto f = check_access(s_, static_cast<unsigned>(seg), offset, size, true)) throw *f;
    mem_.write(s_.seg[seg].base + offset, &v, size, s_.cpl() == 3);
  }

 private:
  VcpuState& s_;
  LinearMemory& mem_;
};

void set_flag(VcpuState& s, uint32_t bit, bool on) {
  s.eflags = on ? (s.eflags | bit) : (s.eflags & ~bit);
}

/// SF, ZF and PF from an 8-bit result (SDM Vol. 1 §3.4.3.1).
void set_szp8(VcpuState& s, uint8_t v) {
  set_flag(s, eflags::kSf, v & 0x80);
  set_flag(s, eflags::kZf, v == 0);
  set_flag(s, eflags::kPf, (std::popcount(static_cast<unsigned>(v)) & 1) == 0);
}

/// CF, PF, AF, ZF, SF, OF of `a - b` at `size` bytes (Intel SDM Vol. 2, SUB / CMP).
void set_sub_flags(VcpuState& s, uint32_t a, uint32_t b, unsigned size) {
  const uint32_t mask = size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
  const uint32_t sign = 1u << (8 * size - 1);
  a &= mask;
  b &= mask;
  const uint32_t r = (a - b) & mask;
  set_flag(s, eflags::kCf, a < b);
  set_flag(s, eflags::kZf, r == 0);
  set_flag(s, eflags::kSf, r & sign);
  set_flag(s, eflags::kOf, ((a ^ b) & (a ^ r)) & sign);
  set_flag(s, eflags::kAf, (a ^ b ^ r) & 0x10);
  set_flag(s, eflags::kPf, (std::popcount(r & 0xffu) & 1) == 0);
}

/// Reads or writes the low `bits` of a GPR (CX/ECX, SI/ESI, DI/EDI with the address size).
uint32_t reg_bits(const VcpuState& s, unsigned r, unsigned bits) {
  return bits == 16 ? (s.gpr[r] & 0xffff) : s.gpr[r];
}
void set_reg_bits(VcpuState& s, unsigned r, unsigned bits, uint32_t v) {
  s.gpr[r] = bits == 16 ? ((s.gpr[r] & 0xffff0000u) | (v & 0xffff)) : v;
}

uint8_t al(const VcpuState& s) {
  return static_cast<uint8_t>(s.gpr[kEax]);
}
uint8_t ah(const VcpuState& s) {
  return static_cast<uint8_t>(s.gpr[kEax] >> 8);
}
void set_al(VcpuState& s, uint8_t v) {
  s.gpr[kEax] = (s.gpr[kEax] & ~0xffu) | v;
}
void set_ah(VcpuState& s, uint8_t v) {
  s.gpr[kEax] = (s.gpr[kEax] & ~0xff00u) | (v << 8u);
}

}  // namespace

namespace {

/// MOVS, STOS, LODS, CMPS, SCAS with any address size, segment override and REP prefix
/// (Intel SDM Vol. 2, "REP/REPE/REPZ/REPNE/REPNZ"). Runs at most kBatch iterations per call and
/// leaves EIP at the instruction when more remain, so interrupts are taken between batches.
bool string_op(VcpuState& s, const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* ops,
               Access& m) {
  constexpr unsigned kBatch = 65536;
  uint8_t op = 0;
  switch (insn.mnemonic) {
    case ZYDIS_MNEMONIC_MOVSB:
    case ZYDIS_MNEMONIC_MOVSW:
    case ZYDIS_MNEMONIC_MOVSD:
      op = 'M';
      break;
    case ZYDIS_MNEMONIC_STOSB:
    case ZYDIS_MNEMONIC_STOSW:
    case ZYDIS_MNEMONIC_STOSD:
      op = 'S';
      break;
    case ZYDIS_MNEMONIC_LODSB:
    case ZYDIS_MNEMONIC_LODSW:
    case ZYDIS_MNEMONIC_LODSD:
      op = 'L';
      break;
    case ZYDIS_MNEMONIC_CMPSB:
    case ZYDIS_MNEMONIC_CMPSW:
    case ZYDIS_MNEMONIC_CMPSD:
      op = 'C';
      break;
    case ZYDIS_MNEMONIC_SCASB:
    case ZYDIS_MNEMONIC_SCASW:
    case ZYDIS_MNEMONIC_SCASD:
      op = 'A';
      break;
    default:
      return false;
  }
  if (insn.meta.category != ZYDIS_CATEGORY_STRINGOP) return false;  // SSE2 MOVSD/CMPSD
  const unsigned size = insn.operand_width / 8;
  const unsigned abits = insn.address_width;
  int src_seg = kDs;
  for (unsigned i = 0; i < insn.operand_count; ++i) {
    if (ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY && gpr_index(ops[i].mem.base) == kEsi) {
      src_seg = operand_segment(ops[i]);
    }
  }
  const bool rep = has_rep_prefix(insn);
  const bool repne = insn.attributes & ZYDIS_ATTRIB_HAS_REPNE;
  const int32_t step =
      (s.eflags & eflags::kDf) ? -static_cast<int32_t>(size) : static_cast<int32_t>(size);
  const uint32_t mask = size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
  for (unsigned n = 0; n < kBatch; ++n) {
    if (rep && reg_bits(s, kEcx, abits) == 0) {
      advance_eip(s, insn.length);
      return true;
    }
    uint32_t si = reg_bits(s, kEsi, abits), di = reg_bits(s, kEdi, abits);
    switch (op) {
      case 'M':
        m.write(kEs, di, m.read(src_seg, si, size), size);
        break;
      case 'S':
        m.write(kEs, di, s.gpr[kEax] & mask, size);
        break;
      case 'L': {
        uint32_t v = m.read(src_seg, si, size);
        s.gpr[kEax] = size == 4 ? v : ((s.gpr[kEax] & ~mask) | v);
        break;
      }
      case 'C':
        set_sub_flags(s, m.read(src_seg, si, size), m.read(kEs, di, size), size);
        break;
      case 'A':
        set_sub_flags(s, s.gpr[kEax], m.read(kEs, di, size), size);
        break;
    }
    if (op == 'M' || op == 'L' || op == 'C') set_reg_bits(s, kEsi, abits, si + step);
    if (op != 'L') set_reg_bits(s, kEdi, abits, di + step);
    if (!rep) {
      advance_eip(s, insn.length);
      return true;
    }
    set_reg_bits(s, kEcx, abits, reg_bits(s, kEcx, abits) - 1);
    if ((op == 'C' || op == 'A') && ((s.eflags & eflags::kZf) != 0) == repne) {
      advance_eip(s, insn.length);  // REPE stops on ZF=0, REPNE on ZF=1
      return true;
    }
  }
  return true;  // more iterations remain: the instruction runs again
}

}  // namespace

bool is_legacy_instruction(ZydisMnemonic m) {
  switch (m) {
    case ZYDIS_MNEMONIC_PUSHA:
    case ZYDIS_MNEMONIC_PUSHAD:
    case ZYDIS_MNEMONIC_POPA:
    case ZYDIS_MNEMONIC_POPAD:
    case ZYDIS_MNEMONIC_XLAT:
    case ZYDIS_MNEMONIC_ENTER:
    case ZYDIS_MNEMONIC_BOUND:
    case ZYDIS_MNEMONIC_DAA:
    case ZYDIS_MNEMONIC_DAS:
    case ZYDIS_MNEMONIC_AAA:
    case ZYDIS_MNEMONIC_AAS:
    case ZYDIS_MNEMONIC_AAM:
    case ZYDIS_MNEMONIC_AAD:
    case ZYDIS_MNEMONIC_SALC:
      return true;
    default:
      return false;
  }
}

namespace {

/// The stack pointer's width (Intel SDM Vol. 3A §3.4.5.1, SS.B): SP on a 16-bit stack, ESP on a
/// 32-bit one. Offsets wrap to it; a new value replaces only those bits.
uint32_t stack_mask(const VcpuState& s) {
  return s.seg[kSs].db ? 0xffffffffu : 0xffffu;
}
uint32_t stack_offset(const VcpuState& s, uint32_t value) {
  return value & stack_mask(s);
}
void set_stack_pointer(VcpuState& s, uint32_t value) {
  const uint32_t mask = stack_mask(s);
  s.gpr[kEsp] = (s.gpr[kEsp] & ~mask) | (value & mask);
}

}  // namespace

LegacyOutcome execute_legacy(VcpuState& s, const ZydisDecodedInstruction& insn,
                             const ZydisDecodedOperand* ops, LinearMemory& mem) {
  LegacyOutcome out;
  Access m(s, mem);
  const uint32_t next = eip_after(s, insn.length);
  const bool cf = s.eflags & eflags::kCf;
  const bool af = s.eflags & eflags::kAf;
  try {
    if (string_op(s, insn, ops, m)) {
      out.result = LegacyResult::kDone;
      return out;
    }
    switch (insn.mnemonic) {
      case ZYDIS_MNEMONIC_LOOP:
      case ZYDIS_MNEMONIC_LOOPE:
      case ZYDIS_MNEMONIC_LOOPNE:
      case ZYDIS_MNEMONIC_JCXZ:
      case ZYDIS_MNEMONIC_JECXZ: {
        // With a 16-bit address size the count register is CX (Intel SDM Vol. 2, LOOPcc).
        unsigned bits = insn.address_width;
        bool taken;
        if (insn.mnemonic == ZYDIS_MNEMONIC_JCXZ || insn.mnemonic == ZYDIS_MNEMONIC_JECXZ) {
          taken = reg_bits(s, kEcx, bits) == 0;
        } else {
          set_reg_bits(s, kEcx, bits, reg_bits(s, kEcx, bits) - 1);
          taken = reg_bits(s, kEcx, bits) != 0;
          bool zf = s.eflags & eflags::kZf;
          if (insn.mnemonic == ZYDIS_MNEMONIC_LOOPE) taken = taken && zf;
          if (insn.mnemonic == ZYDIS_MNEMONIC_LOOPNE) taken = taken && !zf;
        }
        uint32_t target = next + static_cast<uint32_t>(ops[0].imm.value.s);
        if (insn.operand_width == 16) target &= 0xffff;
        s.eip = taken ? target : next;
        out.result = LegacyResult::kDone;
        return out;
      }
      case ZYDIS_MNEMONIC_RET:
      case ZYDIS_MNEMONIC_CALL: {
        // Near CALL and RET with a 16-bit operand size (66h; Intel SDM Vol. 2A CALL, Vol. 2B
        // RET): the return address pushed or popped is IP, 16 bits on the (32-bit) stack, and
        // the new EIP has its upper half cleared; beyond the CS limit it is #GP(0).
        if (insn.operand_width != 16 || insn.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR) return out;
        uint32_t target = 0;
        if (insn.mnemonic == ZYDIS_MNEMONIC_RET) {
          target = m.read(kSs, stack_offset(s, s.gpr[kEsp]), 2);
          uint32_t release = 2;
          if (insn.operand_count_visible > 0 && ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
            release += static_cast<uint32_t>(ops[0].imm.value.u & 0xffff);
          }
          if (target > s.seg[kCs].limit) throw GuestFault{exc::kGp, true, 0};
          set_stack_pointer(s, s.gpr[kEsp] + release);
        } else {
          const ZydisDecodedOperand& t = ops[0];
          if (t.type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
            target = (next + static_cast<uint32_t>(t.imm.value.s)) & 0xffff;
          } else if (t.type == ZYDIS_OPERAND_TYPE_REGISTER) {
            target = s.gpr[gpr_index(t.reg.value)] & 0xffff;
          } else {
            target = m.read(operand_segment(t), effective_offset(s, t, insn.address_width), 2);
          }
          if (target > s.seg[kCs].limit) throw GuestFault{exc::kGp, true, 0};
          m.write(kSs, stack_offset(s, s.gpr[kEsp] - 2), next & 0xffff, 2);
          set_stack_pointer(s, s.gpr[kEsp] - 2);
        }
        s.eip = target;
        out.result = LegacyResult::kDone;
        return out;
      }
      case ZYDIS_MNEMONIC_LEAVE: {
        // ESP = EBP (SP = BP on a 16-bit stack), then pop (E)BP at the operand size.
        unsigned w = insn.operand_width / 8;
        uint32_t v = m.read(kSs, stack_offset(s, s.gpr[kEbp]), w);
        set_stack_pointer(s, stack_offset(s, s.gpr[kEbp]) + w);
        s.gpr[kEbp] = w == 4 ? v : ((s.gpr[kEbp] & 0xffff0000u) | v);
        break;
      }
      case ZYDIS_MNEMONIC_PUSHAD:
      case ZYDIS_MNEMONIC_PUSHA: {
        unsigned w = insn.mnemonic == ZYDIS_MNEMONIC_PUSHAD ? 4 : 2;
        uint32_t esp = s.gpr[kEsp];
        for (unsigned i = 0; i < 8; ++i) {  // EAX ECX EDX EBX (original) ESP EBP ESI EDI
          esp -= w;
          m.write(kSs, stack_offset(s, esp), i == kEsp ? s.gpr[kEsp] : s.gpr[i], w);
        }
        set_stack_pointer(s, esp);
        break;
      }
      case ZYDIS_MNEMONIC_POPAD:
      case ZYDIS_MNEMONIC_POPA: {
        unsigned w = insn.mnemonic == ZYDIS_MNEMONIC_POPAD ? 4 : 2;
        uint32_t esp = s.gpr[kEsp];
        uint32_t v[8];
        for (int i = 7; i >= 0; --i) {  // EDI ESI EBP (skip) EBX EDX ECX EAX
          v[i] = m.read(kSs, stack_offset(s, esp), w);
          esp += w;
        }
        for (unsigned i = 0; i < 8; ++i) {
          if (i == kEsp) continue;
          s.gpr[i] = w == 4 ? v[i] : ((s.gpr[i] & 0xffff0000u) | v[i]);
        }
        set_stack_pointer(s, esp);
        break;
      }
      case ZYDIS_MNEMONIC_XLAT: {
        int seg = kDs;
        for (unsigned i = 0; i < insn.operand_count; ++i) {
          if (ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY) seg = operand_segment(ops[i]);
        }
        uint32_t base = insn.address_width == 16 ? (s.gpr[kEbx] & 0xffff) : s.gpr[kEbx];
        uint32_t off = base + al(s);
        if (insn.address_width == 16) off &= 0xffff;
        set_al(s, static_cast<uint8_t>(m.read(seg, off, 1)));
        break;
      }
      case ZYDIS_MNEMONIC_ENTER: {
        // Intel SDM Vol. 2A, ENTER, either operand size, on a 16- or 32-bit stack (SS.B).
        unsigned w = insn.operand_width / 8;
        uint32_t size = static_cast<uint32_t>(ops[0].imm.value.u & 0xffff);
        unsigned level = static_cast<unsigned>(ops[1].imm.value.u) % 32;
        uint32_t esp = s.gpr[kEsp] - w;
        m.write(kSs, stack_offset(s, esp), s.gpr[kEbp], w);
        uint32_t frame = stack_offset(s, esp);
        uint32_t ebp = s.gpr[kEbp];
        if (level > 0) {
          for (unsigned i = 1; i < level; ++i) {
            ebp -= w;
            esp -= w;
            m.write(kSs, stack_offset(s, esp), m.read(kSs, stack_offset(s, ebp), w), w);
          }
          esp -= w;
          m.write(kSs, stack_offset(s, esp), frame, w);
        }
        s.gpr[kEbp] = w == 4 ? frame : ((s.gpr[kEbp] & 0xffff0000u) | (frame & 0xffff));
        set_stack_pointer(s, esp - size);
        break;
      }
      case ZYDIS_MNEMONIC_BOUND: {
        int r = gpr_index(ops[0].reg.value);
        const ZydisDecodedOperand& mo = ops[1];
        uint32_t ea = effective_offset(s, mo, insn.address_width);
        int seg = operand_segment(mo);
        unsigned w = insn.operand_width / 8;
        int32_t lo, hi, v;
        if (w == 4) {
          lo = static_cast<int32_t>(m.read(seg, ea, 4));
          hi = static_cast<int32_t>(m.read(seg, ea + 4, 4));
          v = static_cast<int32_t>(s.gpr[r]);
        } else {
          lo = static_cast<int16_t>(m.read(seg, ea, 2));
          hi = static_cast<int16_t>(m.read(seg, ea + 2, 2));
          v = static_cast<int16_t>(s.gpr[r]);
        }
        if (v < lo || v > hi) {
          out.result = LegacyResult::kFault;
          out.fault = {5, false, 0};  // #BR
          return out;
        }
        break;
      }
      case ZYDIS_MNEMONIC_DAA: {
        uint8_t old_al = al(s);
        bool new_cf = false;
        uint8_t v = old_al;
        if ((v & 0xf) > 9 || af) {
          new_cf = cf || v > 0xf9;
          v = static_cast<uint8_t>(v + 6);
          set_flag(s, eflags::kAf, true);
        } else {
          set_flag(s, eflags::kAf, false);
        }
        if (old_al > 0x99 || cf) {
          v = static_cast<uint8_t>(v + 0x60);
          new_cf = true;
        }
        set_al(s, v);
        set_flag(s, eflags::kCf, new_cf);
        set_szp8(s, v);
        break;
      }
      case ZYDIS_MNEMONIC_DAS: {
        uint8_t old_al = al(s);
        bool new_cf = false;
        uint8_t v = old_al;
        if ((v & 0xf) > 9 || af) {
          new_cf = cf || v < 6;
          v = static_cast<uint8_t>(v - 6);
          set_flag(s, eflags::kAf, true);
        } else {
          set_flag(s, eflags::kAf, false);
        }
        if (old_al > 0x99 || cf) {
          v = static_cast<uint8_t>(v - 0x60);
          new_cf = true;
        }
        set_al(s, v);
        set_flag(s, eflags::kCf, new_cf);
        set_szp8(s, v);
        break;
      }
      case ZYDIS_MNEMONIC_AAA:
      case ZYDIS_MNEMONIC_AAS: {
        bool adjust = (al(s) & 0xf) > 9 || af;
        if (adjust) {
          uint16_t ax = static_cast<uint16_t>(s.gpr[kEax]);
          if (insn.mnemonic == ZYDIS_MNEMONIC_AAA) {
            ax = static_cast<uint16_t>(ax + 0x106);
          } else {
            ax = static_cast<uint16_t>(ax - 6);
            ax = static_cast<uint16_t>(ax - 0x100);
          }
          s.gpr[kEax] = (s.gpr[kEax] & 0xffff0000u) | ax;
        }
        set_flag(s, eflags::kAf, adjust);
        set_flag(s, eflags::kCf, adjust);
        set_al(s, al(s) & 0xf);
        break;
      }
      case ZYDIS_MNEMONIC_AAM: {
        uint8_t base = static_cast<uint8_t>(ops[0].imm.value.u);
        if (base == 0) {
          out.result = LegacyResult::kFault;
          out.fault = {0, false, 0};  // #DE
          return out;
        }
        uint8_t v = al(s);
        set_ah(s, static_cast<uint8_t>(v / base));
        set_al(s, static_cast<uint8_t>(v % base));
        set_szp8(s, al(s));
        break;
      }
      case ZYDIS_MNEMONIC_AAD: {
        uint8_t base = static_cast<uint8_t>(ops[0].imm.value.u);
        uint8_t v = static_cast<uint8_t>(al(s) + ah(s) * base);
        set_al(s, v);
        set_ah(s, 0);
        set_szp8(s, v);
        break;
      }
      case ZYDIS_MNEMONIC_SALC:
        set_al(s, cf ? 0xff : 0x00);
        break;
      default:
        return out;
    }
  } catch (const GuestFault& f) {
    out.result = LegacyResult::kFault;
    out.fault = f;
    return out;
  }
  s.eip = next;
  out.result = LegacyResult::kDone;
  return out;
}

}  // namespace vmbt::bt
