// What a virtio device type provides to its transport (virtio 1.2 ch. 5).
#pragma once

#include <cstdint>
#include <string>

#include "vmm/devices/virtio/virtqueue.h"

namespace vmbt {

class Stats;

/// A virtio device type (block, network...) behind a transport (vmm/devices/virtio/virtio_pci.h):
/// its feature bits, queues, configuration space and request processing.
class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  /// The virtio device ID (§5: 1 network, 2 block).
  virtual uint16_t device_id() const = 0;
  /// Feature bits the device offers (§2.2, §6), device-type and reserved (e.g. 28,
  /// VIRTIO_RING_F_INDIRECT_DESC) together.
  virtual uint64_t features() const = 0;
  virtual unsigned queue_count() const = 0;
  /// Every queue's size (the legacy interface fixes it; a power of two).
  virtual uint16_t queue_size() const = 0;
  /// The device-specific configuration space (§5.x.4): its size and bytes, little-endian.
  virtual unsigned config_size() const = 0;
  virtual uint8_t config_byte(unsigned offset) const = 0;
  /// Serves every chain the driver made available on `queue` (index `index`); true when it put
  /// buffers in the used ring. Throws VirtqueueError for a driver error.
  virtual bool process(unsigned index, SplitVirtqueue& queue) = 0;
  /// The driver reset the device (status 0).
  virtual void reset() {}
  /// Adds the device's counters to `stats` under `prefix`.
  virtual void collect_stats(Stats& /*stats*/, const std::string& /*prefix*/) const {}
};

}  // namespace vmbt
