// Zydis vs Capstone length agreement on 32-bit code.
#include "tests/difftest/decode_check.h"

#include <Zydis/Zydis.h>
#include <capstone/capstone.h>

#include <cstdio>
#include <stdexcept>

namespace vmbt::difftest {
namespace {

/// Per-thread Zydis decoder + formatter, 32-bit protected mode.
struct ZydisPair {
  ZydisDecoder decoder;
  ZydisFormatter formatter;
  ZydisPair() {
    ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
    ZydisFormatterInit(&formatter, ZYDIS_FORMATTER_STYLE_INTEL);
  }
};

/// Per-thread Capstone handle, x86 32-bit mode.
struct CapstoneHandle {
  csh handle = 0;
  CapstoneHandle() {
    if (cs_open(CS_ARCH_X86, CS_MODE_32, &handle) != CS_ERR_OK)
      throw std::runtime_error("capstone: cs_open failed");
  }
  ~CapstoneHandle() { cs_close(&handle); }
  CapstoneHandle(const CapstoneHandle&) = delete;
  CapstoneHandle& operator=(const CapstoneHandle&) = delete;
};

ZydisPair& zydis() {
  static thread_local ZydisPair z;
  return z;
}

csh capstone() {
  static thread_local CapstoneHandle h;
  return h.handle;
}

/// Decodes one instruction with Zydis; returns its length (0 if rejected) and text.
size_t zydis_decode(std::span<const uint8_t> code, uint32_t address, std::string* text) {
  ZydisPair& z = zydis();
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  const ZyanStatus st = ZydisDecoderDecodeFull(&z.decoder, code.data(), code.size(), &insn, ops);
  if (!ZYAN_SUCCESS(st)) {
    if (text) {
      char buf[48];
      snprintf(buf, sizeof buf, "(rejected, status 0x%08x)", static_cast<unsigned>(st));
      *text = buf;
    }
    return 0;
  }
  if (text) {
    char buf[256];
    if (ZYAN_SUCCESS(ZydisFormatterFormatInstruction(&z.formatter, &insn, ops,
                                                     insn.operand_count_visible, buf, sizeof buf,
                                                     address, ZYAN_NULL)))
      *text = buf;
    else
      *text = "(unformattable)";
  }
  return insn.length;
}

/// Decodes one instruction with Capstone; returns its length (0 if rejected) and text.
size_t capstone_decode(std::span<const uint8_t> code, uint32_t address, std::string* text) {
  cs_insn* insn = nullptr;
  const size_t n = cs_disasm(capstone(), code.data(), code.size(), address, 1, &insn);
  if (n == 0) {
    if (text) *text = "(rejected)";
    return 0;
  }
  const size_t len = insn[0].size;
  if (text) *text = std::string(insn[0].mnemonic) + " " + insn[0].op_str;
  cs_free(insn, n);
  return len;
}

}  // namespace

DecodeCheckResult check_decoders(std::span<const uint8_t> code, uint32_t address) {
  DecodeCheckResult r;
  size_t off = 0;
  while (off < code.size()) {
    const auto rest = code.subspan(off);
    const uint32_t at = address + static_cast<uint32_t>(off);
    const size_t zl = zydis_decode(rest, at, nullptr);
    const size_t cl = capstone_decode(rest, at, nullptr);
    if (zl != cl) {
      DecodeMismatch m;
      m.offset = off;
      m.zydis_length = zydis_decode(rest, at, &m.zydis_text);
      m.capstone_length = capstone_decode(rest, at, &m.capstone_text);
      r.mismatch = std::move(m);
      return r;
    }
    if (zl == 0) {
      r.both_rejected = off;
      return r;
    }
    ++r.instructions;
    off += zl;
  }
  return r;
}

std::string disassemble_one(std::span<const uint8_t> code, uint32_t address, size_t* length) {
  std::string text;
  const size_t len = zydis_decode(code, address, &text);
  if (length) *length = len;
  return len ? text : std::string();
}

}  // namespace vmbt::difftest
