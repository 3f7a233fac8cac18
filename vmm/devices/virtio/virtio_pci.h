// The virtio PCI transport, legacy interface (a transitional device as a legacy driver sees it).
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

/// A virtio device on PCI through the legacy interface (virtio 1.2 §4.1.4.8 "Legacy Interfaces:
/// A Note on PCI Device Layout"; §4.1.5.1.1 for the legacy queue setup): vendor 0x1AF4, a
/// transitional device ID (0x1000 + ID - 1: 0x1000 network, 0x1001 block), subsystem ID = the
/// virtio device ID, INTA# on the ISA line `irq_line`, and BAR0 an I/O window of
///
///   0x00 host features (bits 0-31, RO)    0x04 guest features       0x08 queue PFN (>> 12)
///   0x0C queue size (RO)                  0x0E queue select         0x10 queue notify
///   0x12 device status                    0x13 ISR status (read clears, lowers INTA#)
///   0x14 the device-specific configuration (no MSI-X).
///
/// Linux's virtio_pci driver takes a transitional device without modern capabilities through its
/// legacy path. A queue notify serves that queue at once (the vCPU's thread does the device's
/// I/O); used buffers set ISR bit 0 and raise INTA# (level) unless the driver suppressed
/// interrupts. Writing status 0 resets the device. A driver error (VirtqueueError) sets
/// DEVICE_NEEDS_RESET, stops the device until reset and is reported once on stderr.
class VirtioPciLegacy final : public PciFunction, public IoDevice, public VirtioQueueAccess {
 public:
  static constexpr uint16_t kVendor = 0x1AF4;

  /// `class_code`: PCI class (0x010000 block as QEMU, 0x020000 network).
  VirtioPciLegacy(GuestMemory& memory, VirtioDevice& device, IrqSink& irq, uint8_t irq_line,
                  uint32_t class_code, std::string name);

  uint32_t io_read(uint16_t port, unsigned size) override;
  void io_write(uint16_t port, unsigned size, uint32_t value) override;

  /// VirtioQueueAccess: a device's own use of a queue (a received frame), outside a notify.
  bool serve_queue(unsigned index, const std::function<bool(SplitVirtqueue&)>& serve) override;

  uint8_t status() const { return status_; }
  /// Adds the transport's and the device's counters under "virtio.NAME.".
  void collect_stats(Stats& stats) const;

  static constexpr uint8_t kStatusDriverOk = 4, kStatusNeedsReset = 64;

 private:
  uint32_t read_register(unsigned offset, unsigned size);
  void write_register(unsigned offset, unsigned size, uint32_t value);
  void notify(unsigned queue);
  void reset();
  void set_isr(uint8_t isr);

  VirtioDevice& device_;
  IrqSink& irq_;
  uint8_t irq_line_;
  std::string name_;
  std::vector<SplitVirtqueue> queues_;
  uint32_t bar_size_;
  uint32_t guest_features_ = 0;
  uint16_t queue_select_ = 0;
  uint8_t status_ = 0;
  uint8_t isr_ = 0;
  uint64_t notifies_ = 0, interrupts_ = 0, errors_ = 0;
};

}  // namespace vmbt
