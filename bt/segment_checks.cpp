#include "bt/segment_checks.h"

#include "bt/guest_operands.h"

namespace vmbt::bt {

namespace {

/// A present, writable, expand-up data segment whose limit is at least `min_limit`.
bool plain_data_segment(const SegmentReg& seg, uint32_t min_limit) {
  return !seg.unusable && seg.present && seg.s && !(seg.type & 8) && (seg.type & 2) &&
         !(seg.type & 4) && seg.limit >= min_limit;
}

/// The SegIndex mask of CS (data accesses through CS are always checked: a code segment) and
/// the data segment registers that are not plain data segments of at least `min_limit`.
uint32_t segments_below(const VcpuState& s, uint32_t min_limit) {
  uint32_t mask = 1u << kCs;
  for (unsigned i : {kEs, kSs, kDs, kFs, kGs}) {
    if (!plain_data_segment(s.seg[i], min_limit)) mask |= 1u << i;
  }
  return mask;
}

}  // namespace

bool segment_unrestricted(const SegmentReg& seg) {
  return plain_data_segment(seg, 0xffffffffu);
}

uint32_t restricted_segments(const VcpuState& s) {
  return segments_below(s, 0xffffffffu);
}

uint32_t restricted_segments_16(const VcpuState& s) {
  return segments_below(s, 0xffffu);
}

namespace {

bool is_stack_operand(const ZydisDecodedOperand& o) {
  return o.visibility == ZYDIS_OPERAND_VISIBILITY_HIDDEN &&
         (o.mem.base == ZYDIS_REGISTER_ESP || o.mem.base == ZYDIS_REGISTER_SP);
}

}  // namespace

void segments_used_by_width(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* ops,
                            bool stack16, uint32_t* wrapped, uint32_t* full) {
  *wrapped = *full = 0;
  for (unsigned i = 0; i < insn.operand_count; ++i) {
    const ZydisDecodedOperand& o = ops[i];
    if (o.type != ZYDIS_OPERAND_TYPE_MEMORY || o.mem.type != ZYDIS_MEMOP_TYPE_MEM) continue;
    const int seg = segment_index(o.mem.segment);
    if (seg < 0) continue;
    const bool wraps = is_stack_operand(o) ? stack16 : insn.address_width == 16;
    *(wraps ? wrapped : full) |= 1u << seg;
  }
}

uint32_t segments_used(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* ops) {
  uint32_t mask = 0;
  for (unsigned i = 0; i < insn.operand_count; ++i) {
    const ZydisDecodedOperand& o = ops[i];
    if (o.type != ZYDIS_OPERAND_TYPE_MEMORY || o.mem.type != ZYDIS_MEMOP_TYPE_MEM) continue;
    int seg = segment_index(o.mem.segment);
    if (seg >= 0) mask |= 1u << seg;
  }
  return mask;
}

std::optional<GuestFault> check_access(const VcpuState& s, unsigned seg, uint32_t offset,
                                       unsigned size, bool write) {
  const SegmentReg& r = s.seg[seg];
  const GuestFault fault{static_cast<uint8_t>(seg == kSs ? 12 : 13), true, 0};
  // Real-address and virtual-8086 mode have no descriptor types to check (Intel SDM Vol. 3A
  // §20.1: no protection in real mode; §20.2: a virtual-8086 task's segments are 64 KiB
  // read/write): a write through CS is allowed (GRUB's real-mode INT 13h glue stores the
  // returned registers into its own code, `mov cs:[x], eax`), so is an access through a segment
  // whose cache protected mode left; only the limit applies (QEMU's TCG checks neither).
  const bool protection = (s.cr0 & cr0::kPe) && !(s.eflags & eflags::kVm);
  bool code = r.type & 8;
  if (protection) {
    if (r.unusable || !r.present) return fault;
    if (code ? (write || !(r.type & 2)) : (write && !(r.type & 2))) return fault;
  }
  uint64_t last = uint64_t{offset} + size - 1;
  if (!code && (r.type & 4)) {  // expand-down: valid offsets are limit+1 .. 0xffff/0xffffffff
    uint64_t upper = r.db ? 0xffffffffu : 0xffffu;
    if (offset <= r.limit || last > upper) return fault;
  } else if (last > r.limit) {
    return fault;
  }
  return std::nullopt;
}

std::optional<GuestFault> check_instruction(const VcpuState& s, const ZydisDecodedInstruction& insn,
                                            const ZydisDecodedOperand* ops) {
  for (unsigned i = 0; i < insn.operand_count; ++i) {
    const ZydisDecodedOperand& o = ops[i];
    if (o.type != ZYDIS_OPERAND_TYPE_MEMORY || o.mem.type != ZYDIS_MEMOP_TYPE_MEM) continue;
    int seg = segment_index(o.mem.segment);
    if (seg < 0) continue;
    uint32_t offset = effective_offset(s, o, insn.address_width);
    unsigned size = o.size / 8;
    if (size == 0) size = 1;
    bool write = o.actions & ZYDIS_OPERAND_ACTION_MASK_WRITE;
    bool stack = is_stack_operand(o);
    if (stack && write) offset -= size;  // PUSH/CALL store below ESP
    if (auto f = check_access(s, static_cast<unsigned>(seg), offset, size,
                              write || (o.actions & ZYDIS_OPERAND_ACTION_MASK_WRITE))) {
      return f;
    }
  }
  return std::nullopt;
}

}  // namespace vmbt::bt
