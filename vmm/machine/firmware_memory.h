// The firmware's memory: the BIOS ROM below 4 GiB and the BIOS area (0xC0000-0xFFFFF) that the
// i440FX's PAM registers switch between the ROM and RAM.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "vmm/engine.h"
#include "vmm/machine/io_bus.h"

namespace vmbt {

class GuestMemory;
class I440fxHostBridge;

/// The BIOS ROM and the shadow RAM of a PC with an i440FX, as QEMU's `pc` machine lays them out
/// (hw/i386/x86.c x86_bios_rom_init, hw/pci-host/pam.c):
///
/// - The ROM image (64 KiB to 16 MiB, a multiple of 64 KiB: SeaBIOS's bios.bin is 128 KiB,
///   bios-256k.bin 256 KiB) is mapped read-only at the top of the 4 GiB space,
///   [4 GiB - size, 4 GiB), where the reset vector (0xFFFFFFF0) lies; writes are ignored.
/// - Its last 128 KiB (all of it when smaller) alias 0x100000 - 128 KiB .. 0xFFFFF ("isa-bios":
///   0xE0000-0xFFFFF for SeaBIOS), where real-mode code at F000:xxxx runs.
/// - In the BIOS area each PAM segment (vmm/devices/i440fx.h: 0xF0000-0xFFFFF, and 16 KiB
///   segments from 0xC0000) reads RAM when its RE bit is set and the ROM alias otherwise (all
///   ones where there is no ROM: 0xC0000-0xDFFFF, with no option ROMs here), and writes RAM when
///   its WE bit is set (dropped otherwise), Intel 82441FX datasheet §3.2.18. So the firmware
///   copies itself into RAM with WE set, runs from RAM with RE set, and write-protects it by
///   clearing WE (SeaBIOS src/fw/shadow.c).
///
/// The engines map what can be mapped (windows()); what cannot (a write to a read-only window,
/// a read with no memory behind it) reaches mmio_read/mmio_write through the MMIO bus windows
/// this class registers (attach()).
class FirmwareMemory {
 public:
  static constexpr uint32_t kBiosAreaBase = 0xc0000;
  static constexpr uint32_t kBiosAreaSize = 0x40000;
  static constexpr uint32_t kIsaBiosSize = 0x20000;  ///< the ROM alias below 1 MiB

  /// The ROM image `rom` (its size checked: a multiple of 64 KiB, 64 KiB to 16 MiB, else
  /// vmbt::Error) over `ram`, with `pam` deciding the BIOS area.
  FirmwareMemory(GuestMemory& ram, const std::vector<uint8_t>& rom, const I440fxHostBridge& pam);
  ~FirmwareMemory();
  FirmwareMemory(const FirmwareMemory&) = delete;
  FirmwareMemory& operator=(const FirmwareMemory&) = delete;

  /// Reads a ROM image from `path`; throws vmbt::Error saying what to do when it cannot.
  static std::vector<uint8_t> load_rom(const std::string& path);

  /// Registers the BIOS area and the ROM on `bus` for the accesses engines cannot map.
  void attach(MmioBus& bus);
  /// The windows the engines map now (MemoryWindow): the ROM, read-only, and each PAM segment
  /// that does not simply map RAM read/write (sorted by address, adjacent ones merged).
  std::vector<MemoryWindow> windows() const;
  uint32_t rom_base() const { return rom_base_; }
  uint32_t rom_size() const { return rom_size_; }

  /// A byte of the physical address space at `gpa` in the BIOS area or the ROM as the CPU reads
  /// it now (for tests and the MMIO path); all ones elsewhere.
  uint8_t read_byte(uint32_t gpa) const;
  /// A CPU write of a byte at `gpa` in the BIOS area or the ROM: RAM where PAM's WE allows it,
  /// dropped otherwise.
  void write_byte(uint32_t gpa, uint8_t value);

 private:
  /// The PAM segment's RE/WE bits for `gpa` in the BIOS area.
  uint8_t attributes(uint32_t gpa) const;
  /// The ROM byte aliased at BIOS-area address `gpa`, or nullptr where there is none.
  const uint8_t* rom_alias(uint32_t gpa) const;

  /// One MMIO window (the BIOS area or the ROM) onto read_byte/write_byte.
  class Window final : public MmioDevice {
   public:
    Window(FirmwareMemory& owner, uint32_t base) : owner_(owner), base_(base) {}
    uint64_t mmio_read(uint64_t offset, unsigned size) override;
    void mmio_write(uint64_t offset, unsigned size, uint64_t value) override;

   private:
    FirmwareMemory& owner_;
    uint32_t base_;
  };

  GuestMemory& ram_;
  const I440fxHostBridge& pam_;
  int rom_fd_ = -1;         ///< a memfd holding the image
  uint8_t* rom_ = nullptr;  ///< rom_fd_ mapped read-only
  uint32_t rom_size_ = 0;
  uint32_t rom_base_ = 0;
  Window area_window_;
  Window rom_window_;
};

}  // namespace vmbt
