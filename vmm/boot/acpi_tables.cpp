#include "vmm/boot/acpi_tables.h"

#include "vmm/boot/aml.h"
#include "vmm/boot/bios_linker.h"

#include <algorithm>
#include <cstring>

#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"

namespace vmbt {

namespace {
// Where each table goes, as offsets from the start of the tables (64-byte aligned, the FACS
// first, as its alignment asks). Written for an OS without firmware, they start at 0xE0040, just
// after the RSDP at 0xE0000, and end below 0xE1000.
constexpr uint32_t kFacs = 0x000, kRsdt = 0x040, kFadt = 0x0c0, kMadt = 0x1c0, kHpet = 0x2c0,
                   kDsdt = 0x3c0, kEnd = 0xfc0;
constexpr uint32_t kBiosRsdp = 0xE0000, kBiosTables = 0xE0040;
constexpr char kOemId[7] = "VMBT  ";
constexpr char kOemTableId[9] = "VMBTPC  ";

/// Puts `bytes` at offset `at` of `image`, checking that the tables fit their space.
void put(std::vector<uint8_t>& image, uint32_t at, const std::vector<uint8_t>& bytes) {
  if (at + bytes.size() > kEnd) {
    throw Error("internal error: the ACPI tables do not fit the BIOS area");
  }
  if (image.size() < at + bytes.size()) image.resize(at + bytes.size(), 0);
  std::copy(bytes.begin(), bytes.end(), image.begin() + at);
}

/// The DSDT's AML (ACPI 6.5 §5.2.11.1): \_S5 and the PCI root bridge with its resources and
/// interrupt routing (see write_acpi_tables).
aml::Bytes dsdt_aml(const AcpiPlatform& p) {
  using namespace aml;
  // Name (_S5, Package (4) {0, 0, 0, 0}): SLP_TYPa/b 0 (§7.4.2), two reserved.
  const Bytes s5 = name("_S5", package({integer(0), integer(0), integer(0), integer(0)}));
  const Bytes crs = resource::word_bus_number(0, 0xff) + resource::io(0xcf8, 8) +
                    resource::word_io(0, 0xcf7) + resource::word_io(0xd00, 0xffff) +
                    resource::dword_memory(0xa0000, 0xbffff) +
                    resource::dword_memory(p.pci_memory_base, 0xfebfffff) + resource::end_tag();
  std::vector<Bytes> routes;
  for (const PciInterruptRoute& r : p.pci_routes) {
    // {Address (device << 16 | 0xFFFF: any function), Pin (0: INTA#), Source, Source Index}.
    routes.push_back(package(
        {integer((uint32_t{r.device} << 16) | 0xffff), integer(0), integer(0), integer(r.irq)}));
  }
  const Bytes pci0 = device("PCI0", name("_HID", eisa_id("PNP0A03")) + name("_UID", integer(0)) +
                                        name("_CRS", buffer(crs)) + name("_PRT", package(routes)));
  return s5 + scope("\\_SB", pci0);
}
}  // namespace

uint8_t acpi_checksum(const uint8_t* bytes, size_t length) {
  uint8_t sum = 0;
  for (size_t i = 0; i < length; ++i) sum = static_cast<uint8_t>(sum + bytes[i]);
  return static_cast<uint8_t>(0x100 - sum);
}

AcpiTable::AcpiTable(const char signature[4], uint8_t revision) {
  bytes_.assign(signature, signature + 4);
  add32(0);  // length, set by finish()
  add8(revision);
  add8(0);  // checksum, set by finish()
  bytes_.insert(bytes_.end(), kOemId, kOemId + 6);
  bytes_.insert(bytes_.end(), kOemTableId, kOemTableId + 8);
  add32(1);                                           // OEM revision
  bytes_.insert(bytes_.end(), {'V', 'M', 'B', 'T'});  // creator ID
  add32(1);                                           // creator revision
}

void AcpiTable::add16(uint16_t v) {
  aml::append_le(bytes_, v, 2);
}

void AcpiTable::add32(uint32_t v) {
  aml::append_le(bytes_, v, 4);
}

void AcpiTable::add64(uint64_t v) {
  aml::append_le(bytes_, v, 8);
}

std::vector<uint8_t> AcpiTable::finish() {
  const uint32_t length = static_cast<uint32_t>(bytes_.size());
  std::memcpy(&bytes_[4], &length, 4);
  bytes_[9] = 0;
  bytes_[9] = acpi_checksum(bytes_.data(), bytes_.size());
  return bytes_;
}

AcpiImage build_acpi_image(const AcpiPlatform& p, uint32_t base) {
  AcpiImage image;
  image.layout = {0,
                  base + kRsdt,
                  base + kFadt,
                  base + kFacs,
                  base + kMadt,
                  base + kDsdt,
                  p.hpet_base ? base + kHpet : 0};
  std::vector<uint8_t>& out = image.tables;
  // A table at `at` with its checksum byte at 9 (ACPI 6.5 §5.2.6).
  auto put_table = [&](uint32_t at, const std::vector<uint8_t>& bytes) {
    put(out, at, bytes);
    image.checksums.push_back({at, static_cast<uint32_t>(bytes.size()), at + 9});
  };

  // FACS: no header checksum; signature, length, hardware signature, waking vector, global lock,
  // flags, then reserved bytes to 64.
  std::vector<uint8_t> facs(64, 0);
  std::memcpy(facs.data(), "FACS", 4);
  facs[4] = 64;
  put(out, kFacs, facs);

  AcpiTable dsdt("DSDT", 1);
  dsdt.add_bytes(dsdt_aml(p));
  put_table(kDsdt, dsdt.finish());

  AcpiTable fadt("FACP", 1);
  fadt.add32(base + kFacs);  // 36 FIRMWARE_CTRL
  fadt.add32(base + kDsdt);  // 40 DSDT
  image.table_pointers.insert(image.table_pointers.end(), {kFadt + 36, kFadt + 40});
  fadt.add8(1);               // 44 INT_MODEL (ACPI 1.0): multiple APIC
  fadt.add8(0);               // 45 reserved (Preferred_PM_Profile from 2.0)
  fadt.add16(p.sci_irq);      // 46 SCI_INT
  fadt.add32(0);              // 48 SMI_CMD: none, always in ACPI mode
  fadt.add8(0);               // 52 ACPI_ENABLE
  fadt.add8(0);               // 53 ACPI_DISABLE
  fadt.add8(0);               // 54 S4BIOS_REQ
  fadt.add8(0);               // 55 PSTATE_CNT
  fadt.add32(p.pm_base);      // 56 PM1a_EVT_BLK
  fadt.add32(0);              // 60 PM1b_EVT_BLK
  fadt.add32(p.pm_base + 4);  // 64 PM1a_CNT_BLK
  fadt.add32(0);              // 68 PM1b_CNT_BLK
  fadt.add32(0);              // 72 PM2_CNT_BLK
  fadt.add32(p.pm_base + 8);  // 76 PM_TMR_BLK
  fadt.add32(0);              // 80 GPE0_BLK
  fadt.add32(0);              // 84 GPE1_BLK
  fadt.add8(4);               // 88 PM1_EVT_LEN
  fadt.add8(2);               // 89 PM1_CNT_LEN
  fadt.add8(0);               // 90 PM2_CNT_LEN
  fadt.add8(4);               // 91 PM_TMR_LEN
  fadt.add8(0);               // 92 GPE0_BLK_LEN
  fadt.add8(0);               // 93 GPE1_BLK_LEN
  fadt.add8(0);               // 94 GPE1_BASE
  fadt.add8(0);               // 95 CST_CNT
  fadt.add16(101);            // 96 P_LVL2_LAT: > 100, C2 not supported
  fadt.add16(1001);           // 98 P_LVL3_LAT: > 1000, C3 not supported
  fadt.add16(0);              // 100 FLUSH_SIZE
  fadt.add16(0);              // 102 FLUSH_STRIDE
  fadt.add8(0);               // 104 DUTY_OFFSET
  fadt.add8(0);               // 105 DUTY_WIDTH
  fadt.add8(0);               // 106 DAY_ALRM
  fadt.add8(0);               // 107 MON_ALRM
  fadt.add8(0);               // 108 CENTURY: no CMOS century register
  fadt.add16(0);              // 109 IAPC_BOOT_ARCH (reserved in ACPI 1.0)
  fadt.add8(0);               // 111 reserved
  // 112 Flags: WBINVD (0), PROC_C1 (2), PWR_BUTTON (4) and SLP_BUTTON (5) not fixed hardware.
  fadt.add32((1u << 0) | (1u << 2) | (1u << 4) | (1u << 5));
  put_table(kFadt, fadt.finish());

  AcpiTable madt("APIC", 1);
  madt.add32(p.local_apic_base);
  madt.add32(1);  // PCAT_COMPAT: dual 8259s present
  // Processor Local APIC (§5.2.12.2): UID 0, APIC ID 0, enabled.
  madt.add_bytes({0, 8, 0, 0});
  madt.add32(1);
  // I/O APIC (§5.2.12.3).
  madt.add_bytes({1, 12, p.ioapic_id, 0});
  madt.add32(p.ioapic_base);
  madt.add32(0);  // GSI base
  // Interrupt Source Overrides (§5.2.12.5): ISA bus; IRQ0 -> GSI 2 (conforming polarity and
  // trigger), the SCI -> its own GSI, level-triggered active-high (flags 0b1101).
  madt.add_bytes({2, 10, 0, 0});
  madt.add32(2);
  madt.add16(0);
  madt.add_bytes({2, 10, 0, p.sci_irq});
  madt.add32(p.sci_irq);
  madt.add16(0x000D);
  // Local APIC NMI (§5.2.12.7): all processors, conforming, LINT1.
  madt.add_bytes({4, 6, 0xFF, 0, 0, 1});
  put_table(kMadt, madt.finish());

  AcpiTable rsdt("RSDT", 1);
  rsdt.add32(base + kFadt);
  rsdt.add32(base + kMadt);
  image.table_pointers.insert(image.table_pointers.end(), {kRsdt + 36, kRsdt + 40});
  if (p.hpet_base) {
    // IA-PC HPET spec 1.0a Table 3: event timer block ID (the capabilities register's low 32
    // bits), base address as a GAS (system memory), HPET number, minimum tick, attributes.
    AcpiTable hpet("HPET", 1);
    hpet.add32(p.hpet_block_id);
    hpet.add_bytes({0, 64, 0, 0});  // GAS: system memory, 64-bit register width
    hpet.add64(p.hpet_base);
    hpet.add8(0);      // HPET number
    hpet.add16(0x80);  // minimum clock tick in periodic mode
    hpet.add8(0);      // page protection: none
    put_table(kHpet, hpet.finish());
    rsdt.add32(base + kHpet);
    image.table_pointers.push_back(kRsdt + 44);
  }
  put_table(kRsdt, rsdt.finish());

  // RSDP (ACPI 1.0, 20 bytes): signature, checksum, OEM ID, revision 0, RSDT address.
  std::vector<uint8_t>& rsdp = image.rsdp;
  rsdp.assign(20, 0);
  std::memcpy(rsdp.data(), "RSD PTR ", 8);
  std::memcpy(&rsdp[9], kOemId, 6);
  const uint32_t rsdt_address = base + kRsdt;
  std::memcpy(&rsdp[16], &rsdt_address, 4);
  rsdp[8] = acpi_checksum(rsdp.data(), 20);
  return image;
}

AcpiLayout write_acpi_tables(GuestMemory& memory, const AcpiPlatform& p) {
  AcpiImage image = build_acpi_image(p, kBiosTables);
  if (!memory.write(kBiosRsdp, image.rsdp.data(), image.rsdp.size()) ||
      !memory.write(kBiosTables, image.tables.data(), image.tables.size())) {
    throw Error("internal error: the ACPI tables do not fit the BIOS area (or RAM is too small)");
  }
  image.layout.rsdp = kBiosRsdp;
  return image.layout;
}

AcpiFirmwareFiles acpi_firmware_files(const AcpiPlatform& platform) {
  AcpiImage image = build_acpi_image(platform, 0);
  AcpiFirmwareFiles files;
  BiosLinkerLoader loader;
  loader.allocate(kAcpiRsdpFile, 16, BiosLinkerLoader::Zone::kFseg);
  loader.allocate(kAcpiTablesFile, 64, BiosLinkerLoader::Zone::kHigh);
  for (uint32_t at : image.table_pointers)
    loader.add_pointer(kAcpiTablesFile, kAcpiTablesFile, at, 4);
  for (const AcpiImage::Checksum& c : image.checksums) {
    image.tables[c.field] = 0;  // the loader computes it (QEMU leaves it 0 too)
    loader.add_checksum(kAcpiTablesFile, c.field, c.start, c.length);
  }
  loader.add_pointer(kAcpiRsdpFile, kAcpiTablesFile, 16, 4);
  image.rsdp[8] = 0;
  loader.add_checksum(kAcpiRsdpFile, 8, 0, 20);
  files.tables = std::move(image.tables);
  files.rsdp = std::move(image.rsdp);
  files.table_loader = loader.bytes();
  return files;
}

}  // namespace vmbt
