// Turns a generated 32-bit case into the same instructions for a 16-bit code segment (real
// mode, or protected mode with CS.D = 0), for the differential tests of 16-bit code.
#pragma once

#include <optional>
#include <string>

#include "tests/difftest/case_generator.h"

namespace vmbt::difftest {

/// The case `gc` re-encoded for 16-bit code: each instruction gets the operand-size (66h) and
/// address-size (67h) prefixes that give it, with 16-bit defaults, the operand and address
/// sizes it had with 32-bit ones (Intel SDM Vol. 1 §3.6, Vol. 2A §2.1.1), and every relative
/// branch its displacement over the longer code. What still differs is what a 16-bit segment
/// itself changes: the stack is SS:SP, IP wraps at 64 KiB, offsets are limit-checked against
/// 0xffff. Each re-encoding is checked by decoding it as 16-bit code (same mnemonic, operand
/// and address size). The result has NativeCase::code16 set and its instructions' offsets,
/// lengths and description remapped. std::nullopt, with `why` set, when some instruction cannot
/// be re-encoded so (a displacement that no longer fits, an instruction the check rejects).
std::optional<GeneratedCase> to_code16(const GeneratedCase& gc, std::string* why = nullptr);

}  // namespace vmbt::difftest
