// Cross-checks two IA-32 decoders (Zydis, Capstone) on instruction lengths, so that a generated
// case is known to mean the same instruction stream to both (and to the translator's decoder).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace vmbt::difftest {

/// The first instruction the two decoders disagree on. A length of 0 means "rejected".
struct DecodeMismatch {
  size_t offset = 0;
  size_t zydis_length = 0;
  size_t capstone_length = 0;
  std::string zydis_text;     ///< Intel syntax, or the Zydis status when rejected
  std::string capstone_text;  ///< mnemonic + operands, or "(rejected)"
};

/// Outcome of decoding one byte stream with both decoders in 32-bit mode.
struct DecodeCheckResult {
  size_t instructions = 0;                 ///< instructions both decoded with equal lengths
  std::optional<DecodeMismatch> mismatch;  ///< first length disagreement, if any
  std::optional<size_t> both_rejected;     ///< offset where both decoders gave up, if any
  bool agree() const { return !mismatch.has_value(); }
};

/// Decodes `code` (placed at `address`) with Zydis (LEGACY_32, stack width 32) and Capstone
/// (CS_MODE_32) instruction by instruction and stops at the first disagreement on length or
/// validity, or where both reject.
DecodeCheckResult check_decoders(std::span<const uint8_t> code, uint32_t address = 0);

/// Zydis Intel-syntax disassembly of one instruction at `code` (empty if it does not decode);
/// `length` receives the instruction length (0 if invalid).
std::string disassemble_one(std::span<const uint8_t> code, uint32_t address, size_t* length);

}  // namespace vmbt::difftest
