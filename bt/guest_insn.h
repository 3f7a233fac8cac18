// One guest instruction as the translator decodes it: its bytes and Zydis's decoding.
#pragma once

#include <Zydis/Zydis.h>

#include <cstdint>

namespace vmbt::bt {

/// A decoded guest instruction of a block (decoded once, in the translator's decode pass).
struct GuestInsn {
  uint32_t eip = 0;   ///< offset in CS of the instruction
  uint32_t next = 0;  ///< offset in CS of the following instruction
  uint8_t bytes[ZYDIS_MAX_INSTRUCTION_LENGTH] = {};
  ZydisDecodedInstruction d{};
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT]{};
  /// 16-bit code: the operand-size prefix (66h) toggles for the host, whose default operand
  /// size is 32 bits (an instruction whose operand size 66h chooses: present means 32 bits in
  /// 16-bit code and 16 bits on the host, absent the reverse).
  bool flip_operand_size = false;

  /// The explicit memory operand (not LEA's address generation), or nullptr.
  const ZydisDecodedOperand* mem() const {
    for (unsigned i = 0; i < d.operand_count_visible; ++i) {
      if (ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY && ops[i].mem.type == ZYDIS_MEMOP_TYPE_MEM) {
        return &ops[i];
      }
    }
    return nullptr;
  }
  /// The first opcode byte (after the prefixes).
  uint8_t primary_opcode() const { return bytes[d.raw.prefix_count]; }
  /// Whether prefix byte `p` is among the instruction's prefixes.
  bool has_prefix(uint8_t p) const {
    for (unsigned i = 0; i < d.raw.prefix_count; ++i) {
      if (bytes[i] == p) return true;
    }
    return false;
  }
};

}  // namespace vmbt::bt
