// The ACPI fixed hardware of a PC's power-management controller: PM1 event and control blocks
// and the PM timer.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "vmm/machine/io_bus.h"

namespace vmbt {

/// ACPI fixed hardware (ACPI 6.5 §4.8) at the PIIX4-style I/O base 0x600, as QEMU's `pc` machine
/// places it (the FADT in vmm/boot/acpi_tables.h points here):
///
/// - PM1a_EVT_BLK at 0x600 (4 bytes): PM1_STS (0x600, write 1 to clear) and PM1_EN (0x602).
///   TMR_STS (bit 0) is set each time bit 23 of the timer changes (§4.8.3.3); no SCI is raised
///   (TMR_EN is stored; nothing else in the machine asserts an ACPI event yet).
/// - PM1a_CNT_BLK at 0x604 (2 bytes): SCI_EN (bit 0) reads 1 (the platform is always in ACPI
///   mode: the FADT has no SMI_CMD); SLP_TYP (bits 12:10) stored; writing SLP_EN (bit 13, write-
///   only) with SLP_TYP 0 enters S5, soft-off: the run ends with status 0 (the \_S5 package of the
///   DSDT gives SLP_TYP 0, as on QEMU). Other sleep types are ignored (no S1-S4).
/// - PM_TMR_BLK at 0x608 (4 bytes): the 24-bit power-management timer at 3.579545 MHz
///   (§4.8.3.3), running from power-on, derived from host time.
class AcpiPm : public IoDevice {
 public:
  static constexpr uint16_t kBase = 0x600;  ///< PM1a_EVT_BLK; PM1a_CNT_BLK +4, PM_TMR_BLK +8
  static constexpr uint16_t kPorts = 12;
  static constexpr uint64_t kTimerHz = 3'579'545;

  explicit AcpiPm(std::function<uint64_t()> now_ns);

  void register_ports(IoBus& bus);
  uint32_t io_read(uint16_t port, unsigned size) override;
  void io_write(uint16_t port, unsigned size, uint32_t value) override;

  /// Set once the guest entered S5 (soft-off): the run's exit status (0).
  std::optional<int> power_off_requested() const { return power_off_; }
  static constexpr const char* kPowerOffReason = "guest powered off (ACPI S5)";

  /// The PM timer's 24-bit value now.
  uint32_t timer() const;

 private:
  /// Ticks of the PM timer since power-on.
  uint64_t ticks() const;
  /// Little-endian register file of the block: bytes 0-1 PM1_STS, 2-3 PM1_EN, 4-5 PM1_CNT.
  uint16_t read16(unsigned offset);
  void write16(unsigned offset, uint16_t value);

  std::function<uint64_t()> now_ns_;
  uint64_t start_ns_;
  uint16_t pm1_sts_ = 0, pm1_en_ = 0, pm1_cnt_ = 1;  // SCI_EN
  uint64_t tmr_sts_from_ = 0;                        ///< ticks at which TMR_STS was last cleared
  std::optional<int> power_off_;
};

}  // namespace vmbt
