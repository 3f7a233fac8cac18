// Linear memory for the monitor's own accesses while paging is off (CR0.PG=0).
#pragma once

#include <functional>

#include "bt/system/guest_access.h"

namespace vmbt {
class GuestMemory;
}

namespace vmbt::bt {

/// Linear == physical (Intel SDM Vol. 3A §4.1: paging disabled). Reads outside RAM return all
/// ones and writes there are dropped, as on a bus with nothing decoding the address. Every write
/// calls `on_write(page)` first so translated code on that page is invalidated (self-modifying
/// code written by the monitor on the guest's behalf, e.g. an exception frame or INS data).
class FlatMemory final : public LinearMemory {
 public:
  FlatMemory(GuestMemory& ram, std::function<void(uint32_t page)> on_write)
      : ram_(ram), on_write_(std::move(on_write)) {}
  void read(uint32_t linear, void* dst, unsigned size, bool user) override;
  void write(uint32_t linear, const void* src, unsigned size, bool user) override;

 private:
  GuestMemory& ram_;
  std::function<void(uint32_t)> on_write_;
};

}  // namespace vmbt::bt
