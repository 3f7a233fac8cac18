// MASKMOVQ and MASKMOVDQU run by the monitor (Intel SDM Vol. 2B), on an FXSAVE image of the
// guest's registers.
#include "bt/masked_store.h"

#include <array>
#include <cstring>

#include "bt/guest_operands.h"
#include "bt/segment_checks.h"

namespace vmbt::bt {

namespace {

constexpr size_t kFswOffset = 2;    ///< FXSAVE image: x87 status word (TOP in bits 13:11)
constexpr size_t kFtwOffset = 4;    ///< abridged tag word: bit n set = physical register n valid
constexpr size_t kStOffset = 32;    ///< ST(i)/MM at 32 + 16 * i
constexpr size_t kXmmOffset = 160;  ///< XMM0-7 at 160 + 16 * i

/// The 8 or 16 bytes of MMX or XMM register `r` in the image, whose x87 TOP is `top`.
const uint8_t* register_bytes(std::span<uint8_t, 512> fx, unsigned top, ZydisRegister r) {
  if (r >= ZYDIS_REGISTER_XMM0 && r <= ZYDIS_REGISTER_XMM7) {
    return fx.data() + kXmmOffset + 16 * (r - ZYDIS_REGISTER_XMM0);
  }
  const unsigned physical = r - ZYDIS_REGISTER_MM0;
  return fx.data() + kStOffset + 16 * ((physical - top) & 7);
}

}  // namespace

bool is_masked_store(ZydisMnemonic m) {
  return m == ZYDIS_MNEMONIC_MASKMOVQ || m == ZYDIS_MNEMONIC_MASKMOVDQU;
}

LegacyOutcome execute_masked_store(VcpuState& s, const ZydisDecodedInstruction& insn,
                                   const ZydisDecodedOperand* ops, std::span<uint8_t, 512> fx,
                                   LinearMemory& mem) {
  LegacyOutcome out;
  if (!is_masked_store(insn.mnemonic) || insn.operand_count < 3 ||
      ops[2].type != ZYDIS_OPERAND_TYPE_MEMORY) {
    return out;
  }
  const bool mmx = insn.mnemonic == ZYDIS_MNEMONIC_MASKMOVQ;
  const unsigned size = mmx ? 8 : 16;
  uint16_t fsw = 0;
  std::memcpy(&fsw, fx.data() + kFswOffset, 2);
  const unsigned top = (fsw >> 11) & 7;
  if (mmx && (fsw & 0x80)) {
    // An MMX instruction with an unmasked x87 exception pending (FSW.ES): #MF first, nothing
    // changed (Intel SDM Vol. 2B MASKMOVQ, "Protected Mode Exceptions").
    out.result = LegacyResult::kFault;
    out.fault = GuestFault{16, false, 0};
    return out;
  }
  std::array<uint8_t, 16> data{}, mask{};
  std::memcpy(data.data(), register_bytes(fx, top, ops[0].reg.value), size);
  std::memcpy(mask.data(), register_bytes(fx, top, ops[1].reg.value), size);
  if (mmx) {  // the x87 unit is in MMX state from here on, whatever the store does
    // The image stores registers by stack position: with TOP = 0, ST(i) is physical register i,
    // so the fields turn with it.
    std::array<uint8_t, 128> st{};
    std::memcpy(st.data(), fx.data() + kStOffset, st.size());
    for (unsigned i = 0; i < 8; ++i) {
      std::memcpy(fx.data() + kStOffset + 16 * i, st.data() + 16 * ((i - top) & 7), 16);
    }
    fsw &= static_cast<uint16_t>(~(7u << 11));
    std::memcpy(fx.data() + kFswOffset, &fsw, 2);
    fx[kFtwOffset] = 0xff;
  }
  const int seg = operand_segment(ops[2]);
  const uint32_t offset = effective_offset(s, ops[2], insn.address_width);
  if (auto f = check_access(s, static_cast<unsigned>(seg), offset, size, true)) {
    out.result = LegacyResult::kFault;
    out.fault = *f;
    return out;
  }
  unsigned first = size, last = 0;
  for (unsigned i = 0; i < size; ++i) {
    if (!(mask[i] & 0x80)) continue;
    if (first == size) first = i;
    last = i;
  }
  const bool user = s.cpl() == 3;
  if (mmx && user && (s.cr0 & cr0::kAm) && (s.eflags & eflags::kAc) &&
      ((s.seg[seg].base + offset) & 7) != 0) {
    out.result = LegacyResult::kFault;  // #AC(0): an unaligned 8-byte store at CPL 3
    out.fault = GuestFault{17, true, 0};
    return out;
  }
  if (first < size) {
    // One write of the span from the first selected byte to the last (a faulting write stores
    // nothing), the bytes between that are not selected keeping what memory holds.
    const uint32_t linear = s.seg[seg].base + offset + first;
    const unsigned span = last - first + 1;
    std::array<uint8_t, 16> bytes{};
    try {
      try {
        mem.read(linear, bytes.data(), span, user);
      } catch (GuestFault f) {
        // Where a read faults a write does too, with W set in the #PF error code (Intel SDM
        // Vol. 3A §4.7): the store's own fault.
        if (f.vector == exc::kPf) f.error_code |= 2;
        throw f;
      }
      for (unsigned i = first; i <= last; ++i) {
        if (mask[i] & 0x80) bytes[i - first] = data[i];
      }
      mem.write(linear, bytes.data(), span, user);
    } catch (const GuestFault& f) {
      out.result = LegacyResult::kFault;
      out.fault = f;
      return out;
    }
  }
  s.eip += insn.length;
  out.result = LegacyResult::kDone;
  return out;
}

}  // namespace vmbt::bt
