// A raw disk image file behind a block device, with QEMU's -snapshot overlay.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vmbt {

/// A raw image file as a disk of 512-byte sectors (its size rounded down to whole sectors).
/// Opened read-only when asked; with `snapshot`, writes go to an unlinked temporary file in
/// $TMPDIR (QEMU's -snapshot: the image stays as it was, the writes are gone at exit) and reads
/// see them. Errors opening the file throw vmbt::Error naming
/// it; I/O errors later are returned as false for the device to report to the guest.
class DiskImage {
 public:
  static constexpr uint64_t kSector = 512;

  DiskImage(const std::string& path, bool read_only, bool snapshot);
  ~DiskImage();
  DiskImage(const DiskImage&) = delete;
  DiskImage& operator=(const DiskImage&) = delete;

  uint64_t sectors() const { return sectors_; }
  /// The guest may not write (readonly=on, or a read-only file without --snapshot).
  bool read_only() const { return read_only_; }
  const std::string& path() const { return path_; }

  /// `bytes` is whole sectors and [sector, sector + bytes) lies within the disk.
  bool in_range(uint64_t sector, uint64_t bytes) const;
  /// Reads `bytes` (a multiple of 512) at `sector`; false past the end or on an I/O error.
  bool read(uint64_t sector, void* dst, uint64_t bytes);
  bool write(uint64_t sector, const void* src, uint64_t bytes);
  /// Makes written data durable (fdatasync of the image; nothing to do for a snapshot).
  bool flush();

  /// Counters for --stats.
  uint64_t bytes_read() const { return bytes_read_; }
  uint64_t bytes_written() const { return bytes_written_; }
  uint64_t flushes() const { return flushes_; }

 private:
  std::string path_;
  int fd_ = -1;
  int overlay_fd_ = -1;                ///< snapshot: where written sectors live
  std::vector<bool> overlay_sectors_;  ///< snapshot: sectors the overlay holds
  uint64_t sectors_ = 0;
  bool read_only_ = false;
  uint64_t bytes_read_ = 0, bytes_written_ = 0, flushes_ = 0;
};

}  // namespace vmbt
