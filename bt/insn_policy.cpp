#include "bt/insn_policy.h"

#include "bt/fpu_class.h"
#include "bt/segment_checks.h"
#include "bt/translator.h"
#include "vmm/cpu_model.h"
#include "vmm/cpu_state.h"

namespace vmbt::bt::policy {

namespace {

using S = Sensitivity;

/// The class a mnemonic has whatever its operands (kNone: decided by the operands, or not
/// sensitive). docs/sensitive-instructions.md has the reasoning for each.
Sensitivity by_mnemonic(ZydisMnemonic m) {
  switch (m) {
    // Robin & Irvine's sensitive register instructions and protection system references.
    case ZYDIS_MNEMONIC_SGDT:
    case ZYDIS_MNEMONIC_SIDT:
    case ZYDIS_MNEMONIC_SLDT:
    case ZYDIS_MNEMONIC_STR:
    case ZYDIS_MNEMONIC_SMSW:
    case ZYDIS_MNEMONIC_PUSHF:
    case ZYDIS_MNEMONIC_PUSHFD:
    case ZYDIS_MNEMONIC_POPF:
    case ZYDIS_MNEMONIC_POPFD:
    case ZYDIS_MNEMONIC_LAR:
    case ZYDIS_MNEMONIC_LSL:
    case ZYDIS_MNEMONIC_VERR:
    case ZYDIS_MNEMONIC_VERW:
    case ZYDIS_MNEMONIC_INT:
    case ZYDIS_MNEMONIC_INT3:
    case ZYDIS_MNEMONIC_INTO:
    case ZYDIS_MNEMONIC_INT1:
    case ZYDIS_MNEMONIC_IRET:
    case ZYDIS_MNEMONIC_IRETD:
    case ZYDIS_MNEMONIC_LDS:
    case ZYDIS_MNEMONIC_LES:
    case ZYDIS_MNEMONIC_LFS:
    case ZYDIS_MNEMONIC_LGS:
    case ZYDIS_MNEMONIC_LSS:
      return S::kSensitiveUnprivileged;
    case ZYDIS_MNEMONIC_CLI:
    case ZYDIS_MNEMONIC_STI:
    case ZYDIS_MNEMONIC_IN:
    case ZYDIS_MNEMONIC_OUT:
    case ZYDIS_MNEMONIC_INSB:
    case ZYDIS_MNEMONIC_INSW:
    case ZYDIS_MNEMONIC_INSD:
    case ZYDIS_MNEMONIC_OUTSB:
    case ZYDIS_MNEMONIC_OUTSW:
    case ZYDIS_MNEMONIC_OUTSD:
      return S::kIoplSensitive;
    case ZYDIS_MNEMONIC_HLT:
    case ZYDIS_MNEMONIC_LGDT:
    case ZYDIS_MNEMONIC_LIDT:
    case ZYDIS_MNEMONIC_LLDT:
    case ZYDIS_MNEMONIC_LTR:
    case ZYDIS_MNEMONIC_LMSW:
    case ZYDIS_MNEMONIC_CLTS:
    case ZYDIS_MNEMONIC_INVD:
    case ZYDIS_MNEMONIC_WBINVD:
    case ZYDIS_MNEMONIC_INVLPG:
    case ZYDIS_MNEMONIC_RDMSR:
    case ZYDIS_MNEMONIC_WRMSR:
    case ZYDIS_MNEMONIC_RDPMC:
    case ZYDIS_MNEMONIC_SYSEXIT:
      return S::kPrivileged;
    case ZYDIS_MNEMONIC_CPUID:
    case ZYDIS_MNEMONIC_RDTSC:
    case ZYDIS_MNEMONIC_RDTSCP:
    case ZYDIS_MNEMONIC_SYSENTER:
      return S::kVirtualized;
    // Not sensitive, but the monitor runs them: no 64-bit encoding (BCD, BOUND, PUSHA, ...;
    // 0x63 ARPL is MOVSXD there), ENTER and XLAT (implicit stack/DS forms), MASKMOVQ/DQU
    // outside their inline shape, and the ones that raise #UD here (SYSCALL/SYSRET on an
    // Intel CPU outside 64-bit mode, UD0-2, RSM outside SMM).
    case ZYDIS_MNEMONIC_ARPL:
    case ZYDIS_MNEMONIC_SYSCALL:
    case ZYDIS_MNEMONIC_SYSRET:
    case ZYDIS_MNEMONIC_UD0:
    case ZYDIS_MNEMONIC_UD1:
    case ZYDIS_MNEMONIC_UD2:
    case ZYDIS_MNEMONIC_DAA:
    case ZYDIS_MNEMONIC_DAS:
    case ZYDIS_MNEMONIC_AAA:
    case ZYDIS_MNEMONIC_AAS:
    case ZYDIS_MNEMONIC_AAM:
    case ZYDIS_MNEMONIC_AAD:
    case ZYDIS_MNEMONIC_SALC:
    case ZYDIS_MNEMONIC_BOUND:
    case ZYDIS_MNEMONIC_ENTER:
    case ZYDIS_MNEMONIC_PUSHA:
    case ZYDIS_MNEMONIC_POPA:
    case ZYDIS_MNEMONIC_PUSHAD:
    case ZYDIS_MNEMONIC_POPAD:
    case ZYDIS_MNEMONIC_RSM:
    case ZYDIS_MNEMONIC_XLAT:
    case ZYDIS_MNEMONIC_MASKMOVQ:
    case ZYDIS_MNEMONIC_MASKMOVDQU:
      return S::kEmulated;
    default:
      return S::kNone;
  }
}

/// JCXZ and LOOPcc count in CX with a 16-bit address size (Intel SDM Vol. 2A LOOPcc, JCXZ); an
/// address-size prefix on any other branch changes nothing (it has no memory operand).
bool counts_with_cx(const ZydisDecodedInstruction& in) {
  switch (in.mnemonic) {
    case ZYDIS_MNEMONIC_JCXZ:
    case ZYDIS_MNEMONIC_LOOP:
    case ZYDIS_MNEMONIC_LOOPE:
    case ZYDIS_MNEMONIC_LOOPNE:
      return true;
    default:
      return false;
  }
}

bool restricted_segment(uint32_t key_flags, unsigned seg) {
  return key_flags & (1u << (tb_flags::kRestrictedShift + seg));
}

/// MASKMOVQ / MASKMOVDQU (Intel SDM Vol. 2B) store through an implicit DS:EDI. Inline when DS is
/// flat and checks nothing, the address size is 32 and no prefix but 66h (MASKMOVDQU's) or a
/// DS override precedes it.
bool inline_maskmov(const GuestInsn& in, uint32_t key_flags) {
  if (in.d.mnemonic != ZYDIS_MNEMONIC_MASKMOVQ && in.d.mnemonic != ZYDIS_MNEMONIC_MASKMOVDQU) {
    return false;
  }
  if (in.d.address_width != 32 || !(key_flags & tb_flags::kFlatData) ||
      restricted_segment(key_flags, kDs)) {
    return false;
  }
  for (unsigned i = 0; i < in.d.raw.prefix_count; ++i) {
    if (in.bytes[i] != 0x66 && in.bytes[i] != 0x3e) return false;
  }
  return true;
}

/// A flat 32-bit stack: SS base 0, ESP (not SP) as the stack pointer.
bool flat_stack32(uint32_t key_flags) {
  return (key_flags & tb_flags::kFlatStack) && !(key_flags & tb_flags::kStack16);
}

/// PUSH Sreg with a 32-bit operand size on a flat stack that needs no checks.
bool inline_push_sreg(const GuestInsn& in, uint32_t key_flags) {
  return in.d.mnemonic == ZYDIS_MNEMONIC_PUSH && in.d.operand_width == 32 &&
         in.ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER &&
         ZydisRegisterGetClass(in.ops[0].reg.value) == ZYDIS_REGCLASS_SEGMENT &&
         flat_stack32(key_flags) && !restricted_segment(key_flags, kSs);
}

/// Whether `in` accesses memory through a segment that needs checks in this mode: the
/// restricted segments for 32-bit offsets, and for offsets that wrap at 64 KiB (16-bit
/// addressing, a 16-bit stack) only those that are not plain 64 KiB-or-more data segments.
bool uses_restricted_segment(const GuestInsn& in, uint32_t key_flags) {
  if (key_flags & tb_flags::kSegUnchecked) return false;
  uint32_t wrapped = 0, full = 0;
  segments_used_by_width(in.d, in.ops, key_flags & tb_flags::kStack16, &wrapped, &full);
  return (full & (key_flags >> tb_flags::kRestrictedShift) & 0x3f) ||
         (wrapped & (key_flags >> tb_flags::kRestricted16Shift) & 0x3f);
}

/// CLI/STI/PUSHFD/POPFD at CPL 0 on a flat, unchecked stack, outside single-instruction blocks:
/// they cannot fault there (Intel SDM Vol. 2), so they run inline on the virtual IF.
bool inline_cpl0_flags(const ZydisDecodedInstruction& d, uint32_t key_flags) {
  return (key_flags & tb_flags::kCpl0) && flat_stack32(key_flags) &&
         (d.mnemonic == ZYDIS_MNEMONIC_CLI || d.mnemonic == ZYDIS_MNEMONIC_STI ||
          d.mnemonic == ZYDIS_MNEMONIC_PUSHFD || d.mnemonic == ZYDIS_MNEMONIC_POPFD) &&
         !(key_flags & tb_flags::kSingleInstruction) && !restricted_segment(key_flags, kSs);
}

/// A store the adaptive translation may route through the monitor's RAM mapping: one explicit
/// ModRM memory operand written with an integer size.
bool table_store_candidate(const GuestInsn& in, bool fpu) {
  const ZydisDecodedOperand* mem = in.mem();
  return mem && (in.d.attributes & ZYDIS_ATTRIB_HAS_MODRM) &&
         (mem->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) && !fpu &&
         (mem->size == 8 || mem->size == 16 || mem->size == 32 || mem->size == 64);
}

/// BT, BTS, BTR, BTC with a register bit offset address the bit string beyond their operand
/// (Intel SDM Vol. 2A BT: the dword at EA + 4 * (offset DIV 32)): their access is not at the
/// operand's address.
bool bit_offset_beyond_operand(const GuestInsn& in) {
  const ZydisMnemonic m = in.d.mnemonic;
  return (m == ZYDIS_MNEMONIC_BT || m == ZYDIS_MNEMONIC_BTS || m == ZYDIS_MNEMONIC_BTR ||
          m == ZYDIS_MNEMONIC_BTC) &&
         in.ops[1].type == ZYDIS_OPERAND_TYPE_REGISTER;
}

/// An explicit ModRM memory operand an access probe may check (access_probes' rules): not one
/// whose access lies elsewhere (a BT-family bit string) or never happens (UD0/UD1 raise #UD).
bool probe_candidate(const GuestInsn& in, bool fpu) {
  const ZydisDecodedOperand* mem = in.mem();
  const ZydisDecodedInstruction& d = in.d;
  return mem && mem->mem.type == ZYDIS_MEMOP_TYPE_MEM && (d.attributes & ZYDIS_ATTRIB_HAS_MODRM) &&
         (mem->actions & (ZYDIS_OPERAND_ACTION_MASK_READ | ZYDIS_OPERAND_ACTION_MASK_WRITE)) &&
         !fpu && d.encoding == ZYDIS_INSTRUCTION_ENCODING_LEGACY &&
         d.meta.category != ZYDIS_CATEGORY_NOP && d.meta.category != ZYDIS_CATEGORY_PREFETCH &&
         d.meta.category != ZYDIS_CATEGORY_PREFETCHWT1 &&
         d.meta.category != ZYDIS_CATEGORY_WIDENOP && d.mnemonic != ZYDIS_MNEMONIC_NOP &&
         d.mnemonic != ZYDIS_MNEMONIC_CLFLUSH && d.mnemonic != ZYDIS_MNEMONIC_CLFLUSHOPT &&
         d.mnemonic != ZYDIS_MNEMONIC_CLWB && !bit_offset_beyond_operand(in) &&
         d.mnemonic != ZYDIS_MNEMONIC_UD0 && d.mnemonic != ZYDIS_MNEMONIC_UD1;
}

}  // namespace

const char* sensitivity_name(Sensitivity s) {
  switch (s) {
    case S::kNone:
      return "not sensitive";
    case S::kSensitiveUnprivileged:
      return "sensitive, unprivileged";
    case S::kIoplSensitive:
      return "IOPL-sensitive";
    case S::kPrivileged:
      return "privileged";
    case S::kVirtualized:
      return "virtualized (CPUID/TSC/SYSENTER)";
    case S::kEmulated:
      return "emulated (not sensitive)";
  }
  return "?";
}

Sensitivity sensitivity(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* ops) {
  const Sensitivity by_name = by_mnemonic(insn.mnemonic);
  if (by_name != S::kNone) return by_name;
  // Far CALL/JMP/RET (Robin & Irvine 12, 13, 15), and anything naming a segment register (MOV,
  // PUSH and POP Sreg: 11 and 17), a control, debug or test register (privileged).
  if (insn.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR) return S::kSensitiveUnprivileged;
  for (unsigned i = 0; i < insn.operand_count_visible; ++i) {
    if (ops[i].type != ZYDIS_OPERAND_TYPE_REGISTER) continue;
    switch (ZydisRegisterGetClass(ops[i].reg.value)) {
      case ZYDIS_REGCLASS_SEGMENT:
        return S::kSensitiveUnprivileged;
      case ZYDIS_REGCLASS_CONTROL:
      case ZYDIS_REGCLASS_DEBUG:
      case ZYDIS_REGCLASS_TEST:
        return S::kPrivileged;
      default:
        break;
    }
  }
  return S::kNone;
}

bool protected_mode_only(ZydisMnemonic m) {
  switch (m) {
    case ZYDIS_MNEMONIC_LAR:
    case ZYDIS_MNEMONIC_LSL:
    case ZYDIS_MNEMONIC_VERR:
    case ZYDIS_MNEMONIC_VERW:
    case ZYDIS_MNEMONIC_SLDT:
    case ZYDIS_MNEMONIC_STR:
    case ZYDIS_MNEMONIC_LLDT:
    case ZYDIS_MNEMONIC_LTR:
    case ZYDIS_MNEMONIC_ARPL:
      return true;
    default:
      return false;
  }
}

bool in_cpu_model(ZydisISAExt ext) {
  constexpr uint32_t edx = CpuModel::kFeaturesEdx;
  switch (ext) {
    case ZYDIS_ISA_EXT_BASE:
    case ZYDIS_ISA_EXT_PAUSE:  // F3 90: REP NOP before SSE2, so always executed
      return true;
    case ZYDIS_ISA_EXT_X87:
      return edx & (1u << 0);  // FPU
    case ZYDIS_ISA_EXT_CLFSH:
      return edx & (1u << 19);
    case ZYDIS_ISA_EXT_MMX:
      return edx & (1u << 23);
    case ZYDIS_ISA_EXT_SSE:
      return edx & (1u << 25);
    case ZYDIS_ISA_EXT_SSE2:
      return edx & (1u << 26);
    default:
      return false;
  }
}

bool model_executes(const ZydisDecodedInstruction& insn) {
  switch (insn.mnemonic) {
    case ZYDIS_MNEMONIC_TZCNT:
    case ZYDIS_MNEMONIC_LZCNT:
    case ZYDIS_MNEMONIC_ENDBR32:
    case ZYDIS_MNEMONIC_ENDBR64:
      return true;
    default:
      return in_cpu_model(insn.meta.isa_ext);
  }
}

bool falls_through(const ZydisDecodedInstruction& in) {
  if (in.meta.branch_type != ZYDIS_BRANCH_TYPE_NONE) return false;
  switch (in.mnemonic) {
    case ZYDIS_MNEMONIC_IRET:
    case ZYDIS_MNEMONIC_IRETD:
    case ZYDIS_MNEMONIC_INT:
    case ZYDIS_MNEMONIC_INT1:
    case ZYDIS_MNEMONIC_INT3:
    case ZYDIS_MNEMONIC_INTO:
    case ZYDIS_MNEMONIC_SYSENTER:
    case ZYDIS_MNEMONIC_SYSEXIT:
    case ZYDIS_MNEMONIC_SYSCALL:
    case ZYDIS_MNEMONIC_SYSRET:
    case ZYDIS_MNEMONIC_HLT:
    case ZYDIS_MNEMONIC_UD0:
    case ZYDIS_MNEMONIC_UD1:
    case ZYDIS_MNEMONIC_UD2:
    case ZYDIS_MNEMONIC_RSM:
      return false;
    default:
      return true;
  }
}

void choose_fast_path(CalloutSite& site) {
  const ZydisDecodedInstruction& d = site.insn.zi;
  const ZydisDecodedOperand* ops = site.insn.ops;
  switch (d.mnemonic) {
    case ZYDIS_MNEMONIC_CPUID:
      site.fast = CalloutSite::FastPath::kCpuid;
      return;
    case ZYDIS_MNEMONIC_INVLPG:
      site.fast = CalloutSite::FastPath::kInvlpg;
      return;
    case ZYDIS_MNEMONIC_SYSENTER:
    case ZYDIS_MNEMONIC_SYSEXIT:
      site.fast = CalloutSite::FastPath::kSystemCall;
      return;
    case ZYDIS_MNEMONIC_INT:
      if (site.insn.osize == 4) site.fast = CalloutSite::FastPath::kSoftwareInterrupt;
      return;
    case ZYDIS_MNEMONIC_INT3:
      site.fast = CalloutSite::FastPath::kSoftwareInterrupt;
      return;
    case ZYDIS_MNEMONIC_IRETD:
      site.fast = CalloutSite::FastPath::kIret;
      return;
    case ZYDIS_MNEMONIC_IN:
    case ZYDIS_MNEMONIC_OUT:
      break;
    default:
      return;
  }
  const bool out = d.mnemonic == ZYDIS_MNEMONIC_OUT;
  const ZydisDecodedOperand& port = out ? ops[0] : ops[1];
  const ZydisDecodedOperand& data = out ? ops[1] : ops[0];
  if (data.type != ZYDIS_OPERAND_TYPE_REGISTER) return;
  site.fast = CalloutSite::FastPath::kPortIo;
  site.io_write = out;
  site.access_size = static_cast<uint8_t>(data.size / 8);
  site.io_port = port.type == ZYDIS_OPERAND_TYPE_IMMEDIATE
                     ? static_cast<int32_t>(port.imm.value.u & 0xff)
                     : -1;
}

Shape decide(const GuestInsn& in, uint32_t key_flags, const CodeFetcher& fetcher, uint32_t linear) {
  const ZydisDecodedInstruction& d = in.d;
  const FpuClass fpu_kind = fpu_class(d);
  const bool fpu = fpu_kind != FpuClass::kNone;
  // CR0.TS/EM and CR4.OSFXSR make these fault (Intel SDM Vol. 3A Table 2-2, §13.1).
  const bool fpu_traps = (fpu && (key_flags & tb_flags::kFpuTrap)) ||
                         (fpu_kind == FpuClass::kSse && (key_flags & tb_flags::kSseOff));
  const bool direct_calls =
      (key_flags & tb_flags::kDirectCalls) && !(key_flags & tb_flags::kSingleInstruction);

  if (d.mnemonic == ZYDIS_MNEMONIC_ENDBR32 || d.mnemonic == ZYDIS_MNEMONIC_ENDBR64) {
    return Shape::kNop;
  }
  // RDTSC: the host's, exactly what the monitor's would give.
  if (d.mnemonic == ZYDIS_MNEMONIC_RDTSC && (key_flags & tb_flags::kHostTsc)) return Shape::kIdent;
  if (inline_cpl0_flags(d, key_flags)) return Shape::kCpl0Flags;
  if (inline_push_sreg(in, key_flags)) return Shape::kPushSreg;
  if (inline_maskmov(in, key_flags) && !fpu_traps) return Shape::kMaskmov;

  // The monitor's: sensitive instructions, those the CPU model does not execute or that fault
  // in this mode, ordinary instructions through a segment that needs checks (segment_checks.h),
  // and the string and CX-counting forms with 16-bit addressing, which the translator does not
  // emit. The monitor runs the sensitive and faulting ones in place, with
  // a direct call, where the instruction decodes for the system emulator; the rest leave the
  // block, for the dispatcher to run alone.
  const bool restricted = uses_restricted_segment(in, key_flags);
  const bool sensitive = sensitivity(d, in.ops) != Sensitivity::kNone;
  const bool unsupported = !in_cpu_model(d.meta.isa_ext) || fpu_traps;
  if (restricted || sensitive || unsupported ||
      (d.address_width == 16 &&
       (d.meta.category == ZYDIS_CATEGORY_STRINGOP || counts_with_cx(d)))) {
    const bool in_place = direct_calls && (sensitive || (!restricted && unsupported));
    const bool emulator_decodes =
        d.encoding == ZYDIS_INSTRUCTION_ENCODING_LEGACY && model_executes(d);
    return in_place && emulator_decodes ? Shape::kMonitorCall : Shape::kMonitorExit;
  }

  switch (d.meta.category) {
    case ZYDIS_CATEGORY_UNCOND_BR:
      return Shape::kJump;
    case ZYDIS_CATEGORY_CALL:
      return Shape::kCall;
    case ZYDIS_CATEGORY_RET:
      return Shape::kReturn;
    case ZYDIS_CATEGORY_COND_BR:
      return Shape::kCondBranch;
    default:
      break;
  }
  if (d.mnemonic == ZYDIS_MNEMONIC_PUSH || d.mnemonic == ZYDIS_MNEMONIC_POP ||
      d.mnemonic == ZYDIS_MNEMONIC_LEAVE) {
    return Shape::kStack;
  }
  if (d.meta.category == ZYDIS_CATEGORY_STRINGOP) {
    // Segment bases around string instructions: the monitor handles them.
    const bool fs_or_gs = in.has_prefix(0x64) || in.has_prefix(0x65);
    return fs_or_gs || !(key_flags & tb_flags::kFlatData) ? Shape::kMonitorExit : Shape::kString;
  }
  if (d.mnemonic == ZYDIS_MNEMONIC_LEA) return Shape::kLea;
  const ZydisDecodedOperand* mem = in.mem();
  const bool modrm = d.attributes & ZYDIS_ATTRIB_HAS_MODRM;
  if (mem && !modrm) return Shape::kMoffs;
  if ((d.mnemonic == ZYDIS_MNEMONIC_DIV || d.mnemonic == ZYDIS_MNEMONIC_IDIV) && direct_calls &&
      (in.ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER || mem)) {
    return Shape::kDivide;
  }
  if (direct_calls && table_store_candidate(in, fpu) && fetcher.writes_page_tables(linear)) {
    return Shape::kTableStore;
  }
  return mem ? Shape::kMemory : Shape::kIdent;
}

AccessProbes access_probes(const GuestInsn& in, Shape shape, uint32_t key_flags,
                           const CodeFetcher& fetcher, uint32_t linear) {
  using A = ProbedAccess::Address;
  AccessProbes p;
  if (!(key_flags & tb_flags::kDirectCalls) || (key_flags & tb_flags::kSingleInstruction) ||
      !(key_flags & tb_flags::kPaging)) {
    return p;
  }
  const ZydisDecodedInstruction& d = in.d;
  const bool flat_stack32 = (key_flags & tb_flags::kFlatStack) && !(key_flags & tb_flags::kStack16);
  const bool target_in_memory = in.ops[0].type == ZYDIS_OPERAND_TYPE_MEMORY;
  auto add = [&](A address, bool write) { p.access[p.count++] = ProbedAccess{address, write}; };
  switch (shape) {
    case Shape::kMemory:
      if (probe_candidate(in, fpu_class(d) != FpuClass::kNone)) {
        add(A::kOperand, in.mem()->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE);
      }
      break;
    case Shape::kMoffs:  // MOV AL/AX/EAX <-> moffs: A2/A3 store
      add(A::kOperand, in.primary_opcode() >= 0xa2);
      break;
    case Shape::kString: {
      const StringOperands s = string_operands(in.primary_opcode());
      if (s.source) add(A::kSource, false);
      if (s.destination) add(A::kDestination, s.writes_destination);
      p.rep = in.has_prefix(0xf3) || in.has_prefix(0xf2);
      break;
    }
    case Shape::kStack:
      if (!flat_stack32) break;
      if (d.mnemonic == ZYDIS_MNEMONIC_PUSH) {
        if (target_in_memory) add(A::kOperand, false);
        add(A::kPush, true);
      } else if (d.mnemonic == ZYDIS_MNEMONIC_POP && !target_in_memory) {
        add(A::kStackTop, false);
      }
      break;
    case Shape::kCall:
      if (!flat_stack32 || d.operand_width != 32) break;
      if (target_in_memory) add(A::kOperand, false);
      add(A::kPush, true);
      break;
    case Shape::kJump:
      if (target_in_memory) add(A::kOperand, false);
      break;
    case Shape::kReturn:
      if (flat_stack32 && d.operand_width == 32) add(A::kStackTop, false);
      break;
    default:
      break;
  }
  if (p.count && !fetcher.probes_access(linear)) p = AccessProbes{};
  return p;
}

StringOperands string_operands(uint8_t op) {
  StringOperands s;
  s.source = op == 0xa4 || op == 0xa5 || op == 0xa6 || op == 0xa7 || op == 0xac || op == 0xad;
  s.destination = op == 0xa4 || op == 0xa5 || op == 0xa6 || op == 0xa7 || op == 0xaa ||
                  op == 0xab || op == 0xae || op == 0xaf;                       // all but LODS
  s.writes_destination = op == 0xa4 || op == 0xa5 || op == 0xaa || op == 0xab;  // MOVS, STOS
  return s;
}

bool ends_block(Shape shape, const ZydisDecodedInstruction& insn) {
  switch (shape) {
    case Shape::kJump:
    case Shape::kCall:
    case Shape::kReturn:
    case Shape::kCondBranch:
    case Shape::kMonitorExit:
      return true;
    case Shape::kMonitorCall:
      return !falls_through(insn);
    default:
      return false;
  }
}

}  // namespace vmbt::bt::policy
