// The BIOS ROM and the i440FX PAM registers (Intel 82441FX PMC datasheet §3.2.18 "PAM0-PAM6"),
// laid out as QEMU's pc machine does (the ROM below 4 GiB, its last 128 KiB at 0xE0000).
#include "vmm/machine/firmware_memory.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "vmm/devices/i440fx.h"
#include "vmm/devices/pci_host.h"
#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/io_bus.h"

namespace vmbt {
namespace {

/// A 256 KiB ROM whose every byte says where it is: byte i is (i >> 12) ^ i.
std::vector<uint8_t> test_rom(size_t size = 256 * 1024) {
  std::vector<uint8_t> rom(size);
  for (size_t i = 0; i < size; ++i) rom[i] = static_cast<uint8_t>((i >> 12) ^ i);
  return rom;
}

class FirmwareMemoryTest : public ::testing::Test {
 protected:
  FirmwareMemoryTest() : ram(16u << 20), rom(test_rom()), fw(ram, rom, pci.host_bridge()) {
    pci.register_ports(io);
    fw.attach(mmio);
    pci.host_bridge().set_on_pam_change([this] { ++pam_changes; });
  }
  /// A configuration write of one byte to the host bridge, through mechanism #1.
  void set_pam(unsigned reg, uint8_t value) {
    io.write(0xcf8, 4, 0x80000000u | (reg & 0xfc));
    io.write(static_cast<uint16_t>(0xcfc + (reg & 3)), 1, value);
  }
  uint8_t pam_reg(unsigned reg) {
    io.write(0xcf8, 4, 0x80000000u | (reg & 0xfc));
    return static_cast<uint8_t>(io.read(static_cast<uint16_t>(0xcfc + (reg & 3)), 1));
  }
  uint8_t rom_byte_at(uint32_t gpa) { return rom[gpa - (0x100000000ull - rom.size())]; }
  /// The ROM byte aliased at BIOS-area address `gpa` (its last 128 KiB at 0xE0000).
  uint8_t alias_byte(uint32_t gpa) { return rom[rom.size() - 0x20000 + (gpa - 0xe0000)]; }

  GuestMemory ram;
  std::vector<uint8_t> rom;
  PciHost pci;
  IoBus io;
  MmioBus mmio;
  FirmwareMemory fw;
  int pam_changes = 0;
};

TEST_F(FirmwareMemoryTest, RomSitsBelow4GiBWithTheResetVector) {
  EXPECT_EQ(fw.rom_base(), 0xfffc0000u);
  EXPECT_EQ(fw.read_byte(0xfffffff0u), rom[rom.size() - 16]);
  EXPECT_EQ(mmio.read(0xfffc0000u, 4),
            uint64_t{rom[0]} | rom[1] << 8 | rom[2] << 16 | uint64_t{rom[3]} << 24);
  // Writes to the ROM are dropped.
  mmio.write(0xfffffff0u, 1, 0x5a);
  EXPECT_EQ(fw.read_byte(0xfffffff0u), rom[rom.size() - 16]);
}

TEST_F(FirmwareMemoryTest, PamResetStateReadsTheRomAliasAndDropsWrites) {
  // 82441FX §3.2.18: PAM0-6 reset to 0: reads and writes go to PCI (the ROM).
  for (unsigned r = 0x59; r <= 0x5f; ++r) EXPECT_EQ(pam_reg(r), 0);
  ram.write32(0xf0000, 0x11223344);
  EXPECT_EQ(fw.read_byte(0xffff0), alias_byte(0xffff0));  // F000:FFF0 = the reset vector's bytes
  EXPECT_EQ(fw.read_byte(0xffff0), rom_byte_at(0xfffffff0u));
  EXPECT_EQ(fw.read_byte(0xe1234), alias_byte(0xe1234));
  EXPECT_EQ(fw.read_byte(0xf0000), alias_byte(0xf0000));
  mmio.write(0xf0000, 4, 0xdeadbeef);
  EXPECT_EQ(ram.read32(0xf0000), 0x11223344u);  // WE clear: not RAM
  // Below the alias there is no ROM: all ones.
  EXPECT_EQ(mmio.read(0xc0000, 2), 0xffffu);
  EXPECT_EQ(fw.read_byte(0xdffff), 0xff);
}

TEST_F(FirmwareMemoryTest, WriteEnableReachesRamAndReadEnableSeesIt) {
  // The shadowing sequence: WE only (reads still ROM), copy, then RE only (write-protected).
  set_pam(0x59, 0x20);  // PAM0 HIENABLE = WE
  EXPECT_EQ(pam_changes, 1);
  mmio.write(0xf8000, 4, 0xcafef00d);
  EXPECT_EQ(ram.read32(0xf8000), 0xcafef00du);
  EXPECT_EQ(fw.read_byte(0xf8000), alias_byte(0xf8000));  // RE clear: still the ROM
  set_pam(0x59, 0x10);                                    // RE only
  EXPECT_EQ(mmio.read(0xf8000, 4), 0xcafef00du);
  mmio.write(0xf8000, 4, 0x12345678);  // WE clear: dropped
  EXPECT_EQ(ram.read32(0xf8000), 0xcafef00du);
  set_pam(0x59, 0x30);  // RE | WE: plain RAM
  mmio.write(0xf8000, 1, 0x99);
  EXPECT_EQ(fw.read_byte(0xf8000), 0x99);
}

TEST_F(FirmwareMemoryTest, EachNibbleControlsItsOwn16KiBSegment) {
  // PAM1 low nibble: 0xC0000-0xC3FFF; high nibble: 0xC4000-0xC7FFF; ... PAM6 high: 0xEC000.
  ram.write32(0xc0000, 0xaaaaaaaa);
  ram.write32(0xc4000, 0xbbbbbbbb);
  ram.write32(0xec000, 0xcccccccc);
  ram.write32(0xe8000, 0xdddddddd);
  set_pam(0x5a, 0x01);  // C0000 RE, C4000 nothing
  set_pam(0x5f, 0x10);  // E8000 nothing, EC000 RE
  EXPECT_EQ(mmio.read(0xc0000, 4), 0xaaaaaaaau);
  EXPECT_EQ(mmio.read(0xc4000, 4), 0xffffffffu);
  EXPECT_EQ(mmio.read(0xec000, 4), 0xccccccccu);
  EXPECT_EQ(fw.read_byte(0xe8000), alias_byte(0xe8000));
  EXPECT_EQ(I440fxHostBridge::pam_segment_base(12), 0xec000u);
  EXPECT_EQ(I440fxHostBridge::pam_segment_base(0), 0xf0000u);
}

TEST_F(FirmwareMemoryTest, ReservedPamBitsReadZero) {
  set_pam(0x59, 0xff);
  EXPECT_EQ(pam_reg(0x59), 0x70);  // bits 3:0 reserved
  set_pam(0x5c, 0xff);
  EXPECT_EQ(pam_reg(0x5c), 0x77);  // bit 3 of each nibble reserved
  // A dword write over 0x58-0x5b sets PAM0-2 in one go (SeaBIOS writes PAM as dwords).
  io.write(0xcf8, 4, 0x80000058u);
  io.write(0xcfc, 4, 0x33333000u);
  EXPECT_EQ(pam_reg(0x59), 0x30);
  EXPECT_EQ(pam_reg(0x5a), 0x33);
  EXPECT_EQ(pam_reg(0x5b), 0x33);
}

TEST_F(FirmwareMemoryTest, WindowsFollowThePamRegisters) {
  // Reset: 0xC0000-0xDFFFF has nothing (MMIO), 0xE0000-0xFFFFF the ROM alias, the ROM on top.
  auto w = fw.windows();
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].gpa, 0xc0000u);
  EXPECT_EQ(w[0].size, 0x20000u);
  EXPECT_EQ(w[0].host, nullptr);
  EXPECT_EQ(w[1].gpa, 0xe0000u);
  EXPECT_EQ(w[1].size, 0x20000u);
  ASSERT_NE(w[1].host, nullptr);
  EXPECT_EQ(w[1].host[0x1fff0], rom[rom.size() - 16]);
  EXPECT_TRUE(w[1].read_only);
  EXPECT_EQ(w[2].gpa, 0xfffc0000u);
  EXPECT_EQ(w[2].size, 0x40000u);
  EXPECT_TRUE(w[2].read_only);
  // SeaBIOS's make_bios_writable: every segment RAM read/write: only the ROM is left.
  set_pam(0x59, 0x30);
  for (unsigned r = 0x5a; r <= 0x5f; ++r) set_pam(r, 0x33);
  w = fw.windows();
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].gpa, 0xfffc0000u);
  // make_bios_readonly: the F segment and the option-ROM segments RAM, read-only.
  set_pam(0x59, 0x10);
  w = fw.windows();
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].gpa, 0xf0000u);
  EXPECT_EQ(w[0].host, ram.host_base() + 0xf0000);
  EXPECT_TRUE(w[0].read_only);
}

TEST(FirmwareMemoryRomTest, A128KiBRomAliasesAllOfItself) {
  GuestMemory ram(4u << 20);
  PciHost pci;
  std::vector<uint8_t> rom = test_rom(128 * 1024);
  FirmwareMemory fw(ram, rom, pci.host_bridge());
  EXPECT_EQ(fw.rom_base(), 0xfffe0000u);
  EXPECT_EQ(fw.read_byte(0xe0000), rom[0]);
  EXPECT_EQ(fw.read_byte(0xfffff), rom[0x1ffff]);
}

TEST(FirmwareMemoryRomTest, LoadRomSaysWhatToDo) {
  try {
    FirmwareMemory::load_rom("/nonexistent/bios.bin");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("seabios"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--bios"), std::string::npos) << e.what();
  }
  const std::string path = ::testing::TempDir() + "/vmbt_short_rom.bin";
  std::ofstream(path, std::ios::binary) << std::string(1000, 'x');
  EXPECT_THROW(FirmwareMemory::load_rom(path), Error);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace vmbt
