// The virtio block device (virtio 1.2 §5.2) over a disk image.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vmm/devices/virtio/virtio_device.h"

namespace vmbt {

class DiskImage;
class GuestMemory;

/// virtio-blk (virtio 1.2 §5.2): one request queue of kQueueSize; features SEG_MAX (2), RO (5)
/// for a read-only image, BLK_SIZE (6), FLUSH (9) and VIRTIO_RING_F_INDIRECT_DESC (28);
/// configuration: capacity (512-byte sectors), size_max 0, seg_max, geometry 0, blk_size 512.
///
/// A request (§5.2.6) is a 16-byte header (type, reserved, sector) in the readable part, the data
/// (readable for OUT, writable for IN) and a status byte, the last writable byte. IN and OUT move
/// whole sectors within the image (else VIRTIO_BLK_S_IOERR, nothing moved); OUT to a read-only
/// image is IOERR, and so is a request of more than kMaxRequest bytes; FLUSH reaches the file
/// with fdatasync; GET_ID returns "vmbt-N"; other types are UNSUPP. A chain too short for a
/// header or with no writable byte for the status is a driver error (VirtqueueError). Data moves
/// through a bounded buffer, kChunk bytes at a time.
class VirtioBlk final : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  static constexpr uint32_t kSegMax = kQueueSize - 2;
  static constexpr uint64_t kChunk = 64 * 1024;
  /// The most data one request moves (a chain may name the same RAM many times over): beyond
  /// it, VIRTIO_BLK_S_IOERR. Linux's requests stay far below (seg_max pages).
  static constexpr uint64_t kMaxRequest = 32ull << 20;
  // Request types and status values (§5.2.6).
  static constexpr uint32_t kTypeIn = 0, kTypeOut = 1, kTypeFlush = 4, kTypeGetId = 8;
  static constexpr uint8_t kStatusOk = 0, kStatusIoErr = 1, kStatusUnsupported = 2;
  static constexpr uint64_t kFeatureSegMax = 1ull << 2, kFeatureRo = 1ull << 5,
                            kFeatureBlkSize = 1ull << 6, kFeatureFlush = 1ull << 9;

  /// `id`: the drive's number (GET_ID says "vmbt-ID").
  VirtioBlk(GuestMemory& memory, DiskImage& image, unsigned id);

  uint16_t device_id() const override { return 2; }
  uint64_t features() const override;
  unsigned queue_count() const override { return 1; }
  uint16_t queue_size() const override { return kQueueSize; }
  unsigned config_size() const override { return static_cast<unsigned>(config_.size()); }
  uint8_t config_byte(unsigned offset) const override { return config_[offset]; }
  bool process(unsigned index, SplitVirtqueue& queue) override;
  void collect_stats(Stats& stats, const std::string& prefix) const override;

 private:
  /// Whole sectors within the image and at most kMaxRequest bytes.
  bool fits(uint64_t sector, uint64_t bytes) const;
  /// Serves one request; returns the bytes written into the chain (data and status).
  uint32_t serve(const DescriptorChain& chain);

  GuestMemory& memory_;
  DiskImage& image_;
  unsigned id_;
  std::vector<uint8_t> config_;
  std::vector<uint8_t> buffer_;
  uint64_t requests_ = 0, errors_ = 0;
};

}  // namespace vmbt
