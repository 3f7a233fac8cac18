// The BIOS linker/loader script: how firmware places fw_cfg blobs in guest memory and patches
// the pointers between them (QEMU hw/acpi/bios-linker-loader.c; SeaBIOS src/fw/romfile_loader.c).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vmbt {

/// Builds the "etc/table-loader" fw_cfg file: a sequence of 128-byte commands, every integer
/// little-endian, file names NUL-padded to 56 bytes (QEMU's BiosLinkerLoaderEntry; SeaBIOS's
/// romfile_loader_entry_s):
///
/// - ALLOCATE (1): name[56], u32 alignment (a power of two), u8 zone (1 HIGH: anywhere in RAM;
///   2 FSEG: the 0xE0000-0xFFFFF BIOS area). The firmware copies the file into memory there.
/// - ADD_POINTER (2): destination name[56], source name[56], u32 offset, u8 size (1, 2, 4, 8):
///   the size-byte little-endian integer at `offset` in the destination is increased by the
///   address where the source file was placed.
/// - ADD_CHECKSUM (3): name[56], u32 result offset, u32 start, u32 length: the byte at the
///   result offset is decreased by the 8-bit sum of [start, start + length), which leaves the
///   range summing to 0 (an ACPI checksum) when that byte was 0 or already right.
///
/// Commands run in order: a file is allocated before it is referenced, pointers are patched
/// before the checksums over them.
class BiosLinkerLoader {
 public:
  enum class Command : uint32_t { kAllocate = 1, kAddPointer = 2, kAddChecksum = 3 };
  enum class Zone : uint8_t { kHigh = 1, kFseg = 2 };
  static constexpr size_t kEntrySize = 128;
  static constexpr size_t kFileNameSize = 56;

  /// Names longer than 55 bytes, alignments that are not powers of two and pointer sizes other
  /// than 1, 2, 4, 8 are internal errors (vmbt::Error).
  void allocate(const std::string& file, uint32_t alignment, Zone zone);
  void add_pointer(const std::string& destination, const std::string& source, uint32_t offset,
                   uint8_t size);
  void add_checksum(const std::string& file, uint32_t result_offset, uint32_t start,
                    uint32_t length);
  /// The script so far.
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  /// A new zeroed entry for `command`; returns its offset in bytes_.
  size_t begin(Command command);
  void put_name(size_t at, const std::string& name);
  void put32(size_t at, uint32_t value);

  std::vector<uint8_t> bytes_;
};

}  // namespace vmbt
