// PCI Configuration Mechanism #1 (PCI Local Bus Specification 3.0, §3.2.2.3.2) with an i440FX
// host bridge (Intel 82441FX PMC datasheet, "PCI configuration registers").
#include "vmm/devices/pci_host.h"

namespace vmbt {

namespace {
/// CONFIG_ADDRESS bits that exist: enable, bus, device, function, register (§3.2.2.3.2).
constexpr uint32_t kAddressMask = 0x80fffffcu;
}  // namespace

PciHost::PciHost() {
  auto put16 = [&](unsigned off, uint16_t v) {
    config_[off] = static_cast<uint8_t>(v);
    config_[off + 1] = static_cast<uint8_t>(v >> 8);
  };
  put16(0x00, kVendorIntel);  // vendor ID
  put16(0x02, kDevice440fx);  // device ID
  put16(0x04, 0x0006);        // command: memory space, bus master
  put16(0x06, 0x0280);        // status: fast back-to-back capable, DEVSEL medium
  config_[0x08] = 0x02;       // revision
  config_[0x09] = 0x00;       // programming interface
  config_[0x0a] = 0x00;       // sub-class: host bridge
  config_[0x0b] = 0x06;       // base class: bridge
  config_[0x0e] = 0x00;       // header type 0, single function
  wmask_[0x04] = 0x47;        // I/O, memory, bus master, parity error response
  wmask_[0x05] = 0x01;        // SERR# enable
  wmask_[0x0d] = 0xff;        // latency timer
  for (unsigned i = 0x40; i < 0x100; ++i) wmask_[i] = 0xff;
}

void PciHost::register_ports(IoBus& bus) {
  bus.add(kConfigAddress, 8, this, "pci-host");
}

bool PciHost::selects_host_bridge() const {
  // Bus 0, device 0, function 0 (bits 23-8 all zero).
  return (address_ & kEnable) && (address_ & 0x00ffff00u) == 0;
}

uint32_t PciHost::io_read(uint16_t port, unsigned size) {
  const uint32_t ones = size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
  if (port < kConfigData) {
    return port == kConfigAddress && size == 4 ? address_ : ones;
  }
  if (!selects_host_bridge()) return ones;  // disabled, or no such function: master abort
  unsigned reg = (address_ & 0xfc) + (port - kConfigData);
  uint32_t v = 0;
  for (unsigned i = 0; i < size; ++i) v |= uint32_t{config_[(reg + i) & 0xff]} << (8 * i);
  return v;
}

void PciHost::io_write(uint16_t port, unsigned size, uint32_t value) {
  if (port < kConfigData) {
    if (port == kConfigAddress && size == 4) address_ = value & kAddressMask;
    return;
  }
  if (!selects_host_bridge()) return;
  unsigned reg = (address_ & 0xfc) + (port - kConfigData);
  for (unsigned i = 0; i < size; ++i) {
    unsigned r = (reg + i) & 0xff;
    uint8_t b = static_cast<uint8_t>(value >> (8 * i));
    config_[r] = static_cast<uint8_t>((config_[r] & ~wmask_[r]) | (b & wmask_[r]));
  }
}

}  // namespace vmbt
