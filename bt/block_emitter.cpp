#include "bt/block_emitter.h"

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>

#include "bt/guest_operands.h"
#include "bt/host_registers.h"
#include "bt/translator.h"
#include "vmm/error.h"

namespace vmbt::bt {

void ThrowingErrorHandler::handleError(asmjit::Error, const char* message, asmjit::BaseEmitter*) {
  throw Error(fmt::format("internal: bt's assembler failed: {}", message));
}

void ThrowingErrorHandler::check(asmjit::Error err, const char* what) {
  if (err != asmjit::kErrorOk) {
    throw Error(fmt::format("internal: bt's assembler failed to {}: {}", what,
                            asmjit::DebugUtils::errorAsString(err)));
  }
}

namespace x86 = asmjit::x86;

namespace {

/// The host memory operand computing guest effective address [base + index * scale + disp]
/// (32-bit arithmetic once the result is written to a 32-bit register). Without a base register
/// the operand is forced absolute: asmjit would otherwise make it RIP-relative.
x86::Mem guest_ea(int base, int index, unsigned shift, int32_t disp) {
  if (base >= 0 && index >= 0) return x86::ptr(kGuestGpr64[base], kGuestGpr64[index], shift, disp);
  if (base >= 0) return x86::ptr(kGuestGpr64[base], disp);
  x86::Mem m =
      x86::ptr(static_cast<uint64_t>(static_cast<uint32_t>(disp)), kGuestGpr64[index], shift);
  m.setAddrType(x86::Mem::AddrType::kAbs);
  return m;
}

unsigned scale_shift(uint8_t scale) {
  return scale == 8 ? 3 : scale == 4 ? 2 : scale == 2 ? 1 : 0;
}

}  // namespace

void BlockEmitter::effective_address(const ZydisDecodedOperand& m, unsigned address_width,
                                     int32_t extra) {
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
}

bool BlockEmitter::direct_window_address(const ZydisDecodedOperand& m, unsigned address_width,
                                         DirectAddress* out) const {
  // The alias below the window covers the top 512 MiB of the linear space (LinearWindow): from
  // r15, a register (0 to 4 GiB - 1) plus a displacement down to -496 MiB, plus an access's
  // size, stays inside the reservation. From r12 (r15 + 4 GiB), a displacement down to -2 GiB
  // reaches 2 GiB to 8 GiB - 1 above r15: the window and its copy above.
  constexpr int64_t kLowestFromWindow = -(int64_t{496} << 20);
  if (address_width != 32 || m.mem.type != ZYDIS_MEMOP_TYPE_MEM) return false;
  const int base = gpr_index(m.mem.base), index = gpr_index(m.mem.index);
  if ((base >= 0 && index >= 0) || (index >= 0 && m.mem.scale != 1)) return false;
  if (m.mem.base != ZYDIS_REGISTER_NONE && base < 0) return false;  // (EIP-relative: not here)
  const int64_t d = m.mem.disp.has_displacement ? m.mem.disp.value : 0;
  if (d < INT32_MIN || d > INT32_MAX) return false;
  if (!segment_base_is_zero(operand_segment(m))) return false;
  out->reg = base >= 0 ? base : index;
  out->disp = static_cast<int32_t>(d);
  // An absolute address above 2 GiB is negative as a displacement: from r12 it is the address.
  out->high = out->reg >= 0 ? d < kLowestFromWindow : d < 0;
  return true;
}

x86::Mem BlockEmitter::guest_memory(const ZydisDecodedOperand& m, unsigned address_width,
                                    unsigned size) {
  DirectAddress da;
  if (direct_window_address(m, address_width, &da)) {
    const x86::Gp& base = da.high ? x86::r12 : x86::r15;
    if (da.reg < 0) return x86::ptr(base, da.disp, size);
    return x86::ptr(kGuestGpr64[da.reg], base, 0, da.disp, size);
  }
  address(m, address_width);
  return window(size);
}

bool BlockEmitter::segment_base_is_zero(int seg) const {
  return (seg == 1 && tb_.cs_base == 0) ||  // CS: the block's code segment base is known
         (seg == 2 && (key_flags_ & tb_flags::kFlatStack)) ||
         ((seg == 0 || seg == 3) && (key_flags_ & tb_flags::kFlatData));
}

void BlockEmitter::add_segment_base(int seg, const x86::Gp& reg) {
  if (segment_base_is_zero(seg)) return;
  a_.mov(x86::r9d, ctx_field(offsetof(BtContext, seg_base) + 4 * seg, 4));
  a_.lea(reg.r32(), x86::ptr(reg.r64(), x86::r9));
}

void BlockEmitter::direct_exit(uint32_t target, int cc) {
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

void BlockEmitter::indirect_exit() {
  const auto leave = asmjit::imm(reinterpret_cast<uint64_t>(stubs_.indirect_exit));
  if (key_flags_ & tb_flags::kSingleInstruction) {
    // A single-instruction block returns to the monitor after its one instruction (TF
    // single-stepping, stores the monitor re-runs alone): no table lookup into the next block.
    a_.jmp(leave);
    return;
  }
  const auto lookup_start = static_cast<uint32_t>(a_.offset());
  a_.mov(x86::r11, ctx_field(offsetof(BtContext, indirect_table), 8));
  probe_table(lookup_start);
}

void BlockEmitter::indirect_exit_to_mode(size_t tables_field) {
  // The context's first table becomes the new mode's, or stays the kick table when a kick came
  // first (kick_pending indexes the pair). A kick from here on lands in the lookup and leaves
  // through Stubs::indirect_exit.
  const auto lookup_start = static_cast<uint32_t>(a_.offset());
  a_.mov(x86::r10d, ctx_field(offsetof(BtContext, kick_pending), 4));
  a_.mov(x86::r11, x86::ptr(x86::r14, x86::r10, 3, static_cast<int32_t>(tables_field), 8));
  a_.mov(ctx_field(offsetof(BtContext, indirect_table), 8), x86::r11);
  probe_table(lookup_start);
}

void BlockEmitter::probe_table(uint32_t lookup_start) {
  a_.movzx(x86::r10d, x86::r9w);
  a_.jmp(x86::ptr(x86::r11, x86::r10, 3, 0, 8));
  tb_.table_exits.push_back({lookup_start, static_cast<uint32_t>(a_.offset())});
}

void BlockEmitter::unless_ecx_zero(const asmjit::Operand_& nonzero, uint32_t zero_path_align) {
  asmjit::Label zero = a_.newLabel();
  a_.jecxz(x86::rcx, zero);
  a_.mov(x86::rcx, x86::r10);
  a_.emit(x86::Inst::kIdJmp, nonzero);
  if (zero_path_align) a_.align(asmjit::AlignMode::kCode, zero_path_align);
  a_.bind(zero);
  a_.mov(x86::rcx, x86::r10);
}

void BlockEmitter::jump_to_exit() {
  a_.jmp(asmjit::imm(reinterpret_cast<uint64_t>(stubs_.exit)));
}

CalloutSite& BlockEmitter::new_site(CalloutSite::Kind kind, const GuestInsn& in) {
  auto site = std::make_unique<CalloutSite>();
  site->kind = kind;
  site->tb = &tb_;
  site->insn.eip = in.eip;
  site->insn.next_eip = in.next;
  tb_.callout_sites.push_back(std::move(site));
  return *tb_.callout_sites.back();
}

void BlockEmitter::direct_call(CalloutSite* site) {
  asmjit::Label resume = a_.newLabel();
  a_.mov(x86::r10, reinterpret_cast<uint64_t>(site));
  a_.lea(x86::r11, x86::ptr(resume));
  a_.jmp(asmjit::imm(reinterpret_cast<uint64_t>(stubs_.direct_call)));
  a_.bind(resume);
}

void BlockEmitter::exit_to_monitor(uint32_t eip, ExitKind kind) {
  a_.mov(ctx_field(offsetof(BtContext, eip), 4), eip);
  a_.mov(ctx_field(offsetof(BtContext, exit_kind), 4), static_cast<uint32_t>(kind));
  a_.jmp(asmjit::imm(reinterpret_cast<uint64_t>(stubs_.exit)));
}

void BlockEmitter::emit_stubs() {
  for (unsigned i = 0; i < tb_.exit_count; ++i) {
    a_.bind(exit_labels_[i]);
    a_.mov(ctx_field(offsetof(BtContext, eip), 4), tb_.exits[i].target_eip);
    a_.mov(ctx_field(offsetof(BtContext, exit_slot), 4), i);
    a_.mov(x86::r10, reinterpret_cast<uint64_t>(&tb_));
    a_.mov(ctx_field(offsetof(BtContext, exit_tb), 8), x86::r10);
    a_.mov(ctx_field(offsetof(BtContext, exit_kind), 4), static_cast<uint32_t>(ExitKind::kBranch));
    a_.jmp(asmjit::imm(reinterpret_cast<uint64_t>(stubs_.exit)));
  }
}

void BlockEmitter::resolve(asmjit::CodeHolder& code) {
  for (unsigned i = 0; i < tb_.exit_count; ++i) {
    tb_.exits[i].stub_offset = static_cast<uint32_t>(code.labelOffset(exit_labels_[i]));
  }
}

}  // namespace vmbt::bt
