// One IA-32 instruction decoded for the system emulator (and kept by callout sites in translated
// code, so a direct call does not decode it again).
#pragma once

#include <Zydis/Zydis.h>

#include <cstdint>

namespace vmbt::bt::sys {

/// A decoded instruction: Zydis's decoding plus the sizes the emulator works with.
struct Insn {
  ZydisDecodedInstruction zi;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  uint32_t eip = 0;       ///< of the instruction
  uint32_t next_eip = 0;  ///< of the following instruction
  unsigned osize = 4;     ///< operand size in bytes (2 or 4)
  unsigned asize = 4;     ///< address size in bytes (2 or 4)

  ZydisMnemonic mnemonic() const { return zi.mnemonic; }
  bool rep() const { return zi.attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE); }
  bool is_mem(unsigned i) const { return ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY; }
  bool is_reg(unsigned i) const { return ops[i].type == ZYDIS_OPERAND_TYPE_REGISTER; }
};

}  // namespace vmbt::bt::sys
