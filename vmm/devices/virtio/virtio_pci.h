// The virtio PCI transport of a transitional device: the legacy interface and the modern one.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vmm/devices/pci_function.h"
#include "vmm/devices/virtio/virtio_device.h"
#include "vmm/machine/io_bus.h"
#include "vmm/machine/irq.h"

namespace vmbt {

class GuestMemory;
class Stats;

/// A virtio device on PCI as QEMU's transitional devices present it (virtio 1.2 §4.1): vendor
/// 0x1AF4, a transitional device ID (0x1000 + ID - 1: 0x1000 network, 0x1001 block), revision 0,
/// subsystem ID = the virtio device ID (§4.1.2.1), INTA# on the ISA line `irq_line`, no MSI-X,
/// and both interfaces over one device state (status, features, queues, ISR):
///
/// - **Legacy** (§4.1.4.8, §4.1.5.1.1), BAR0, an I/O window of
///
///       0x00 host features (bits 0-31, RO)    0x04 guest features       0x08 queue PFN (>> 12)
///       0x0C queue size (RO)                  0x0E queue select         0x10 queue notify
///       0x12 device status                    0x13 ISR status (read clears, lowers INTA#)
///       0x14 the device-specific configuration.
///
///   VIRTIO_F_VERSION_1 (bit 32) cannot be offered here (§6.1: a legacy driver never sees it).
///
/// - **Modern** (§4.1.4), BAR4 (kModernBar), a 32-bit non-prefetchable memory BAR of kModernBarSize
///   bytes, found through vendor-specific capabilities (§4.1.4: ID 0x09) in configuration space:
///
///       0x0000 common configuration (§4.1.4.3)     0x1000 ISR status (§4.1.4.5, 1 byte)
///       0x2000 device-specific config (§4.1.4.6)    0x3000 notifications (§4.1.4.4)
///
///   and a VIRTIO_PCI_CAP_PCI_CFG capability (§4.1.4.9) whose pci_cfg_data window reaches the
///   BAR through configuration cycles. Offered features are the device's and VERSION_1 (64 bits
///   through device_feature_select). FEATURES_OK (§3.1.1 step 5) stays set only when the driver
///   accepted VERSION_1 and nothing the device did not offer; the queues then run only with
///   FEATURES_OK. Each queue's size is the device's maximum until the driver writes a smaller
///   power of two; its three parts (queue_desc, queue_driver, queue_device: 64-bit, each checked
///   to lie in guest RAM and be aligned at queue_enable) are placed separately.
///   notify_off_multiplier is 4 and queue_notify_off the queue's index (QEMU's layout): each queue
///   has its own 32-bit doorbell, so the address of the write says which queue it is. (0 would give
///   every queue one doorbell and leave the device to trust the value written; a page per queue,
///   KVM ioeventfd's reason, buys nothing where every notify is a trapped access served in the
///   vCPU's thread.) config_generation is 0 for good: no device here changes its configuration
///   while it runs. An access of the wrong width or at no field (§4.1.3.1: each field with its
///   natural width, 64-bit fields as two 32-bit halves) reads 0 and writes nothing; it is counted.
///
/// Linux's virtio_pci driver takes the modern interface when the capabilities are there (legacy
/// only with virtio_pci.force_legacy). A queue notify serves that queue at once (the vCPU's thread
/// does the device's I/O); used buffers set ISR bit 0 and raise INTA# (level) unless the driver
/// suppressed interrupts. Writing status 0 resets the device. A driver error (VirtqueueError) sets
/// DEVICE_NEEDS_RESET, stops the device until reset and is reported once on stderr.
class VirtioPci final : public PciFunction,
                        public IoDevice,
                        public MmioDevice,
                        public VirtioQueueAccess {
 public:
  static constexpr uint16_t kVendor = 0x1AF4;
  /// The modern interface's memory BAR (QEMU's index) and its size; where its structures lie.
  static constexpr unsigned kModernBar = 4;
  static constexpr uint32_t kModernBarSize = 0x4000;
  static constexpr uint32_t kCommonOffset = 0x0000, kIsrOffset = 0x1000, kDeviceOffset = 0x2000,
                            kNotifyOffset = 0x3000, kRegionSize = 0x1000;
  static constexpr uint32_t kNotifyOffMultiplier = 4;
  /// Device status bits (§2.1).
  static constexpr uint8_t kStatusAcknowledge = 1, kStatusDriver = 2, kStatusDriverOk = 4,
                           kStatusFeaturesOk = 8, kStatusNeedsReset = 64, kStatusFailed = 128;

  /// `class_code`: PCI class (0x010000 block as QEMU, 0x020000 network).
  VirtioPci(GuestMemory& memory, VirtioDevice& device, IrqSink& irq, uint8_t irq_line,
            uint32_t class_code, std::string name);

  /// The legacy interface: a port access in BAR0 (§4.1.4.8).
  uint32_t io_read(uint16_t port, unsigned size) override;
  void io_write(uint16_t port, unsigned size, uint32_t value) override;
  /// The modern interface: an access at `offset` in the memory BAR (§4.1.4.3-§4.1.4.6).
  uint64_t mmio_read(uint64_t offset, unsigned size) override;
  void mmio_write(uint64_t offset, unsigned size, uint64_t value) override;

  /// VirtioQueueAccess: a device's own use of a queue (a received frame), outside a notify.
  bool serve_queue(unsigned index, const std::function<bool(SplitVirtqueue&)>& serve) override;

  /// The device status (§2.1) as the driver last set it, with the device's NEEDS_RESET.
  uint8_t status() const { return status_; }
  /// The features the driver accepted (legacy: its guest features; modern: its driver_feature
  /// words, in effect once FEATURES_OK is set).
  uint64_t driver_features() const { return driver_features_; }
  /// True when the driver has used the modern interface's common configuration since reset.
  bool modern() const { return modern_; }
  /// Adds the transport's and the device's counters under "virtio.NAME.".
  void collect_stats(Stats& stats) const;

 protected:
  /// The VIRTIO_PCI_CAP_PCI_CFG data window (§4.1.4.9): an access of cap.length bytes at
  /// cap.offset of BAR cap.bar (only the modern BAR; offset aligned to the length, 1, 2 or 4).
  uint32_t config_window_read(unsigned reg, unsigned size) override;
  void config_window_write(unsigned reg, unsigned size, uint32_t value) override;

 private:
  /// The driver's choices for one queue through the modern interface (§4.1.4.3).
  struct QueueConfig {
    uint16_t size = 0;
    uint64_t desc = 0, driver = 0, device = 0;
  };

  uint32_t read_register(unsigned offset, unsigned size);
  void write_register(unsigned offset, unsigned size, uint32_t value);
  uint32_t read_common(unsigned offset, unsigned size);
  void write_common(unsigned offset, unsigned size, uint32_t value);
  /// What the modern interface offers: the device's features and VIRTIO_F_VERSION_1 (§6.1).
  uint64_t modern_features() const { return device_.features() | VirtioDevice::kFeatureVersion1; }
  /// The PCI_CFG window's BAR access, when its fields name a valid one: the offset in the BAR.
  bool pci_cfg_target(uint32_t* offset, unsigned* length) const;
  void set_status(uint8_t value);
  void notify(unsigned queue);
  void reset();
  void set_isr(uint8_t isr);
  uint32_t device_config(unsigned offset, unsigned size) const;

  VirtioDevice& device_;
  IrqSink& irq_;
  uint8_t irq_line_;
  std::string name_;
  std::vector<SplitVirtqueue> queues_;
  std::vector<QueueConfig> queue_config_;
  uint32_t bar_size_;
  unsigned pci_cfg_cap_ = 0;  ///< offset of the PCI_CFG capability in configuration space
  uint64_t driver_features_ = 0;
  uint32_t device_feature_select_ = 0, driver_feature_select_ = 0;
  uint16_t queue_select_ = 0;
  uint8_t status_ = 0;
  uint8_t isr_ = 0;
  bool modern_ = false;
  uint64_t notifies_ = 0, interrupts_ = 0, errors_ = 0, bad_accesses_ = 0;
};

}  // namespace vmbt
