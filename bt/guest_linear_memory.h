// Linear memory for the monitor's own guest accesses (emulated instructions, exception frames).
#pragma once

#include "bt/system/guest_access.h"

namespace vmbt {
class GuestMemory;
class ShadowMmu;
struct VcpuState;
}  // namespace vmbt

namespace vmbt::bt {

/// Guest linear memory through the shadow MMU's walker: the same translation, rights checks and
/// A/D updates translated code gets from the host MMU (Intel SDM Vol. 3A §4.6-4.8). A failed
/// translation sets CR2 in `state` and throws GuestFault #PF with the architectural error code.
/// Addresses without RAM behind them read all ones and drop writes. Every write is reported to
/// the MMU first (page-table tracing, translated-code invalidation).
class GuestLinearMemory final : public LinearMemory {
 public:
  GuestLinearMemory(GuestMemory& ram, ShadowMmu& mmu, VcpuState& state)
      : ram_(ram), mmu_(mmu), state_(state) {}
  void read(uint32_t linear, void* dst, unsigned size, bool user) override;
  void write(uint32_t linear, const void* src, unsigned size, bool user) override;

  /// Translates `linear` for an access with these rights (setting A, and D for a write), into
  /// `phys`; returns false if no RAM is there, or a firmware window covers it (the monitor's
  /// writes there are dropped: the ROM, or a PAM segment; reads see what the window shows).
  /// Throws GuestFault #PF (CR2 set) if not allowed.
  bool translate(uint32_t linear, bool write, bool user, uint64_t* phys);

 private:
  GuestMemory& ram_;
  ShadowMmu& mmu_;
  VcpuState& state_;
};

}  // namespace vmbt::bt
