// The Intel 82441FX PCI and Memory Controller (PMC) of the i440FX chipset: the host bridge at
// 00:00.0 and its Programmable Attribute Map (PAM) registers.
#pragma once

#include <cstdint>
#include <functional>

#include "vmm/devices/pci_function.h"

namespace vmbt {

/// The i440FX host bridge function (Intel 82441FX PMC datasheet, §3.2 "PCI configuration
/// registers"): vendor 0x8086, device 0x1237, revision 0x02, class 0x060000 (host bridge),
/// header type 0x00, command 0x0006, status 0x0280, no BARs. Subsystem 0x1af4:0x1100 as on
/// QEMU's `pc` machine: SeaBIOS identifies QEMU by it (src/fw/paravirt.c, qemu_detect) and only
/// then reads fw_cfg.
///
/// PAM0-PAM6 (0x59-0x5F, §3.2.18, reset value 0x00) set the attributes of the BIOS area
/// 0xC0000-0xFFFFF in 13 segments: PAM0 bits 6:4 for 0xF0000-0xFFFFF (64 KiB; bits 3:0
/// reserved), PAM1-PAM6 a 16 KiB segment per nibble from 0xC0000 (low nibble first). In each
/// nibble bit 0 is RE (reads go to DRAM, else to PCI: the BIOS ROM), bit 1 WE (writes go to
/// DRAM, else to PCI, where the ROM ignores them), bit 2 CE (cache enable, stored only); bit 3
/// is reserved and reads 0. What a segment maps is the machine's business
/// (vmm/machine/firmware_memory.h): set_on_pam_change tells it when a PAM byte changed.
/// The other device-specific bytes (0x40-0xFF) are stored without effect.
class I440fxHostBridge final : public PciFunction {
 public:
  static constexpr uint16_t kVendorIntel = 0x8086;
  static constexpr uint16_t kDevice = 0x1237;
  static constexpr unsigned kPam0 = 0x59;
  /// PAM segments: 0 is 0xF0000-0xFFFFF, 1-12 the 16 KiB segments from 0xC0000 to 0xEFFFF.
  static constexpr unsigned kPamSegments = 13;
  static constexpr uint8_t kReadEnable = 1, kWriteEnable = 2;

  I440fxHostBridge();

  /// The RE/WE bits (kReadEnable | kWriteEnable) of PAM segment `segment` (0-12).
  uint8_t pam_attributes(unsigned segment) const;
  /// Guest-physical base and size (bytes) of PAM segment `segment` (0-12).
  static uint32_t pam_segment_base(unsigned segment);
  static uint32_t pam_segment_size(unsigned segment);
  /// Called after a configuration write changed a PAM register.
  void set_on_pam_change(std::function<void()> listener) { on_pam_change_ = std::move(listener); }
  /// Sets PAM0-PAM6 to `values` as firmware would have left them (no listener call): for a boot
  /// without firmware.
  void preset_pam(const uint8_t (&values)[7]);

 private:
  void config_written(unsigned reg, unsigned size) override;
  std::function<void()> on_pam_change_;
};

}  // namespace vmbt
