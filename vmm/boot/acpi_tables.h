// The ACPI tables a PC's firmware leaves for the OS: RSDP, RSDT, FADT, FACS, MADT, DSDT.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vmbt {

class GuestMemory;

/// A PCI function's INTA# on bus 0 and the interrupt it is wired to: ISA IRQ `irq`, which is
/// also its GSI (I/O APIC pin) on this machine.
struct PciInterruptRoute {
  uint8_t device = 0;  ///< PCI device number on bus 0
  uint8_t irq = 0;
};

/// What the tables describe (the machine's devices and where they are).
struct AcpiPlatform {
  uint32_t local_apic_base = 0xFEE00000;  ///< MADT local APIC address
  uint32_t ioapic_base = 0xFEC00000;
  uint8_t ioapic_id = 0;
  uint16_t pm_base = 0x600;    ///< PM1a_EVT_BLK; PM1a_CNT_BLK at +4, PM_TMR_BLK at +8
  uint8_t sci_irq = 9;         ///< ISA IRQ of the SCI (level, active high, as on PIIX4)
  uint32_t hpet_base = 0;      ///< HPET event timer block, or 0 for no HPET table
  uint32_t hpet_block_id = 0;  ///< the HPET's capabilities register, low 32 bits
  /// The PCI root bridge's 32-bit memory window for BARs: [pci_memory_base, 0xFEBFFFFF] (from the
  /// end of low RAM to below the I/O APIC, as QEMU's pc machine).
  uint32_t pci_memory_base = 0xC0000000;
  std::vector<PciInterruptRoute> pci_routes;  ///< the _PRT's entries
};

/// Where the tables went (guest-physical addresses), for tests and `--stats`.
struct AcpiLayout {
  uint32_t rsdp = 0, rsdt = 0, fadt = 0, facs = 0, madt = 0, dsdt = 0, hpet = 0;
};

/// The RSDP and the tables it leads to, written into the BIOS area at 0xE0000 (ACPI 6.5 §5.2.5.1:
/// an OS on a legacy PC finds the RSDP by scanning 0xE0000-0xFFFFF on 16-byte boundaries):
///
/// - RSDP (ACPI 1.0 form, revision 0, §5.2.5.3) -> RSDT (§5.2.7) -> FADT, MADT, HPET.
/// - FADT (revision 1, 116 bytes, §5.2.9): FACS and DSDT, SCI on `sci_irq`, no SMI_CMD (always in
///   ACPI mode), PM1a event/control blocks and the 24-bit PM timer at `pm_base`, C2/C3 absent,
///   WBINVD and C1 supported, power and sleep buttons not fixed hardware.
/// - FACS (64 bytes, §5.2.10), 64-byte aligned: no global lock, no waking vector.
/// - MADT (revision 1, §5.2.12): the local APIC address, PCAT_COMPAT (the 8259s are there), one
///   processor (UID 0, APIC ID 0, enabled), the I/O APIC (GSI base 0), interrupt source
///   overrides ISA IRQ0 -> GSI 2 and the SCI's IRQ -> itself level-triggered active-high, and
///   local APIC NMI on LINT1 for all processors.
/// - HPET description table (IA-PC HPET spec 1.0a §3.2.4) when `hpet_base` is set.
/// - DSDT (§5.2.11.1), AML made by vmm/boot/aml.h: \_S5 = Package {0, 0, 0, 0} (SLP_TYP 0 is
///   soft-off on this PM block, as on QEMU's PIIX4) and the PCI root bridge \_SB.PCI0 (PNP0A03,
///   §6.1.5) with _CRS (§6.2.2: bus numbers 0-255, the configuration ports 0xCF8-0xCFF, the I/O
///   ports around them, the VGA hole and the 32-bit memory window, as QEMU's pc machine) and
///   _PRT (§6.2.13: each function's INTA# to its GSI directly, Source 0: level, active low).
/// Every table's checksum makes its bytes sum to 0 (§5.2.6); the RSDP's covers its 20 bytes.
/// (The tables of build_acpi_image at 0xE0040, the RSDP at 0xE0000: for a boot without
/// firmware, where the machine leaves what firmware would.)
AcpiLayout write_acpi_tables(GuestMemory& memory, const AcpiPlatform& platform);

/// The tables above laid out for guest-physical address `base` (FACS first, 64-byte aligned;
/// the RSDP apart), with what a loader must know to move them.
struct AcpiImage {
  std::vector<uint8_t> tables;  ///< FACS, RSDT, FADT, MADT, [HPET,] DSDT
  std::vector<uint8_t> rsdp;    ///< the 20-byte RSDP, pointing at the RSDT in `tables`
  AcpiLayout layout;            ///< where each table is (rsdp: 0, it has no place yet)
  /// Offsets in `tables` of the 4-byte fields that hold the address of another table in
  /// `tables` (base + its offset): FADT's FIRMWARE_CTRL and DSDT, RSDT's entries.
  std::vector<uint32_t> table_pointers;
  /// A table's checksum: the byte at `field` makes [start, start + length) sum to 0.
  struct Checksum {
    uint32_t start, length, field;
  };
  std::vector<Checksum> checksums;  ///< every table in `tables` but the FACS
};
AcpiImage build_acpi_image(const AcpiPlatform& platform, uint32_t base);

/// fw_cfg file names of QEMU's ACPI tables (hw/i386/acpi-build.c), which SeaBIOS places with
/// the table loader (src/fw/romfile_loader.c).
inline constexpr char kAcpiTablesFile[] = "etc/acpi/tables";
inline constexpr char kAcpiRsdpFile[] = "etc/acpi/rsdp";
inline constexpr char kTableLoaderFile[] = "etc/table-loader";

/// The tables as firmware takes them over fw_cfg, as QEMU serves them: `tables` and `rsdp` laid
/// out from address 0 with their checksum bytes 0, and `table_loader`, the BIOS linker/loader
/// script (vmm/boot/bios_linker.h) that allocates the RSDP in the F segment (16-byte aligned, so
/// an OS's scan of 0xE0000-0xFFFFF finds it) and the tables in high memory (64-byte aligned),
/// adds the tables' address to every pointer (RSDP -> RSDT, RSDT -> FADT/MADT/HPET, FADT ->
/// FACS/DSDT), then computes every checksum.
struct AcpiFirmwareFiles {
  std::vector<uint8_t> tables, rsdp, table_loader;
};
AcpiFirmwareFiles acpi_firmware_files(const AcpiPlatform& platform);

/// An ACPI system description table under construction: the 36-byte header (§5.2.6, OEM "VMBT")
/// then the body appended with the add* calls. finish() fills length and checksum.
class AcpiTable {
 public:
  AcpiTable(const char signature[4], uint8_t revision);
  void add8(uint8_t v) { bytes_.push_back(v); }
  void add16(uint16_t v);
  void add32(uint32_t v);
  void add64(uint64_t v);
  void add_bytes(const std::vector<uint8_t>& v) { bytes_.insert(bytes_.end(), v.begin(), v.end()); }
  /// Pads with zeros to `size` bytes in all.
  void pad_to(size_t size) { bytes_.resize(size, 0); }
  size_t size() const { return bytes_.size(); }
  /// The bytes with length and checksum set.
  std::vector<uint8_t> finish();

 private:
  std::vector<uint8_t> bytes_;
};

/// The 8-bit checksum byte that makes `bytes` sum to 0 modulo 256 (ACPI 6.5 §5.2.6).
uint8_t acpi_checksum(const uint8_t* bytes, size_t length);

}  // namespace vmbt
