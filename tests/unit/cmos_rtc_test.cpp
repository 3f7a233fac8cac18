// MC146818A RTC / PC CMOS with an injected clock: register encodings from the MC146818A datasheet
// (Table 3, binary vs BCD; 12/24-hour) and the PC/AT CMOS memory-size bytes.
#include "vmm/devices/cmos_rtc.h"

#include <gtest/gtest.h>

#include "vmm/machine/io_bus.h"

namespace vmbt {
namespace {

constexpr time_t kThu20240229_134556 = 1709214356;  // Thursday 2024-02-29 13:45:56 UTC
constexpr time_t kThu20240229_003000 = 1709166600;  // Thursday 2024-02-29 00:30:00 UTC
constexpr uint64_t kMiB = 1 << 20;

class RtcTest : public ::testing::Test {
 protected:
  explicit RtcTest(uint64_t ram = 256 * kMiB) : rtc(ram, [this] { return host; }) {
    rtc.register_ports(bus);
  }
  uint8_t reg(uint8_t index) {
    bus.write(0x70, 1, index);
    return static_cast<uint8_t>(bus.read(0x71, 1));
  }
  void set(uint8_t index, uint8_t value) {
    bus.write(0x70, 1, index);
    bus.write(0x71, 1, value);
  }
  uint16_t word(uint8_t index) { return static_cast<uint16_t>(reg(index) | reg(index + 1) << 8); }

  time_t host = kThu20240229_134556;
  CmosRtc rtc;
  IoBus bus;
};

TEST_F(RtcTest, BcdTwentyFourHourByDefault) {
  EXPECT_EQ(reg(0x0b), 0x02);
  EXPECT_EQ(reg(0x00), 0x56);
  EXPECT_EQ(reg(0x02), 0x45);
  EXPECT_EQ(reg(0x04), 0x13);
  EXPECT_EQ(reg(0x06), 0x05);  // Thursday; Sunday = 1
  EXPECT_EQ(reg(0x07), 0x29);
  EXPECT_EQ(reg(0x08), 0x02);
  EXPECT_EQ(reg(0x09), 0x24);
  EXPECT_EQ(reg(0x32), 0x20);
}

TEST_F(RtcTest, BinaryMode) {
  set(0x0b, 0x06);  // DM = binary, 24-hour
  EXPECT_EQ(reg(0x00), 56);
  EXPECT_EQ(reg(0x02), 45);
  EXPECT_EQ(reg(0x04), 13);
  EXPECT_EQ(reg(0x07), 29);
  EXPECT_EQ(reg(0x09), 24);
  EXPECT_EQ(reg(0x32), 20);
}

TEST_F(RtcTest, TwelveHourModeSetsPmBit) {
  set(0x0b, 0x00);             // BCD, 12-hour
  EXPECT_EQ(reg(0x04), 0x81);  // 1 PM
  set(0x0b, 0x04);             // binary, 12-hour
  EXPECT_EQ(reg(0x04), 0x81);
  host = kThu20240229_003000;
  set(0x0b, 0x00);
  EXPECT_EQ(reg(0x04), 0x12);  // 12 AM
}

TEST_F(RtcTest, WritesMoveTheClockAndItKeepsRunning) {
  set(0x02, 0x30);  // minutes := 30 (BCD)
  EXPECT_EQ(reg(0x02), 0x30);
  EXPECT_EQ(rtc.guest_time(), kThu20240229_134556 - 15 * 60);
  host += 10;
  EXPECT_EQ(reg(0x00), 0x06);  // 56 + 10 = 66 -> 13:31:06
  EXPECT_EQ(reg(0x02), 0x31);
  set(0x0b, 0x06);
  set(0x04, 22);  // binary hour 22
  EXPECT_EQ(reg(0x04), 22);
  set(0x0b, 0x04);      // binary, 12-hour
  set(0x04, 0x80 | 9);  // 9 PM
  EXPECT_EQ(reg(0x04), 0x80 | 9);
  set(0x0b, 0x06);
  EXPECT_EQ(reg(0x04), 21);
}

TEST_F(RtcTest, SetBitFreezesAndCommitsOnClear) {
  set(0x0b, 0x82);  // SET, 24-hour BCD
  host += 100;
  EXPECT_EQ(reg(0x00), 0x56);  // frozen
  set(0x09, 0x25);             // 2025
  set(0x07, 0x28);             // 28th (2025 has no Feb 29)
  EXPECT_EQ(reg(0x09), 0x25);
  set(0x0b, 0x02);
  EXPECT_EQ(rtc.guest_time(), 1740750356);  // 2025-02-28 13:45:56
  host += 5;
  EXPECT_EQ(reg(0x00), 0x01);  // running again
}

TEST_F(RtcTest, CenturyRegisterWrite) {
  set(0x32, 0x19);
  EXPECT_EQ(reg(0x32), 0x19);
  EXPECT_EQ(reg(0x09), 0x24);  // 1924
}

TEST_F(RtcTest, RegisterCClearedOnRead) {
  rtc.set_cmos_byte(0x0c, 0xf0);
  EXPECT_EQ(reg(0x0c), 0xf0);
  EXPECT_EQ(reg(0x0c), 0x00);
}

TEST_F(RtcTest, RegistersAAndD) {
  EXPECT_EQ(reg(0x0a), 0x26);  // UIP clear
  set(0x0a, 0xff);
  EXPECT_EQ(reg(0x0a), 0x7f);  // UIP is read-only
  EXPECT_EQ(reg(0x0d), 0x80);  // VRT
  set(0x0d, 0x00);
  EXPECT_EQ(reg(0x0d), 0x80);
}

TEST_F(RtcTest, NmiDisableBitRemembered) {
  bus.write(0x70, 1, 0x8f);
  EXPECT_TRUE(rtc.nmi_masked());
  EXPECT_EQ(rtc.index(), 0x0f);
  bus.write(0x70, 1, 0x0f);
  EXPECT_FALSE(rtc.nmi_masked());
}

TEST_F(RtcTest, GeneralPurposeRam) {
  set(0x40, 0xa5);
  set(0x7f, 0x5a);
  EXPECT_EQ(reg(0x40), 0xa5);
  EXPECT_EQ(reg(0x7f), 0x5a);
}

TEST_F(RtcTest, MemorySizeBytes256MiB) {
  EXPECT_EQ(word(0x15), 640);
  EXPECT_EQ(word(0x17), 65535);  // 261120 KiB capped
  EXPECT_EQ(word(0x30), 65535);
  EXPECT_EQ(word(0x34), (256 - 16) * 16);  // 64 KiB units above 16 MiB
}

class RtcSmallTest : public RtcTest {
 protected:
  RtcSmallTest() : RtcTest(32 * kMiB) {}
};

TEST_F(RtcSmallTest, MemorySizeBytes32MiB) {
  EXPECT_EQ(word(0x15), 640);
  EXPECT_EQ(word(0x17), 31 * 1024);
  EXPECT_EQ(word(0x30), 31 * 1024);
  EXPECT_EQ(word(0x34), 16 * 16);
  unsigned sum = 0;
  for (uint8_t i = 0x10; i <= 0x2d; ++i) sum += reg(i);
  EXPECT_EQ(reg(0x2e) << 8 | reg(0x2f), sum);
}

TEST_F(RtcSmallTest, BiosBytesAsQemuSetsThem) {
  // Above 4 GiB (0x5b-0x5d, 64 KiB units): none; no diskettes or ATA disks; equipment byte:
  // math coprocessor; boot order: hard disk first; one CPU (0x5f = count - 1).
  EXPECT_EQ(reg(0x5b) | reg(0x5c) | reg(0x5d), 0);
  EXPECT_EQ(reg(0x10), 0);
  EXPECT_EQ(reg(0x12), 0);
  EXPECT_EQ(reg(0x14), 0x02);
  EXPECT_EQ(reg(0x3d) & 0x0f, 2);
  EXPECT_EQ(reg(0x38) >> 4, 0);
  EXPECT_EQ(reg(0x5f), 0);
}

TEST(RtcLargeTest, MemoryAbove16MiBIn64KiBUnits) {
  CmosRtc rtc(3072 * kMiB, [] { return time_t{0}; });
  EXPECT_EQ(rtc.cmos_byte(0x34) | rtc.cmos_byte(0x35) << 8, (3072 - 16) * 16);
  EXPECT_EQ(rtc.cmos_byte(0x30) | rtc.cmos_byte(0x31) << 8, 65535);  // capped
}

TEST(RtcDefaultClockTest, FollowsHostTime) {
  CmosRtc rtc(8 * kMiB);
  const time_t before = time(nullptr);
  const time_t t = rtc.guest_time();
  EXPECT_GE(t, before);
  EXPECT_LE(t, time(nullptr));
  EXPECT_EQ(rtc.cmos_byte(0x34), 0);
  EXPECT_EQ(rtc.cmos_byte(0x17) | rtc.cmos_byte(0x18) << 8, 7 * 1024);
}

}  // namespace
}  // namespace vmbt
