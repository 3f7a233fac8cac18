// The ACPI tables against ACPI 6.5 ch. 5 (found by the RSDP scan, checksums, the FADT and MADT
// fields the OS reads) and the ACPI fixed hardware (PM timer rate, SCI_EN, S5 soft-off).
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "vmm/boot/acpi_tables.h"
#include "vmm/devices/acpi_pm.h"
#include "vmm/machine/guest_memory.h"

namespace vmbt {
namespace {

class AcpiTablesTest : public ::testing::Test {
 protected:
  AcpiTablesTest() : memory(16u << 20) {
    AcpiPlatform p;
    p.hpet_base = 0xFED00000;
    p.hpet_block_id = 0x8086A201;
    layout = write_acpi_tables(memory, p);
  }
  const uint8_t* at(uint32_t gpa) { return memory.host_ptr(gpa, 1); }
  uint32_t u32(uint32_t gpa) { return memory.read32(gpa); }
  bool sums_to_zero(uint32_t gpa, uint32_t length) {
    uint8_t sum = 0;
    for (uint32_t i = 0; i < length; ++i) sum = static_cast<uint8_t>(sum + at(gpa)[i]);
    return sum == 0;
  }
  /// The RSDP as an OS finds it: "RSD PTR " on a 16-byte boundary of 0xE0000-0xFFFFF whose first
  /// 20 bytes sum to 0 (§5.2.5.1, §5.2.5.3).
  uint32_t scan_rsdp() {
    for (uint32_t a = 0xE0000; a < 0x100000; a += 16) {
      if (std::memcmp(at(a), "RSD PTR ", 8) == 0 && sums_to_zero(a, 20)) return a;
    }
    return 0;
  }
  /// The RSDT entry with `signature`, checked: its length's bytes sum to 0.
  uint32_t find(const char* signature) {
    const uint32_t rsdt = u32(scan_rsdp() + 16);
    const uint32_t entries = (u32(rsdt + 4) - 36) / 4;
    for (uint32_t i = 0; i < entries; ++i) {
      const uint32_t t = u32(rsdt + 36 + 4 * i);
      if (std::memcmp(at(t), signature, 4) == 0) {
        EXPECT_TRUE(sums_to_zero(t, u32(t + 4))) << signature;
        return t;
      }
    }
    return 0;
  }
  GuestMemory memory;
  AcpiLayout layout;
};

TEST_F(AcpiTablesTest, RsdpScanFindsTheRsdtAndEveryTableChecksums) {
  const uint32_t rsdp = scan_rsdp();
  ASSERT_NE(rsdp, 0u);
  EXPECT_EQ(at(rsdp)[15], 0);  // revision 0: ACPI 1.0, RSDT only
  const uint32_t rsdt = u32(rsdp + 16);
  ASSERT_EQ(std::memcmp(at(rsdt), "RSDT", 4), 0);
  EXPECT_TRUE(sums_to_zero(rsdt, u32(rsdt + 4)));
  EXPECT_NE(find("FACP"), 0u);
  EXPECT_NE(find("APIC"), 0u);
  EXPECT_NE(find("HPET"), 0u);
}

TEST_F(AcpiTablesTest, FadtPointsAtThePmBlocksFacsAndDsdt) {
  const uint32_t fadt = find("FACP");
  EXPECT_EQ(u32(fadt + 4), 116u);  // ACPI 1.0 FADT length
  const uint32_t facs = u32(fadt + 36);
  EXPECT_EQ(facs % 64, 0u);  // §5.2.10: 64-byte aligned
  EXPECT_EQ(std::memcmp(at(facs), "FACS", 4), 0);
  const uint32_t dsdt = u32(fadt + 40);
  EXPECT_EQ(std::memcmp(at(dsdt), "DSDT", 4), 0);
  EXPECT_TRUE(sums_to_zero(dsdt, u32(dsdt + 4)));
  // The DSDT's AML holds \_S5 (NameOp '_S5_').
  const std::string aml(reinterpret_cast<const char*>(at(dsdt + 36)), u32(dsdt + 4) - 36);
  EXPECT_NE(aml.find(std::string("\x08_S5_", 5)), std::string::npos);
  EXPECT_EQ(memory.host_ptr(fadt + 46, 2)[0], 9);  // SCI_INT
  EXPECT_EQ(u32(fadt + 48), 0u);                   // no SMI_CMD: always in ACPI mode
  EXPECT_EQ(u32(fadt + 56), 0x600u);               // PM1a_EVT_BLK
  EXPECT_EQ(u32(fadt + 64), 0x604u);               // PM1a_CNT_BLK
  EXPECT_EQ(u32(fadt + 76), 0x608u);               // PM_TMR_BLK
  EXPECT_EQ(at(fadt)[88], 4);                      // PM1_EVT_LEN
  EXPECT_EQ(at(fadt)[89], 2);                      // PM1_CNT_LEN
  EXPECT_EQ(at(fadt)[91], 4);                      // PM_TMR_LEN
  EXPECT_EQ(u32(fadt + 112) & (1u << 8), 0u);      // TMR_VAL_EXT clear: a 24-bit timer
  EXPECT_EQ(at(fadt)[44], 1);                      // INT_MODEL (ACPI 1.0): multiple APIC
  EXPECT_EQ(u32(fadt + 112) & 0x35u, 0x35u);       // WBINVD, PROC_C1, PWR/SLP_BUTTON not fixed
}

TEST_F(AcpiTablesTest, MadtDescribesOneCpuTheIoApicAndTheOverrides) {
  const uint32_t madt = find("APIC");
  EXPECT_EQ(u32(madt + 36), 0xFEE00000u);
  EXPECT_EQ(u32(madt + 40) & 1, 1u);  // PCAT_COMPAT
  int cpus = 0, ioapics = 0, overrides = 0, nmis = 0;
  bool irq0_to_gsi2 = false, sci_level_high = false;
  for (uint32_t p = madt + 44; p < madt + u32(madt + 4);) {
    const uint8_t type = at(p)[0], length = at(p)[1];
    ASSERT_GE(length, 2);
    if (type == 0) {
      ++cpus;
      EXPECT_EQ(at(p)[3], 0);  // APIC ID 0
      EXPECT_EQ(u32(p + 4) & 1, 1u);
    } else if (type == 1) {
      ++ioapics;
      EXPECT_EQ(u32(p + 4), 0xFEC00000u);
      EXPECT_EQ(u32(p + 8), 0u);
    } else if (type == 2) {
      ++overrides;
      if (at(p)[3] == 0 && u32(p + 4) == 2) irq0_to_gsi2 = true;
      // The SCI (IRQ 9): GSI 9, flags 0b1101 = active high (01), level-triggered (11 << 2).
      if (at(p)[3] == 9 && u32(p + 4) == 9 && memory.host_ptr(p + 8, 2)[0] == 0x0D) {
        sci_level_high = true;
      }
    } else if (type == 4) {
      ++nmis;
      EXPECT_EQ(at(p)[2], 0xFF);  // all processors
      EXPECT_EQ(at(p)[5], 1);     // LINT1
    }
    p += length;
  }
  EXPECT_EQ(cpus, 1);
  EXPECT_EQ(ioapics, 1);
  EXPECT_EQ(overrides, 2);
  EXPECT_EQ(nmis, 1);
  EXPECT_TRUE(irq0_to_gsi2);
  EXPECT_TRUE(sci_level_high);
}

TEST_F(AcpiTablesTest, HpetTableNamesTheBlock) {
  const uint32_t hpet = find("HPET");
  EXPECT_EQ(u32(hpet + 36), 0x8086A201u);
  EXPECT_EQ(u32(hpet + 44), 0xFED00000u);  // GAS address, low half
}

TEST(AcpiPmTest, TimerRunsAt3579545HzAndS5PowersOff) {
  uint64_t now = 1'000'000;
  AcpiPm pm([&] { return now; });
  EXPECT_EQ(pm.io_read(0x608, 4), 0u);
  now += 1'000'000'000;  // one second
  EXPECT_EQ(pm.io_read(0x608, 4), 3'579'545u & 0xFFFFFF);
  now += 5'000'000'000;  // the 24-bit counter wraps every 4.69 s
  EXPECT_EQ(pm.io_read(0x608, 4), (6ull * 3'579'545u) & 0xFFFFFF);
  // TMR_STS: bit 23 changed since start; write 1 to clear.
  EXPECT_EQ(pm.io_read(0x600, 2) & 1, 1u);
  pm.io_write(0x600, 2, 1);
  EXPECT_EQ(pm.io_read(0x600, 2) & 1, 0u);
  EXPECT_EQ(pm.io_read(0x604, 2) & 1, 1u);  // SCI_EN: ACPI mode
  // SLP_TYP 1 with SLP_EN (an S3 request on QEMU's PIIX4) is not soft-off.
  pm.io_write(0x604, 2, (1u << 10) | (1u << 13));
  EXPECT_FALSE(pm.power_off_requested());
  pm.io_write(0x604, 2, 0);  // SLP_TYP 0 without SLP_EN: nothing yet
  EXPECT_FALSE(pm.power_off_requested());
  pm.io_write(0x604, 2, 1u << 13);
  EXPECT_EQ(pm.power_off_requested(), 0);
}

}  // namespace
}  // namespace vmbt
