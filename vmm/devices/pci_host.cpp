// PCI Configuration Mechanism #1 (PCI Local Bus Specification 3.0, §3.2.2.3.2) with an i440FX
// host bridge (Intel 82441FX PMC datasheet, "PCI configuration registers").
#include "vmm/devices/pci_host.h"

#include "vmm/devices/i440fx.h"
#include "vmm/error.h"

namespace vmbt {

namespace {
/// CONFIG_ADDRESS bits that exist: enable, bus, device, function, register (§3.2.2.3.2).
constexpr uint32_t kAddressMask = 0x80fffffcu;

}  // namespace

PciHost::PciHost() : host_bridge_(std::make_unique<I440fxHostBridge>()) {
  functions_[0] = host_bridge_.get();
}

PciHost::~PciHost() = default;

void PciHost::register_ports(IoBus& bus) {
  bus.add(kConfigAddress, 8, this, "pci-host");
}

void PciHost::attach(unsigned device, PciFunction& function) {
  if (device == 0 || device >= functions_.size() || functions_[device]) {
    throw Error("internal: PCI device number taken or out of range");
  }
  functions_[device] = &function;
}

PciFunction* PciHost::selected() const {
  // Bus 0, function 0 of a device that is there.
  if (!(address_ & kEnable) || (address_ & 0x00ff0700u) != 0) return nullptr;
  return functions_[(address_ >> 11) & 0x1f];
}

uint32_t PciHost::io_read(uint16_t port, unsigned size) {
  const uint32_t ones = size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
  if (port < kConfigData) {
    return port == kConfigAddress && size == 4 ? address_ : ones;
  }
  PciFunction* f = selected();
  if (!f) return ones;  // disabled, or no such function: master abort
  return f->config_read((address_ & 0xfc) + (port - kConfigData), size);
}

void PciHost::io_write(uint16_t port, unsigned size, uint32_t value) {
  if (port < kConfigData) {
    if (port == kConfigAddress && size == 4) address_ = value & kAddressMask;
    return;
  }
  if (PciFunction* f = selected()) {
    f->config_write((address_ & 0xfc) + (port - kConfigData), size, value);
  }
}

}  // namespace vmbt
