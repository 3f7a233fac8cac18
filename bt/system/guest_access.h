// Guest linear-memory access and guest-visible exceptions for the bt system-instruction emulator.
#pragma once

#include <cstdint>

namespace vmbt::bt {

/// An exception the guest must see (Intel SDM Vol. 3A §6.3 vectors). Thrown as a C++ exception by
/// LinearMemory implementations and inside the emulator; never escapes SystemEmulator's entry
/// points (they deliver it through the guest IDT).
struct GuestFault {
  uint8_t vector;
  bool has_error_code;
  uint32_t error_code;
};

/// Linear-address access for emulated instructions. `user` = the access is made with CPL3 rights
/// (false for implicit supervisor accesses: GDT/LDT/IDT/TSS reads, and any access at CPL0-2).
/// Throws GuestFault (#PF, with CR2 already set by the implementation) when the address cannot be
/// accessed; a write that faults has written nothing (every page is checked first). Accesses
/// may cross page boundaries. Implementation: GuestLinearMemory (the shadow MMU's walker).
class LinearMemory {
 public:
  virtual ~LinearMemory() = default;
  virtual void read(uint32_t linear, void* dst, unsigned size, bool user) = 0;
  virtual void write(uint32_t linear, const void* src, unsigned size, bool user) = 0;
};

}  // namespace vmbt::bt
