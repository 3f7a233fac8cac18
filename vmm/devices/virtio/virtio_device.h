// What a virtio device type provides to its transport (virtio 1.2 ch. 5).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "vmm/devices/virtio/virtqueue.h"

namespace vmbt {

class Stats;

/// What a device may ask of its transport between the driver's notifies: a network device fills
/// receive buffers when a frame arrives (virtio 1.2 §5.1.6.3), not when the driver notifies.
class VirtioQueueAccess {
 public:
  virtual ~VirtioQueueAccess() = default;
  /// Runs `serve` on queue `index` when the driver has set the device up (DRIVER_OK, not
  /// DEVICE_NEEDS_RESET) and the queue is enabled; when `serve` returns true (it put buffers in
  /// the used ring) the driver is interrupted unless it suppressed interrupts (§2.7.7). A
  /// VirtqueueError from `serve` stops the device as in a notify. Returns false when the queue
  /// could not be served (not set up, or the device stopped), true otherwise.
  virtual bool serve_queue(unsigned index, const std::function<bool(SplitVirtqueue&)>& serve) = 0;
};

/// A virtio device type (block, network...) behind a transport (vmm/devices/virtio/virtio_pci.h,
/// legacy and modern interfaces alike, virtio 1.2 §4.1): its feature bits, queues, configuration
/// space and request processing.
class VirtioDevice {
 public:
  /// Feature bits of every device type, defined with the transports and queues (virtio 1.2 §6):
  /// VIRTIO_F_INDIRECT_DESC (§2.7.5.3) and VIRTIO_F_VERSION_1, which only a driver of the modern
  /// interface can accept.
  static constexpr uint64_t kFeatureIndirect = 1ull << 28, kFeatureVersion1 = 1ull << 32;
  virtual ~VirtioDevice() = default;
  /// The virtio device ID (§5: 1 network, 2 block).
  virtual uint16_t device_id() const = 0;
  /// Feature bits the device offers (§2.2, §6), device-type and reserved (e.g. 28,
  /// VIRTIO_RING_F_INDIRECT_DESC) together.
  virtual uint64_t features() const = 0;
  virtual unsigned queue_count() const = 0;
  /// Every queue's maximum size (a power of two): the legacy interface fixes it, the modern one
  /// offers it as queue_size and lets the driver choose a smaller power of two (§4.1.4.3.2).
  virtual uint16_t queue_size() const = 0;
  /// The device-specific configuration space (§5.x.4): its size and bytes, little-endian.
  virtual unsigned config_size() const = 0;
  virtual uint8_t config_byte(unsigned offset) const = 0;
  /// Serves every chain the driver made available on `queue` (index `index`); true when it put
  /// buffers in the used ring. Throws VirtqueueError for a driver error.
  virtual bool process(unsigned index, SplitVirtqueue& queue) = 0;
  /// The transport, for a device that uses its queues between notifies (the transport calls this
  /// once, and outlives no device use: it is the device's owner's job to keep both alive).
  virtual void attach_transport(VirtioQueueAccess& /*transport*/) {}
  /// The features the driver accepted (§2.2; a subset of features() and, through the modern
  /// interface, VIRTIO_F_VERSION_1, bit 32): the legacy interface passes each write of its guest
  /// features register, the modern one the set it accepted with FEATURES_OK (§3.1.1). A device
  /// whose buffers' layout depends on them (virtio-net's header) follows them; reset() goes back
  /// to none.
  virtual void set_driver_features(uint64_t /*features*/) {}
  /// The driver reset the device (status 0).
  virtual void reset() {}
  /// Adds the device's counters to `stats` under `prefix`.
  virtual void collect_stats(Stats& /*stats*/, const std::string& /*prefix*/) const {}
};

}  // namespace vmbt
