// SystemEmulator: instruction fetch and decode, dispatch, operand access, entry points.
#include <fmt/format.h>

#include <utility>

#include "bt/debug_registers.h"
#include "bt/insn_policy.h"
#include "bt/system/internal.h"
#include "bt/system/system_emulator.h"

namespace vmbt::bt {

using sys::Insn;

namespace {

/// The checks and sizes that follow a successful decode: false for encodings outside the vmbt CPU
/// model (VEX/EVEX/XOP/3DNow! and unadvertised extensions raise #UD); operand and address size,
/// and the next EIP (16-bit code wraps it at 64 KiB).
bool complete_decode(Insn& in, bool code32) {
  if (in.zi.encoding != ZYDIS_INSTRUCTION_ENCODING_LEGACY) return false;
  if (!policy::model_executes(in.zi)) return false;
  const bool opsize_prefix = in.zi.attributes & ZYDIS_ATTRIB_HAS_OPERANDSIZE;
  if (in.zi.operand_width == 16) {
    in.osize = 2;
  } else if (in.zi.operand_width == 32) {
    in.osize = 4;
  } else {
    in.osize = (code32 != opsize_prefix) ? 4 : 2;
  }
  in.asize = in.zi.address_width == 16 ? 2 : 4;
  in.next_eip = in.eip + in.zi.length;
  if (!code32) in.next_eip &= 0xffff;
  return true;
}

std::string format_insn(const Insn& in) {
  ZydisFormatter f;
  ZydisFormatterInit(&f, ZYDIS_FORMATTER_STYLE_INTEL);
  char buf[128] = {};
  ZydisFormatterFormatInstruction(&f, &in.zi, in.ops, in.zi.operand_count_visible, buf, sizeof buf,
                                  in.eip, nullptr);
  return buf;
}

}  // namespace

SystemEmulator::SystemEmulator(LinearMemory& mem, SystemHooks& hooks) : mem_(mem), hooks_(hooks) {}

// Fetch with the CPL's rights, CS limit (#GP(0)) and the 15-byte limit (#GP(0)); decode errors
// are #UD (Intel SDM Vol. 2A §2.3.11, Vol. 3A §5.3).
void SystemEmulator::fetch_decode(const VcpuState& s, Insn& in) {
  const SegmentReg& cs = s.seg[kCs];
  const bool code32 = cs.db;
  in.eip = s.eip;
  if (s.eip > cs.limit) sys::gp(0);
  const uint32_t avail =
      static_cast<uint32_t>(std::min<uint64_t>(15, uint64_t{cs.limit} - s.eip + 1));
  const uint32_t lin = cs.base + s.eip;
  const uint32_t first = std::min<uint32_t>(avail, 4096 - (lin & 0xfff));
  const bool user = sys::cpl(s) == 3;
  uint8_t buf[15] = {};
  mem_.read(lin, buf, first, user);

  ZydisDecoder dec;
  ZydisDecoderInit(&dec, code32 ? ZYDIS_MACHINE_MODE_LEGACY_32 : ZYDIS_MACHINE_MODE_LEGACY_16,
                   code32 ? ZYDIS_STACK_WIDTH_32 : ZYDIS_STACK_WIDTH_16);
  ZyanStatus st = ZydisDecoderDecodeFull(&dec, buf, first, &in.zi, in.ops);
  if (st == ZYDIS_STATUS_NO_MORE_DATA && first < avail) {
    mem_.read(lin + first, buf + first, avail - first, user);  // the next page (may #PF)
    st = ZydisDecoderDecodeFull(&dec, buf, avail, &in.zi, in.ops);
  }
  if (st == ZYDIS_STATUS_NO_MORE_DATA || st == ZYDIS_STATUS_INSTRUCTION_TOO_LONG) sys::gp(0);
  if (!ZYAN_SUCCESS(st)) sys::ud();
  if (!complete_decode(in, code32)) sys::ud();
}

bool SystemEmulator::predecoded(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* ops,
                                uint32_t eip, bool code32, sys::Insn& out) {
  out.zi = insn;
  std::copy(ops, ops + ZYDIS_MAX_OPERAND_COUNT, out.ops);
  out.eip = eip;
  return complete_decode(out, code32);
}

uint32_t SystemEmulator::data_linear(const VcpuState& s, unsigned seg, uint32_t offset,
                                     unsigned size, bool write) {
  // Intel SDM Vol. 3A §5.3 (limit), §5.4.1 (null selector), §5.5 (type checks).
  const SegmentReg& r = s.seg[seg];
  const uint8_t vec = seg == kSs ? sys::vec::kSs : sys::vec::kGp;
  if (r.unusable) sys::fault(vec, 0);
  if (r.s && (r.type & 8)) {
    if (write || !(r.type & 2)) sys::gp(0);  // code: never writable, readable only if R=1
  } else if (write && !(r.type & 2)) {
    sys::fault(vec, 0);
  }
  if (!sys::in_limit(r, offset, size)) sys::fault(vec, 0);
  return r.base + offset;
}

uint32_t SystemEmulator::mem_read(const VcpuState& s, unsigned seg, uint32_t offset,
                                  unsigned size) {
  const uint32_t lin = data_linear(s, seg, offset, size, false);
  const uint32_t v = sys::read_u(mem_, lin, size, sys::cpl(s) == 3);
  log_data_access(lin, size, false);
  return v;
}

void SystemEmulator::mem_write(const VcpuState& s, unsigned seg, uint32_t offset, uint32_t value,
                               unsigned size) {
  const uint32_t lin = data_linear(s, seg, offset, size, true);
  sys::write_u(mem_, lin, value, size, sys::cpl(s) == 3);
  log_data_access(lin, size, true);
}

uint32_t SystemEmulator::read_operand(const VcpuState& s, const Insn& in, unsigned i,
                                      unsigned size) {
  const ZydisDecodedOperand& op = in.ops[i];
  const uint32_t mask = size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
  switch (op.type) {
    case ZYDIS_OPERAND_TYPE_REGISTER:
      return sys::read_reg(s, op.reg.value) & mask;
    case ZYDIS_OPERAND_TYPE_MEMORY:
      return mem_read(s, sys::sreg_index(op.mem.segment), sys::effective_offset(s, in, op), size);
    case ZYDIS_OPERAND_TYPE_IMMEDIATE:
      return static_cast<uint32_t>(op.imm.value.u) & mask;
    default:
      return 0;
  }
}

void SystemEmulator::write_operand(VcpuState& s, const Insn& in, unsigned i, uint32_t value,
                                   unsigned size) {
  const ZydisDecodedOperand& op = in.ops[i];
  if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    sys::write_reg(s, op.reg.value, value);
  } else if (op.type == ZYDIS_OPERAND_TYPE_MEMORY) {
    mem_write(s, sys::sreg_index(op.mem.segment), sys::effective_offset(s, in, op), value, size);
  }
}

StepResult SystemEmulator::debug_trap(VcpuState& s, uint32_t dr6_bits) {
  // One #DB after the instruction for every debug condition it met (Intel SDM Vol. 3B §17.2.3).
  s.dr[6] |= dr6_bits;
  sys::Event ev;
  ev.vector = sys::vec::kDb;
  ev.return_eip = s.eip;
  return deliver_event(s, ev);
}

StepResult SystemEmulator::execute(VcpuState& s) {
  return run_instruction(s, nullptr);
}

StepResult SystemEmulator::execute(VcpuState& s, const sys::Insn& decoded) {
  return run_instruction(s, &decoded);
}

StepResult SystemEmulator::fetch_and_dispatch(VcpuState& s) {
  // A decoded instruction is over a kilobyte: it lives here, not in run_instruction's frame,
  // where the compiler would clear it for every predecoded direct call too.
  Insn in;
  fetch_decode(s, in);
  return dispatch(s, in);
}

StepResult SystemEmulator::run_instruction(VcpuState& s, const sys::Insn* decoded) {
  interrupt_shadow = false;
  event_delivered_ = false;
  suppress_single_step_ = false;
  keep_rf_ = false;
  task_trap_pending_ = false;
  pending_ = PendingIo{};
  const VcpuRegisters before = s;
  const bool tf = s.eflags & eflags::kTf;
  StepResult r;
  try {
    r = decoded ? dispatch(s, *decoded) : fetch_and_dispatch(s);
    if (r.kind == StepKind::kDone && !event_delivered_) {
      if (!keep_rf_) s.eflags &= ~eflags::kRf;
      // Single-step (BS, Intel SDM Vol. 3B §17.3.1.4), and a task switch into a TSS with T set
      // (BT, before the new task's first instruction, §17.3.1.5): one #DB for both.
      const uint32_t dr6_bits = (tf && !suppress_single_step_ ? dr::kBs : 0) |
                                (std::exchange(task_trap_pending_, false) ? dr::kBt : 0);
      if (dr6_bits) r = debug_trap(s, dr6_bits);
    } else if (r.kind == StepKind::kHalt) {
      s.eflags &= ~eflags::kRf;
    } else if (r.kind == StepKind::kIo) {
      pending_.single_step = tf;
    }
  } catch (const GuestFault& f) {
    roll_back(s, before);
    interrupt_shadow = false;
    pending_ = PendingIo{};
    if (data_log_) data_log_->clear();
    sys::Event ev;
    ev.vector = f.vector;
    ev.error_code = f.error_code;
    ev.return_eip = s.eip;
    ev.fault = sys::exception_is_fault(f.vector);
    r = deliver_event(s, ev);
  } catch (const sys::Unsupported& u) {
    roll_back(s, before);
    interrupt_shadow = false;
    pending_ = PendingIo{};
    r = {StepKind::kUnsupported, {}, u.message};
  }
  return r;
}

StepResult SystemEmulator::raise(VcpuState& s, uint8_t vector, bool /*has_error_code*/,
                                 uint32_t error_code) {
  interrupt_shadow = false;
  sys::Event ev;
  ev.vector = vector;
  ev.error_code = error_code;
  ev.return_eip = s.eip;
  ev.fault = sys::exception_is_fault(vector);
  return deliver_event(s, ev);
}

StepResult SystemEmulator::deliver_interrupt(VcpuState& s, uint8_t vector) {
  interrupt_shadow = false;
  sys::Event ev;
  ev.vector = vector;
  ev.kind = sys::Event::Kind::kExternal;
  ev.return_eip = s.eip;
  return deliver_event(s, ev);
}

StepResult SystemEmulator::deliver_nmi(VcpuState& s) {
  StepResult r = deliver_interrupt(s, sys::vec::kNmi);
  if (r.kind == StepKind::kDone) nmi_blocked = true;
  return r;
}

StepResult SystemEmulator::dispatch(VcpuState& s, const Insn& in) {
  if (sys::segments_8086(s) && policy::protected_mode_only(in.mnemonic())) sys::ud();
  switch (in.mnemonic()) {
    case ZYDIS_MNEMONIC_CLI:
      return cli(s, in);
    case ZYDIS_MNEMONIC_STI:
      return sti(s, in);
    case ZYDIS_MNEMONIC_PUSHF:
    case ZYDIS_MNEMONIC_PUSHFD:
      return pushf(s, in);
    case ZYDIS_MNEMONIC_POPF:
    case ZYDIS_MNEMONIC_POPFD:
      return popf(s, in);
    case ZYDIS_MNEMONIC_IRET:
    case ZYDIS_MNEMONIC_IRETD:
      return iret(s, in);
    case ZYDIS_MNEMONIC_INT:
    case ZYDIS_MNEMONIC_INT1:
    case ZYDIS_MNEMONIC_INT3:
    case ZYDIS_MNEMONIC_INTO:
      return software_interrupt(s, in);
    case ZYDIS_MNEMONIC_SYSENTER:
      return sysenter(s, in);
    case ZYDIS_MNEMONIC_SYSEXIT:
      return sysexit(s, in);
    case ZYDIS_MNEMONIC_IN:
    case ZYDIS_MNEMONIC_OUT:
      return in_out(s, in);
    case ZYDIS_MNEMONIC_INSB:
    case ZYDIS_MNEMONIC_INSW:
    case ZYDIS_MNEMONIC_INSD:
    case ZYDIS_MNEMONIC_OUTSB:
    case ZYDIS_MNEMONIC_OUTSW:
    case ZYDIS_MNEMONIC_OUTSD:
      return string_io(s, in);
    case ZYDIS_MNEMONIC_HLT:
      return hlt(s, in);
    case ZYDIS_MNEMONIC_LGDT:
    case ZYDIS_MNEMONIC_LIDT:
      return lgdt_lidt(s, in);
    case ZYDIS_MNEMONIC_SGDT:
    case ZYDIS_MNEMONIC_SIDT:
      return sgdt_sidt(s, in);
    case ZYDIS_MNEMONIC_LLDT:
      return lldt(s, in);
    case ZYDIS_MNEMONIC_LTR:
      return ltr(s, in);
    case ZYDIS_MNEMONIC_SLDT:
    case ZYDIS_MNEMONIC_STR:
      return sldt_str(s, in);
    case ZYDIS_MNEMONIC_SMSW:
      return smsw(s, in);
    case ZYDIS_MNEMONIC_LMSW:
      return lmsw(s, in);
    case ZYDIS_MNEMONIC_CLTS:
      return clts(s, in);
    case ZYDIS_MNEMONIC_INVD:
    case ZYDIS_MNEMONIC_WBINVD:
      return cache_control(s, in);
    case ZYDIS_MNEMONIC_INVLPG:
      return invlpg(s, in);
    case ZYDIS_MNEMONIC_MOV: {
      for (unsigned i = 0; i < 2; ++i) {
        if (!in.is_reg(i)) continue;
        const ZydisRegisterClass c = ZydisRegisterGetClass(in.ops[i].reg.value);
        if (c == ZYDIS_REGCLASS_CONTROL) return mov_cr(s, in);
        if (c == ZYDIS_REGCLASS_DEBUG) return mov_dr(s, in);
      }
      if (in.is_reg(0) && sys::sreg_index(in.ops[0].reg.value) >= 0) return mov_sreg(s, in);
      if (in.is_reg(1) && sys::sreg_index(in.ops[1].reg.value) >= 0) return mov_from_sreg(s, in);
      break;
    }
    case ZYDIS_MNEMONIC_PUSH:
      if (in.is_reg(0) && sys::sreg_index(in.ops[0].reg.value) >= 0) return push_sreg(s, in);
      break;
    case ZYDIS_MNEMONIC_POP:
      if (in.is_reg(0) && sys::sreg_index(in.ops[0].reg.value) >= 0) return pop_sreg(s, in);
      break;
    case ZYDIS_MNEMONIC_LDS:
    case ZYDIS_MNEMONIC_LES:
    case ZYDIS_MNEMONIC_LFS:
    case ZYDIS_MNEMONIC_LGS:
    case ZYDIS_MNEMONIC_LSS:
      return load_far_pointer(s, in);
    case ZYDIS_MNEMONIC_LAR:
    case ZYDIS_MNEMONIC_LSL:
      return lar_lsl(s, in);
    case ZYDIS_MNEMONIC_VERR:
    case ZYDIS_MNEMONIC_VERW:
      return verr_verw(s, in);
    case ZYDIS_MNEMONIC_ARPL:
      return arpl(s, in);
    case ZYDIS_MNEMONIC_CPUID:
      return cpuid(s, in);
    case ZYDIS_MNEMONIC_RDTSC:
      return rdtsc(s, in);
    case ZYDIS_MNEMONIC_RDPMC:
      return rdpmc(s, in);
    case ZYDIS_MNEMONIC_RDMSR:
      return rdmsr(s, in);
    case ZYDIS_MNEMONIC_WRMSR:
      return wrmsr(s, in);
    case ZYDIS_MNEMONIC_CALL:
    case ZYDIS_MNEMONIC_JMP:
      if (in.zi.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR) return far_jmp_call(s, in);
      break;
    case ZYDIS_MNEMONIC_RET:
      if (in.zi.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR) return far_ret(s, in);
      break;
    case ZYDIS_MNEMONIC_UD0:
    case ZYDIS_MNEMONIC_UD1:
    case ZYDIS_MNEMONIC_UD2:
      sys::ud();  // Intel SDM Vol. 2B UD: raises #UD
    case ZYDIS_MNEMONIC_SYSCALL:
    case ZYDIS_MNEMONIC_SYSRET:
      sys::ud();  // #UD outside 64-bit mode on Intel processors (Vol. 2B SYSCALL)
    case ZYDIS_MNEMONIC_RSM:
      sys::ud();  // #UD when not in SMM (Vol. 2B RSM)
    default:
      break;
  }
  return {StepKind::kUnsupported,
          {},
          fmt::format("not a system instruction: '{}' at CS:EIP={:04x}:{:08x}", format_insn(in),
                      s.seg[kCs].selector, s.eip)};
}

}  // namespace vmbt::bt
