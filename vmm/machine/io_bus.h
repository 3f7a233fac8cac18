// Port-I/O and MMIO buses: devices register ranges; engines' exits are dispatched here.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace vmbt {

/// A device reachable through IN/OUT. `port` is the absolute port; `size` is 1, 2 or 4 bytes.
class IoDevice {
 public:
  virtual ~IoDevice() = default;
  virtual uint32_t io_read(uint16_t port, unsigned size) = 0;
  virtual void io_write(uint16_t port, unsigned size, uint32_t value) = 0;
};

/// A device of byte registers: a 2- or 4-byte IN/OUT reaches consecutive ports one byte at a
/// time, lowest port first, as an 8-bit ISA device sees a wide access split by the bus.
class ByteIoDevice : public IoDevice {
 public:
  uint32_t io_read(uint16_t port, unsigned size) final;
  void io_write(uint16_t port, unsigned size, uint32_t value) final;

 protected:
  /// The byte register at `port`; a port beyond the device's own (the high bytes of a wide
  /// access at its last port) reads 0xff and ignores writes.
  virtual uint8_t read_byte(uint16_t port) = 0;
  virtual void write_byte(uint16_t port, uint8_t value) = 0;
};

/// A device reachable through loads and stores to a guest-physical window. `offset` is relative
/// to the window's base; `size` is 1, 2, 4 or 8 bytes.
class MmioDevice {
 public:
  virtual ~MmioDevice() = default;
  virtual uint64_t mmio_read(uint64_t offset, unsigned size) = 0;
  virtual void mmio_write(uint64_t offset, unsigned size, uint64_t value) = 0;
};

/// The 64 Ki-port I/O space. Unclaimed ports read as all ones and ignore writes (as on a PC with
/// nothing decoding the address); they are counted. With tracing on, every access is logged.
class IoBus {
 public:
  /// Claims ports [base, base + count) for `device`; throws vmbt::Error on overlap.
  void add(uint16_t base, unsigned count, IoDevice* device, std::string name);
  /// Adds a range that moves (a PCI BAR): hidden until relocate() shows it. It may overlap other
  /// ranges: fixed ones take precedence (a guest cannot move a BAR over a fixed device), then
  /// movable ones in the order they were added.
  void add_movable(unsigned count, IoDevice* device, std::string name);
  /// Moves `device`'s movable range to `base` and shows it, or hides it (`visible` false). A
  /// range that would pass port 0xFFFF stays hidden.
  void relocate(const IoDevice* device, uint16_t base, bool visible);
  uint32_t read(uint16_t port, unsigned size);
  void write(uint16_t port, unsigned size, uint32_t value);

  void set_trace(FILE* out) { trace_ = out; }
  /// Accesses to `port` (reads and writes; a string instruction's each element), and accesses
  /// to unclaimed ports.
  uint64_t accesses(uint16_t port) const { return accesses_[port]; }
  uint64_t unclaimed_accesses() const { return unclaimed_; }

 private:
  struct Range {
    uint16_t base;
    unsigned count;
    IoDevice* device;
    std::string name;
    bool visible = true;
    bool movable = false;
  };
  const Range* find(uint16_t port) const {
    const uint16_t i = owner_[port];
    return i ? &ranges_[i - 1] : nullptr;
  }
  /// Recomputes owner_ after a range is added or moved.
  void map_ports();
  std::vector<Range> ranges_;
  /// Per port: 1 + the index in ranges_ of the range that answers it, 0 for none. A table, not
  /// a search: IN/OUT from translated code reach the bus directly (bench micro io_device).
  std::vector<uint16_t> owner_ = std::vector<uint16_t>(0x10000);
  std::vector<uint64_t> accesses_ = std::vector<uint64_t>(0x10000);
  uint64_t unclaimed_ = 0;
  FILE* trace_ = nullptr;
};

/// Guest-physical MMIO windows. Accesses that hit no window read all ones and are counted.
class MmioBus {
 public:
  void add(uint64_t base, uint64_t length, MmioDevice* device, std::string name);
  /// Adds a window that moves (a PCI memory BAR): hidden until relocate() shows it. It may
  /// overlap other windows: those added before it take precedence.
  void add_movable(uint64_t length, MmioDevice* device, std::string name);
  /// Moves `device`'s window (added before) to `base`, or hides it (`visible` false). A moved
  /// window may overlap another; windows added earlier take precedence (the local APIC's page
  /// hides what lies under it, as the processor's own APIC intercepts accesses to its page).
  void relocate(const MmioDevice* device, uint64_t base, bool visible);
  /// True when some device claims `gpa`.
  bool claims(uint64_t gpa) const { return find(gpa) != nullptr; }
  uint64_t read(uint64_t gpa, unsigned size);
  void write(uint64_t gpa, unsigned size, uint64_t value);
  uint64_t unclaimed_accesses() const { return unclaimed_; }
  void set_trace(FILE* out) { trace_ = out; }

 private:
  struct Range {
    uint64_t base, length;
    MmioDevice* device;
    std::string name;
    bool visible = true;
  };
  const Range* find(uint64_t gpa) const;
  std::vector<Range> ranges_;
  uint64_t unclaimed_ = 0;
  FILE* trace_ = nullptr;
};

}  // namespace vmbt
