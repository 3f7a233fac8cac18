// The guest-physical memory map: RAM, reserved holes and MMIO windows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vmbt {

/// What lies at a guest-physical range. Values match the e820 / multiboot memory-map types where
/// those exist (1 = usable RAM, 2 = reserved).
enum class RegionKind : uint32_t { kRam = 1, kReserved = 2, kMmio = 100 };

struct MemoryRegion {
  uint64_t base = 0;    ///< first guest-physical byte
  uint64_t length = 0;  ///< bytes
  RegionKind kind = RegionKind::kRam;
  std::string name;
  uint64_t end() const { return base + length; }  ///< one past the last byte
};

/// A sorted, non-overlapping list of regions. The PC layout is built by `pc_layout`: low RAM up to
/// the EBDA at 0x9fc00, the legacy VGA/BIOS hole up to 1 MiB, then RAM to the top of memory.
class MemoryMap {
 public:
  /// Adds a region; throws vmbt::Error if it overlaps an existing one or wraps 2^64.
  void add(MemoryRegion region);
  /// The region containing `gpa`, or nullptr.
  const MemoryRegion* find(uint64_t gpa) const;
  const std::vector<MemoryRegion>& regions() const { return regions_; }
  /// The standard IBM-PC layout for `ram_bytes` of RAM (Linux boot protocol's e820 expectations).
  static MemoryMap pc_layout(uint64_t ram_bytes);

  static constexpr uint64_t kLowRamEnd = 0x9fc00;  ///< end of conventional memory (EBDA below 640K)
  static constexpr uint64_t kHighRamBase = 0x100000;  ///< 1 MiB

 private:
  std::vector<MemoryRegion> regions_;
};

}  // namespace vmbt
