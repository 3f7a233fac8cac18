// Unprivileged IA-32 instructions that have no 64-bit-mode encoding, executed by the monitor.
#pragma once

#include <Zydis/Zydis.h>

#include "bt/system/guest_access.h"
#include "vmm/cpu_state.h"

namespace vmbt::bt {

enum class LegacyResult {
  kNotHandled,  ///< not one of these instructions: the system emulator takes it
  kDone,        ///< executed; EIP advanced
  kFault,       ///< raised `fault` (EIP still at the instruction)
};

struct LegacyOutcome {
  LegacyResult result = LegacyResult::kNotHandled;
  GuestFault fault{};
};

/// Executes PUSHA/PUSHAD, POPA/POPAD, XLAT, ENTER, BOUND, DAA, DAS, AAA, AAS, AAM, AAD and SALC
/// (invalid in 64-bit mode, so translated code cannot run them natively), and the forms the
/// translator leaves to the monitor (LEAVE, LOOPcc/JCXZ with a 16-bit address size, near CALL
/// and RET with a 16-bit operand size), with the semantics of
/// their Intel SDM Vol. 2 pages, including the flags those pages define. Memory goes through
/// `mem` at the segment bases of `s`; the stack is SS:ESP, or SS:SP where SS.B = 0.
/// Whether `m` is one of the instructions above that the translator always hands to the monitor
/// (it sends the 16-bit-address string and loop forms only when it cannot run them itself).
bool is_legacy_instruction(ZydisMnemonic m);

LegacyOutcome execute_legacy(VcpuState& s, const ZydisDecodedInstruction& insn,
                             const ZydisDecodedOperand* ops, LinearMemory& mem);

}  // namespace vmbt::bt
