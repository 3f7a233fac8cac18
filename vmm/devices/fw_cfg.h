// QEMU's firmware configuration device (fw_cfg), legacy port-I/O interface.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vmm/machine/io_bus.h"

namespace vmbt {

/// fw_cfg as documented in QEMU docs/specs/fw_cfg.rst, "traditional" (non-DMA) x86 interface:
/// selector register at 0x510 (16-bit write), data register at 0x511 (8-bit reads; QEMU also
/// decodes a byte read at 0x510 as a data read). Selecting an item resets the data offset to 0;
/// each data read returns the next byte of the item, 0 past its end. Unknown selectors read 0.
/// Bit 14 of the selector (write channel) is ignored for reads; bit 15 (architecture-specific
/// items) selects a separate, empty space. Data writes are ignored (writable items are obsolete).
///
/// Items: 0x0000 signature "QEMU"; 0x0001 ID = 1 (u32 LE: traditional interface, no DMA);
/// 0x0003 RAM size (u64 LE, bytes); 0x0005 CPU count (u16 LE); 0x000f max CPU count (u16 LE,
/// = CPU count); 0x0019 file directory (u32 BE count, then 64-byte entries: u32 BE size, u16 BE
/// selector, u16 reserved, 56-byte NUL-terminated name), sorted by name as QEMU sorts it,
/// initially with no files. add_file() adds files at selectors from 0x0020 on (in the order
/// added); set_item() sets any other key (the machine's firmware keys: kNoGraphic, ...).
class FwCfg : public IoDevice {
 public:
  static constexpr uint16_t kSelectorPort = 0x510;
  static constexpr uint16_t kDataPort = 0x511;
  // Keys (QEMU docs/specs/fw_cfg.rst, "Selector Register"; include/standard-headers/linux/
  // qemu_fw_cfg.h for the numbers).
  static constexpr uint16_t kSignature = 0x0000, kId = 0x0001, kRamSize = 0x0003,
                            kNoGraphic = 0x0004, kNbCpus = 0x0005, kBootMenu = 0x000e,
                            kMaxCpus = 0x000f, kFileDir = 0x0019, kFileFirst = 0x0020;
  /// x86 key (bit 15, FW_CFG_ARCH_LOCAL): IRQ0 reaches I/O APIC pin 2 (u32 LE, 1 = yes).
  static constexpr uint16_t kIrq0Override = 0x8002;
  static constexpr size_t kMaxFiles = 0x1000;  ///< selectors 0x0020-0x101f

  FwCfg(uint64_t ram_bytes, uint16_t cpus);

  /// Adds ports 0x510-0x511 to `bus`.
  void register_ports(IoBus& bus);

  uint32_t io_read(uint16_t port, unsigned size) override;
  void io_write(uint16_t port, unsigned size, uint32_t value) override;

  /// Sets item `key` (selector without bit 14) to `data`.
  void set_item(uint16_t key, std::vector<uint8_t> data);
  /// Adds a named file (name 1 to 55 bytes, not added before: vmbt::Error otherwise) and lists
  /// it in the directory; returns its selector.
  uint16_t add_file(const std::string& name, std::vector<uint8_t> data);

 private:
  void rebuild_directory();

  std::map<uint16_t, std::vector<uint8_t>> items_;
  std::vector<std::pair<std::string, uint16_t>> files_;
  uint16_t selector_ = 0;
  uint32_t offset_ = 0;
};

}  // namespace vmbt
