// Segment limit and type checks for data accesses (Intel SDM Vol. 3A §5.3, §5.4).
#pragma once

#include <Zydis/Zydis.h>

#include <cstdint>
#include <optional>

#include "bt/system/guest_access.h"
#include "vmm/cpu_state.h"

namespace vmbt::bt {

/// True when data accesses through `seg` need no check: a present, writable, expand-up data
/// segment with a 4 GiB limit (what flat-model operating systems load). Translated code accesses
/// such segments directly; instructions using any other segment run checked (docs/bt.md).
bool segment_unrestricted(const SegmentReg& seg);

/// Bit i set: segment register i (SegIndex) is restricted in `s`.
uint32_t restricted_segments(const VcpuState& s);

/// Bit i set: segment register i needs checks even for an offset that wraps at 64 KiB (16-bit
/// addressing, or SP on a 16-bit stack): it is not a present, writable, expand-up data segment
/// with a limit of at least 0xFFFF. Real mode's segments (limit 0xFFFF) are not: no offset
/// there can exceed the limit, only an access straddling offset 0xFFFF, which is not checked
/// (as QEMU's TCG does not). CS is always set, as in restricted_segments().
uint32_t restricted_segments_16(const VcpuState& s);

/// The segment registers (as a SegIndex bit mask) the memory operands of an instruction use,
/// explicit and implicit (stack, string).
uint32_t segments_used(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* ops);

/// segments_used() split by how the offsets are formed: `wrapped` gets the segments used with
/// offsets that wrap at 64 KiB (a 16-bit address size; the stack's when `stack16`, SS.B = 0),
/// `full` those used with 32-bit offsets.
void segments_used_by_width(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* ops,
                            bool stack16, uint32_t* wrapped, uint32_t* full);

/// Checks one access of `size` bytes at `offset` through segment register `seg`: #SS(0) for SS,
/// #GP(0) otherwise, when the segment is null, the type forbids it (a write to code or read-only
/// data, a read of execute-only code), or any byte is outside the limit (expand-down included).
/// In real-address and virtual-8086 mode only the limit is checked.
std::optional<GuestFault> check_access(const VcpuState& s, unsigned seg, uint32_t offset,
                                       unsigned size, bool write);

/// Checks every memory access of `insn` at the current state (offsets from its operands; the
/// stack accesses of PUSH/POP/CALL/RET/LEAVE from ESP/EBP).
std::optional<GuestFault> check_instruction(const VcpuState& s, const ZydisDecodedInstruction& insn,
                                            const ZydisDecodedOperand* ops);

}  // namespace vmbt::bt
