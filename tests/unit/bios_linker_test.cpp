// The ACPI tables served as QEMU serves them to firmware (etc/acpi/tables, etc/acpi/rsdp,
// etc/table-loader), checked by applying the table-loader script with a small applier written
// from the command format (QEMU hw/acpi/bios-linker-loader.c; SeaBIOS src/fw/romfile_loader.c),
// then finding the tables as an OS does (ACPI 6.5 §5.2.5.1 RSDP scan, §5.2.6 checksums).
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>

#include "vmm/boot/acpi_tables.h"
#include "vmm/boot/bios_linker.h"
#include "vmm/machine/guest_memory.h"

namespace vmbt {
namespace {

uint32_t le32(const uint8_t* p) {
  return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24;
}

std::string name_at(const uint8_t* p) {
  return std::string(reinterpret_cast<const char*>(p),
                     strnlen(reinterpret_cast<const char*>(p), 56));
}

/// Applies a table-loader script to `files`: ALLOCATE copies a file to the next free address of
/// its zone (HIGH from `high`, FSEG from `fseg`) aligned as asked, ADD_POINTER adds the source's
/// address to the little-endian field, ADD_CHECKSUM subtracts the range's byte sum from the
/// result byte. Returns each file's address; fails the test on a malformed command.
std::map<std::string, uint32_t> apply(const std::vector<uint8_t>& script,
                                      const std::map<std::string, std::vector<uint8_t>>& files,
                                      GuestMemory& memory, uint32_t high, uint32_t fseg) {
  std::map<std::string, uint32_t> placed;
  EXPECT_EQ(script.size() % 128, 0u);
  for (size_t at = 0; at + 128 <= script.size(); at += 128) {
    const uint8_t* e = script.data() + at;
    const uint32_t command = le32(e);
    if (command == 1) {
      const std::string file = name_at(e + 4);
      const uint32_t align = le32(e + 60);
      const uint8_t zone = e[64];
      EXPECT_TRUE(files.count(file)) << file;
      EXPECT_TRUE(align && !(align & (align - 1)));
      EXPECT_TRUE(zone == 1 || zone == 2);
      uint32_t& next = zone == 2 ? fseg : high;
      next = (next + align - 1) & ~(align - 1);
      const auto& bytes = files.at(file);
      EXPECT_TRUE(memory.write(next, bytes.data(), bytes.size()));
      placed[file] = next;
      next += static_cast<uint32_t>(bytes.size());
    } else if (command == 2) {
      const std::string dest = name_at(e + 4), src = name_at(e + 60);
      const uint32_t offset = le32(e + 116);
      const uint8_t size = e[120];
      EXPECT_TRUE(placed.count(dest) && placed.count(src)) << dest << " " << src;
      EXPECT_EQ(size, 4);
      EXPECT_LE(offset + size, files.at(dest).size());
      const uint32_t field = placed[dest] + offset;
      memory.write32(field, memory.read32(field) + placed[src]);
    } else if (command == 3) {
      const std::string file = name_at(e + 4);
      const uint32_t result = le32(e + 60), start = le32(e + 64), length = le32(e + 68);
      EXPECT_TRUE(placed.count(file));
      EXPECT_LE(start + length, files.at(file).size());
      EXPECT_LT(result, files.at(file).size());
      uint8_t sum = 0;
      for (uint32_t i = 0; i < length; ++i) sum += *memory.host_ptr(placed[file] + start + i, 1);
      *memory.host_ptr(placed[file] + result, 1) -= sum;
    } else {
      ADD_FAILURE() << "unknown table-loader command " << command;
    }
  }
  return placed;
}

class TableLoaderTest : public ::testing::Test {
 protected:
  TableLoaderTest() : memory(16u << 20) {
    AcpiPlatform p;
    p.hpet_base = 0xFED00000;
    p.hpet_block_id = 0x8086A201;
    p.pci_routes = {{3, 11}, {4, 11}};
    fw = acpi_firmware_files(p);
    placed = apply(fw.table_loader, {{"etc/acpi/tables", fw.tables}, {"etc/acpi/rsdp", fw.rsdp}},
                   memory, 0xF00000 + 8, 0xF5A00 + 4);
  }
  const uint8_t* at(uint32_t gpa) { return memory.host_ptr(gpa, 1); }
  bool sums_to_zero(uint32_t gpa, uint32_t length) {
    uint8_t sum = 0;
    for (uint32_t i = 0; i < length; ++i) sum = static_cast<uint8_t>(sum + at(gpa)[i]);
    return sum == 0;
  }
  /// The table at `gpa`, checked: its signature and that its Length bytes sum to 0.
  void expect_table(uint32_t gpa, const char* signature) {
    ASSERT_EQ(std::string(reinterpret_cast<const char*>(at(gpa)), 4), signature);
    EXPECT_TRUE(sums_to_zero(gpa, memory.read32(gpa + 4))) << signature;
  }

  GuestMemory memory;
  AcpiFirmwareFiles fw;
  std::map<std::string, uint32_t> placed;
};

TEST_F(TableLoaderTest, AllocatesTheRsdpInTheFSegmentAndTheTablesHigh) {
  ASSERT_EQ(placed.size(), 2u);
  const uint32_t rsdp = placed["etc/acpi/rsdp"], tables = placed["etc/acpi/tables"];
  EXPECT_EQ(rsdp % 16, 0u);  // §5.2.5.1: on a 16-byte boundary
  EXPECT_GE(rsdp, 0xE0000u);
  EXPECT_LT(rsdp, 0x100000u);
  EXPECT_EQ(tables % 64, 0u);  // the FACS first, 64-byte aligned (§5.2.10)
  EXPECT_GE(tables, 0xF00000u);
}

TEST_F(TableLoaderTest, ServedFilesHaveZeroChecksumsAndOffsetPointers) {
  // As QEMU serves them: the loader computes checksums, pointers are offsets in the blob.
  EXPECT_EQ(fw.rsdp.size(), 20u);
  EXPECT_EQ(fw.rsdp[8], 0);
  EXPECT_EQ(std::string(fw.rsdp.begin(), fw.rsdp.begin() + 8), "RSD PTR ");
  const uint32_t rsdt = le32(&fw.rsdp[16]);
  ASSERT_LT(rsdt + 36, fw.tables.size());
  EXPECT_EQ(std::string(fw.tables.begin() + rsdt, fw.tables.begin() + rsdt + 4), "RSDT");
  EXPECT_EQ(fw.tables[rsdt + 9], 0);
  EXPECT_EQ(std::string(fw.tables.begin(), fw.tables.begin() + 4), "FACS");
}

TEST_F(TableLoaderTest, PatchedPointersLeadFromTheRsdpToEveryTable) {
  const uint32_t rsdp = placed["etc/acpi/rsdp"], tables = placed["etc/acpi/tables"];
  ASSERT_EQ(std::memcmp(at(rsdp), "RSD PTR ", 8), 0);
  EXPECT_TRUE(sums_to_zero(rsdp, 20));
  const uint32_t rsdt = memory.read32(rsdp + 16);
  EXPECT_EQ(rsdt, tables + le32(&fw.rsdp[16]));
  expect_table(rsdt, "RSDT");
  const uint32_t entries = (memory.read32(rsdt + 4) - 36) / 4;
  ASSERT_EQ(entries, 3u);  // FADT, MADT, HPET
  const uint32_t fadt = memory.read32(rsdt + 36);
  expect_table(fadt, "FACP");
  expect_table(memory.read32(rsdt + 40), "APIC");
  expect_table(memory.read32(rsdt + 44), "HPET");
  const uint32_t facs = memory.read32(fadt + 36), dsdt = memory.read32(fadt + 40);
  EXPECT_EQ(std::memcmp(at(facs), "FACS", 4), 0);
  EXPECT_EQ(facs % 64, 0u);
  expect_table(dsdt, "DSDT");
  for (uint32_t p : {rsdt, fadt, facs, dsdt}) {
    EXPECT_GE(p, tables);
    EXPECT_LT(p, tables + fw.tables.size());
  }
}

TEST_F(TableLoaderTest, PointersComeBeforeTheChecksumsOverThem) {
  // A checksum computed before a pointer into its range is patched would be wrong: every
  // ADD_POINTER precedes every ADD_CHECKSUM of its destination file.
  std::map<std::string, size_t> last_pointer, first_checksum;
  for (size_t at = 0; at < fw.table_loader.size(); at += 128) {
    const uint8_t* e = fw.table_loader.data() + at;
    if (le32(e) == 2) last_pointer[name_at(e + 4)] = at;
    if (le32(e) == 3 && !first_checksum.count(name_at(e + 4))) first_checksum[name_at(e + 4)] = at;
  }
  for (const auto& [file, at] : last_pointer) EXPECT_LT(at, first_checksum.at(file)) << file;
}

TEST(BiosLinkerLoaderTest, EntryLayout) {
  BiosLinkerLoader l;
  l.allocate("etc/a", 64, BiosLinkerLoader::Zone::kFseg);
  l.add_pointer("etc/a", "etc/b", 0x1234, 4);
  l.add_checksum("etc/a", 9, 0x10, 0x20);
  const auto& b = l.bytes();
  ASSERT_EQ(b.size(), 3u * 128);
  EXPECT_EQ(le32(&b[0]), 1u);
  EXPECT_EQ(name_at(&b[4]), "etc/a");
  EXPECT_EQ(le32(&b[60]), 64u);
  EXPECT_EQ(b[64], 2);  // FSEG
  EXPECT_EQ(le32(&b[128]), 2u);
  EXPECT_EQ(name_at(&b[128 + 4]), "etc/a");
  EXPECT_EQ(name_at(&b[128 + 60]), "etc/b");
  EXPECT_EQ(le32(&b[128 + 116]), 0x1234u);
  EXPECT_EQ(b[128 + 120], 4);
  EXPECT_EQ(le32(&b[256]), 3u);
  EXPECT_EQ(le32(&b[256 + 60]), 9u);
  EXPECT_EQ(le32(&b[256 + 64]), 0x10u);
  EXPECT_EQ(le32(&b[256 + 68]), 0x20u);
  EXPECT_THROW(l.allocate("etc/x", 3, BiosLinkerLoader::Zone::kHigh), std::exception);
  EXPECT_THROW(l.add_pointer("etc/a", "etc/b", 0, 3), std::exception);
  EXPECT_THROW(l.allocate(std::string(56, 'x'), 4, BiosLinkerLoader::Zone::kHigh), std::exception);
}

}  // namespace
}  // namespace vmbt
