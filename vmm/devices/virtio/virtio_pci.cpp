#include "vmm/devices/virtio/virtio_pci.h"

#include <fmt/format.h>

#include <cstdio>

#include "vmm/machine/guest_memory.h"
#include "vmm/stats.h"

namespace vmbt {

namespace {
/// Legacy registers (§4.1.4.8).
enum Register : unsigned {
  kHostFeatures = 0x00,
  kGuestFeatures = 0x04,
  kQueuePfn = 0x08,
  kQueueSize = 0x0C,
  kQueueSelect = 0x0E,
  kQueueNotify = 0x10,
  kDeviceStatus = 0x12,
  kIsr = 0x13,
  kDeviceConfig = 0x14,
};
/// struct virtio_pci_common_cfg (§4.1.4.3).
enum Common : unsigned {
  kDeviceFeatureSelect = 0x00,
  kDeviceFeature = 0x04,
  kDriverFeatureSelect = 0x08,
  kDriverFeature = 0x0C,
  kConfigMsixVector = 0x10,
  kNumQueues = 0x12,
  kCommonStatus = 0x14,
  kConfigGeneration = 0x15,
  kCommonQueueSelect = 0x16,
  kCommonQueueSize = 0x18,
  kQueueMsixVector = 0x1A,
  kQueueEnable = 0x1C,
  kQueueNotifyOff = 0x1E,
  kQueueDesc = 0x20,
  kQueueDriver = 0x28,
  kQueueDevice = 0x30,
  kCommonEnd = 0x38,
};
/// Capability types (§4.1.4) and the vendor-specific capability ID (PCI 3.0 App. H).
constexpr uint8_t kCapVendor = 0x09;
constexpr uint8_t kCapCommon = 1, kCapNotify = 2, kCapIsr = 3, kCapDevice = 4, kCapPciCfg = 5;
constexpr uint8_t kIsrQueue = 1;
constexpr uint16_t kNoVector = 0xffff;  ///< VIRTIO_MSI_NO_VECTOR: there is no MSI-X

uint32_t bar_size_for(unsigned config_size) {
  uint32_t size = 32;
  while (size < kDeviceConfig + config_size) size <<= 1;
  return size;
}

/// The natural width of the common configuration field at `offset` (§4.1.3.1: 64-bit fields are
/// accessed as two 32-bit halves), or 0 where no field starts.
unsigned common_width(unsigned offset) {
  if (offset >= kQueueDesc && offset < kCommonEnd) return offset % 4 == 0 ? 4 : 0;
  switch (offset) {
    case kDeviceFeatureSelect:
    case kDeviceFeature:
    case kDriverFeatureSelect:
    case kDriverFeature:
      return 4;
    case kConfigMsixVector:
    case kNumQueues:
    case kCommonQueueSelect:
    case kCommonQueueSize:
    case kQueueMsixVector:
    case kQueueEnable:
    case kQueueNotifyOff:
      return 2;
    case kCommonStatus:
    case kConfigGeneration:
      return 1;
    default:
      return 0;
  }
}

/// A virtio_pci_cap body (§4.1.4: after cap_vndr and cap_next): cap_len, cfg_type, bar, id,
/// padding, offset, length, then `extra` (notify_off_multiplier, or pci_cfg_data).
std::vector<uint8_t> cap_body(uint8_t type, uint8_t bar, uint32_t offset, uint32_t length,
                              bool extra, uint32_t extra_value = 0) {
  std::vector<uint8_t> b(extra ? 18 : 14, 0);
  b[0] = static_cast<uint8_t>(b.size() + 2);
  b[1] = type;
  b[2] = bar;
  for (unsigned i = 0; i < 4; ++i) {
    b[6 + i] = static_cast<uint8_t>(offset >> (8 * i));
    b[10 + i] = static_cast<uint8_t>(length >> (8 * i));
    if (extra) b[14 + i] = static_cast<uint8_t>(extra_value >> (8 * i));
  }
  return b;
}

/// Offsets in struct virtio_pci_cfg_cap (§4.1.4.9) from the capability's start.
constexpr unsigned kCfgBar = 4, kCfgOffset = 8, kCfgLength = 12, kCfgData = 16;
}  // namespace

VirtioPci::VirtioPci(GuestMemory& memory, VirtioDevice& device, IrqSink& irq, uint8_t irq_line,
                     uint32_t class_code, std::string name)
    : PciFunction(kVendor, static_cast<uint16_t>(0x1000 + device.device_id() - 1), 0, class_code),
      device_(device),
      irq_(irq),
      irq_line_(irq_line),
      name_(std::move(name)),
      bar_size_(bar_size_for(device.config_size())) {
  set_subsystem(kVendor, device.device_id());
  set_interrupt(1, irq_line);
  add_io_bar(0, bar_size_, this);
  add_memory_bar(kModernBar, kModernBarSize, this);
  // The modern interface's structures (§4.1.4), in QEMU's order; the status register's
  // Capabilities List bit and the pointer at 0x34 come with the first.
  const uint32_t notify_length = kNotifyOffMultiplier * device.queue_count();
  const std::vector<uint8_t> caps[] = {
      cap_body(kCapCommon, kModernBar, kCommonOffset, kRegionSize, false),
      cap_body(kCapIsr, kModernBar, kIsrOffset, kRegionSize, false),
      cap_body(kCapDevice, kModernBar, kDeviceOffset, kRegionSize, false),
      cap_body(kCapNotify, kModernBar, kNotifyOffset, notify_length, true, kNotifyOffMultiplier),
      cap_body(kCapPciCfg, 0, 0, 0, true),
  };
  for (const auto& body : caps) {
    pci_cfg_cap_ = add_capability(kCapVendor, body.data(), static_cast<unsigned>(body.size()));
  }
  // PCI_CFG: bar, offset and length are the driver's; pci_cfg_data is the BAR window.
  wmask_[pci_cfg_cap_ + kCfgBar] = 0xff;
  for (unsigned i = 0; i < 4; ++i) {
    wmask_[pci_cfg_cap_ + kCfgOffset + i] = 0xff;
    wmask_[pci_cfg_cap_ + kCfgLength + i] = 0xff;
  }
  set_config_window(pci_cfg_cap_ + kCfgData, pci_cfg_cap_ + kCfgData + 4);
  queues_.reserve(device.queue_count());
  for (unsigned i = 0; i < device.queue_count(); ++i) queues_.emplace_back(memory);
  queue_config_.assign(device.queue_count(), QueueConfig{device.queue_size()});
  device.attach_transport(*this);
}

void VirtioPci::set_isr(uint8_t isr) {
  const bool was = isr_ != 0;
  isr_ = isr;
  if (was != (isr_ != 0)) irq_.set_irq(irq_line_, isr_ != 0);
}

void VirtioPci::reset() {
  for (auto& q : queues_) q.reset();
  queue_config_.assign(queues_.size(), QueueConfig{device_.queue_size()});
  driver_features_ = 0;
  device_feature_select_ = driver_feature_select_ = 0;
  queue_select_ = 0;
  status_ = 0;
  modern_ = false;
  set_isr(0);
  device_.reset();
}

void VirtioPci::set_status(uint8_t value) {
  if (value == 0) {
    reset();
    return;
  }
  if ((value & kStatusFeaturesOk) && !(status_ & kStatusFeaturesOk)) {
    // §2.2.1, §3.1.1 step 5: nothing the device did not offer, and (§6.1) VERSION_1, which only
    // a driver of the modern interface can have accepted. Refused: FEATURES_OK stays clear.
    if ((driver_features_ & ~modern_features()) != 0 ||
        !(driver_features_ & VirtioDevice::kFeatureVersion1)) {
      value &= static_cast<uint8_t>(~kStatusFeaturesOk);
    } else {
      device_.set_driver_features(driver_features_);
    }
  }
  status_ = value | (status_ & kStatusNeedsReset);
}

void VirtioPci::notify(unsigned index) {
  ++notifies_;
  serve_queue(index, [&](SplitVirtqueue& q) { return device_.process(index, q); });
}

bool VirtioPci::serve_queue(unsigned index, const std::function<bool(SplitVirtqueue&)>& serve) {
  if (index >= queues_.size() || !(status_ & kStatusDriverOk) || (status_ & kStatusNeedsReset)) {
    return false;
  }
  // A modern driver runs the device only after the features were agreed (§3.1.1).
  if (modern_ && !(status_ & kStatusFeaturesOk)) return false;
  SplitVirtqueue& q = queues_[index];
  if (!q.enabled()) return false;
  try {
    if (serve(q) && !q.interrupt_suppressed()) {
      ++interrupts_;
      set_isr(isr_ | kIsrQueue);
    }
  } catch (const VirtqueueError& e) {
    ++errors_;
    status_ |= kStatusNeedsReset;
    std::fprintf(stderr,
                 "vmbt: %s: the guest broke queue %u (%s); the device stops until the guest "
                 "resets it\n",
                 name_.c_str(), index, e.what());
    return false;
  }
  return true;
}

uint32_t VirtioPci::device_config(unsigned offset, unsigned size) const {
  uint32_t v = 0;
  for (unsigned i = 0; i < size && i < 4; ++i) {
    const uint64_t at = uint64_t{offset} + i;
    const uint8_t b =
        at < device_.config_size() ? device_.config_byte(static_cast<unsigned>(at)) : 0;
    v |= uint32_t{b} << (8 * i);
  }
  return v;
}

uint32_t VirtioPci::read_register(unsigned offset, unsigned size) {
  if (offset >= kDeviceConfig) return device_config(offset - kDeviceConfig, size);
  uint32_t v = 0;
  switch (offset & ~3u) {
    case kHostFeatures:
      v = static_cast<uint32_t>(device_.features());
      break;
    case kGuestFeatures:
      v = static_cast<uint32_t>(driver_features_);
      break;
    case kQueuePfn:
      v = queue_select_ < queues_.size() ? queues_[queue_select_].pfn() : 0;
      break;
    case kQueueSize:  // and queue select at 0x0E
      v = (queue_select_ < queues_.size() ? device_.queue_size() : 0) |
          (uint32_t{queue_select_} << 16);
      break;
    case kQueueNotify: {  // notify (0x10), status (0x12), ISR (0x13)
      const uint8_t isr = isr_;
      if ((offset & 3) + size > 3) set_isr(0);  // reading the ISR clears it (§4.1.4.5)
      v = uint32_t{status_} << 16 | uint32_t{isr} << 24;
      break;
    }
    default:
      break;
  }
  return v >> (8 * (offset & 3));
}

void VirtioPci::write_register(unsigned offset, unsigned /*size*/, uint32_t value) {
  switch (offset) {
    case kGuestFeatures:
      // Only what was offered can be accepted (bits 0-31: never VERSION_1).
      driver_features_ = value & static_cast<uint32_t>(device_.features());
      device_.set_driver_features(driver_features_);
      break;
    case kQueuePfn:
      if (queue_select_ < queues_.size()) {
        queues_[queue_select_].set_legacy(value, value ? device_.queue_size() : 0);
      }
      break;
    case kQueueSelect:
      queue_select_ = static_cast<uint16_t>(value);
      break;
    case kQueueNotify:
      notify(value & 0xffff);
      break;
    case kDeviceStatus:
      set_status(static_cast<uint8_t>(value));
      break;
    default:
      break;  // read-only registers and the configuration space (nothing writable there)
  }
}

uint32_t VirtioPci::io_read(uint16_t port, unsigned size) {
  const unsigned bar = config_read(kBar0, 4) & 0xfffc;
  return read_register(port - bar, size);
}

void VirtioPci::io_write(uint16_t port, unsigned size, uint32_t value) {
  const unsigned bar = config_read(kBar0, 4) & 0xfffc;
  write_register(port - bar, size, value);
}

uint32_t VirtioPci::read_common(unsigned offset, unsigned size) {
  if (common_width(offset) != size) {
    ++bad_accesses_;
    return 0;
  }
  const bool have_queue = queue_select_ < queues_.size();
  const QueueConfig* qc = have_queue ? &queue_config_[queue_select_] : nullptr;
  const uint64_t offered = modern_features();
  switch (offset) {
    case kDeviceFeatureSelect:
      return device_feature_select_;
    case kDeviceFeature:
      return device_feature_select_ < 2
                 ? static_cast<uint32_t>(offered >> (32 * device_feature_select_))
                 : 0;
    case kDriverFeatureSelect:
      return driver_feature_select_;
    case kDriverFeature:
      return driver_feature_select_ < 2
                 ? static_cast<uint32_t>(driver_features_ >> (32 * driver_feature_select_))
                 : 0;
    case kConfigMsixVector:
    case kQueueMsixVector:
      return kNoVector;
    case kNumQueues:
      return static_cast<uint32_t>(queues_.size());
    case kCommonStatus:
      return status_;
    case kConfigGeneration:
      return 0;
    case kCommonQueueSelect:
      return queue_select_;
    case kCommonQueueSize:
      return qc ? qc->size : 0;  // 0: no such queue (§4.1.4.3)
    case kQueueEnable:
      return have_queue && queues_[queue_select_].enabled() ? 1 : 0;
    case kQueueNotifyOff:
      return have_queue ? queue_select_ : 0;
    default: {  // the 64-bit addresses, a 32-bit half at a time
      if (!qc) return 0;
      const unsigned field = offset & ~7u;
      const uint64_t a = field == kQueueDesc     ? qc->desc
                         : field == kQueueDriver ? qc->driver
                                                 : qc->device;
      return static_cast<uint32_t>(a >> (offset & 4 ? 32 : 0));
    }
  }
}

void VirtioPci::write_common(unsigned offset, unsigned size, uint32_t value) {
  if (common_width(offset) != size) {
    ++bad_accesses_;
    return;
  }
  const bool have_queue = queue_select_ < queues_.size();
  // A running queue's place and size stay as they were enabled (§4.1.4.3.2: the driver sets
  // them before queue_enable; only a reset takes them back).
  QueueConfig* qc =
      have_queue && !queues_[queue_select_].enabled() ? &queue_config_[queue_select_] : nullptr;
  switch (offset) {
    case kDeviceFeatureSelect:
      device_feature_select_ = value;
      break;
    case kDriverFeatureSelect:
      driver_feature_select_ = value;
      break;
    case kDriverFeature:
      // Fixed once FEATURES_OK is set (§3.1.1); words past the second name no feature here.
      if (!(status_ & kStatusFeaturesOk) && driver_feature_select_ < 2) {
        const unsigned shift = 32 * driver_feature_select_;
        driver_features_ =
            (driver_features_ & ~(uint64_t{0xffffffff} << shift)) | (uint64_t{value} << shift);
      }
      break;
    case kCommonStatus:
      modern_ = true;
      set_status(static_cast<uint8_t>(value));
      modern_ = true;  // (a reset cleared it: the driver is still a modern one)
      return;
    case kCommonQueueSelect:
      queue_select_ = static_cast<uint16_t>(value);
      break;
    case kCommonQueueSize: {
      // A power of two up to the device's maximum (§2.7, §4.1.4.3.2); else refused.
      const uint16_t n = static_cast<uint16_t>(value);
      if (qc && n != 0 && (n & (n - 1)) == 0 && n <= device_.queue_size()) {
        qc->size = n;
      } else {
        ++bad_accesses_;
      }
      break;
    }
    case kQueueEnable:
      // Only 1 (§4.1.4.3.2: the driver MUST NOT write 0; without VIRTIO_F_RING_RESET nothing
      // disables a queue but a device reset). The parts are checked now: a bad place leaves the
      // queue broken, and its first use sets DEVICE_NEEDS_RESET, as for a bad legacy PFN.
      if (qc && (value & 0xffff) == 1) {
        queues_[queue_select_].set_rings(qc->size, qc->desc, qc->driver, qc->device);
        if (queues_[queue_select_].broken()) ++bad_accesses_;
      }
      break;
    case kQueueDesc:
    case kQueueDesc + 4:
    case kQueueDriver:
    case kQueueDriver + 4:
    case kQueueDevice:
    case kQueueDevice + 4:
      if (qc) {
        const unsigned field = offset & ~7u;
        uint64_t& a = field == kQueueDesc     ? qc->desc
                      : field == kQueueDriver ? qc->driver
                                              : qc->device;
        const unsigned shift = offset & 4 ? 32 : 0;
        a = (a & ~(uint64_t{0xffffffff} << shift)) | (uint64_t{value} << shift);
      }
      break;
    default:
      break;  // read-only: device_feature, num_queues, config_generation, queue_notify_off, MSI-X
  }
  modern_ = true;
}

uint64_t VirtioPci::mmio_read(uint64_t offset, unsigned size) {
  if (size == 8 && offset + 8 <= kModernBarSize &&
      (offset < kIsrOffset || (offset >= kDeviceOffset && offset < kNotifyOffset))) {
    // A 64-bit read of a 64-bit field, or of the device's configuration: two halves (§4.1.3.1).
    return mmio_read(offset, 4) | (mmio_read(offset + 4, 4) << 32);
  }
  if (offset >= kModernBarSize || size > 4) {
    ++bad_accesses_;
    return 0;
  }
  const auto at = static_cast<unsigned>(offset);
  if (at < kIsrOffset) return read_common(at - kCommonOffset, size);
  if (at < kDeviceOffset) {
    if (at != kIsrOffset || size != 1) {
      ++bad_accesses_;
      return 0;
    }
    const uint8_t isr = isr_;
    set_isr(0);  // reading the ISR clears it and lowers INTA# (§4.1.4.5)
    return isr;
  }
  if (at < kNotifyOffset) return device_config(at - kDeviceOffset, size);
  return 0;  // the notification doorbells read nothing
}

void VirtioPci::mmio_write(uint64_t offset, unsigned size, uint64_t value) {
  if (size == 8 && offset + 8 <= kModernBarSize && offset < kIsrOffset) {
    mmio_write(offset, 4, value & 0xffffffff);
    mmio_write(offset + 4, 4, value >> 32);
    return;
  }
  if (offset >= kModernBarSize || size > 4) {
    ++bad_accesses_;
    return;
  }
  const auto at = static_cast<unsigned>(offset);
  if (at < kIsrOffset) {
    write_common(at - kCommonOffset, size, static_cast<uint32_t>(value));
    return;
  }
  if (at >= kNotifyOffset) {
    // §4.1.4.4: queue q's doorbell is at queue_notify_off (q) * notify_off_multiplier; the
    // driver writes the queue's index there (16 bits). The address says which queue.
    const unsigned off = at - kNotifyOffset;
    const unsigned q = off / kNotifyOffMultiplier;
    if (off % kNotifyOffMultiplier == 0 && (size == 2 || size == 4) && q < queues_.size()) {
      notify(q);
      return;
    }
  }
  // The ISR is read-only; the device configuration has no field a driver writes here.
  ++bad_accesses_;
}

bool VirtioPci::pci_cfg_target(uint32_t* offset, unsigned* length) const {
  const uint8_t bar = config_[pci_cfg_cap_ + kCfgBar];
  uint32_t off = 0, len = 0;
  for (unsigned i = 0; i < 4; ++i) {
    off |= uint32_t{config_[pci_cfg_cap_ + kCfgOffset + i]} << (8 * i);
    len |= uint32_t{config_[pci_cfg_cap_ + kCfgLength + i]} << (8 * i);
  }
  // §4.1.4.9: 1, 2 or 4 bytes, offset aligned to the length, within the BAR (only the modern BAR
  // holds capability structures).
  if (bar != kModernBar || (len != 1 && len != 2 && len != 4) || off % len != 0 ||
      off > kModernBarSize - len) {
    return false;
  }
  *offset = off;
  *length = len;
  return true;
}

uint32_t VirtioPci::config_window_read(unsigned reg, unsigned size) {
  uint32_t off = 0;
  unsigned len = 0;
  if (reg != pci_cfg_cap_ + kCfgData || !pci_cfg_target(&off, &len)) {
    ++bad_accesses_;
    return 0;
  }
  const auto v = static_cast<uint32_t>(mmio_read(off, len));
  return size >= 4 ? v : v & ((1u << (8 * size)) - 1);
}

void VirtioPci::config_window_write(unsigned reg, unsigned /*size*/, uint32_t value) {
  uint32_t off = 0;
  unsigned len = 0;
  if (reg != pci_cfg_cap_ + kCfgData || !pci_cfg_target(&off, &len)) {
    ++bad_accesses_;
    return;
  }
  mmio_write(off, len, len >= 4 ? value : value & ((1u << (8 * len)) - 1));
}

void VirtioPci::collect_stats(Stats& stats) const {
  const std::string prefix = "virtio." + name_ + ".";
  stats.set(prefix + "notifies", notifies_);
  stats.set(prefix + "interrupts", interrupts_);
  stats.set(prefix + "queue_errors", errors_);
  stats.set(prefix + "bad_accesses", bad_accesses_);
  device_.collect_stats(stats, prefix);
}

}  // namespace vmbt
