// Deterministic generator of short IA-32 instruction sequences for differential tests: every
// memory operand addresses the NativeRunner data arena, every branch stays inside the snippet,
// and flags the SDM leaves undefined are tracked so a comparison can mask them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tests/difftest/native_runner.h"

namespace vmbt::difftest {

/// Attributes of one generated instruction (bit set in GeneratedInsn::attrs).
enum InsnAttr : uint32_t {
  kAttrMem = 1u << 0,        ///< has a memory operand (ModRM or implicit)
  kAttrOpsize16 = 1u << 1,   ///< 0x66 prefix
  kAttrAddr16 = 1u << 2,     ///< 0x67 prefix (16-bit addressing / CX / SI / DI)
  kAttrLock = 1u << 3,       ///< 0xF0 prefix
  kAttrRep = 1u << 4,        ///< 0xF3 / 0xF2 on a string instruction
  kAttrSegPrefix = 1u << 5,  ///< redundant ES/SS/DS override (flat segments)
};

/// One instruction inside a generated case.
struct GeneratedInsn {
  uint32_t offset = 0;  ///< from the first code byte (EIP = NativeRunner::kSnippetBase + offset)
  uint32_t length = 0;
  std::string cls;     ///< "group:detail", e.g. "alu:adc", "string:rep movs", "setup:mov"
  uint32_t attrs = 0;  ///< InsnAttr bits
  /// Status flags whose value is architecturally undefined when this instruction starts
  /// (conservative inside loop bodies).
  uint32_t undefined_flags_before = 0;
};

/// One generated case: code, initial registers and flags, and the arena contents to use.
struct GeneratedCase {
  std::string description;  ///< "#index: cls: disassembly; ..."
  NativeCase c;
  uint64_t memory_seed = 0;      ///< fill_arena(arena, kDataSize, memory_seed) before running
  uint32_t undefined_flags = 0;  ///< status flags undefined after the last instruction
  std::vector<GeneratedInsn> insns;
};

struct GeneratorOptions {
  unsigned min_items = 1;  ///< top-level instructions (or short constructs) per case
  unsigned max_items = 8;
  /// Also emit encodings that must raise #UD (LOCK on a register operand, LEA with a register
  /// operand, UD2). Off by default: Zydis rejects the LOCK forms that Capstone accepts.
  bool include_invalid = false;
};

/// `count` cases from `seed`; the same seed always gives the same cases.
std::vector<GeneratedCase> generate_cases(uint64_t seed, size_t count,
                                          const GeneratorOptions& options = {});

/// The deterministic arena contents for a case: random, zero, repeated-byte and repeated-pattern
/// blocks (the repeats make REPE CMPS / REPNE SCAS and CMPXCHG find equal data).
void fill_arena(uint8_t* arena, size_t size, uint64_t memory_seed);

/// fill_arena() + run().
NativeResult run_case(NativeRunner& runner, const GeneratedCase& gc);

/// Status flags a comparison must ignore for this result: the case's final mask, or at a fault
/// the mask before the faulting instruction (all status flags if the EIP is not an
/// instruction start or the run timed out).
uint32_t undefined_flags_for(const GeneratedCase& gc, const NativeResult& result);

/// Instruction count per class ("alu:adc"), per group ("alu") and per attribute
/// ("attr:lock"), plus "cases" and "insns".
using Coverage = std::map<std::string, size_t>;
Coverage coverage(const std::vector<GeneratedCase>& cases);
std::string format_coverage(const Coverage& cov);

}  // namespace vmbt::difftest
