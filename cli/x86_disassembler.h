// One IA-32 instruction at a time, disassembled with Capstone (32-bit mode, Intel syntax).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vmbt {

/// A decoded instruction.
struct DecodedInstruction {
  bool valid = false;
  unsigned length = 0;
  std::string mnemonic;  ///< lower case, e.g. "mov", "pushfd", "ljmp"
  std::string operands;  ///< e.g. "cr3, eax"
  /// Per operand: the register name ("cr3", "ds") or "" for a memory or immediate operand.
  std::vector<std::string> registers;

  /// "mnemonic operands" (or "(bad)").
  std::string text() const;
};

/// A Capstone handle for 32-bit x86 with operand details. Not thread-safe.
class X86Disassembler {
 public:
  /// Throws vmbt::Error when Capstone cannot be opened.
  X86Disassembler();
  ~X86Disassembler();
  X86Disassembler(const X86Disassembler&) = delete;
  X86Disassembler& operator=(const X86Disassembler&) = delete;

  /// Decodes the instruction at the start of `bytes`, as if at `address`.
  DecodedInstruction decode(const uint8_t* bytes, size_t size, uint64_t address) const;

 private:
  size_t handle_ = 0;  // csh
};

}  // namespace vmbt
