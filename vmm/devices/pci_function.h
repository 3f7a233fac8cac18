// A PCI function: its type-0 configuration header and BARs.
#pragma once

#include <array>
#include <cstdint>

namespace vmbt {

class IoBus;
class IoDevice;
class MmioBus;
class MmioDevice;

/// The configuration space of one PCI function with a type-0 header (PCI Local Bus Specification
/// 3.0 §6.1-6.2): 256 bytes, each with a mask of the bits a configuration write may change, and
/// up to six BARs. An I/O BAR (§6.2.5.1) of `size` bytes (a power of two, 4-256) reads back its
/// base with bit 0 set; writing all ones then reading gives the size mask. When the command
/// register's I/O space bit is set, the bus decodes the BAR's ports to the function's IoDevice.
/// A 32-bit memory BAR (§6.2.5.1: bits 2-1 00, not prefetchable) of `size` bytes (a power of
/// two, 16 bytes to 1 GiB) is decoded on the MMIO bus while the command register's memory space
/// bit is set. Capabilities (§6.7) chain from 0x40: the status register's Capabilities List bit
/// (bit 4) and the Capabilities Pointer (0x34) are set by the first one added.
class PciFunction {
 public:
  virtual ~PciFunction() = default;

  /// A configuration read of `size` bytes (1, 2, 4) at register offset `reg` (0-255, wrapping).
  /// Not const: a read of a function's config window (set_config_window) may act.
  uint32_t config_read(unsigned reg, unsigned size);
  /// A configuration write: only the writable bits change; BAR and command changes are applied
  /// to the I/O bus (when attach_io() gave one).
  void config_write(unsigned reg, unsigned size, uint32_t value);

  /// Gives the function the port-I/O bus its I/O BARs decode on, and registers them there
  /// (hidden until the command register enables I/O space).
  void attach_io(IoBus& bus);
  /// Sets an I/O BAR's base and turns I/O space decoding on, as firmware leaves a device it
  /// assigned.
  void assign_io_bar(unsigned index, uint16_t base);
  /// Gives the function the MMIO bus its memory BARs decode on, and registers them there (hidden
  /// until the command register enables memory space and the BAR has a base).
  void attach_mmio(MmioBus& bus);
  /// Sets a memory BAR's base (aligned down to its size) and turns memory space decoding on, as
  /// firmware leaves a device it assigned.
  void assign_memory_bar(unsigned index, uint32_t base);

  static constexpr unsigned kCommand = 0x04, kStatus = 0x06, kBar0 = 0x10,
                            kCapabilitiesPointer = 0x34, kInterruptLine = 0x3c;
  static constexpr uint16_t kStatusCapabilities = 1u << 4;  ///< §6.2.3: a capabilities list
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
  /// BAR `index` (0-5) is a 32-bit, non-prefetchable memory BAR (PCI 3.0 §6.2.5.1) of `size`
  /// bytes (a power of two, 16 to 1 GiB) that decodes to `device` (offsets from the BAR's base).
  void add_memory_bar(unsigned index, uint32_t size, MmioDevice* device);
  /// Appends a capability (PCI 3.0 §6.7) with ID `id` and `body` (the bytes after the ID and
  /// next pointer, `length` of them) to the list, 4-byte aligned from 0x40; returns its offset.
  /// Throws vmbt::Error (internal) when configuration space is full.
  unsigned add_capability(uint8_t id, const uint8_t* body, unsigned length);
  /// Configuration bytes [begin, end) are the function's own registers: an access that starts
  /// there goes to config_window_read/write instead of the stored bytes (virtio's PCI_CFG
  /// data window, virtio 1.2 §4.1.4.9).
  void set_config_window(unsigned begin, unsigned end);
  /// A read of `size` bytes at `reg` in the config window (default: the stored bytes).
  virtual uint32_t config_window_read(unsigned reg, unsigned size);
  /// A write of `size` bytes at `reg` in the config window (default: ignored).
  virtual void config_window_write(unsigned reg, unsigned size, uint32_t value);
  /// Called after a configuration write outside the config window stored its writable bits
  /// at [reg, reg + size) (a chipset register with side effects: the i440FX's PAM). Default:
  /// nothing.
  virtual void config_written(unsigned /*reg*/, unsigned /*size*/) {}

  std::array<uint8_t, 256> config_{};
  std::array<uint8_t, 256> wmask_{};  ///< writable bits of each byte

 private:
  /// Shows or hides the BARs on the buses as the command register and BARs say now.
  void update_io_windows();
  /// The stored bytes, without the config window.
  uint32_t stored(unsigned reg, unsigned size) const;

  struct IoBar {
    uint32_t size = 0;  ///< 0: no I/O BAR here
    IoDevice* device = nullptr;
  };
  struct MemoryBar {
    uint32_t size = 0;  ///< 0: no memory BAR here
    MmioDevice* device = nullptr;
  };
  std::array<IoBar, 6> io_bars_{};
  std::array<MemoryBar, 6> memory_bars_{};
  IoBus* io_bus_ = nullptr;
  MmioBus* mmio_bus_ = nullptr;
  unsigned next_capability_ = 0x40;  ///< where the next capability goes
  unsigned last_capability_ = 0;     ///< the last one's offset (0: none yet)
  unsigned window_begin_ = 0, window_end_ = 0;
};

}  // namespace vmbt
