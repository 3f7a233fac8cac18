// MASKMOVQ and MASKMOVDQU run by the monitor: the forms translated code cannot run in place.
#pragma once

#include <Zydis/Zydis.h>

#include <cstdint>
#include <span>

#include "bt/legacy_ops.h"
#include "bt/system/guest_access.h"
#include "vmm/cpu_state.h"

namespace vmbt::bt {

/// Whether `m` is a byte-masked store through the implicit DS:(E)DI (MASKMOVQ, MASKMOVDQU).
bool is_masked_store(ZydisMnemonic m);

/// Executes MASKMOVQ or MASKMOVDQU (Intel SDM Vol. 2B): each byte of the first register whose
/// byte in the second (the mask) has its top bit set is stored at seg:(E)DI + i, the others
/// are left alone; the segment is DS or the override, the offset DI with a 16-bit address size.
/// `fx` holds the guest's x87/MMX/SSE registers as an FXSAVE image (Intel SDM Vol. 1 §10.5.1:
/// MMn is physical register n, stored at ST((n - TOP) mod 8)); MASKMOVQ, an MMX instruction,
/// leaves TOP = 0 and every register tagged valid in it (Vol. 1 §9.5.1).
/// Faults, in this order, nothing stored: #MF for MASKMOVQ with an unmasked x87 exception
/// pending; #GP(0)/#SS(0) when the operand's 8 or 16 bytes are outside the segment or it is not
/// writable; #AC(0) for an unaligned MASKMOVQ at CPL 3 with CR0.AM and EFLAGS.AC; #PF (a write's
/// error code) when a page a selected byte lies on is not writable. Memory is read and written
/// through `mem` with the CPL's rights (a device page reads all-ones there and takes no write,
/// unlike the inline form's MMIO path).
LegacyOutcome execute_masked_store(VcpuState& s, const ZydisDecodedInstruction& insn,
                                   const ZydisDecodedOperand* ops, std::span<uint8_t, 512> fx,
                                   LinearMemory& mem);

}  // namespace vmbt::bt
