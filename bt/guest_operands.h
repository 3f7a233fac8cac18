// Guest registers and memory operands as Zydis names them, for the parts of bt that read them.
#pragma once

#include <Zydis/Zydis.h>

#include <cstdint>

#include "vmm/cpu_state.h"

namespace vmbt::bt {

/// Whether the instruction has a REP, REPE or REPNE prefix (a string instruction repeats on ECX).
inline bool has_rep_prefix(const ZydisDecodedInstruction& insn) {
  return insn.attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE | ZYDIS_ATTRIB_HAS_REPNE);
}

/// Index (Gpr) of the 32-bit register enclosing a general-purpose register (AL..EDI), or -1.
inline int gpr_index(ZydisRegister r) {
  if (r == ZYDIS_REGISTER_NONE) return -1;
  ZydisRegister big = ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LEGACY_32, r);
  return (big >= ZYDIS_REGISTER_EAX && big <= ZYDIS_REGISTER_EDI) ? big - ZYDIS_REGISTER_EAX : -1;
}

/// Index (SegIndex) of a segment register, or -1. Zydis lists ES CS SS DS FS GS in SDM order.
inline int segment_index(ZydisRegister r) {
  return (r >= ZYDIS_REGISTER_ES && r <= ZYDIS_REGISTER_GS) ? r - ZYDIS_REGISTER_ES : -1;
}

/// The segment of a memory operand (Zydis fills in the default one), DS if it names none.
inline int operand_segment(const ZydisDecodedOperand& mem) {
  int seg = segment_index(mem.mem.segment);
  return seg >= 0 ? seg : static_cast<int>(kDs);
}

/// The offset in its segment of memory operand `mem` at state `s`: base + index * scale + disp,
/// wrapped to the address size (Intel SDM Vol. 1 §3.7.5).
inline uint32_t effective_offset(const VcpuState& s, const ZydisDecodedOperand& mem,
                                 unsigned address_width) {
  int base = gpr_index(mem.mem.base), index = gpr_index(mem.mem.index);
  uint32_t offset = static_cast<uint32_t>(mem.mem.disp.has_displacement ? mem.mem.disp.value : 0);
  if (base >= 0) offset += s.gpr[base];
  if (index >= 0) offset += s.gpr[index] * mem.mem.scale;
  return address_width == 16 ? (offset & 0xffff) : offset;
}

}  // namespace vmbt::bt
