// PCI configuration mechanism #1 and the functions on bus 0, with an i440FX host bridge.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "vmm/devices/pci_function.h"
#include "vmm/machine/io_bus.h"

namespace vmbt {

/// PCI Configuration Mechanism #1 (PCI Local Bus Specification 3.0, §3.2.2.3.2) at ports 0xcf8
/// (CONFIG_ADDRESS) and 0xcfc-0xcff (CONFIG_DATA), over bus 0: an Intel 82441FX (i440FX) host
/// bridge at 00:00.0 and the functions attach() adds at other device numbers (function 0 each).
///
/// - CONFIG_ADDRESS is a 32-bit register decoded only by doubleword accesses to 0xcf8: bit 31
///   enable, bits 23-16 bus, 15-11 device, 10-8 function, 7-2 register (dword). Reserved bits
///   30-24 and 1-0 read as 0. Byte and word accesses to 0xcf8-0xcfb are not decoded (reads all
///   ones, writes ignored), as the spec asks so that they reach other devices.
/// - CONFIG_DATA: a 1-, 2- or 4-byte access at 0xcfc + n reaches configuration bytes
///   register + n onwards of the addressed function, while the enable bit is set. With the enable
///   bit clear, or for a function that does not exist, reads return all ones and writes are
///   ignored (§3.2.2.3.2: a master abort on a configuration read returns 0xffffffff).
/// - The host bridge is vmm/devices/i440fx.h (with its PAM registers). Writes to read-only
///   fields of any function are ignored.
class I440fxHostBridge;

class PciHost : public IoDevice {
 public:
  static constexpr uint16_t kConfigAddress = 0xcf8;
  static constexpr uint16_t kConfigData = 0xcfc;
  static constexpr uint32_t kEnable = 0x80000000u;

  PciHost();
  ~PciHost() override;

  /// Adds ports 0xcf8-0xcff to `bus`.
  void register_ports(IoBus& bus);
  /// Puts `function` at bus 0, device `device` (1-31), function 0.
  void attach(unsigned device, PciFunction& function);

  uint32_t io_read(uint16_t port, unsigned size) override;
  void io_write(uint16_t port, unsigned size, uint32_t value) override;

  /// CONFIG_ADDRESS as last written (reserved bits cleared).
  uint32_t config_address() const { return address_; }
  /// The i440FX host bridge at 00:00.0.
  I440fxHostBridge& host_bridge() { return *host_bridge_; }
  /// The host bridge's configuration space (256 bytes).
  uint32_t host_bridge_config(unsigned reg, unsigned size) const {
    return functions_[0]->config_read(reg, size);
  }

 private:
  /// The function CONFIG_ADDRESS selects while enabled, or nullptr (master abort).
  PciFunction* selected() const;

  uint32_t address_ = 0;
  std::unique_ptr<I440fxHostBridge> host_bridge_;
  std::array<PciFunction*, 32> functions_{};  ///< bus 0 by device number (function 0)
};

}  // namespace vmbt
