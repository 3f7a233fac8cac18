// The guest's own breakpoint registers DR0-DR3 as DR7 configures them (Intel SDM Vol. 3B §17.2):
// what the bt engine matches instructions and data accesses against.
#pragma once

#include <array>
#include <cstdint>

namespace vmbt::bt::dr {

/// DR6 bits the engine sets (Intel SDM Vol. 3B §17.2.3).
constexpr uint32_t kB0to3 = 0xf;             ///< B0-B3: breakpoint condition detected
constexpr uint32_t kBd = 1u << 13;           ///< BD: a MOV DR with DR7.GD set
constexpr uint32_t kBs = 1u << 14;           ///< BS: single-step (EFLAGS.TF)
constexpr uint32_t kBt = 1u << 15;           ///< BT: a task switch into a TSS with the T flag
constexpr uint32_t kDr7Gd = 1u << 13;        ///< DR7.GD: general detect enable
constexpr uint32_t kDr7Enables = 0xff;       ///< L0, G0 ... L3, G3
constexpr uint32_t kDr7LocalEnables = 0x55;  ///< L0-L3: cleared by a task switch (§17.2.4)

/// R/Wn of DR7 (Intel SDM Vol. 3B §17.2.4).
enum class Kind : uint8_t {
  kExecute = 0,    ///< 00: instruction execution
  kWrite = 1,      ///< 01: data writes
  kIo = 2,         ///< 10: I/O reads or writes (CR4.DE=1), undefined otherwise
  kReadWrite = 3,  ///< 11: data reads or writes, not instruction fetches
};

/// Breakpoint `n` (0-3) as DR7 describes it.
struct Breakpoint {
  uint32_t linear = 0;  ///< DRn, its low bits cleared to the length's alignment
  uint32_t length = 1;  ///< bytes: 1, 2, 4 (LENn 00, 01, 11); 8 for LENn 10
  Kind kind = Kind::kExecute;
  bool enabled = false;  ///< Ln or Gn
};

/// Decodes breakpoint `n` (Intel SDM Vol. 3B §17.2.4-17.2.5). LENn 10 is undefined outside
/// IA-32e mode; it is taken as 8 bytes, as in IA-32e mode (and as QEMU does). The processor
/// ignores the address bits below the length (§17.2.5: "the processor does not check the
/// low-order bits"): a 4-byte breakpoint at 0x1001 covers 0x1000-0x1003.
constexpr Breakpoint breakpoint(const std::array<uint32_t, 8>& regs, unsigned n) {
  const uint32_t dr7 = regs[7];
  const uint32_t len_bits = (dr7 >> (18 + 4 * n)) & 3;
  Breakpoint b;
  b.length = len_bits == 0 ? 1 : len_bits == 1 ? 2 : len_bits == 3 ? 4 : 8;
  b.kind = static_cast<Kind>((dr7 >> (16 + 4 * n)) & 3);
  b.linear = regs[n] & ~(b.length - 1);
  b.enabled = (dr7 >> (2 * n)) & 3;
  return b;
}

/// Whether any breakpoint of `kind` (kWrite also for kReadWrite) is enabled.
constexpr bool any_enabled(const std::array<uint32_t, 8>& regs, bool data) {
  for (unsigned n = 0; n < 4; ++n) {
    const Breakpoint b = breakpoint(regs, n);
    if (b.enabled && (data ? (b.kind == Kind::kWrite || b.kind == Kind::kReadWrite)
                           : b.kind == Kind::kExecute)) {
      return true;
    }
  }
  return false;
}

/// The B0-B3 bits of the instruction breakpoints at `linear` (the address of the instruction's
/// first byte, prefixes included: Intel SDM Vol. 3B §17.2.4), enabled or not: the processor may
/// report a breakpoint that is not enabled when an enabled one fires (§17.2.3).
constexpr uint32_t execute_hits(const std::array<uint32_t, 8>& regs, uint32_t linear) {
  uint32_t hits = 0;
  for (unsigned n = 0; n < 4; ++n) {
    const Breakpoint b = breakpoint(regs, n);
    // LENn must be 00 for an instruction breakpoint (other lengths are undefined): DRn itself.
    if (b.kind == Kind::kExecute && regs[n] == linear) hits |= 1u << n;
  }
  return hits;
}

/// The B0-B3 bits of the data breakpoints the access [linear, linear + size) triggers
/// (`write`: a write, else a read; a read-modify-write instruction is a write), enabled or not.
constexpr uint32_t data_hits(const std::array<uint32_t, 8>& regs, uint32_t linear, uint32_t size,
                             bool write) {
  uint32_t hits = 0;
  const uint64_t end = uint64_t{linear} + size;
  for (unsigned n = 0; n < 4; ++n) {
    const Breakpoint b = breakpoint(regs, n);
    const bool how = b.kind == Kind::kReadWrite || (b.kind == Kind::kWrite && write);
    if (how && linear < uint64_t{b.linear} + b.length && b.linear < end) hits |= 1u << n;
  }
  return hits;
}

/// Whether `hits` (B0-B3 bits) include an enabled breakpoint: only those raise #DB.
constexpr bool fires(uint32_t dr7, uint32_t hits) {
  for (unsigned n = 0; n < 4; ++n) {
    if ((hits >> n & 1) && ((dr7 >> (2 * n)) & 3)) return true;
  }
  return false;
}

/// DR6 after a debug exception reporting `hits` (B0-B3 replaced; BD, BS and the rest kept, as
/// they are sticky: §17.2.3).
constexpr uint32_t dr6_with_hits(uint32_t dr6, uint32_t hits) {
  return (dr6 & ~kB0to3) | hits;
}

}  // namespace vmbt::bt::dr
