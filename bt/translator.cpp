// Translation of IA-32 guest blocks into x86-64 host code.
//
// Code shapes (docs/bt.md has the full table):
//   register-only instruction   copied unchanged (IDENT), except the encodings that mean something
//                               else in 64-bit mode (INC/DEC 0x40-0x4F, 0x82)
//   memory operand              lea r8d,[guest EA] (+ segment base); the instruction re-encoded
//                               with [r15 + r8] (the linear window)
//   push/pop/call/ret           explicit stores/loads through [r15 + esp]; ESP updated last
//   direct branch               patchable jmp/jcc rel32 to an exit stub, later to the next block
//   indirect branch / return    target in r9d; flag-free lookup in the space's indirect table
//   sensitive instruction       exit to the monitor (callout) with EIP at the instruction
// Nothing emitted here changes the host flags except the guest's own instructions, because the
// guest's arithmetic flags live in the host RFLAGS.
#include "bt/translator.h"

#include <Zydis/Zydis.h>
#include <asmjit/x86.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "bt/fpu_class.h"
#include "bt/guest_operands.h"
#include "bt/segment_checks.h"
#include "bt/system/system_emulator.h"
#include "vmm/error.h"

namespace vmbt::bt {

namespace x86 = asmjit::x86;

namespace {

const x86::Gp kGpr32[8] = {x86::eax, x86::ecx, x86::edx, x86::ebx,
                           x86::esp, x86::ebp, x86::esi, x86::edi};
const x86::Gp kGpr64[8] = {x86::rax, x86::rcx, x86::rdx, x86::rbx,
                           x86::rsp, x86::rbp, x86::rsi, x86::rdi};
const x86::Gp kGpr16[8] = {x86::ax, x86::cx, x86::dx, x86::bx, x86::sp, x86::bp, x86::si, x86::di};

x86::Mem ctx_field(size_t offset, unsigned size) {
  return x86::Mem(x86::r14, static_cast<int32_t>(offset), size);
}

bool is_high_byte(ZydisRegister r) {
  return r == ZYDIS_REGISTER_AH || r == ZYDIS_REGISTER_CH || r == ZYDIS_REGISTER_DH ||
         r == ZYDIS_REGISTER_BH;
}

/// Instructions the monitor executes (Intel SDM: privileged, or sensitive to CPL/IOPL/IF, or
/// touching state the host holds differently, such as segment selectors and descriptor tables),
/// plus the few unprivileged ones that do not exist in 64-bit mode (BCD, BOUND, ENTER).
bool needs_callout(const ZydisDecodedInstruction& in, const ZydisDecodedOperand* ops) {
  switch (in.mnemonic) {
    case ZYDIS_MNEMONIC_CLI:
    case ZYDIS_MNEMONIC_STI:
    case ZYDIS_MNEMONIC_PUSHF:
    case ZYDIS_MNEMONIC_PUSHFD:
    case ZYDIS_MNEMONIC_POPF:
    case ZYDIS_MNEMONIC_POPFD:
    case ZYDIS_MNEMONIC_IRET:
    case ZYDIS_MNEMONIC_IRETD:
    case ZYDIS_MNEMONIC_INT:
    case ZYDIS_MNEMONIC_INT3:
    case ZYDIS_MNEMONIC_INTO:
    case ZYDIS_MNEMONIC_INT1:
    case ZYDIS_MNEMONIC_IN:
    case ZYDIS_MNEMONIC_OUT:
    case ZYDIS_MNEMONIC_INSB:
    case ZYDIS_MNEMONIC_INSW:
    case ZYDIS_MNEMONIC_INSD:
    case ZYDIS_MNEMONIC_OUTSB:
    case ZYDIS_MNEMONIC_OUTSW:
    case ZYDIS_MNEMONIC_OUTSD:
    case ZYDIS_MNEMONIC_HLT:
    case ZYDIS_MNEMONIC_LGDT:
    case ZYDIS_MNEMONIC_LIDT:
    case ZYDIS_MNEMONIC_LLDT:
    case ZYDIS_MNEMONIC_LTR:
    case ZYDIS_MNEMONIC_SGDT:
    case ZYDIS_MNEMONIC_SIDT:
    case ZYDIS_MNEMONIC_SLDT:
    case ZYDIS_MNEMONIC_STR:
    case ZYDIS_MNEMONIC_SMSW:
    case ZYDIS_MNEMONIC_LMSW:
    case ZYDIS_MNEMONIC_LDS:
    case ZYDIS_MNEMONIC_LES:
    case ZYDIS_MNEMONIC_LFS:
    case ZYDIS_MNEMONIC_LGS:
    case ZYDIS_MNEMONIC_LSS:
    case ZYDIS_MNEMONIC_LAR:
    case ZYDIS_MNEMONIC_LSL:
    case ZYDIS_MNEMONIC_VERR:
    case ZYDIS_MNEMONIC_VERW:
    case ZYDIS_MNEMONIC_ARPL:
    case ZYDIS_MNEMONIC_CPUID:
    case ZYDIS_MNEMONIC_RDTSC:
    case ZYDIS_MNEMONIC_RDMSR:
    case ZYDIS_MNEMONIC_WRMSR:
    case ZYDIS_MNEMONIC_RDPMC:
    case ZYDIS_MNEMONIC_INVLPG:
    case ZYDIS_MNEMONIC_INVD:
    case ZYDIS_MNEMONIC_WBINVD:
    case ZYDIS_MNEMONIC_CLTS:
    case ZYDIS_MNEMONIC_SYSENTER:
    case ZYDIS_MNEMONIC_SYSEXIT:
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
    case ZYDIS_MNEMONIC_RSM:
    case ZYDIS_MNEMONIC_PUSHAD:
    case ZYDIS_MNEMONIC_POPAD:
    case ZYDIS_MNEMONIC_XLAT:
    case ZYDIS_MNEMONIC_MASKMOVQ:
    case ZYDIS_MNEMONIC_MASKMOVDQU:
      return true;
    default:
      break;
  }
  // Far transfers, and anything reading or writing a segment, control or debug register.
  if (in.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR) return true;
  for (unsigned i = 0; i < in.operand_count_visible; ++i) {
    if (ops[i].type != ZYDIS_OPERAND_TYPE_REGISTER) continue;
    ZydisRegisterClass c = ZydisRegisterGetClass(ops[i].reg.value);
    if (c == ZYDIS_REGCLASS_SEGMENT || c == ZYDIS_REGCLASS_CONTROL || c == ZYDIS_REGCLASS_DEBUG ||
        c == ZYDIS_REGCLASS_TEST) {
      return true;
    }
  }
  return false;
}

/// Whether a sensitive instruction, executed by the monitor, normally continues at the next
/// instruction (so the block can go on after a direct call) rather than transferring control.
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

/// The policy's fast paths (CalloutSite::FastPath): CPUID, and IN/OUT with a register operand
/// (not the string forms), whose common case needs only the registers and the I/O bus.
void choose_fast_path(CalloutSite& site) {
  const ZydisDecodedInstruction& d = site.insn.zi;
  const ZydisDecodedOperand* ops = site.insn.ops;
  if (d.mnemonic == ZYDIS_MNEMONIC_CPUID) {
    site.fast = CalloutSite::FastPath::kCpuid;
    return;
  }
  if (d.mnemonic == ZYDIS_MNEMONIC_INVLPG) {
    site.fast = CalloutSite::FastPath::kInvlpg;
    return;
  }
  if (d.mnemonic == ZYDIS_MNEMONIC_SYSENTER || d.mnemonic == ZYDIS_MNEMONIC_SYSEXIT) {
    site.fast = CalloutSite::FastPath::kSystemCall;
    return;
  }
  if ((d.mnemonic == ZYDIS_MNEMONIC_INT && site.insn.osize == 4) ||
      d.mnemonic == ZYDIS_MNEMONIC_INT3) {
    site.fast = CalloutSite::FastPath::kSoftwareInterrupt;
    return;
  }
  if (d.mnemonic == ZYDIS_MNEMONIC_IRETD) {
    site.fast = CalloutSite::FastPath::kIret;
    return;
  }
  if (d.mnemonic != ZYDIS_MNEMONIC_IN && d.mnemonic != ZYDIS_MNEMONIC_OUT) return;
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

/// ISA extensions of the vmbt CPU model (vmm/cpu_model.h); anything else is #UD.
bool isa_supported(const ZydisDecodedInstruction& in) {
  switch (in.meta.isa_ext) {
    case ZYDIS_ISA_EXT_BASE:
    case ZYDIS_ISA_EXT_X87:
    case ZYDIS_ISA_EXT_MMX:
    case ZYDIS_ISA_EXT_SSE:
    case ZYDIS_ISA_EXT_SSE2:
    case ZYDIS_ISA_EXT_CLFSH:
    case ZYDIS_ISA_EXT_PAUSE:
      return true;
    default:
      return false;
  }
}

bool uses_fpu(const ZydisDecodedInstruction& in) {
  return fpu_class(in) != FpuClass::kNone;
}

/// The host memory operand computing guest effective address [base + index * scale + disp]
/// (32-bit arithmetic once the result is written to a 32-bit register). Without a base register
/// the operand is forced absolute: asmjit would otherwise make it RIP-relative.
x86::Mem guest_ea(int base, int index, unsigned shift, int32_t disp) {
  if (base >= 0 && index >= 0) return x86::ptr(kGpr64[base], kGpr64[index], shift, disp);
  if (base >= 0) return x86::ptr(kGpr64[base], disp);
  x86::Mem m = x86::ptr(static_cast<uint64_t>(static_cast<uint32_t>(disp)), kGpr64[index], shift);
  m.setAddrType(x86::Mem::AddrType::kAbs);
  return m;
}

unsigned scale_shift(uint8_t scale) {
  return scale == 8 ? 3 : scale == 4 ? 2 : scale == 2 ? 1 : 0;
}

/// One decoded guest instruction.
struct Insn {
  uint32_t eip = 0;
  uint32_t next = 0;
  uint8_t bytes[ZYDIS_MAX_INSTRUCTION_LENGTH] = {};
  ZydisDecodedInstruction d{};
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT]{};

  /// The explicit memory operand (not LEA's address generation), or nullptr.
  const ZydisDecodedOperand* mem() const {
    for (unsigned i = 0; i < d.operand_count_visible; ++i) {
      if (ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY && ops[i].mem.type == ZYDIS_MEMOP_TYPE_MEM) {
        return &ops[i];
      }
    }
    return nullptr;
  }
  uint8_t primary_opcode() const { return bytes[d.raw.prefix_count]; }
  bool has_prefix(uint8_t p) const {
    for (unsigned i = 0; i < d.raw.prefix_count; ++i) {
      if (bytes[i] == p) return true;
    }
    return false;
  }
};

}  // namespace

struct Translator::Impl {
  CodeCache& cache;
  const Stubs& stubs;
  CodeFetcher& fetcher;
  BtContext& ctx;
  TranslatorStats& stats;
  ZydisDecoder decoder{};
  std::vector<uint32_t> breakpoints;  ///< sorted linear addresses (Translator::set_breakpoints)

  bool breakpoint_at(uint32_t linear, uint32_t key_flags) const {
    return !breakpoints.empty() && !(key_flags & tb_flags::kNoBreakpoints) &&
           std::binary_search(breakpoints.begin(), breakpoints.end(), linear);
  }

  Impl(CodeCache& c, const Stubs& s, CodeFetcher& f, BtContext& x, TranslatorStats& st)
      : cache(c), stubs(s), fetcher(f), ctx(x), stats(st) {
    ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
  }
};

namespace {

/// Per-block emission state.
class BlockEmitter {
 public:
  BlockEmitter(x86::Assembler& a, TranslationBlock& tb, const Stubs& stubs, uint32_t key_flags)
      : a_(a), tb_(tb), stubs_(stubs), key_flags_(key_flags) {}

  x86::Assembler& a() { return a_; }
  uint32_t key_flags() const { return key_flags_; }

  /// Starts the host code of one guest instruction (for fault attribution).
  void begin_insn(uint32_t eip) {
    tb_.insns.push_back({static_cast<uint32_t>(a_.offset()), eip, {}});
  }
  InsnFixup& fixup() { return tb_.insns.back().fixup; }

  /// Computes the guest linear address of memory operand `m` into r8d (flag-free).
  /// `extra` is added to the effective address (POP [ESP+x] sees ESP after the pop).
  void address(const ZydisDecodedOperand& m, unsigned address_width, int32_t extra = 0) {
    int base = gpr_index(m.mem.base);
    int index = gpr_index(m.mem.index);
    int64_t disp = (m.mem.disp.has_displacement ? m.mem.disp.value : 0) + extra;
    int32_t disp32 = static_cast<int32_t>(static_cast<uint32_t>(disp));
    if (base < 0 && index < 0) {
      a_.mov(x86::r8d, static_cast<uint32_t>(disp32));
    } else {
      a_.lea(x86::r8d, guest_ea(base, index, scale_shift(m.mem.scale), disp32));
    }
    if (address_width == 16) a_.movzx(x86::r8d, x86::r8w);  // 16-bit addressing wraps at 64K
    add_segment_base(operand_segment(m), x86::r8);
  }

  /// Adds the base of segment `seg` to `reg` (32-bit wrap) unless it is known to be zero.
  void add_segment_base(int seg, const x86::Gp& reg) {
    if (seg == 1 && tb_.cs_base == 0) return;  // CS: the block's code segment base is known
    if (seg == 2 && (key_flags_ & tb_flags::kFlatStack)) return;
    if ((seg == 0 || seg == 3) && (key_flags_ & tb_flags::kFlatData)) return;
    a_.mov(x86::r9d, ctx_field(offsetof(BtContext, seg_base) + 4 * seg, 4));
    a_.lea(reg.r32(), x86::ptr(reg.r64(), x86::r9));
  }

  /// [r15 + r8]: the window access for the address computed by address().
  static x86::Mem window(unsigned size) { return x86::ptr(x86::r15, x86::r8, 0, 0, size); }
  /// [r15 + rsp + disp]: the guest stack top in the window (flat SS).
  static x86::Mem stack(unsigned size, int32_t disp = 0) {
    return x86::ptr(x86::rsp, x86::r15, 0, disp, size);
  }

  /// A direct exit to `target` through a patchable jmp rel32 (or jcc rel32 when `cc` >= 0).
  /// With paging, a target on another linear page goes through the indirect-branch table
  /// instead: another address space may map that page to other code, and the table (one per
  /// space, kept coherent by the shadow MMU) is checked where a chain would not be.
  void direct_exit(uint32_t target, int cc = -1) {
    // A target in the last bytes of the page likely starts a block that crosses into the next
    // page, which a chain cannot vouch for either.
    bool other_page = ((tb_.cs_base + target) >> 12) != ((tb_.cs_base + tb_.eip) >> 12) ||
                      ((tb_.cs_base + target) & 0xfff) > 0x1000 - 16;
    if ((key_flags_ & tb_flags::kPaging) && other_page &&
        !(key_flags_ & tb_flags::kSingleInstruction)) {
      asmjit::Label skip = a_.newLabel();
      if (cc >= 0) a_.j(static_cast<x86::CondCode>(cc ^ 1), skip);  // the inverse condition
      a_.mov(x86::r9d, target);
      indirect_exit();
      a_.bind(skip);
      return;
    }
    unsigned index = tb_.exit_count++;
    if (cc >= 0) {
      a_.embedUInt8(0x0f);
      a_.embedUInt8(static_cast<uint8_t>(0x80 | cc));
    } else {
      a_.embedUInt8(0xe9);
    }
    tb_.exits[index].target_eip = target;
    tb_.exits[index].rel32_offset = static_cast<uint32_t>(a_.offset());
    a_.embedUInt32(0);
    exit_labels_[index] = a_.newLabel();
  }

  /// An indirect exit: the guest target EIP is in r9d. The table is read through the context at
  /// every exit, so a kick (BtEngine::kick) stops every indirect exit at once by pointing the
  /// context at a table whose every slot leaves for the dispatcher.
  void indirect_exit() {
    const auto leave = asmjit::imm(reinterpret_cast<uint64_t>(stubs_.indirect_exit));
    if (key_flags_ & tb_flags::kSingleInstruction) {
      // A single-instruction block returns to the monitor after its one instruction (TF
      // single-stepping, stores the monitor re-runs alone): no table lookup into the next block.
      a_.jmp(leave);
      return;
    }
    const auto lookup_start = static_cast<uint32_t>(a_.offset());
    a_.movzx(x86::r10d, x86::r9w);
    a_.mov(x86::r11, ctx_field(offsetof(BtContext, indirect_table), 8));
    a_.jmp(x86::ptr(x86::r11, x86::r10, 3, 0, 8));
    tb_.table_exits.push_back({lookup_start, static_cast<uint32_t>(a_.offset())});
  }

  /// With guest RCX in r10 and a value in ECX: falls through when the value is zero and jumps to
  /// `nonzero` otherwise, guest RCX back in place on both paths. JRCXZ tests without touching
  /// the flags, which hold the guest's; the moves cost nothing (register renaming), where the
  /// XCHG it replaces cost three micro-ops each. `zero_path_align` (bytes, 0 = none) starts the
  /// zero path on that boundary (a block's indirect entry).
  void unless_ecx_zero(const asmjit::Operand_& nonzero, uint32_t zero_path_align = 0) {
    asmjit::Label zero = a_.newLabel();
    a_.jecxz(x86::rcx, zero);
    a_.mov(x86::rcx, x86::r10);
    a_.emit(x86::Inst::kIdJmp, nonzero);
    if (zero_path_align) a_.align(asmjit::AlignMode::kCode, zero_path_align);
    a_.bind(zero);
    a_.mov(x86::rcx, x86::r10);
  }

  /// Jumps to the common exit stub (the context's eip and exit_kind already set).
  void jump_to_exit() { a_.jmp(asmjit::imm(reinterpret_cast<uint64_t>(stubs_.exit))); }

  /// Calls the monitor for `site` in place (Stubs::direct_call); the code after this goes on
  /// where the monitor returns for a site that falls through.
  void direct_call(CalloutSite* site) {
    asmjit::Label resume = a_.newLabel();
    a_.mov(x86::r10, reinterpret_cast<uint64_t>(site));
    a_.lea(x86::r11, x86::ptr(resume));
    a_.jmp(asmjit::imm(reinterpret_cast<uint64_t>(stubs_.direct_call)));
    a_.bind(resume);
  }

  /// Ends the block with a callout for the instruction at `eip`.
  void callout_exit(uint32_t eip) { exit_to_monitor(eip, ExitKind::kCallout); }

  /// Leaves for the dispatcher at `eip` with `kind`, the instruction there not run.
  void exit_to_monitor(uint32_t eip, ExitKind kind) {
    a_.mov(ctx_field(offsetof(BtContext, eip), 4), eip);
    a_.mov(ctx_field(offsetof(BtContext, exit_kind), 4), static_cast<uint32_t>(kind));
    a_.jmp(asmjit::imm(reinterpret_cast<uint64_t>(stubs_.exit)));
  }

  /// Emits the out-of-line stubs of the exits; call once after the last instruction.
  void emit_stubs() {
    for (unsigned i = 0; i < tb_.exit_count; ++i) {
      a_.bind(exit_labels_[i]);
      a_.mov(ctx_field(offsetof(BtContext, eip), 4), tb_.exits[i].target_eip);
      a_.mov(ctx_field(offsetof(BtContext, exit_slot), 4), i);
      a_.mov(x86::r10, reinterpret_cast<uint64_t>(&tb_));
      a_.mov(ctx_field(offsetof(BtContext, exit_tb), 8), x86::r10);
      a_.mov(ctx_field(offsetof(BtContext, exit_kind), 4),
             static_cast<uint32_t>(ExitKind::kBranch));
      a_.jmp(asmjit::imm(reinterpret_cast<uint64_t>(stubs_.exit)));
    }
  }

  /// After the code is placed: the stub offsets for the exits (to patch and to unlink).
  void resolve(asmjit::CodeHolder& code) {
    for (unsigned i = 0; i < tb_.exit_count; ++i) {
      tb_.exits[i].stub_offset = static_cast<uint32_t>(code.labelOffset(exit_labels_[i]));
    }
  }

 private:
  x86::Assembler& a_;
  TranslationBlock& tb_;
  const Stubs& stubs_;
  uint32_t key_flags_;
  asmjit::Label exit_labels_[2];
};

/// Outcome of translating one instruction.
enum class Step { kContinue, kEndBlock, kCallout };

/// Removes the F3 prefix of an instruction and decodes it again (keeping its guest length, so
/// EIP arithmetic still covers the prefix byte).
void strip_rep_prefix(Insn& in, const ZydisDecoder& decoder) {
  uint8_t bytes[ZYDIS_MAX_INSTRUCTION_LENGTH] = {};
  unsigned n = 0;
  for (unsigned i = 0; i < in.d.length; ++i) {
    if (i < in.d.raw.prefix_count && in.bytes[i] == 0xf3) continue;
    bytes[n++] = in.bytes[i];
  }
  Insn out;
  std::memcpy(out.bytes, bytes, sizeof bytes);
  if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, out.bytes, n, &out.d, out.ops))) return;
  out.eip = in.eip;
  out.next = in.next;
  in = out;
}

/// Copies a register-only instruction, fixing the encodings that differ in 64-bit mode.
void emit_ident(BlockEmitter& e, const Insn& in) {
  std::vector<uint8_t> out;
  unsigned p = in.d.raw.prefix_count;
  for (unsigned i = 0; i < p; ++i) {
    uint8_t b = in.bytes[i];
    // Segment and address-size prefixes do nothing to a register-only instruction in 32-bit code
    // but FS/GS would pick host bases here: drop them all.
    if (b == 0x2e || b == 0x36 || b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65 || b == 0x67) {
      continue;
    }
    out.push_back(b);
  }
  uint8_t op = in.bytes[p];
  if (op >= 0x40 && op <= 0x4f) {
    // INC/DEC r32 (0x40-0x4F are REX prefixes in 64-bit mode): FF /0 or FF /1, mod=11.
    out.push_back(0xff);
    out.push_back(static_cast<uint8_t>(0xc0 | ((op & 8) ? 0x08 : 0x00) | (op & 7)));
  } else {
    out.insert(out.end(), in.bytes + p, in.bytes + in.d.length);
    if (op == 0x82) out[out.size() - (in.d.length - p)] = 0x80;  // 0x82 is invalid in 64-bit mode
  }
  e.a().embed(out.data(), out.size());
}

/// Re-encodes an instruction with one explicit memory operand to address [r15 + r8].
void emit_rewritten_mem(BlockEmitter& e, const Insn& in, bool address_computed = false) {
  const ZydisDecodedOperand* m = in.mem();
  if (!address_computed) e.address(*m, in.d.address_width);

  // A high-byte register operand (AH..BH) cannot be encoded next to a REX prefix: the
  // instruction uses R9B instead, loaded from the byte (RORX leaves the flags alone) and, if the
  // instruction writes it, put back afterwards. The guest register is untouched until the
  // instruction has completed, so a fault in it needs no fixup.
  int high = -1;
  bool high_written = false;
  for (unsigned i = 0; i < in.d.operand_count_visible; ++i) {
    if (in.ops[i].type == ZYDIS_OPERAND_TYPE_REGISTER && is_high_byte(in.ops[i].reg.value)) {
      high = gpr_index(in.ops[i].reg.value);
      high_written = in.ops[i].actions & ZYDIS_OPERAND_ACTION_MASK_WRITE;
    }
  }
  if (high >= 0) e.a().rorx(x86::r9d, kGpr32[high], 8);

  std::vector<uint8_t> out;
  unsigned p = in.d.raw.prefix_count;
  for (unsigned i = 0; i < p; ++i) {
    uint8_t b = in.bytes[i];
    if (b == 0x2e || b == 0x36 || b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65 || b == 0x67) {
      continue;
    }
    out.push_back(b);
  }
  // REX.X (index r8) + REX.B (base r15); W=0 keeps the operand size, R=0 the guest register,
  // except for a high-byte operand, which becomes R9B (R=1, reg=1).
  out.push_back(high >= 0 ? 0x47 : 0x43);
  unsigned modrm_at = in.d.raw.modrm.offset;
  size_t opcode_at = out.size();
  out.insert(out.end(), in.bytes + p, in.bytes + modrm_at);
  if (out[opcode_at] == 0x82) out[opcode_at] = 0x80;  // 0x82 is invalid in 64-bit mode
  uint8_t reg = (in.bytes[modrm_at] >> 3) & 7;
  if (high >= 0) reg = 1;
  out.push_back(static_cast<uint8_t>((reg << 3) | 4));  // mod=00, rm=100: SIB follows
  out.push_back(0x07);                                  // scale 1, index r8, base r15
  unsigned tail = modrm_at + 1 + (in.d.raw.sib.offset ? 1 : 0) + in.d.raw.disp.size / 8;
  out.insert(out.end(), in.bytes + tail, in.bytes + in.d.length);
  e.a().embed(out.data(), out.size());
  if (high >= 0 && high_written) {
    e.a().rorx(kGpr32[high], kGpr32[high], 8);
    e.a().mov(x86::Gp(x86::gpb_lo(static_cast<uint32_t>(high))), x86::r9b);
    e.a().rorx(kGpr32[high], kGpr32[high], 24);
  }
}

/// MOV between AL/AX/EAX and an absolute offset (opcodes A0-A3, no ModRM).
void emit_moffs(BlockEmitter& e, const Insn& in) {
  uint8_t op = in.primary_opcode();
  if (op < 0xa0 || op > 0xa3) {
    throw Error(fmt::format("bt: unexpected memory form without ModRM at EIP {:#x}", in.eip));
  }
  e.address(*in.mem(), in.d.address_width);
  unsigned size = (op & 1) ? in.d.operand_width / 8 : 1;
  x86::Gp reg = size == 1 ? x86::Gp(x86::al) : size == 2 ? x86::Gp(x86::ax) : x86::Gp(x86::eax);
  if (op <= 0xa1) {
    e.a().mov(reg, BlockEmitter::window(size));
  } else {
    e.a().mov(BlockEmitter::window(size), reg);
  }
}

/// x87 instructions that do not update the last-instruction pointers FIP/FDP/FOP (Intel SDM Vol. 1
/// §8.1.8: the control instructions).
bool x87_control(ZydisMnemonic m) {
  switch (m) {
    case ZYDIS_MNEMONIC_FNINIT:
    case ZYDIS_MNEMONIC_FNCLEX:
    case ZYDIS_MNEMONIC_FLDCW:
    case ZYDIS_MNEMONIC_FNSTCW:
    case ZYDIS_MNEMONIC_FNSTSW:
    case ZYDIS_MNEMONIC_FNSTENV:
    case ZYDIS_MNEMONIC_FLDENV:
    case ZYDIS_MNEMONIC_FNSAVE:
    case ZYDIS_MNEMONIC_FRSTOR:
    case ZYDIS_MNEMONIC_FWAIT:
      return true;
    default:
      return false;
  }
}

/// After FNSTENV/FNSAVE/FXSAVE stored the host's x87 pointers (host addresses), writes the
/// guest's FIP/FCS/FDP/FDS into the stored image at [r15 + r8] (32-bit formats, Intel SDM Vol. 1
/// Figure 8-10 and Vol. 2A FXSAVE Table 3-53).
void patch_x87_pointers(BlockEmitter& e, const Insn& in) {
  if (in.d.operand_width == 16) return;  // the 14/94-byte 16-bit formats: left as the host wrote
  bool fx = in.d.mnemonic == ZYDIS_MNEMONIC_FXSAVE;
  int32_t ip = fx ? 8 : 12, cs = fx ? 12 : 16, dp = fx ? 16 : 20, ds = fx ? 20 : 24;
  x86::Assembler& a = e.a();
  a.mov(x86::r9d, ctx_field(offsetof(BtContext, fpu_ip), 4));
  a.mov(x86::ptr(x86::r15, x86::r8, 0, ip, 4), x86::r9d);
  a.mov(x86::r9w, ctx_field(offsetof(BtContext, seg_sel) + 2 * kCs, 2));
  a.mov(x86::ptr(x86::r15, x86::r8, 0, cs, 2), x86::r9w);
  a.mov(x86::r9d, ctx_field(offsetof(BtContext, fpu_dp), 4));
  a.mov(x86::ptr(x86::r15, x86::r8, 0, dp, 4), x86::r9d);
  a.mov(x86::r9w, ctx_field(offsetof(BtContext, seg_sel) + 2 * kDs, 2));
  a.mov(x86::ptr(x86::r15, x86::r8, 0, ds, 2), x86::r9w);
}

/// Emits `bytes`, a host instruction that uses ESI and/or EDI implicitly (string instructions,
/// MASKMOVQ), with them made window pointers around it: a 64-bit host instruction addresses
/// through RSI/RDI, which must point into the guest's window, never below it. A host fault in
/// it is reported with ESI/EDI back to the guest's offsets (the bias fixup).
void emit_with_biased_pointers(BlockEmitter& e, const Insn& in, bool si, bool di,
                               const std::vector<uint8_t>& bytes) {
  x86::Assembler& a = e.a();
  if (si) a.lea(x86::rsi, x86::ptr(x86::r15, x86::rsi));
  if (di) a.lea(x86::rdi, x86::ptr(x86::r15, x86::rdi));
  e.begin_insn(in.eip);  // the fault-prone part, with the bias fixup
  e.fixup().si_biased = si;
  e.fixup().di_biased = di;
  a.embed(bytes.data(), bytes.size());
  // Back to guest offsets: r13 holds minus the window base; LEA leaves the flags alone.
  if (si) a.lea(x86::esi, x86::ptr(x86::rsi, x86::r13));
  if (di) a.lea(x86::edi, x86::ptr(x86::rdi, x86::r13));
}

/// MASKMOVQ / MASKMOVDQU (Intel SDM Vol. 2B) store through an implicit DS:EDI. Inline when DS is
/// flat and checks nothing, the address size is 32 and no prefix but 66h (MASKMOVDQU's) or a
/// DS override precedes it: EDI becomes its window pointer around the instruction, as around a
/// string instruction (a host fault in it is reported with EDI back to the guest's), so the
/// 64-bit host instruction stores into the guest's window and nowhere else.
bool is_inline_maskmov(const Insn& in, uint32_t key_flags) {
  if (in.d.mnemonic != ZYDIS_MNEMONIC_MASKMOVQ && in.d.mnemonic != ZYDIS_MNEMONIC_MASKMOVDQU) {
    return false;
  }
  if (in.d.address_width != 32 || !(key_flags & tb_flags::kFlatData) ||
      (key_flags & (1u << (tb_flags::kRestrictedShift + kDs)))) {
    return false;
  }
  for (unsigned i = 0; i < in.d.raw.prefix_count; ++i) {
    if (in.bytes[i] != 0x66 && in.bytes[i] != 0x3e) return false;
  }
  return true;
}

void translate_maskmov(BlockEmitter& e, const Insn& in) {
  std::vector<uint8_t> out;
  for (unsigned i = 0; i < in.d.length; ++i) {
    if (i < in.d.raw.prefix_count && in.bytes[i] == 0x3e) continue;  // DS: no segments in 64-bit
    out.push_back(in.bytes[i]);
  }
  emit_with_biased_pointers(e, in, false, true, out);
}

/// PUSH Sreg with a 32-bit operand size on a flat stack, inline: ESP decreases by 4 and the
/// selector (the context's copy) is written with a 16-bit move, as recent processors and the
/// system emulator do (Intel SDM Vol. 2B PUSH). A fault on the store leaves ESP unchanged.
bool is_inline_push_sreg(const Insn& in, uint32_t key_flags) {
  return in.d.mnemonic == ZYDIS_MNEMONIC_PUSH && in.d.operand_width == 32 &&
         in.ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER &&
         ZydisRegisterGetClass(in.ops[0].reg.value) == ZYDIS_REGCLASS_SEGMENT &&
         (key_flags & tb_flags::kFlatStack) &&
         !(key_flags & (1u << (tb_flags::kRestrictedShift + kSs)));
}

void translate_push_sreg(BlockEmitter& e, const Insn& in) {
  x86::Assembler& a = e.a();
  const int seg = segment_index(in.ops[0].reg.value);
  a.mov(x86::r9w, ctx_field(offsetof(BtContext, seg_sel) + 2 * seg, 2));
  a.lea(x86::r8d, x86::ptr(x86::rsp, -4));
  a.mov(BlockEmitter::window(2), x86::r9w);
  a.mov(x86::esp, x86::r8d);
}

/// CLI/STI/PUSHFD at CPL0 without a callout: IF is the context's `vif` byte, the other virtual
/// flags are `vflags`; nothing here changes the guest's arithmetic flags.
Step translate_cpl0_flags(BlockEmitter& e, const Insn& in) {
  x86::Assembler& a = e.a();
  switch (in.d.mnemonic) {
    case ZYDIS_MNEMONIC_CLI:
      a.mov(ctx_field(offsetof(BtContext, vif), 1), 0);
      return Step::kContinue;
    case ZYDIS_MNEMONIC_STI: {
      // IF=1; if an interrupt is already waiting, leave for the monitor, which takes it after
      // the next instruction (the STI shadow, SDM Vol. 3A §6.8.3). No flags are touched.
      asmjit::Label none = a.newLabel();
      asmjit::Label pending = a.newLabel();
      a.mov(ctx_field(offsetof(BtContext, vif), 1), 1);
      a.mov(x86::r10, x86::rcx);
      a.movzx(x86::ecx, ctx_field(offsetof(BtContext, irq_pending), 1));
      e.unless_ecx_zero(pending);
      a.jmp(none);
      a.bind(pending);
      a.mov(ctx_field(offsetof(BtContext, eip), 4), in.next);
      a.mov(ctx_field(offsetof(BtContext, exit_kind), 4),
            static_cast<uint32_t>(ExitKind::kIrqWindow));
      e.jump_to_exit();
      a.bind(none);
      return Step::kContinue;
    }
    case ZYDIS_MNEMONIC_PUSHFD: {
      // The image: the host's arithmetic flags and DF, the virtual rest; VM and RF read as 0
      // (SDM Vol. 2B PUSHF). The host flags are read and put back on a scratch stack; the store
      // comes last, with the guest's registers and flags intact, so a fault in it is precise.
      constexpr uint32_t kHostBits = 0x0cd5;  // CF PF AF ZF SF DF OF
      a.mov(x86::r10, x86::rsp);
      a.lea(x86::rsp, ctx_field(offsetof(BtContext, scratch_stack) + 32, 8));
      a.pushfq();
      a.mov(x86::r11, x86::ptr(x86::rsp, 0, 8));
      a.mov(x86::r9, x86::r11);
      a.and_(x86::r9d, kHostBits);
      a.or_(x86::r9d, ctx_field(offsetof(BtContext, vflags), 4));
      a.movzx(x86::r8d, ctx_field(offsetof(BtContext, vif), 1));
      a.shl(x86::r8d, 9);
      a.or_(x86::r9d, x86::r8d);
      a.and_(x86::r9d, ~((1u << 17) | (1u << 16)));
      a.or_(x86::r9d, 2);
      a.push(x86::r11);
      a.popfq();
      a.mov(x86::rsp, x86::r10);
      a.lea(x86::r8d, x86::ptr(x86::rsp, -4));
      a.mov(BlockEmitter::window(4), x86::r9d);
      a.mov(x86::esp, x86::r8d);
      return Step::kContinue;
    }
    case ZYDIS_MNEMONIC_POPFD: {
      // POPFD at CPL0 (SDM Vol. 2B POPF: EFLAGS <- image AND 257FD5H, VM/VIF/VIP kept): the
      // arithmetic flags and DF go to the host flags, IF to `vif`. An image that would change
      // TF, IOPL, NT, RF, AC or ID leaves for the monitor with the flags untouched. Only the load
      // can fault, before anything changed (precise).
      constexpr uint32_t kVirtualBits = 0x257fd5u & ~(0x0cd5u | (1u << 9));
      constexpr uint32_t kHostBits = 0x0cd5;  // CF PF AF ZF SF DF OF
      asmjit::Label slow = a.newLabel(), done = a.newLabel(), window = a.newLabel();
      const x86::Mem saved_flags = ctx_field(offsetof(BtContext, scratch_stack) + 24, 8);
      a.mov(x86::r9d, BlockEmitter::stack(4));  // the image (a #PF here changes nothing)
      a.mov(x86::r10, x86::rsp);
      a.lea(x86::rsp, ctx_field(offsetof(BtContext, scratch_stack) + 32, 8));
      a.pushfq();  // the guest's flags, for the slow path
      a.mov(x86::rsp, x86::r10);
      a.mov(x86::r10d, x86::r9d);
      a.and_(x86::r10d, kVirtualBits);
      a.mov(x86::r11d, ctx_field(offsetof(BtContext, vflags), 4));
      a.and_(x86::r11d, kVirtualBits);
      a.cmp(x86::r10d, x86::r11d);
      a.jne(slow);
      a.bt(x86::r9d, 9);
      a.setc(ctx_field(offsetof(BtContext, vif), 1));
      a.lea(x86::esp, x86::ptr(x86::rsp, 4));
      // IF=1 with an interrupt waiting: the monitor delivers it before the next instruction
      // (POPF has no interrupt shadow). Decided before the flags are loaded.
      a.movzx(x86::r10d, ctx_field(offsetof(BtContext, vif), 1));
      a.movzx(x86::r11d, ctx_field(offsetof(BtContext, irq_pending), 1));
      a.and_(x86::r10d, x86::r11d);
      a.and_(x86::r9d, kHostBits);
      a.or_(x86::r9d, 2);
      a.mov(x86::qword_ptr(x86::r14, static_cast<int32_t>(offsetof(BtContext, scratch_stack) + 24)),
            x86::r9);
      a.test(x86::r10d, x86::r10d);
      a.jnz(window);
      a.mov(x86::r10, x86::rsp);
      a.lea(x86::rsp, saved_flags);
      a.popfq();
      a.mov(x86::rsp, x86::r10);
      a.jmp(done);
      a.bind(window);
      a.mov(x86::r10, x86::rsp);
      a.lea(x86::rsp, saved_flags);
      a.popfq();
      a.mov(x86::rsp, x86::r10);
      a.mov(ctx_field(offsetof(BtContext, eip), 4), in.next);
      a.mov(ctx_field(offsetof(BtContext, exit_kind), 4), static_cast<uint32_t>(ExitKind::kNone));
      e.jump_to_exit();
      a.bind(slow);  // the guest's flags back, then the monitor runs the POPFD
      a.mov(x86::r10, x86::rsp);
      a.lea(x86::rsp, saved_flags);
      a.popfq();
      a.mov(x86::rsp, x86::r10);
      e.callout_exit(in.eip);
      a.bind(done);
      return Step::kContinue;
    }
    default:
      return Step::kCallout;
  }
}

/// DIV/IDIV: a zero divisor raises #DE through a direct call to the monitor instead of a host
/// SIGFPE. The check loads the divisor and tests it with JRCXZ (no flags touched); a
/// memory divisor's address is left in r8d for the division itself (`address_in_r8`). Quotient
/// overflow still reaches the monitor through the host's #DE.
void emit_zero_divisor_check(BlockEmitter& e, const Insn& in, CalloutSite* raise,
                             bool* address_in_r8) {
  x86::Assembler& a = e.a();
  const ZydisDecodedOperand& op = in.ops[0];
  const unsigned size = op.size / 8;
  *address_in_r8 = false;
  if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    const int r = gpr_index(op.reg.value);
    if (is_high_byte(op.reg.value)) {
      a.rorx(x86::r11d, kGpr32[r], 8);
      a.movzx(x86::r11d, x86::r11b);
    } else if (size == 1) {
      a.movzx(x86::r11d, x86::Gp(x86::gpb_lo(static_cast<uint32_t>(r))));
    } else if (size == 2) {
      a.movzx(x86::r11d, kGpr16[r]);
    } else {
      a.mov(x86::r11d, kGpr32[r]);
    }
  } else {
    e.address(op, in.d.address_width);
    *address_in_r8 = true;
    if (size == 1) {
      a.movzx(x86::r11d, BlockEmitter::window(1));
    } else if (size == 2) {
      a.movzx(x86::r11d, BlockEmitter::window(2));
    } else {
      a.mov(x86::r11d, BlockEmitter::window(4));
    }
  }
  asmjit::Label nonzero = a.newLabel();
  a.mov(x86::r10, x86::rcx);
  a.mov(x86::ecx, x86::r11d);
  e.unless_ecx_zero(nonzero);
  e.direct_call(raise);  // never resumes here: the monitor goes on at the guest's #DE handler
  a.bind(nonzero);
}

/// CPUID answered from BtContext's table when the monitor answered the leaf before (Intel SDM
/// Vol. 2A CPUID: no fault in protected mode, no flags changed), else on to the direct call that
/// follows, which fills the slot. Flag-free: the slot index comes from MOVZX, BSWAP and LEA,
/// the tag test from JRCXZ. Jumps to `answered` on a hit.
void emit_inline_cpuid(BlockEmitter& e, asmjit::Label answered) {
  x86::Assembler& a = e.a();
  a.movzx(x86::r11d, x86::al);  // slot = EAX[7:0] + EAX[31:24] (BtContext::cpuid_slot)
  a.mov(x86::r8d, x86::eax);
  a.bswap(x86::r8d);
  a.movzx(x86::r8d, x86::r8b);
  a.lea(x86::r11d, x86::ptr(x86::r11, x86::r8));
  a.mov(x86::r8d, x86::ptr(x86::r14, x86::r11, 2, offsetof(BtContext, cpuid_tag), 4));
  a.lea(x86::r8d, x86::ptr(x86::r8, x86::rax));  // tag + EAX: zero when the slot holds EAX
  asmjit::Label miss = a.newLabel();
  a.mov(x86::r10, x86::rcx);
  a.mov(x86::ecx, x86::r8d);
  e.unless_ecx_zero(miss);
  a.lea(x86::r11d, x86::ptr(x86::r11, x86::r11));  // 16-byte answers: slot * 2 * 8
  const int32_t answer = offsetof(BtContext, cpuid_answer);
  a.mov(x86::eax, x86::ptr(x86::r14, x86::r11, 3, answer, 4));
  a.mov(x86::ebx, x86::ptr(x86::r14, x86::r11, 3, answer + 4, 4));
  a.mov(x86::ecx, x86::ptr(x86::r14, x86::r11, 3, answer + 8, 4));
  a.mov(x86::edx, x86::ptr(x86::r14, x86::r11, 3, answer + 12, 4));
  a.jmp(answered);
  a.bind(miss);
}

/// Loads a near branch target (register or memory operand) into r9d.
void load_branch_target(BlockEmitter& e, const Insn& in) {
  const ZydisDecodedOperand& op = in.ops[0];
  unsigned width = in.d.operand_width;
  if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    int r = gpr_index(op.reg.value);
    if (width == 16) {
      e.a().movzx(x86::r9d, kGpr16[r]);
    } else {
      e.a().mov(x86::r9d, kGpr32[r]);
    }
  } else {
    e.address(op, in.d.address_width);
    if (width == 16) {
      e.a().movzx(x86::r9d, BlockEmitter::window(2));
    } else {
      e.a().mov(x86::r9d, BlockEmitter::window(4));
    }
  }
}

/// Pushes a 32-bit immediate (a return address) on the guest stack.
void push_imm32(BlockEmitter& e, uint32_t value) {
  x86::Assembler& a = e.a();
  a.lea(x86::r8d, x86::ptr(x86::rsp, -4));
  a.mov(BlockEmitter::window(4), value);
  a.mov(x86::esp, x86::r8d);
}

Step translate_stack(BlockEmitter& e, const Insn& in) {
  x86::Assembler& a = e.a();
  unsigned w = in.d.operand_width / 8;  // 2 or 4 bytes
  const ZydisDecodedOperand& op = in.ops[0];
  switch (in.d.mnemonic) {
    case ZYDIS_MNEMONIC_PUSH: {
      // Read the source first (it may be memory relative to the old ESP), then store, then ESP.
      if (op.type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
        a.lea(x86::r8d, x86::ptr(x86::rsp, -static_cast<int32_t>(w)));
        if (w == 2) {
          a.mov(BlockEmitter::window(2), static_cast<uint32_t>(op.imm.value.u & 0xffff));
        } else {
          a.mov(BlockEmitter::window(4), static_cast<uint32_t>(op.imm.value.u));
        }
        a.mov(x86::esp, x86::r8d);
        return Step::kContinue;
      }
      if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
        int r = gpr_index(op.reg.value);
        a.lea(x86::r8d, x86::ptr(x86::rsp, -static_cast<int32_t>(w)));
        a.mov(BlockEmitter::window(w), w == 2 ? x86::Gp(kGpr16[r]) : x86::Gp(kGpr32[r]));
        a.mov(x86::esp, x86::r8d);
        return Step::kContinue;
      }
      e.address(op, in.d.address_width);
      a.mov(w == 2 ? x86::Gp(x86::r9w) : x86::Gp(x86::r9d), BlockEmitter::window(w));
      a.lea(x86::r8d, x86::ptr(x86::rsp, -static_cast<int32_t>(w)));
      a.mov(BlockEmitter::window(w), w == 2 ? x86::Gp(x86::r9w) : x86::Gp(x86::r9d));
      a.mov(x86::esp, x86::r8d);
      return Step::kContinue;
    }
    case ZYDIS_MNEMONIC_POP: {
      if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
        int r = gpr_index(op.reg.value);
        if (r == 4) {  // POP ESP: ESP gets the popped value (Intel SDM Vol. 2B, POP)
          if (w == 2) {
            a.mov(x86::sp, BlockEmitter::stack(2));
          } else {
            a.mov(x86::esp, BlockEmitter::stack(4));
          }
          return Step::kContinue;
        }
        if (w == 2) {
          a.mov(kGpr16[r], BlockEmitter::stack(2));
        } else {
          a.mov(kGpr32[r], BlockEmitter::stack(4));
        }
        a.lea(x86::esp, x86::ptr(x86::rsp, static_cast<int32_t>(w)));
        return Step::kContinue;
      }
      // POP m: the address is computed with ESP already incremented.
      a.mov(w == 2 ? x86::Gp(x86::r9w) : x86::Gp(x86::r9d), BlockEmitter::stack(w));
      a.mov(x86::r10d, x86::r9d);
      e.address(op, in.d.address_width, gpr_index(op.mem.base) == 4 ? static_cast<int32_t>(w) : 0);
      a.mov(BlockEmitter::window(w), w == 2 ? x86::Gp(x86::r10w) : x86::Gp(x86::r10d));
      a.lea(x86::esp, x86::ptr(x86::rsp, static_cast<int32_t>(w)));
      return Step::kContinue;
    }
    case ZYDIS_MNEMONIC_LEAVE: {
      // ESP = EBP + 4; EBP = [EBP] (read first: a fault leaves both unchanged).
      if (w == 2) return Step::kCallout;
      a.mov(x86::r9d, x86::ptr(x86::rbp, x86::r15, 0, 0, 4));
      a.lea(x86::esp, x86::ptr(x86::rbp, 4));
      a.mov(x86::ebp, x86::r9d);
      return Step::kContinue;
    }
    default:
      return Step::kCallout;
  }
}

/// MOVS/STOS/LODS/SCAS/CMPS (with REP/REPE/REPNE): run the host's own string instruction on
/// host pointers. ESI/EDI are biased by the window base (and the source segment base) around
/// it; a fault inside it is undone by the fault handler (InsnFixup::si_biased, di_biased).
void translate_string(BlockEmitter& e, const Insn& in, bool reads_si, bool writes_di) {
  // Only flat segments get here (the caller routes segment bases to the monitor).
  std::vector<uint8_t> out;
  for (unsigned i = 0; i < in.d.raw.prefix_count; ++i) {
    uint8_t b = in.bytes[i];
    if (b == 0xf2 || b == 0xf3 || b == 0x66) out.push_back(b);
  }
  out.push_back(in.primary_opcode());
  emit_with_biased_pointers(e, in, reads_si, writes_di, out);
}

}  // namespace

Translator::Translator(CodeCache& cache, const Stubs& stubs, CodeFetcher& fetcher, BtContext& ctx)
    : impl_(std::make_unique<Impl>(cache, stubs, fetcher, ctx, stats_)) {}

Translator::~Translator() = default;

void Translator::set_breakpoints(std::vector<uint32_t> linear) {
  impl_->breakpoints = std::move(linear);
}

TranslationBlock* Translator::translate(uint32_t eip, uint32_t key_flags, uint32_t cs_base) {
  Impl& im = *impl_;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto tb = std::make_unique<TranslationBlock>();
    tb->eip = eip;
    tb->key_flags = key_flags;
    tb->cs_base = cs_base;

    asmjit::CodeHolder code;
    uint64_t base = reinterpret_cast<uint64_t>(im.cache.cursor());
    code.init(asmjit::Environment::host(), base);
    x86::Assembler a(&code);
    BlockEmitter e(a, *tb, im.stubs, key_flags);

    // Indirect entry: continue only if the wanted EIP (r9d) is this block's, without flags
    // (JRCXZ on the difference, guest RCX waiting in r10). The hit path starts on a 16-byte
    // boundary and the entry chained branches take 3 bytes later, so a hot loop's blocks begin
    // at the start of a fetch block: bench/bt_loops' call and switch loops ran 1.2-1.9x native
    // unaligned (varying with where blocks happened to fall) and 1.0-1.1x aligned.
    a.mov(x86::r10, x86::rcx);
    a.lea(x86::ecx, x86::ptr(x86::r9, static_cast<int32_t>(0u - eip)));
    e.unless_ecx_zero(asmjit::imm(reinterpret_cast<uint64_t>(im.stubs.indirect_miss)), 16);
    size_t entry_offset = a.offset();

    uint32_t pc = eip;
    bool ended = false;
    while (!ended) {
      Insn in;
      in.eip = pc;
      uint32_t page = 0;
      const uint32_t lin = cs_base + pc;  // page arithmetic is on linear addresses
      unsigned got = im.fetcher.fetch(lin, in.bytes, sizeof in.bytes, &page);
      if (got == 0) {
        if (tb->instructions == 0) return nullptr;
        e.direct_exit(pc);  // the next page is not mapped: let the dispatcher fault there
        break;
      }
      ZyanStatus st = ZydisDecoderDecodeFull(&im.decoder, in.bytes, got, &in.d, in.ops);
      if (!ZYAN_SUCCESS(st) && got < sizeof in.bytes && tb->instructions > 0) {
        e.direct_exit(pc);  // may continue on an unmapped page: decide at block start
        break;
      }
      if (st == ZYDIS_STATUS_NO_MORE_DATA && got < sizeof in.bytes) {
        // The instruction goes on into a page that cannot be fetched now: that is the fetch's
        // #PF (or #UD where no RAM is), which the dispatcher raises. A block would keep the
        // decision after the page is mapped and run the whole instruction as a callout.
        return nullptr;
      }
      if (tb->instructions == 0) tb->pages[0] = page;
      if (im.breakpoint_at(lin, key_flags)) {
        // A debugger's breakpoint: the block before it ends there; the block at it only stops.
        if (tb->instructions > 0) {
          e.direct_exit(pc);
        } else {
          e.begin_insn(pc);
          ++tb->instructions;
          e.exit_to_monitor(pc, ExitKind::kDebugStop);
        }
        break;
      }
      bool crosses = ZYAN_SUCCESS(st) && ((lin & 0xfff) + in.d.length > 0x1000);
      if (tb->instructions > 0 && ((lin & 0xfff) == 0 || crosses)) {
        e.direct_exit(pc);  // keep every block within one page plus at most one crossing insn
        break;
      }
      if (crosses) {
        uint32_t page2 = 0;
        uint8_t scratch;
        im.fetcher.fetch((lin | 0xfff) + 1, &scratch, 1, &page2);
        tb->pages[1] = page2;
        tb->page_count = 2;
      }
      e.begin_insn(pc);
      ++tb->instructions;
      if (!ZYAN_SUCCESS(st)) {
        e.callout_exit(pc);  // undecodable: the monitor raises #UD
        ++stats_.callouts;
        break;
      }
      in.next = pc + in.d.length;
      if (in.d.mnemonic == ZYDIS_MNEMONIC_ENDBR32 || in.d.mnemonic == ZYDIS_MNEMONIC_ENDBR64) {
        pc = in.next;  // a hint NOP on a CPU without CET, as the vmbt model is
        continue;
      }
      if (in.d.mnemonic == ZYDIS_MNEMONIC_TZCNT || in.d.mnemonic == ZYDIS_MNEMONIC_LZCNT) {
        // Without BMI1/LZCNT (the vmbt model has neither) F3 0F BC/BD is BSF/BSR with an
        // ignored REP prefix, which compilers emit on purpose ("rep bsf"). The host has
        // BMI1, so the prefix is dropped before the instruction is re-encoded.
        strip_rep_prefix(in, im.decoder);
      }
      Step step = Step::kContinue;
      const ZydisDecodedInstruction& d = in.d;
      bool fpu = uses_fpu(d);
      if (fpu) tb->uses_fpu = true;

      bool flat = key_flags & tb_flags::kFlatStack;
      bool sse = fpu_class(d) == FpuClass::kSse;
      bool stack_op = d.meta.category == ZYDIS_CATEGORY_CALL ||
                      d.meta.category == ZYDIS_CATEGORY_RET || d.mnemonic == ZYDIS_MNEMONIC_PUSH ||
                      d.mnemonic == ZYDIS_MNEMONIC_POP || d.mnemonic == ZYDIS_MNEMONIC_LEAVE;
      // RDTSC: the host's, exactly what the monitor's would give.
      bool host_rdtsc = d.mnemonic == ZYDIS_MNEMONIC_RDTSC && (key_flags & tb_flags::kHostTsc);
      bool cpl0_flags =
          (key_flags & tb_flags::kCpl0) && (key_flags & tb_flags::kFlatStack) &&
          (d.mnemonic == ZYDIS_MNEMONIC_CLI || d.mnemonic == ZYDIS_MNEMONIC_STI ||
           d.mnemonic == ZYDIS_MNEMONIC_PUSHFD || d.mnemonic == ZYDIS_MNEMONIC_POPFD) &&
          !(key_flags &
            (tb_flags::kSingleInstruction | (1u << (tb_flags::kRestrictedShift + kSs))));
      bool restricted = !(key_flags & tb_flags::kSegUnchecked) &&
                        (segments_used(d, in.ops) & (key_flags >> tb_flags::kRestrictedShift));
      // Sensitive instructions the monitor executes in place: a direct call with the decoded
      // instruction baked in, no exit to the dispatcher; the system emulator checks their
      // segment accesses itself (e.g. Linux's VERW %cs:sel on every return to user mode).
      // Instructions the monitor must run alone (an ordinary instruction through a checked
      // segment, stack or 16-bit forms the translator does not emit) still exit.
      const bool sensitive = needs_callout(d, in.ops);
      bool direct =
          (key_flags & tb_flags::kDirectCalls) && !(key_flags & tb_flags::kSingleInstruction) &&
          (sensitive ||
           (!restricted && (!isa_supported(d) || (fpu && (key_flags & tb_flags::kFpuTrap)) ||
                            (sse && (key_flags & tb_flags::kSseOff)))));
      const ZydisDecodedOperand* mem = in.mem();
      bool table_store =
          (key_flags & tb_flags::kDirectCalls) && !(key_flags & tb_flags::kSingleInstruction) &&
          mem && (d.attributes & ZYDIS_ATTRIB_HAS_MODRM) &&
          (mem->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) && !fpu &&
          (mem->size == 8 || mem->size == 16 || mem->size == 32 || mem->size == 64) &&
          im.fetcher.writes_page_tables(lin);
      const bool divide = (d.mnemonic == ZYDIS_MNEMONIC_DIV || d.mnemonic == ZYDIS_MNEMONIC_IDIV) &&
                          (key_flags & tb_flags::kDirectCalls) &&
                          !(key_flags & tb_flags::kSingleInstruction);
      if (host_rdtsc) {
        ++stats_.ident;
        emit_ident(e, in);
      } else if (cpl0_flags) {
        ++stats_.ident;
        step = translate_cpl0_flags(e, in);
      } else if (is_inline_push_sreg(in, key_flags)) {
        ++stats_.stack;
        translate_push_sreg(e, in);
      } else if (is_inline_maskmov(in, key_flags) && !(fpu && (key_flags & tb_flags::kFpuTrap)) &&
                 !(sse && (key_flags & tb_flags::kSseOff))) {
        ++stats_.string;
        translate_maskmov(e, in);
      } else if (restricted || sensitive || !isa_supported(d) ||
                 (fpu && (key_flags & tb_flags::kFpuTrap)) ||
                 (sse && (key_flags & tb_flags::kSseOff)) || (stack_op && !flat) ||
                 (d.address_width == 16 &&
                  (d.meta.category == ZYDIS_CATEGORY_STRINGOP || counts_with_cx(d)))) {
        step = Step::kCallout;
      } else if (d.meta.category == ZYDIS_CATEGORY_UNCOND_BR) {  // JMP near
        ++stats_.control;
        if (in.ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
          uint64_t target = 0;
          ZydisCalcAbsoluteAddress(&d, &in.ops[0], pc, &target);
          if (d.operand_width == 16) target &= 0xffff;
          e.direct_exit(static_cast<uint32_t>(target));
        } else {
          load_branch_target(e, in);
          e.indirect_exit();
        }
        step = Step::kEndBlock;
      } else if (d.meta.category == ZYDIS_CATEGORY_CALL) {
        ++stats_.control;
        if (d.operand_width == 16) {
          step = Step::kCallout;
        } else if (in.ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
          uint64_t target = 0;
          ZydisCalcAbsoluteAddress(&d, &in.ops[0], pc, &target);
          push_imm32(e, in.next);
          e.direct_exit(static_cast<uint32_t>(target));
          step = Step::kEndBlock;
        } else {
          load_branch_target(e, in);
          push_imm32(e, in.next);
          e.indirect_exit();
          step = Step::kEndBlock;
        }
      } else if (d.meta.category == ZYDIS_CATEGORY_RET) {
        ++stats_.control;
        if (d.operand_width == 16) {
          step = Step::kCallout;
        } else {
          int32_t pop = 4;
          if (d.operand_count_visible > 0 && in.ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
            pop += static_cast<int32_t>(in.ops[0].imm.value.u & 0xffff);
          }
          a.mov(x86::r9d, BlockEmitter::stack(4));
          a.lea(x86::esp, x86::ptr(x86::rsp, pop));
          e.indirect_exit();
          step = Step::kEndBlock;
        }
      } else if (d.meta.category == ZYDIS_CATEGORY_COND_BR) {
        ++stats_.control;
        uint64_t target = 0;
        ZydisCalcAbsoluteAddress(&d, &in.ops[0], pc, &target);
        if (d.operand_width == 16) target &= 0xffff;
        uint32_t t = static_cast<uint32_t>(target);
        uint8_t op = in.primary_opcode();
        asmjit::Label fall = a.newLabel(), taken = a.newLabel();
        switch (d.mnemonic) {
          case ZYDIS_MNEMONIC_JCXZ:
          case ZYDIS_MNEMONIC_JECXZ:
            a.jecxz(x86::rcx, taken);
            a.jmp(fall);
            break;
          case ZYDIS_MNEMONIC_LOOP:
            a.lea(x86::ecx, x86::ptr(x86::rcx, -1));
            a.jecxz(x86::rcx, fall);
            a.jmp(taken);
            break;
          case ZYDIS_MNEMONIC_LOOPE:
          case ZYDIS_MNEMONIC_LOOPNE:
            a.lea(x86::ecx, x86::ptr(x86::rcx, -1));
            a.jecxz(x86::rcx, fall);
            if (d.mnemonic == ZYDIS_MNEMONIC_LOOPE) {
              a.jz(taken);
            } else {
              a.jnz(taken);
            }
            a.jmp(fall);
            break;
          default: {
            int cc = (op == 0x0f) ? (in.bytes[d.raw.prefix_count + 1] & 0xf) : (op & 0xf);
            e.direct_exit(t, cc);
            e.direct_exit(in.next);
            break;
          }
        }
        if (tb->exit_count == 0) {
          a.bind(taken);
          e.direct_exit(t);
          a.bind(fall);
          e.direct_exit(in.next);
        }
        step = Step::kEndBlock;
      } else if (d.mnemonic == ZYDIS_MNEMONIC_PUSH || d.mnemonic == ZYDIS_MNEMONIC_POP ||
                 d.mnemonic == ZYDIS_MNEMONIC_LEAVE) {
        ++stats_.stack;
        step = translate_stack(e, in);
      } else if (d.meta.category == ZYDIS_CATEGORY_STRINGOP) {
        ++stats_.string;
        uint8_t op = in.primary_opcode();
        bool reads_si =
            op == 0xa4 || op == 0xa5 || op == 0xa6 || op == 0xa7 || op == 0xac || op == 0xad;
        bool writes_di = op == 0xa4 || op == 0xa5 || op == 0xa6 || op == 0xa7 || op == 0xaa ||
                         op == 0xab || op == 0xae || op == 0xaf;
        bool src_based = false;
        for (unsigned i = 0; i < d.raw.prefix_count; ++i) {
          uint8_t b = in.bytes[i];
          src_based |= b == 0x64 || b == 0x65;
        }
        if (src_based || !(key_flags & tb_flags::kFlatData)) {
          step = Step::kCallout;  // segment bases around string ops: the monitor handles them
        } else {
          translate_string(e, in, reads_si, writes_di);
        }
      } else if (d.mnemonic == ZYDIS_MNEMONIC_LEA) {
        ++stats_.ident;
        const ZydisDecodedOperand& m = in.ops[1];
        int dst = gpr_index(in.ops[0].reg.value);
        int32_t disp = m.mem.disp.has_displacement ? static_cast<int32_t>(m.mem.disp.value) : 0;
        int base = gpr_index(m.mem.base), index = gpr_index(m.mem.index);
        if (base < 0 && index < 0) {
          a.mov(x86::r8d, static_cast<uint32_t>(disp));
        } else {
          a.lea(x86::r8d, guest_ea(base, index, scale_shift(m.mem.scale), disp));
        }
        if (d.address_width == 16) a.movzx(x86::r8d, x86::r8w);
        if (d.operand_width == 16) {
          a.mov(kGpr16[dst], x86::r8w);
        } else {
          a.mov(kGpr32[dst], x86::r8d);
        }
      } else if (in.mem() && !(d.attributes & ZYDIS_ATTRIB_HAS_MODRM)) {
        ++stats_.rewritten_mem;
        emit_moffs(e, in);  // MOV AL/EAX <-> [disp32] (A0-A3)
      } else if (divide && (in.ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER ||
                            (in.mem() && (d.attributes & ZYDIS_ATTRIB_HAS_MODRM)))) {
        auto raise = std::make_unique<CalloutSite>();
        raise->kind = CalloutSite::Kind::kDivideError;
        raise->tb = tb.get();
        raise->insn.eip = pc;
        raise->insn.next_eip = in.next;
        bool address_in_r8 = false;
        emit_zero_divisor_check(e, in, raise.get(), &address_in_r8);
        tb->callout_sites.push_back(std::move(raise));
        if (address_in_r8) {
          ++stats_.rewritten_mem;
          emit_rewritten_mem(e, in, true);
        } else {
          ++stats_.ident;
          emit_ident(e, in);
        }
      } else if (in.mem() && table_store) {
        // Adaptive translation: this instruction stored into traced page tables before. The
        // monitor checks the access and snapshots the entries, the store runs on the monitor's
        // own mapping of guest RAM, and the monitor drops what it changed: no host fault.
        ++stats_.table_writers;
        e.address(*in.mem(), d.address_width);
        a.mov(ctx_field(offsetof(BtContext, table_linear), 4), x86::r8d);
        auto begin = std::make_unique<CalloutSite>();
        begin->kind = CalloutSite::Kind::kTableWriteBegin;
        begin->access_size = static_cast<uint8_t>(in.mem()->size / 8);
        begin->tb = tb.get();
        begin->falls_through = true;
        begin->insn.eip = pc;
        begin->insn.next_eip = in.next;
        e.direct_call(begin.get());
        tb->callout_sites.push_back(std::move(begin));
        a.mov(x86::r8, ctx_field(offsetof(BtContext, table_offset), 8));
        emit_rewritten_mem(e, in, true);
        auto end = std::make_unique<CalloutSite>();
        end->kind = CalloutSite::Kind::kTableWriteEnd;
        end->tb = tb.get();
        end->falls_through = true;
        end->insn.eip = pc;
        end->insn.next_eip = in.next;
        e.direct_call(end.get());
        tb->callout_sites.push_back(std::move(end));
      } else if (in.mem()) {
        ++stats_.rewritten_mem;
        emit_rewritten_mem(e, in);
        if (d.meta.isa_ext == ZYDIS_ISA_EXT_X87 && !x87_control(d.mnemonic)) {
          a.mov(ctx_field(offsetof(BtContext, fpu_dp), 4), x86::r8d);
        }
        if (d.mnemonic == ZYDIS_MNEMONIC_FNSTENV || d.mnemonic == ZYDIS_MNEMONIC_FNSAVE ||
            d.mnemonic == ZYDIS_MNEMONIC_FXSAVE) {
          patch_x87_pointers(e, in);
        }
      } else {
        ++stats_.ident;
        emit_ident(e, in);
      }
      if (d.meta.isa_ext == ZYDIS_ISA_EXT_X87 && !x87_control(d.mnemonic) &&
          step != Step::kCallout) {
        a.mov(ctx_field(offsetof(BtContext, fpu_ip), 4), pc);  // FIP of this instruction
      }

      std::unique_ptr<CalloutSite> site;
      if (step == Step::kCallout && direct) {
        site = std::make_unique<CalloutSite>();
        if (!SystemEmulator::predecode(in.bytes, in.d.length, pc, true, site->insn)) site.reset();
      }
      if (step == Step::kCallout && site) {
        ++stats_.direct_calls;
        site->tb = tb.get();
        site->falls_through = falls_through(d);
        choose_fast_path(*site);
        asmjit::Label answered = a.newLabel();
        const bool inline_cpuid = site->fast == CalloutSite::FastPath::kCpuid;
        if (inline_cpuid) emit_inline_cpuid(e, answered);
        e.direct_call(site.get());
        if (inline_cpuid) a.bind(answered);
        tb->callout_sites.push_back(std::move(site));
        // After a transfer the monitor continues in the target's block (or the dispatcher).
        if (!tb->callout_sites.back()->falls_through) ended = true;
      } else if (step == Step::kCallout) {
        // Drop whatever this instruction started emitting: it runs in the monitor instead.
        ++stats_.callouts;
        e.callout_exit(pc);
        ended = true;
      } else if (step == Step::kEndBlock) {
        ended = true;
      }
      pc = in.next;
      if (!ended && (tb->instructions >= TranslationBlock::kMaxInstructions ||
                     (key_flags & tb_flags::kSingleInstruction))) {
        e.direct_exit(pc);
        ended = true;
      }
    }
    e.emit_stubs();

    code.flatten();
    code.resolveUnresolvedLinks();
    code.relocateToBase(base);
    size_t size = code.codeSize();
    if (size + 64 > im.cache.remaining() || im.cache.over_budget()) {
      if (attempt == 0) {
        im.cache.flush();
        if (on_flush) on_flush();
        continue;
      }
      throw Error("internal: a single block does not fit the translation cache");
    }
    code.copyFlattenedData(im.cache.cursor(), im.cache.remaining());
    tb->host_start = im.cache.cursor();
    tb->entry = tb->host_start + entry_offset;
    tb->host_size = static_cast<uint32_t>(size);
    tb->guest_bytes = pc - eip;
    e.resolve(code);
    // Exits start out pointing at their stubs.
    for (unsigned i = 0; i < tb->exit_count; ++i) {
      uint8_t* field = tb->host_start + tb->exits[i].rel32_offset;
      int32_t rel =
          static_cast<int32_t>(tb->exits[i].stub_offset - (tb->exits[i].rel32_offset + 4));
      std::memcpy(field, &rel, 4);
    }
    if (tb->uses_fpu) im.ctx.fpu_active = 1;
    TranslationBlock* raw = tb.get();
    im.cache.commit(std::move(tb));
    return raw;
  }
  return nullptr;
}

}  // namespace vmbt::bt
