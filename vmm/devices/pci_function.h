// A PCI function: its type-0 configuration header and BARs.
#pragma once

#include <array>
#include <cstdint>

namespace vmbt {

class IoBus;
class IoDevice;

/// The configuration space of one PCI function with a type-0 header (PCI Local Bus Specification
/// 3.0 §6.1-6.2): 256 bytes, each with a mask of the bits a configuration write may change, and
/// up to six BARs. An I/O BAR (§6.2.5.1) of `size` bytes (a power of two, 4-256) reads back its
/// base with bit 0 set; writing all ones then reading gives the size mask. When the command
/// register's I/O space bit is set, the bus decodes the BAR's ports to the function's IoDevice.
class PciFunction {
 public:
  virtual ~PciFunction() = default;

  /// A configuration read of `size` bytes (1, 2, 4) at register offset `reg` (0-255, wrapping).
  uint32_t config_read(unsigned reg, unsigned size) const;
  /// A configuration write: only the writable bits change; BAR and command changes are applied
  /// to the I/O bus (when attach_io() gave one).
  void config_write(unsigned reg, unsigned size, uint32_t value);

  /// Gives the function the port-I/O bus its I/O BARs decode on, and registers them there
  /// (hidden until the command register enables I/O space).
  void attach_io(IoBus& bus);
  /// Sets an I/O BAR's base and turns I/O space decoding on, as firmware leaves a device it
  /// assigned.
  void assign_io_bar(unsigned index, uint16_t base);

  static constexpr unsigned kCommand = 0x04, kBar0 = 0x10, kInterruptLine = 0x3c;
  static constexpr uint16_t kCommandIo = 1u << 0, kCommandMemory = 1u << 1,
                            kCommandBusMaster = 1u << 2;

 protected:
  /// Vendor, device, revision, class code (base class << 16 | sub-class << 8 | prog-if).
  PciFunction(uint16_t vendor, uint16_t device, uint8_t revision, uint32_t class_code);
  void put16(unsigned off, uint16_t v);
  void put32(unsigned off, uint32_t v);
  void set_subsystem(uint16_t vendor, uint16_t id);
  /// INTx pin (1 = INTA#) and the interrupt line firmware routed it to (an ISA IRQ here).
  void set_interrupt(uint8_t pin, uint8_t line);
  /// BAR `index` (0-5) decodes `size` bytes of port I/O to `device`.
  void add_io_bar(unsigned index, uint32_t size, IoDevice* device);

  std::array<uint8_t, 256> config_{};
  std::array<uint8_t, 256> wmask_{};  ///< writable bits of each byte

 private:
  /// Shows or hides the I/O BARs on the bus as the command register and BARs say now.
  void update_io_windows();

  struct IoBar {
    uint32_t size = 0;  ///< 0: no I/O BAR here
    IoDevice* device = nullptr;
  };
  std::array<IoBar, 6> io_bars_{};
  IoBus* io_bus_ = nullptr;
};

}  // namespace vmbt
