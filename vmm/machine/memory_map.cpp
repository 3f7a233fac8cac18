#include "vmm/machine/memory_map.h"

#include <fmt/format.h>

#include <algorithm>

#include "vmm/error.h"

namespace vmbt {

void MemoryMap::add(MemoryRegion region) {
  if (region.length == 0 || region.base + region.length < region.base) {
    throw Error(
        fmt::format("memory region '{}' at {:#x} has an invalid length", region.name, region.base));
  }
  for (const auto& r : regions_) {
    if (region.base < r.end() && r.base < region.end()) {
      throw Error(fmt::format("memory region '{}' [{:#x}, {:#x}) overlaps '{}' [{:#x}, {:#x})",
                              region.name, region.base, region.end(), r.name, r.base, r.end()));
    }
  }
  auto pos = std::lower_bound(
      regions_.begin(), regions_.end(), region,
      [](const MemoryRegion& a, const MemoryRegion& b) { return a.base < b.base; });
  regions_.insert(pos, std::move(region));
}

const MemoryRegion* MemoryMap::find(uint64_t gpa) const {
  auto it = std::upper_bound(regions_.begin(), regions_.end(), gpa,
                             [](uint64_t a, const MemoryRegion& r) { return a < r.base; });
  if (it == regions_.begin()) return nullptr;
  --it;
  return gpa < it->end() ? &*it : nullptr;
}

MemoryMap MemoryMap::pc_layout(uint64_t ram_bytes) {
  MemoryMap map;
  map.add({0, kLowRamEnd, RegionKind::kRam, "low RAM"});
  map.add({kLowRamEnd, kHighRamBase - kLowRamEnd, RegionKind::kReserved, "EBDA, VGA and BIOS"});
  if (ram_bytes > kHighRamBase) {
    map.add({kHighRamBase, ram_bytes - kHighRamBase, RegionKind::kRam, "high RAM"});
  }
  return map;
}

}  // namespace vmbt
