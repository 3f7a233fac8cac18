// Re-encoding of 32-bit cases as 16-bit code. The operand-size and address-size prefixes each
// select the size the code segment's default does not (Intel SDM Vol. 1 §3.6 Table 3-4), so
// toggling their presence keeps an instruction's sizes when the default flips from 32 to 16.
#include "tests/difftest/code16_case.h"

#include <Zydis/Zydis.h>

#include <cstring>
#include <map>
#include <span>
#include <vector>

namespace vmbt::difftest {
namespace {

constexpr uint8_t kOperandSizePrefix = 0x66, kAddressSizePrefix = 0x67;

struct Decoded {
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
};

bool decode(bool code16, std::span<const uint8_t> bytes, Decoded* d) {
  static thread_local const auto decoders = [] {
    std::array<ZydisDecoder, 2> dec{};
    ZydisDecoderInit(&dec[0], ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
    ZydisDecoderInit(&dec[1], ZYDIS_MACHINE_MODE_LEGACY_16, ZYDIS_STACK_WIDTH_16);
    return dec;
  }();
  return ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoders[code16 ? 1 : 0], bytes.data(), bytes.size(),
                                             &d->insn, d->ops));
}

bool is_stack_pointer(ZydisRegister r) {
  return r == ZYDIS_REGISTER_ESP || r == ZYDIS_REGISTER_SP;
}

/// Whether the address size changes what the instruction does: a memory operand other than the
/// stack's (whose size is SS.B's, not the prefix's), or CX/ECX as LOOPcc's and JCXZ's counter.
bool uses_address_size(const Decoded& d) {
  switch (d.insn.mnemonic) {
    case ZYDIS_MNEMONIC_LOOP:
    case ZYDIS_MNEMONIC_LOOPE:
    case ZYDIS_MNEMONIC_LOOPNE:
    case ZYDIS_MNEMONIC_JCXZ:
    case ZYDIS_MNEMONIC_JECXZ:
      return true;
    default:
      break;
  }
  for (unsigned i = 0; i < d.insn.operand_count; ++i) {
    const ZydisDecodedOperand& op = d.ops[i];
    if (op.type != ZYDIS_OPERAND_TYPE_MEMORY) continue;
    const bool stack = op.visibility == ZYDIS_OPERAND_VISIBILITY_HIDDEN &&
                       is_stack_pointer(op.mem.base) && op.mem.segment == ZYDIS_REGISTER_SS;
    if (!stack) return true;
  }
  return false;
}

struct Piece {
  uint32_t old_offset = 0, old_length = 0;
  std::vector<uint8_t> bytes;  ///< the 16-bit encoding
  int relative_at = -1;        ///< offset in `bytes` of a relative displacement, if any
  unsigned relative_size = 0;  ///< its size in bytes
  int64_t old_target = 0;      ///< the branch target, as an offset in the old code
  bool address_size_matters = false;
  ZydisMnemonic mnemonic = ZYDIS_MNEMONIC_INVALID;
  uint32_t operand_width = 0, address_width = 0;
};

std::string hex_at(uint32_t offset) {
  char buf[32];
  snprintf(buf, sizeof buf, "+%#x", offset);
  return buf;
}

}  // namespace

std::optional<GeneratedCase> to_code16(const GeneratedCase& gc, std::string* why) {
  auto fail = [&](const std::string& what) -> std::optional<GeneratedCase> {
    if (why) *why = what;
    return std::nullopt;
  };
  const std::vector<uint8_t>& code = gc.c.code;
  std::vector<Piece> pieces;
  for (uint32_t off = 0; off < code.size();) {
    Decoded d;
    if (!decode(false, std::span(code).subspan(off), &d))
      return fail("undecodable at " + hex_at(off));
    Piece p;
    p.old_offset = off;
    p.old_length = d.insn.length;
    p.mnemonic = d.insn.mnemonic;
    p.operand_width = d.insn.operand_width;
    p.address_width = d.insn.address_width;
    p.address_size_matters = uses_address_size(d);
    bool had66 = false, had67 = false;
    std::vector<uint8_t> rest;
    const unsigned prefixes = d.insn.raw.prefix_count;
    for (unsigned i = 0; i < d.insn.length; ++i) {
      const uint8_t b = code[off + i];
      if (i < prefixes && b == kOperandSizePrefix) {
        had66 = true;
      } else if (i < prefixes && b == kAddressSizePrefix) {
        had67 = true;
      } else {
        rest.push_back(b);
      }
    }
    if (!had66) p.bytes.push_back(kOperandSizePrefix);
    if (!had67 && p.address_size_matters) p.bytes.push_back(kAddressSizePrefix);
    const int shift =
        static_cast<int>(p.bytes.size()) - static_cast<int>(d.insn.length - rest.size());
    p.bytes.insert(p.bytes.end(), rest.begin(), rest.end());
    for (const auto& imm : d.insn.raw.imm) {
      if (!imm.is_relative) continue;
      p.relative_at = static_cast<int>(imm.offset) + shift;
      p.relative_size = imm.size / 8;
      p.old_target = int64_t{off} + d.insn.length + imm.value.s;
    }
    pieces.push_back(std::move(p));
    off += d.insn.length;
  }

  // Old offset -> new offset, for every instruction start and the end of the code.
  std::map<int64_t, uint32_t> moved;
  uint32_t at = 0;
  for (const Piece& p : pieces) {
    moved[p.old_offset] = at;
    at += static_cast<uint32_t>(p.bytes.size());
  }
  moved[static_cast<int64_t>(code.size())] = at;

  GeneratedCase out = gc;
  out.c.code16 = true;
  out.c.code.clear();
  for (Piece& p : pieces) {
    const uint32_t start = moved[p.old_offset];
    if (p.relative_at >= 0) {
      const auto target = moved.find(p.old_target);
      if (target == moved.end())
        return fail("branch into an instruction at " + hex_at(p.old_offset));
      const int64_t rel =
          int64_t{target->second} - (int64_t{start} + static_cast<int64_t>(p.bytes.size()));
      if (p.relative_size == 1 && (rel < -128 || rel > 127)) {
        return fail("rel8 out of range at " + hex_at(p.old_offset));
      }
      const int32_t rel32 = static_cast<int32_t>(rel);
      std::memcpy(&p.bytes[p.relative_at], &rel32, p.relative_size);
    }
    Decoded d;
    if (!decode(true, p.bytes, &d) || d.insn.length != p.bytes.size() ||
        d.insn.mnemonic != p.mnemonic || d.insn.operand_width != p.operand_width ||
        (p.address_size_matters && d.insn.address_width != p.address_width)) {
      return fail("re-encoding changed the instruction at " + hex_at(p.old_offset));
    }
    out.c.code.insert(out.c.code.end(), p.bytes.begin(), p.bytes.end());
  }

  out.description = gc.description.substr(0, gc.description.find(':') + 1) + " (16-bit code)";
  for (GeneratedInsn& gi : out.insns) {
    const auto start = moved.find(gi.offset), end = moved.find(int64_t{gi.offset} + gi.length);
    if (start == moved.end() || end == moved.end()) {
      return fail("generated instruction at " + hex_at(gi.offset) + " is not decoded alone");
    }
    gi.offset = start->second;
    gi.length = end->second - start->second;
    ZydisDisassembledInstruction text;
    const bool ok = ZYAN_SUCCESS(
        ZydisDisassembleIntel(ZYDIS_MACHINE_MODE_LEGACY_16, NativeRunner::kSnippetBase + gi.offset,
                              out.c.code.data() + gi.offset, gi.length, &text));
    out.description += " [" + gi.cls + "] " + (ok ? text.text : "(undecodable)") + ";";
  }
  return out;
}

}  // namespace vmbt::difftest
