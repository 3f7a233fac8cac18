// A split virtqueue driven from the driver's side, for the virtio device tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <utility>

#include "vmm/machine/guest_memory.h"

namespace vmbt::testing {

/// Descriptor flags (virtio 1.2 §2.7.5).
inline constexpr uint16_t kDescNext = 1, kDescWrite = 2, kDescIndirect = 4;

/// One split virtqueue of `size` entries, written as a driver writes it: in the legacy layout
/// (virtio 1.2 §2.7, "Legacy Interfaces: A Note on Virtqueue Layout") at guest page `pfn`, or
/// with its three parts placed separately as the modern interface allows (§2.7, §4.1.4.3).
class DriverRing {
 public:
  DriverRing(GuestMemory& mem, uint32_t pfn, uint16_t size) : mem_(mem), pfn_(pfn), size_(size) {
    desc_ = uint64_t{pfn} << 12;
    avail_ = desc_ + 16ull * size;
    used_ = (avail_ + 6 + 2ull * size + 4095) & ~4095ull;
  }
  /// The modern placement: descriptor table, driver (available) and device (used) areas.
  DriverRing(GuestMemory& mem, uint64_t desc, uint64_t avail, uint64_t used, uint16_t size)
      : mem_(mem), pfn_(0), size_(size), desc_(desc), avail_(avail), used_(used) {}
  /// Descriptor `i` of the table at guest address `table` (the ring's, or an indirect one).
  void put_desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                uint16_t next) {
    uint8_t d[16];
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
    mem_.write(table + 16ull * i, d, 16);
  }
  /// Descriptor `i` of the ring's own table.
  void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0) {
    put_desc(desc_, i, addr, len, flags, next);
  }
  /// Makes chain `head` available (§2.7.13).
  void offer(uint16_t head) {
    uint16_t idx = 0;
    mem_.read(avail_ + 2, &idx, 2);
    mem_.write(avail_ + 4 + 2ull * (idx % size_), &head, 2);
    ++idx;
    mem_.write(avail_ + 2, &idx, 2);
  }
  void set_avail_idx(uint16_t idx) { mem_.write(avail_ + 2, &idx, 2); }
  void set_avail_flags(uint16_t flags) { mem_.write(avail_, &flags, 2); }
  uint16_t used_idx() const {
    uint16_t v = 0;
    mem_.read(used_ + 2, &v, 2);
    return v;
  }
  /// Used-ring entry n: (id, len) (§2.7.8).
  std::pair<uint32_t, uint32_t> used(uint16_t n) const {
    uint32_t e[2];
    mem_.read(used_ + 4 + 8ull * (n % size_), e, 8);
    return {e[0], e[1]};
  }
  uint32_t pfn() const { return pfn_; }
  uint64_t desc_addr() const { return desc_; }
  uint64_t avail_addr() const { return avail_; }
  uint64_t used_addr() const { return used_; }

 private:
  GuestMemory& mem_;
  uint32_t pfn_;
  uint16_t size_;
  uint64_t desc_, avail_, used_;
};

}  // namespace vmbt::testing
