// A split virtqueue (virtio 1.2 §2.7) over guest RAM, as a device sees it.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace vmbt {

class GuestMemory;

/// What a driver did wrong with a virtqueue (a descriptor outside RAM, a loop, a malformed
/// indirect table...): the device stops using the queue and reports it (virtio 1.2 §2.1.2: the
/// device "needs reset").
struct VirtqueueError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// One buffer chain the driver made available (§2.7.4): its head descriptor index and its
/// guest-physical segments in order, the device-readable ones first (§2.7.4.2).
struct DescriptorChain {
  struct Segment {
    uint64_t gpa = 0;
    uint32_t len = 0;
    bool writable = false;  ///< VIRTQ_DESC_F_WRITE: the device writes it
  };
  uint16_t head = 0;
  std::vector<Segment> segments;
  uint64_t readable = 0;  ///< bytes the device may read
  uint64_t writable = 0;  ///< bytes the device may write

  /// Copies up to `len` device-readable bytes from offset `offset` of the readable part into
  /// `dst`; returns the bytes copied.
  uint64_t read(const GuestMemory& mem, uint64_t offset, void* dst, uint64_t len) const;
  /// Copies `len` bytes into the writable part at `offset` (DMA, GuestMemory::dma_write);
  /// returns the bytes copied (fewer when the writable part ends).
  uint64_t write(GuestMemory& mem, uint64_t offset, const void* src, uint64_t len) const;
};

/// A split virtqueue (§2.7) over guest RAM, placed either in the legacy layout (§2.7, "Legacy
/// Interfaces: A Note on Virtqueue Layout": at the guest-physical page the driver gives, the
/// descriptor table (16 bytes a descriptor), the available ring right after it, the used ring at
/// the next 4096-byte boundary) or, through the modern interface, as three parts the driver
/// places separately (§2.7, §4.1.4.3: queue_desc, queue_driver, queue_device). Either way the
/// same code walks it.
///
/// pop() takes chains in available-ring order and checks every guest value: the available index
/// may run at most `size` ahead of the device, head and next indices are below `size`, a chain
/// is at most `size` descriptors (a loop ends there), an indirect table (VIRTQ_DESC_F_INDIRECT,
/// §2.7.5.3) is a whole number of descriptors, at most kMaxIndirect, not nested and not chained
/// with F_NEXT, no readable descriptor follows a writable one, and every segment and ring lies in
/// RAM. Anything else throws VirtqueueError, and the queue stays broken until reset.
class SplitVirtqueue {
 public:
  static constexpr uint16_t kMaxIndirect = 1024;
  static constexpr uint32_t kAlign = 4096;  ///< legacy ring alignment

  explicit SplitVirtqueue(GuestMemory& mem) : mem_(mem) {}

  /// Sets the queue's place (legacy QueueAddress: the page frame number) and size (a power of
  /// two, the device's choice in the legacy interface); pfn 0 disables the queue.
  void set_legacy(uint32_t pfn, uint16_t size);
  /// Places the queue's three parts separately (the modern interface, virtio 1.2 §2.7 and
  /// §4.1.4.3): `size` entries (a power of two, at most 32768: §2.7), the descriptor table at
  /// `desc` (16-byte aligned, §2.7 table "Virtqueue Part Alignment"), the driver (available)
  /// area at `avail` (2-byte aligned) and the device (used) area at `used` (4-byte aligned). The
  /// queue is enabled; a bad size, a misaligned part or one outside guest RAM (any address at or
  /// above 4 GiB is: RAM ends below) leaves it broken, reported by the first pop() as for a bad
  /// legacy page.
  void set_rings(uint16_t size, uint64_t desc, uint64_t avail, uint64_t used);
  bool enabled() const { return size_ != 0; }
  uint16_t size() const { return size_; }
  /// The legacy page frame number (0 when placed by set_rings or disabled).
  uint32_t pfn() const { return pfn_; }
  /// True when the placement was refused (set_rings/set_legacy) or the driver broke the queue.
  bool broken() const { return broken_; }
  /// The next available chain, or nullopt when the driver has made none available.
  std::optional<DescriptorChain> pop();
  /// Puts chain `head` in the used ring with `written` bytes written to it (§2.7.8).
  void push(uint16_t head, uint32_t written);
  /// Back to the state after a device reset: disabled, indices 0.
  void reset();
  /// VIRTQ_AVAIL_F_NO_INTERRUPT: the driver does not want an interrupt for used buffers.
  bool interrupt_suppressed() const;

 private:
  struct Descriptor {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
  };
  Descriptor descriptor(uint64_t table, uint16_t index) const;
  uint16_t read16(uint64_t gpa) const;
  void add_segment(DescriptorChain& chain, const Descriptor& d) const;

  GuestMemory& mem_;
  uint32_t pfn_ = 0;
  uint16_t size_ = 0;
  uint64_t desc_ = 0, avail_ = 0, used_ = 0;  ///< guest-physical addresses of the three parts
  uint16_t last_avail_ = 0;                   ///< the next available-ring entry to take
  uint16_t used_idx_ = 0;                     ///< the used ring's idx as the device wrote it
  bool broken_ = false;
};

}  // namespace vmbt
