#include "vmm/devices/virtio/virtio_pci.h"

#include <fmt/format.h>

#include <cstdio>

#include "vmm/machine/guest_memory.h"
#include "vmm/stats.h"

namespace vmbt {

namespace {
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
constexpr uint8_t kIsrQueue = 1;

uint32_t bar_size_for(unsigned config_size) {
  uint32_t size = 32;
  while (size < kDeviceConfig + config_size) size <<= 1;
  return size;
}
}  // namespace

VirtioPciLegacy::VirtioPciLegacy(GuestMemory& memory, VirtioDevice& device, IrqSink& irq,
                                 uint8_t irq_line, uint32_t class_code, std::string name)
    : PciFunction(kVendor, static_cast<uint16_t>(0x1000 + device.device_id() - 1), 0, class_code),
      device_(device),
      irq_(irq),
      irq_line_(irq_line),
      name_(std::move(name)),
      bar_size_(bar_size_for(device.config_size())) {
  set_subsystem(kVendor, device.device_id());
  set_interrupt(1, irq_line);
  put16(0x06, 0x0000);  // status: no capabilities list (no modern interface, no MSI-X)
  add_io_bar(0, bar_size_, this);
  queues_.reserve(device.queue_count());
  for (unsigned i = 0; i < device.queue_count(); ++i) queues_.emplace_back(memory);
  device.attach_transport(*this);
}

void VirtioPciLegacy::set_isr(uint8_t isr) {
  const bool was = isr_ != 0;
  isr_ = isr;
  if (was != (isr_ != 0)) irq_.set_irq(irq_line_, isr_ != 0);
}

void VirtioPciLegacy::reset() {
  for (auto& q : queues_) q.reset();
  guest_features_ = 0;
  queue_select_ = 0;
  status_ = 0;
  set_isr(0);
  device_.reset();
}

void VirtioPciLegacy::notify(unsigned index) {
  ++notifies_;
  serve_queue(index, [&](SplitVirtqueue& q) { return device_.process(index, q); });
}

bool VirtioPciLegacy::serve_queue(unsigned index,
                                  const std::function<bool(SplitVirtqueue&)>& serve) {
  if (index >= queues_.size() || !(status_ & kStatusDriverOk) || (status_ & kStatusNeedsReset)) {
    return false;
  }
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

uint32_t VirtioPciLegacy::read_register(unsigned offset, unsigned size) {
  if (offset >= kDeviceConfig) {
    uint32_t v = 0;
    for (unsigned i = 0; i < size; ++i) {
      const unsigned at = offset - kDeviceConfig + i;
      const uint8_t b = at < device_.config_size() ? device_.config_byte(at) : 0;
      v |= uint32_t{b} << (8 * i);
    }
    return v;
  }
  uint32_t v = 0;
  switch (offset & ~3u) {
    case kHostFeatures:
      v = static_cast<uint32_t>(device_.features());
      break;
    case kGuestFeatures:
      v = guest_features_;
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

void VirtioPciLegacy::write_register(unsigned offset, unsigned size, uint32_t value) {
  switch (offset) {
    case kGuestFeatures:
      // Only what was offered can be accepted.
      guest_features_ = value & static_cast<uint32_t>(device_.features());
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
      if ((value & 0xff) == 0) {
        reset();
      } else {
        status_ = static_cast<uint8_t>(value) | (status_ & kStatusNeedsReset);
      }
      break;
    default:
      (void)size;
      break;  // read-only registers and the configuration space (nothing writable there)
  }
}

uint32_t VirtioPciLegacy::io_read(uint16_t port, unsigned size) {
  const unsigned bar = config_read(kBar0, 4) & 0xfffc;
  return read_register(port - bar, size);
}

void VirtioPciLegacy::io_write(uint16_t port, unsigned size, uint32_t value) {
  const unsigned bar = config_read(kBar0, 4) & 0xfffc;
  write_register(port - bar, size, value);
}

void VirtioPciLegacy::collect_stats(Stats& stats) const {
  const std::string prefix = "virtio." + name_ + ".";
  stats.set(prefix + "notifies", notifies_);
  stats.set(prefix + "interrupts", interrupts_);
  stats.set(prefix + "queue_errors", errors_);
  device_.collect_stats(stats, prefix);
}

}  // namespace vmbt
