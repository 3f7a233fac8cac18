// fw_cfg legacy interface, per QEMU docs/specs/fw_cfg.rst.
#include "vmm/devices/fw_cfg.h"

#include <gtest/gtest.h>

#include <vector>

#include "vmm/machine/io_bus.h"

namespace vmbt {
namespace {

class FwCfgTest : public ::testing::Test {
 protected:
  FwCfgTest() { fw.register_ports(bus); }
  std::vector<uint8_t> read_item(uint16_t selector, size_t n) {
    bus.write(0x510, 2, selector);
    std::vector<uint8_t> out;
    for (size_t i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(bus.read(0x511, 1)));
    return out;
  }
  FwCfg fw{256ull << 20, 2};
  IoBus bus;
};

TEST_F(FwCfgTest, Signature) {
  EXPECT_EQ(read_item(0x0000, 5), (std::vector<uint8_t>{'Q', 'E', 'M', 'U', 0}));
}

TEST_F(FwCfgTest, IdIsTraditionalInterface) {
  EXPECT_EQ(read_item(0x0001, 4), (std::vector<uint8_t>{1, 0, 0, 0}));
}

TEST_F(FwCfgTest, RamSizeLittleEndian) {
  EXPECT_EQ(read_item(0x0003, 8), (std::vector<uint8_t>{0, 0, 0, 0x10, 0, 0, 0, 0}));
}

TEST(FwCfgRamTest, RamSizeUsesAllEightBytes) {
  FwCfg fw(0x123456000ull, 1);
  fw.io_write(0x510, 2, 0x0003);
  std::vector<uint8_t> got;
  for (int i = 0; i < 8; ++i) got.push_back(static_cast<uint8_t>(fw.io_read(0x511, 1)));
  EXPECT_EQ(got, (std::vector<uint8_t>{0x00, 0x60, 0x45, 0x23, 0x01, 0, 0, 0}));
}

TEST_F(FwCfgTest, CpuCount) {
  EXPECT_EQ(read_item(0x0005, 2), (std::vector<uint8_t>{2, 0}));
}

TEST_F(FwCfgTest, EmptyFileDirectory) {
  EXPECT_EQ(read_item(0x0019, 4), (std::vector<uint8_t>{0, 0, 0, 0}));
}

TEST_F(FwCfgTest, UnknownSelectorReadsZero) {
  EXPECT_EQ(read_item(0x1234, 3), (std::vector<uint8_t>{0, 0, 0}));
  EXPECT_EQ(read_item(0x8003, 2), (std::vector<uint8_t>{0, 0}));  // arch-local space is empty
}

TEST_F(FwCfgTest, SelectorWriteResetsOffset) {
  read_item(0x0000, 2);
  EXPECT_EQ(read_item(0x0000, 1), (std::vector<uint8_t>{'Q'}));
  // A byte read at 0x510 is a data read too (QEMU's combined register).
  bus.write(0x510, 2, 0x0000);
  EXPECT_EQ(bus.read(0x510, 1), static_cast<uint32_t>('Q'));
  EXPECT_EQ(bus.read(0x511, 1), static_cast<uint32_t>('E'));
}

TEST_F(FwCfgTest, AddFileListsItInTheDirectory) {
  const uint16_t key = fw.add_file("etc/test", {1, 2, 3});
  EXPECT_EQ(key, 0x0020);
  const auto dir = read_item(0x0019, 4 + 64);
  EXPECT_EQ(std::vector<uint8_t>(dir.begin(), dir.begin() + 4), (std::vector<uint8_t>{0, 0, 0, 1}));
  EXPECT_EQ(std::vector<uint8_t>(dir.begin() + 4, dir.begin() + 12),
            (std::vector<uint8_t>{0, 0, 0, 3, 0x00, 0x20, 0, 0}));  // size BE, select BE, reserved
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&dir[12])), "etc/test");
  EXPECT_EQ(read_item(key, 4), (std::vector<uint8_t>{1, 2, 3, 0}));
}

TEST_F(FwCfgTest, DirectoryIsSortedByNameWithBigEndianFields) {
  // docs/specs/fw_cfg.rst "File Directory": u32 count, then {u32 size, u16 select, u16
  // reserved, char name[56]}, all big-endian; QEMU lists the files sorted by name.
  const uint16_t z = fw.add_file("etc/zzz", std::vector<uint8_t>(0x1234));
  const uint16_t a = fw.add_file("bootorder", {'x'});
  const uint16_t m = fw.add_file("etc/e820", std::vector<uint8_t>(20));
  const auto dir = read_item(0x0019, 4 + 3 * 64);
  EXPECT_EQ(std::vector<uint8_t>(dir.begin(), dir.begin() + 4), (std::vector<uint8_t>{0, 0, 0, 3}));
  const char* names[] = {"bootorder", "etc/e820", "etc/zzz"};
  const uint16_t keys[] = {a, m, z};
  const uint32_t sizes[] = {1, 20, 0x1234};
  for (int i = 0; i < 3; ++i) {
    const uint8_t* e = &dir[4 + 64 * i];
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(e + 8)), names[i]);
    EXPECT_EQ(uint32_t{e[0]} << 24 | e[1] << 16 | e[2] << 8 | e[3], sizes[i]);
    EXPECT_EQ(e[4] << 8 | e[5], keys[i]);
    EXPECT_EQ(e[6] | e[7], 0);
  }
  EXPECT_EQ(read_item(a, 2), (std::vector<uint8_t>{'x', 0}));
}

TEST_F(FwCfgTest, FileNamesAreCheckedAndUnique) {
  fw.add_file("etc/one", {1});
  EXPECT_THROW(fw.add_file("etc/one", {2}), std::exception);
  EXPECT_THROW(fw.add_file(std::string(56, 'n'), {2}), std::exception);
  EXPECT_THROW(fw.add_file("", {2}), std::exception);
}

}  // namespace
}  // namespace vmbt
