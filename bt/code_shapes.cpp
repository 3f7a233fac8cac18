// Code shapes: the host code for one guest instruction, by the shape the instruction policy chose
// (bt/insn_policy.h). docs/bt.md has the full table:
//   register-only instruction   copied unchanged (IDENT), except the encodings that mean something
//                               else in 64-bit mode (INC/DEC 0x40-0x4F, 0x82)
//   memory operand              lea r8d,[guest EA] (+ segment base); the instruction re-encoded
//                               with [r15 + r8] (the linear window)
//   push/pop/call/ret           explicit stores/loads through [r15 + esp]; ESP updated last
//   direct branch               patchable jmp/jcc rel32 to an exit stub, later to the next block
//   indirect branch / return    target in r9d; flag-free lookup in the space's indirect table
//   sensitive instruction       a direct call into the monitor, or an exit to it (callout)
// Nothing emitted here changes the host flags except the guest's own instructions, because the
// guest's arithmetic flags live in the host RFLAGS.
#include "bt/code_shapes.h"

#include <Zydis/Zydis.h>
#include <asmjit/x86.h>
#include <fmt/format.h>

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "bt/guest_operands.h"
#include "bt/host_registers.h"
#include "bt/system/system_emulator.h"
#include "bt/translator.h"
#include "vmm/error.h"

namespace vmbt::bt {

namespace x86 = asmjit::x86;

namespace {

bool is_high_byte(ZydisRegister r) {
  return r == ZYDIS_REGISTER_AH || r == ZYDIS_REGISTER_CH || r == ZYDIS_REGISTER_DH ||
         r == ZYDIS_REGISTER_BH;
}

/// The prefixes of `in` for its host encoding: segment overrides and the address-size prefix
/// dropped (the host instruction addresses through the window, or has no memory operand), the
/// operand-size prefix toggled where 16-bit code needs it (GuestInsn::flip_operand_size), the
/// rest (LOCK, REP/REPNE, mandatory 66/F2/F3) kept in their order.
void copy_prefixes(const GuestInsn& in, std::vector<uint8_t>& out) {
  if (in.flip_operand_size && !in.has_prefix(0x66)) out.push_back(0x66);
  for (unsigned i = 0; i < in.d.raw.prefix_count; ++i) {
    const uint8_t b = in.bytes[i];
    if (b == 0x2e || b == 0x36 || b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65 || b == 0x67) {
      continue;
    }
    if (b == 0x66 && in.flip_operand_size) continue;
    out.push_back(b);
  }
}

/// Copies a register-only instruction, fixing the encodings that differ in 64-bit mode.
void emit_ident(BlockEmitter& e, const GuestInsn& in) {
  std::vector<uint8_t> out;
  unsigned p = in.d.raw.prefix_count;
  // Segment and address-size prefixes do nothing to a register-only instruction in 32-bit code
  // but FS/GS would pick host bases here: drop them all.
  copy_prefixes(in, out);
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

/// Re-encodes an instruction with one explicit memory operand to address [r15 + r8] (r8 = the
/// guest linear address, computed here unless `address_computed`), or, where the operand allows
/// it (BlockEmitter::direct_window_address) and `direct` is set, [guest register + r15 + disp],
/// [r15 + disp] or the same from r12:
/// the access alone, no `lea` (r8 is not set then).
void emit_rewritten_mem(BlockEmitter& e, const GuestInsn& in, bool address_computed = false,
                        bool direct = false) {
  const ZydisDecodedOperand* m = in.mem();
  BlockEmitter::DirectAddress da;
  const bool direct_form =
      !address_computed && direct && e.direct_window_address(*m, in.d.address_width, &da);
  if (!direct_form && !address_computed) e.address(*m, in.d.address_width);

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
  if (high >= 0) e.a().rorx(x86::r9d, kGuestGpr32[high], 8);

  std::vector<uint8_t> out;
  unsigned p = in.d.raw.prefix_count;
  copy_prefixes(in, out);
  // W=0 keeps the operand size, R=0 the guest register, except for a high-byte operand, which
  // becomes R9B (R=1, reg=1). Then ModRM with rm=100 and a SIB byte.
  uint8_t rex = high >= 0 ? 0x44 : 0x40, sib = 0x07;  // [r15 + r8]: X (index r8) + B (base r15)
  uint8_t mod = 0;
  if (direct_form) {
    // [register + window + disp] (SIB index: r15 = 7 or r12 = 4, REX.X) or, absolute,
    // [window + disp] (SIB base with REX.B, no index); mod 00 (no displacement; not with base
    // 101, EBP, whose mod 00 means none), 01 (disp8) or 10 (disp32).
    const uint8_t window = da.high ? 4 : 7;
    if (da.reg >= 0) {
      rex |= 0x02;
      sib = static_cast<uint8_t>((window << 3) | da.reg);
    } else {
      rex |= 0x01;
      sib = static_cast<uint8_t>((4 << 3) | window);
    }
    const bool none = da.disp == 0 && (sib & 7) != 5;
    mod = none ? 0 : (da.disp >= -128 && da.disp <= 127) ? 1 : 2;
  } else {
    rex |= 0x03;
  }
  out.push_back(rex);
  unsigned modrm_at = in.d.raw.modrm.offset;
  size_t opcode_at = out.size();
  out.insert(out.end(), in.bytes + p, in.bytes + modrm_at);
  if (out[opcode_at] == 0x82) out[opcode_at] = 0x80;  // 0x82 is invalid in 64-bit mode
  uint8_t reg = (in.bytes[modrm_at] >> 3) & 7;
  if (high >= 0) reg = 1;
  out.push_back(static_cast<uint8_t>((mod << 6) | (reg << 3) | 4));
  out.push_back(sib);
  if (mod == 1) out.push_back(static_cast<uint8_t>(static_cast<int8_t>(da.disp)));
  if (mod == 2) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(da.disp >> (8 * i)));
  }
  unsigned tail = modrm_at + 1 + (in.d.raw.sib.offset ? 1 : 0) + in.d.raw.disp.size / 8;
  out.insert(out.end(), in.bytes + tail, in.bytes + in.d.length);
  e.a().embed(out.data(), out.size());
  if (high >= 0 && high_written) {
    e.a().rorx(kGuestGpr32[high], kGuestGpr32[high], 8);
    e.a().mov(x86::Gp(x86::gpb_lo(static_cast<uint32_t>(high))), x86::r9b);
    e.a().rorx(kGuestGpr32[high], kGuestGpr32[high], 24);
  }
}

/// MOV between AL/AX/EAX and an absolute offset (opcodes A0-A3, no ModRM).
void emit_moffs(BlockEmitter& e, const GuestInsn& in) {
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
void patch_x87_pointers(BlockEmitter& e, const GuestInsn& in) {
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
void emit_with_biased_pointers(BlockEmitter& e, const GuestInsn& in, bool si, bool di,
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

/// MASKMOVQ / MASKMOVDQU (Intel SDM Vol. 2B) store through an implicit DS:EDI (flat here): EDI
/// becomes its window pointer around the instruction, as around a string instruction, so the
/// 64-bit host instruction stores into the guest's window and nowhere else.
void translate_maskmov(BlockEmitter& e, const GuestInsn& in) {
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
void translate_push_sreg(BlockEmitter& e, const GuestInsn& in) {
  x86::Assembler& a = e.a();
  const int seg = segment_index(in.ops[0].reg.value);
  a.mov(x86::r9w, ctx_field(offsetof(BtContext, seg_sel) + 2 * seg, 2));
  a.lea(x86::r8d, x86::ptr(x86::rsp, -4));
  a.mov(BlockEmitter::window(2), x86::r9w);
  a.mov(x86::esp, x86::r8d);
}

/// CLI/STI/PUSHFD at CPL0 without a callout: IF is the context's `vif` byte, the other virtual
/// flags are `vflags`; nothing here changes the guest's arithmetic flags.
void translate_cpl0_flags(BlockEmitter& e, const GuestInsn& in) {
  x86::Assembler& a = e.a();
  switch (in.d.mnemonic) {
    case ZYDIS_MNEMONIC_CLI:
      a.mov(ctx_field(offsetof(BtContext, vif), 1), 0);
      return;
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
      return;
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
      return;
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
      return;
    }
    default:
      throw Error(fmt::format("bt: no inline shape for the instruction at EIP {:#x}", in.eip));
  }
}

/// DIV/IDIV: a zero divisor raises #DE through a direct call to the monitor instead of a host
/// SIGFPE. The check loads the divisor and tests it with JRCXZ (no flags touched); a
/// memory divisor's address is left in r8d for the division itself (`address_in_r8`). Quotient
/// overflow still reaches the monitor through the host's #DE.
void emit_zero_divisor_check(BlockEmitter& e, const GuestInsn& in, CalloutSite* raise,
                             bool* address_in_r8) {
  x86::Assembler& a = e.a();
  const ZydisDecodedOperand& op = in.ops[0];
  const unsigned size = op.size / 8;
  *address_in_r8 = false;
  if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    const int r = gpr_index(op.reg.value);
    if (is_high_byte(op.reg.value)) {
      a.rorx(x86::r11d, kGuestGpr32[r], 8);
      a.movzx(x86::r11d, x86::r11b);
    } else if (size == 1) {
      a.movzx(x86::r11d, x86::Gp(x86::gpb_lo(static_cast<uint32_t>(r))));
    } else if (size == 2) {
      a.movzx(x86::r11d, kGuestGpr16[r]);
    } else {
      a.mov(x86::r11d, kGuestGpr32[r]);
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

/// SYSENTER or SYSEXIT (`which`: BtContext::kSysenter or kSysexit) inline, in the common case
/// the monitor prepared (BtContext::system_call, BtEngine::prepare_system_calls); else on to
/// the direct call that follows. What the instruction loads (Intel SDM Vol. 2B SYSENTER,
/// SYSEXIT): CS and SS (into the monitor's state and the context's copies), ESP and EIP (from
/// the MSRs, or ECX and EDX), IF cleared by SYSENTER (VM and RF are clear already); then the
/// window registers and tables of the CPL it enters, and the target's block through the new
/// mode's table. Flag-free: moves, LEA and the JRCXZ test only. Nothing here can fault.
void emit_inline_system_call(BlockEmitter& e, size_t which) {
  static_assert(sizeof(SegmentReg) == 20 && std::is_trivially_copyable_v<SegmentReg>);
  x86::Assembler& a = e.a();
  const size_t sw = offsetof(BtContext, system_call) + which * sizeof(SystemCallSwitch);
  auto field = [&](size_t member, unsigned size) { return ctx_field(sw + member, size); };
  const bool enter = which == BtContext::kSysenter;
  asmjit::Label slow = a.newLabel();
  a.mov(x86::r10, x86::rcx);
  a.mov(x86::ecx, field(offsetof(SystemCallSwitch, not_ready), 4));
  e.unless_ecx_zero(slow);
  // CS and SS, adjacent in VcpuState::seg (kCs, kSs): 40 bytes.
  a.mov(x86::r8, ctx_field(offsetof(BtContext, state_cs), 8));
  for (int32_t at = 0; at < 40; at += 8) {
    a.mov(x86::r9, field(offsetof(SystemCallSwitch, segments) + at, 8));
    a.mov(x86::qword_ptr(x86::r8, at), x86::r9);
  }
  a.mov(x86::r9d, field(offsetof(SystemCallSwitch, selectors), 4));
  a.mov(ctx_field(offsetof(BtContext, seg_sel) + 2 * kCs, 4), x86::r9d);  // CS, SS
  a.mov(ctx_field(offsetof(BtContext, seg_base) + 4 * kCs, 8), 0);        // CS, SS
  if (enter) {
    a.mov(ctx_field(offsetof(BtContext, vif), 1), 0);
    a.mov(x86::esp, field(offsetof(SystemCallSwitch, esp), 4));
    a.mov(x86::r9d, field(offsetof(SystemCallSwitch, eip), 4));
  } else {
    a.mov(x86::esp, x86::ecx);
    a.mov(x86::r9d, x86::edx);
  }
  // The new CPL's window registers, and the miss stub's table fields, into the context.
  struct Copy {
    size_t from, to;  ///< SystemCallSwitch member, BtContext field (8 bytes each)
    x86::Gp reg;      ///< loaded there too (r10: only a carrier)
  };
  const Copy copies[] = {
      {offsetof(SystemCallSwitch, window_base), offsetof(BtContext, window_base), x86::r15},
      {offsetof(SystemCallSwitch, window_neg), offsetof(BtContext, window_neg), x86::r13},
      {offsetof(SystemCallSwitch, window_high), offsetof(BtContext, window_high), x86::r12},
      {offsetof(SystemCallSwitch, second_table), offsetof(BtContext, second_table), x86::r10},
      {offsetof(SystemCallSwitch, indirect_table_neg), offsetof(BtContext, indirect_table_neg),
       x86::r10},
      {offsetof(SystemCallSwitch, second_table_neg), offsetof(BtContext, second_table_neg),
       x86::r10},
  };
  for (const Copy& c : copies) {
    a.mov(c.reg, field(c.from, 8));
    a.mov(ctx_field(c.to, 8), c.reg);
  }
  a.mov(x86::r10, ctx_field(offsetof(BtContext, inline_system_calls), 8));
  a.lea(x86::r10, x86::ptr(x86::r10, 1));
  a.mov(ctx_field(offsetof(BtContext, inline_system_calls), 8), x86::r10);
  e.indirect_exit_to_mode(sw + offsetof(SystemCallSwitch, tables));
  a.bind(slow);
}

/// Loads a near branch target (register or memory operand) into r9d.
void load_branch_target(BlockEmitter& e, const GuestInsn& in) {
  const ZydisDecodedOperand& op = in.ops[0];
  unsigned width = in.d.operand_width;
  if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    int r = gpr_index(op.reg.value);
    if (width == 16) {
      e.a().movzx(x86::r9d, kGuestGpr16[r]);
    } else {
      e.a().mov(x86::r9d, kGuestGpr32[r]);
    }
  } else if (width == 16) {
    e.a().movzx(x86::r9d, e.guest_memory(op, in.d.address_width, 2));
  } else {
    e.a().mov(x86::r9d, e.guest_memory(op, in.d.address_width, 4));
  }
}

/// Pushes a 32-bit immediate (a return address) on the guest stack.
void push_imm32(BlockEmitter& e, uint32_t value) {
  x86::Assembler& a = e.a();
  a.lea(x86::r8d, x86::ptr(x86::rsp, -4));
  a.mov(BlockEmitter::window(4), value);
  a.mov(x86::esp, x86::r8d);
}

/// A flat 32-bit stack (SS base 0, ESP): the stack shapes below address it as [r15 + rsp].
bool flat_stack32(const BlockEmitter& e) {
  return (e.key_flags() & tb_flags::kFlatStack) && !(e.key_flags() & tb_flags::kStack16);
}

/// Any other stack (an SS base, or SP on a 16-bit stack, Intel SDM Vol. 3A §3.4.5.1): the
/// stack offset is computed in r11d, its linear address in r8d (r10 holds the SS base meanwhile),
/// and ESP or SP is written from r11 only once the access is done, so a fault in it leaves the
/// stack pointer as it was.
class SegmentedStack {
 public:
  explicit SegmentedStack(BlockEmitter& e)
      : e_(e), a_(e.a()), sp16_(e.key_flags() & tb_flags::kStack16) {}

  /// r11d = the offset `w` bytes below the top (a push's slot); r8d = its linear address.
  void slot_below(unsigned w) {
    a_.lea(x86::r11d, x86::ptr(x86::rsp, -static_cast<int32_t>(w)));
    finish_slot();
  }
  /// r11d = the offset of the top (a pop's slot); r8d = its linear address.
  void slot_top() {
    a_.mov(x86::r11d, x86::esp);
    finish_slot();
  }
  /// r11d = the offset of the stack frame EBP or BP points at (LEAVE); r8d = its linear address.
  void slot_at_frame() {
    a_.mov(x86::r11d, x86::ebp);
    finish_slot();
  }
  /// r11d += `bytes` (past popped values).
  void advance(int32_t bytes) { a_.lea(x86::r11d, x86::ptr(x86::r11, bytes)); }
  /// ESP (or SP, the upper half of ESP kept) = r11.
  void commit() {
    if (sp16_) {
      a_.mov(x86::sp, x86::r11w);
    } else {
      a_.mov(x86::esp, x86::r11d);
    }
  }

 private:
  void finish_slot() {
    if (sp16_) a_.movzx(x86::r11d, x86::r11w);
    if (e_.key_flags() & tb_flags::kFlatStack) {
      a_.mov(x86::r8d, x86::r11d);
    } else {
      a_.mov(x86::r10d, ctx_field(offsetof(BtContext, seg_base) + 4 * kSs, 4));
      a_.lea(x86::r8d, x86::ptr(x86::r11, x86::r10));
    }
  }

  BlockEmitter& e_;
  x86::Assembler& a_;
  bool sp16_;
};

/// Host register `r` at the width of a `w`-byte operand (2: its low 16 bits, else 32).
x86::Gp sized(const x86::Gp& r, unsigned w) {
  return w == 2 ? x86::Gp(r.r16()) : x86::Gp(r.r32());
}

/// The 16- or 32-bit register `r` (Gpr index) for an operand of `w` bytes.
x86::Gp guest_reg(int r, unsigned w) {
  return sized(kGuestGpr32[r], w);
}

/// Pushes the return address `value` (`w` bytes: IP or EIP) on the guest stack.
void push_return_address(BlockEmitter& e, uint32_t value, unsigned w) {
  if (flat_stack32(e) && w == 4) {
    push_imm32(e, value);
    return;
  }
  SegmentedStack stack(e);
  stack.slot_below(w);
  e.a().mov(BlockEmitter::window(w), w == 2 ? value & 0xffff : value);
  stack.commit();
}

/// PUSH, POP and LEAVE on a stack that is not flat and 32-bit (SegmentedStack).
void translate_segmented_stack(BlockEmitter& e, const GuestInsn& in) {
  x86::Assembler& a = e.a();
  SegmentedStack stack(e);
  const unsigned w = in.d.operand_width / 8;  // 2 or 4 bytes
  const ZydisDecodedOperand& op = in.ops[0];
  switch (in.d.mnemonic) {
    case ZYDIS_MNEMONIC_PUSH:
      if (op.type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
        stack.slot_below(w);
        a.mov(BlockEmitter::window(w),
              static_cast<uint32_t>(op.imm.value.u) & (w == 2 ? 0xffffu : 0xffffffffu));
      } else if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
        // PUSH SP/ESP pushes the value before the push (Intel SDM Vol. 2B PUSH).
        stack.slot_below(w);
        a.mov(BlockEmitter::window(w), guest_reg(gpr_index(op.reg.value), w));
      } else {
        e.address(op, in.d.address_width);  // the source first: it may be relative to ESP
        a.mov(sized(x86::r9, w), BlockEmitter::window(w));
        stack.slot_below(w);
        a.mov(BlockEmitter::window(w), sized(x86::r9, w));
      }
      stack.commit();
      return;
    case ZYDIS_MNEMONIC_POP:
      stack.slot_top();
      if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
        const int r = gpr_index(op.reg.value);
        if (r == 4) {  // POP SP/ESP: the stack pointer gets the popped value
          a.mov(sized(x86::r9, w), BlockEmitter::window(w));
          a.mov(sized(x86::esp, w), sized(x86::r9, w));
          return;
        }
        a.mov(guest_reg(r, w), BlockEmitter::window(w));
        stack.advance(static_cast<int32_t>(w));
        stack.commit();
        return;
      }
      // POP m: the address is computed with ESP already incremented.
      a.mov(sized(x86::r10, w), BlockEmitter::window(w));
      stack.advance(static_cast<int32_t>(w));
      e.address(op, in.d.address_width, gpr_index(op.mem.base) == 4 ? static_cast<int32_t>(w) : 0);
      a.mov(BlockEmitter::window(w), sized(x86::r10, w));
      stack.commit();
      return;
    case ZYDIS_MNEMONIC_LEAVE:
      // ESP (SP) = EBP (BP); EBP (BP) = the popped value, read first: a fault changes nothing.
      stack.slot_at_frame();
      a.mov(sized(x86::r9, w), BlockEmitter::window(w));
      stack.advance(static_cast<int32_t>(w));
      stack.commit();
      a.mov(sized(x86::ebp, w), sized(x86::r9, w));
      return;
    default:
      throw Error(fmt::format("bt: no stack shape for the instruction at EIP {:#x}", in.eip));
  }
}

/// PUSH, POP and LEAVE: on a flat 32-bit stack through [r15 + rsp], ESP updated last; on any
/// other stack (and LEAVE with a 16-bit operand size), translate_segmented_stack.
void translate_stack(BlockEmitter& e, const GuestInsn& in) {
  if (!flat_stack32(e) || (in.d.mnemonic == ZYDIS_MNEMONIC_LEAVE && in.d.operand_width == 16)) {
    translate_segmented_stack(e, in);
    return;
  }
  x86::Assembler& a = e.a();
  unsigned w = in.d.operand_width / 8;  // 2 or 4 bytes
  const ZydisDecodedOperand& op = in.ops[0];
  switch (in.d.mnemonic) {
    case ZYDIS_MNEMONIC_PUSH: {
      // Read the source first (it may be memory relative to the old ESP), then store, then ESP.
      if (op.type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
        a.lea(x86::r8d, x86::ptr(x86::rsp, -static_cast<int32_t>(w)));
        a.mov(BlockEmitter::window(w),
              static_cast<uint32_t>(op.imm.value.u) & (w == 2 ? 0xffffu : 0xffffffffu));
        a.mov(x86::esp, x86::r8d);
        return;
      }
      if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
        int r = gpr_index(op.reg.value);
        a.lea(x86::r8d, x86::ptr(x86::rsp, -static_cast<int32_t>(w)));
        a.mov(BlockEmitter::window(w), guest_reg(r, w));
        a.mov(x86::esp, x86::r8d);
        return;
      }
      e.address(op, in.d.address_width);
      a.mov(sized(x86::r9, w), BlockEmitter::window(w));
      a.lea(x86::r8d, x86::ptr(x86::rsp, -static_cast<int32_t>(w)));
      a.mov(BlockEmitter::window(w), sized(x86::r9, w));
      a.mov(x86::esp, x86::r8d);
      return;
    }
    case ZYDIS_MNEMONIC_POP: {
      if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
        int r = gpr_index(op.reg.value);
        if (r == 4) {  // POP ESP: ESP gets the popped value (Intel SDM Vol. 2B, POP)
          a.mov(sized(x86::esp, w), BlockEmitter::stack(w));
          return;
        }
        a.mov(guest_reg(r, w), BlockEmitter::stack(w));
        a.lea(x86::esp, x86::ptr(x86::rsp, static_cast<int32_t>(w)));
        return;
      }
      // POP m: the address is computed with ESP already incremented.
      a.mov(sized(x86::r9, w), BlockEmitter::stack(w));
      a.mov(x86::r10d, x86::r9d);
      e.address(op, in.d.address_width, gpr_index(op.mem.base) == 4 ? static_cast<int32_t>(w) : 0);
      a.mov(BlockEmitter::window(w), sized(x86::r10, w));
      a.lea(x86::esp, x86::ptr(x86::rsp, static_cast<int32_t>(w)));
      return;
    }
    case ZYDIS_MNEMONIC_LEAVE: {
      // ESP = EBP + 4; EBP = [EBP] (read first: a fault leaves both unchanged).
      a.mov(x86::r9d, x86::ptr(x86::rbp, x86::r15, 0, 0, 4));
      a.lea(x86::esp, x86::ptr(x86::rbp, 4));
      a.mov(x86::ebp, x86::r9d);
      return;
    }
    default:
      throw Error(fmt::format("bt: no inline shape for the instruction at EIP {:#x}", in.eip));
  }
}

/// MOVS/STOS/LODS/SCAS/CMPS (with REP/REPE/REPNE): run the host's own string instruction on
/// host pointers. ESI/EDI are biased by the window base (and the source segment base) around
/// it; a fault inside it is undone by the fault handler (InsnFixup::si_biased, di_biased).
void translate_string(BlockEmitter& e, const GuestInsn& in, bool reads_si, bool writes_di) {
  // Only flat segments get here (the caller routes segment bases to the monitor).
  std::vector<uint8_t> out;
  if (in.flip_operand_size && !in.has_prefix(0x66)) out.push_back(0x66);
  for (unsigned i = 0; i < in.d.raw.prefix_count; ++i) {
    uint8_t b = in.bytes[i];
    if (b == 0xf2 || b == 0xf3 || (b == 0x66 && !in.flip_operand_size)) out.push_back(b);
  }
  out.push_back(in.primary_opcode());
  emit_with_biased_pointers(e, in, reads_si, writes_di, out);
}

/// Near JMP: a direct exit to an immediate target (16-bit operand size wraps it at 64 KiB), or
/// the indirect-branch table for a register or memory target.
void translate_jump(BlockEmitter& e, const GuestInsn& in) {
  const ZydisDecodedInstruction& d = in.d;
  if (in.ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
    uint64_t target = 0;
    ZydisCalcAbsoluteAddress(&d, &in.ops[0], in.eip, &target);
    if (d.operand_width == 16) target &= 0xffff;
    e.direct_exit(static_cast<uint32_t>(target));
  } else {
    load_branch_target(e, in);
    e.indirect_exit();
  }
}

/// Near CALL: the return address (IP or EIP, by the operand size) pushed, then the jump's exit
/// (an immediate target wraps at 64 KiB with a 16-bit operand size).
void translate_call(BlockEmitter& e, const GuestInsn& in) {
  const unsigned w = in.d.operand_width / 8;
  if (in.ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
    uint64_t target = 0;
    ZydisCalcAbsoluteAddress(&in.d, &in.ops[0], in.eip, &target);
    if (w == 2) target &= 0xffff;
    push_return_address(e, in.next, w);
    e.direct_exit(static_cast<uint32_t>(target));
  } else {
    load_branch_target(e, in);  // before the push: the operand may be relative to ESP
    push_return_address(e, in.next, w);
    e.indirect_exit();
  }
}

/// Near RET [imm16]: the return address (IP or EIP, by the operand size) into r9d, the stack
/// pointer past it and the immediate, then the indirect-branch table.
void translate_return(BlockEmitter& e, const GuestInsn& in) {
  const unsigned w = in.d.operand_width / 8;
  int32_t pop = static_cast<int32_t>(w);
  if (in.d.operand_count_visible > 0 && in.ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
    pop += static_cast<int32_t>(in.ops[0].imm.value.u & 0xffff);
  }
  if (flat_stack32(e) && w == 4) {
    e.a().mov(x86::r9d, BlockEmitter::stack(4));
    e.a().lea(x86::esp, x86::ptr(x86::rsp, pop));
  } else {
    SegmentedStack stack(e);
    stack.slot_top();
    if (w == 2) {
      e.a().movzx(x86::r9d, BlockEmitter::window(2));
    } else {
      e.a().mov(x86::r9d, BlockEmitter::window(4));
    }
    stack.advance(pop);
    stack.commit();
  }
  e.indirect_exit();
}

/// Jcc (a chained jcc rel32 and a fall-through exit), and JCXZ/JECXZ and LOOPcc, which count
/// and test ECX with LEA and JRCXZ so that the guest's flags stay as they are.
void translate_cond_branch(BlockEmitter& e, const GuestInsn& in) {
  x86::Assembler& a = e.a();
  const ZydisDecodedInstruction& d = in.d;
  uint64_t target = 0;
  ZydisCalcAbsoluteAddress(&d, &in.ops[0], in.eip, &target);
  if (d.operand_width == 16) target &= 0xffff;
  const auto t = static_cast<uint32_t>(target);
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
      const uint8_t op = in.primary_opcode();
      const int cc = (op == 0x0f) ? (in.bytes[d.raw.prefix_count + 1] & 0xf) : (op & 0xf);
      e.direct_exit(t, cc);
      e.direct_exit(in.next);
      return;
    }
  }
  a.bind(taken);
  e.direct_exit(t);
  a.bind(fall);
  e.direct_exit(in.next);
}

/// LEA: the guest effective address (no segment base, 16-bit wrap for a 16-bit address size)
/// into the destination's 16 or 32 bits.
void translate_lea(BlockEmitter& e, const GuestInsn& in) {
  const int dst = gpr_index(in.ops[0].reg.value);
  e.effective_address(in.ops[1], in.d.address_width);
  if (in.d.operand_width == 16) {
    e.a().mov(kGuestGpr16[dst], x86::r8w);
  } else {
    e.a().mov(kGuestGpr32[dst], x86::r8d);
  }
}

/// DIV/IDIV: the zero-divisor check, then the division itself (on [r15 + r8] for a memory
/// divisor, whose address the check computed).
void translate_divide(BlockEmitter& e, const GuestInsn& in) {
  CalloutSite& raise = e.new_site(CalloutSite::Kind::kDivideError, in);
  bool address_in_r8 = false;
  emit_zero_divisor_check(e, in, &raise, &address_in_r8);
  if (address_in_r8) {
    emit_rewritten_mem(e, in, true);
  } else {
    emit_ident(e, in);
  }
}

/// Adaptive translation: this instruction stored into traced page tables before. The monitor
/// checks the access and snapshots the entries (kTableWriteBegin), the store runs on the
/// monitor's own mapping of guest RAM, and the monitor drops what it changed (kTableWriteEnd):
/// no host fault.
void translate_table_store(BlockEmitter& e, const GuestInsn& in) {
  x86::Assembler& a = e.a();
  e.address(*in.mem(), in.d.address_width);
  a.mov(ctx_field(offsetof(BtContext, table_linear), 4), x86::r8d);
  CalloutSite& begin = e.new_site(CalloutSite::Kind::kTableWriteBegin, in);
  begin.access_size = static_cast<uint8_t>(in.mem()->size / 8);
  begin.falls_through = true;
  e.direct_call(&begin);
  a.mov(x86::r8, ctx_field(offsetof(BtContext, table_offset), 8));
  emit_rewritten_mem(e, in, true);
  CalloutSite& end = e.new_site(CalloutSite::Kind::kTableWriteEnd, in);
  end.falls_through = true;
  e.direct_call(&end);
}

/// The x87 state images whose instruction and data pointers are patched to the guest's after
/// the host wrote its own (patch_x87_pointers, which addresses the image through r8).
bool patches_x87_pointers(ZydisMnemonic m) {
  return m == ZYDIS_MNEMONIC_FNSTENV || m == ZYDIS_MNEMONIC_FNSAVE || m == ZYDIS_MNEMONIC_FXSAVE;
}

/// A memory operand through the window; x87 instructions also record FDP (and FNSTENV, FNSAVE
/// and FXSAVE get the guest's FIP/FDP written into their image).
void translate_memory(BlockEmitter& e, const GuestInsn& in) {
  const ZydisDecodedInstruction& d = in.d;
  const bool x87_data = d.meta.isa_ext == ZYDIS_ISA_EXT_X87 && !x87_control(d.mnemonic);
  // (x87 data accesses record their address from r8: not the direct form.)
  emit_rewritten_mem(e, in, false, !x87_data && !patches_x87_pointers(d.mnemonic));
  if (x87_data) {
    e.a().mov(ctx_field(offsetof(BtContext, fpu_dp), 4), x86::r8d);
  }
  if (patches_x87_pointers(d.mnemonic)) patch_x87_pointers(e, in);
}

/// An access probe (adaptive translation, docs/bt.md "Access probes"): the instruction took page
/// faults before, each a host signal. The shadow entry of the page of the linear address in r8d
/// is read from the current space's entries and its bits looked up in the context's tables for
/// this access class (a CPL 0 block's accesses use the supervisor window, others the user
/// window), without touching the guest's flags; only an access the shadow does not map with its
/// rights (a prefetched page waiting for its first use among them) calls the monitor
/// (CalloutSite::Kind::kAccessProbe), which maps it, fills the page or raises the guest's #PF
/// as the host fault would have, without the signal. Clobbers r9-r11 (r8 too on the call).
void emit_access_probe(BlockEmitter& e, const GuestInsn& in, bool write) {
  x86::Assembler& a = e.a();
  const size_t cls = BtContext::probe_class(write, !(e.key_flags() & tb_flags::kCpl0));
  asmjit::Label mapped = a.newLabel(), done = a.newLabel();
  a.mov(x86::r9d, 12);
  a.shrx(x86::r9d, x86::r8d, x86::r9d);  // the linear page (SHRX leaves the flags alone)
  a.mov(x86::r10, ctx_field(offsetof(BtContext, shadow_entries), 8));
  a.mov(x86::r10d, x86::dword_ptr(x86::r10, x86::r9, 2));
  a.mov(x86::r9d, 20);
  a.shrx(x86::r9d, x86::r10d, x86::r9d);
  a.movzx(x86::r9d, x86::r9b);  // entry bits 20-27
  a.mov(x86::r11d, 29);
  a.shrx(x86::r10d, x86::r10d, x86::r11d);  // entry bits 29-31
  a.movzx(x86::r9d,
          x86::byte_ptr(x86::r14, x86::r9, 0,
                        static_cast<int32_t>(offsetof(BtContext, probe_low) + cls * 256)));
  a.movzx(x86::r10d,
          x86::byte_ptr(x86::r14, x86::r10, 0,
                        static_cast<int32_t>(offsetof(BtContext, probe_high) + cls * 8)));
  a.mov(x86::r11, x86::rcx);
  a.lea(x86::ecx, x86::ptr(x86::r9, x86::r10));  // 0: both halves let the access run
  a.jecxz(x86::rcx, mapped);
  a.mov(x86::rcx, x86::r11);
  a.mov(ctx_field(offsetof(BtContext, probe_linear), 4), x86::r8d);  // the monitor's only
  CalloutSite& site = e.new_site(CalloutSite::Kind::kAccessProbe, in);
  site.falls_through = true;
  site.probe_write = write;
  e.direct_call(&site);
  a.jmp(done);
  a.bind(mapped);
  a.mov(x86::rcx, x86::r11);
  a.bind(done);
}

/// A direct call into the monitor with the instruction decoded once, here, and its fast path
/// chosen (CPUID first tries the context's table of answers inline).
void translate_monitor_call(BlockEmitter& e, const GuestInsn& in) {
  CalloutSite& site = e.new_site(CalloutSite::Kind::kInstruction, in);
  const bool code32 = !(e.key_flags() & tb_flags::kCode16);
  if (!SystemEmulator::predecoded(in.d, in.ops, in.eip, code32, site.insn)) {
    throw Error(
        fmt::format("bt: internal: the system emulator cannot take the instruction at "
                    "EIP {:#x} the policy gave it",
                    in.eip));
  }
  site.falls_through = policy::falls_through(in.d);
  policy::choose_fast_path(site);
  asmjit::Label answered = e.a().newLabel();
  const bool inline_cpuid = site.fast == CalloutSite::FastPath::kCpuid;
  if (inline_cpuid) emit_inline_cpuid(e, answered);
  if (site.fast == CalloutSite::FastPath::kSystemCall && code32) {
    // SYSEXIT inline only where the block vouches for CPL 0 (at another CPL it raises #GP).
    if (in.d.mnemonic == ZYDIS_MNEMONIC_SYSENTER) {
      emit_inline_system_call(e, BtContext::kSysenter);
    } else if (e.key_flags() & tb_flags::kCpl0) {
      emit_inline_system_call(e, BtContext::kSysexit);
    }
  }
  e.direct_call(&site);
  if (inline_cpuid) e.a().bind(answered);
}

}  // namespace

void emit_access_probes(BlockEmitter& e, const GuestInsn& in, const policy::AccessProbes& probes) {
  using A = policy::ProbedAccess::Address;
  x86::Assembler& a = e.a();
  asmjit::Label skip = a.newLabel();
  if (probes.rep) {
    // JRCXZ reaches 127 bytes only, less than the probes: it jumps to a near JMP over them.
    asmjit::Label zero = a.newLabel(), probe = a.newLabel();
    a.jecxz(x86::rcx, zero);
    a.jmp(probe);
    a.bind(zero);
    a.jmp(skip);
    a.bind(probe);
  }
  for (unsigned i = 0; i < probes.count; ++i) {
    const policy::ProbedAccess& p = probes.access[i];
    switch (p.address) {
      case A::kOperand:
        e.address(*in.mem(), in.d.address_width);
        break;
      case A::kSource:
        a.mov(x86::r8d, x86::esi);
        break;
      case A::kDestination:
        a.mov(x86::r8d, x86::edi);
        break;
      case A::kPush:
        a.lea(x86::r8d, x86::ptr(x86::rsp, -static_cast<int32_t>(in.d.operand_width / 8)));
        break;
      case A::kStackTop:
        a.mov(x86::r8d, x86::esp);
        break;
    }
    emit_access_probe(e, in, p.write);
  }
  a.bind(skip);
}

void emit_shape(BlockEmitter& e, const GuestInsn& in, policy::Shape shape) {
  using policy::Shape;
  switch (shape) {
    case Shape::kNop:
      return;
    case Shape::kIdent:
      emit_ident(e, in);
      break;
    case Shape::kMemory:
      translate_memory(e, in);
      break;
    case Shape::kMoffs:
      emit_moffs(e, in);
      break;
    case Shape::kLea:
      translate_lea(e, in);
      break;
    case Shape::kStack:
      translate_stack(e, in);
      break;
    case Shape::kString: {
      const policy::StringOperands s = policy::string_operands(in.primary_opcode());
      translate_string(e, in, s.source, s.destination);
      break;
    }
    case Shape::kJump:
      translate_jump(e, in);
      break;
    case Shape::kCall:
      translate_call(e, in);
      break;
    case Shape::kReturn:
      translate_return(e, in);
      break;
    case Shape::kCondBranch:
      translate_cond_branch(e, in);
      break;
    case Shape::kCpl0Flags:
      translate_cpl0_flags(e, in);
      break;
    case Shape::kPushSreg:
      translate_push_sreg(e, in);
      break;
    case Shape::kMaskmov:
      translate_maskmov(e, in);
      break;
    case Shape::kDivide:
      translate_divide(e, in);
      break;
    case Shape::kTableStore:
      translate_table_store(e, in);
      break;
    case Shape::kMonitorCall:
      translate_monitor_call(e, in);
      return;  // the monitor keeps FIP for an instruction it runs
    case Shape::kMonitorExit:
      e.callout_exit(in.eip);
      return;
  }
  if (in.d.meta.isa_ext == ZYDIS_ISA_EXT_X87 && !x87_control(in.d.mnemonic)) {
    e.a().mov(ctx_field(offsetof(BtContext, fpu_ip), 4), in.eip);  // FIP of this instruction
  }
}

}  // namespace vmbt::bt
