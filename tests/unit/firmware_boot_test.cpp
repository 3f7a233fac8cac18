// The machine a firmware boot (no --kernel) presents to its BIOS: the ROM and PAM windows, the
// PIIX3, unassigned BARs, fw_cfg's files (QEMU docs/specs/fw_cfg.rst), and the reset state
// (Intel SDM Vol. 3A §9.1.1); and that a --kernel boot's machine keeps its RAM everywhere.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include "vmm/boot/boot_state.h"
#include "vmm/devices/buffer_console.h"
#include "vmm/error.h"
#include "vmm/machine/machine.h"

namespace vmbt {
namespace {

/// A scratch file of `size` bytes of `fill`, named for this process: ctest runs the tests of a
/// suite as parallel processes, and one rewriting a file another is reading left it empty.
std::string write_file(const std::string& name, size_t size, char fill) {
  const std::string path = ::testing::TempDir() + "/" + std::to_string(getpid()) + "-" + name;
  std::ofstream(path, std::ios::binary) << std::string(size, fill);
  return path;
}

class FirmwareBootTest : public ::testing::Test {
 protected:
  static GuestConfig config() {
    GuestConfig c;
    c.ram_bytes = 64u << 20;
    c.bios = write_file("vmbt_test_bios.bin", 128 * 1024, '\xf4');
    c.drives.push_back({write_file("vmbt_test_disk.img", 1 << 20, 0), false});
    return c;
  }
  FirmwareBootTest() : machine(config(), console) {
    machine.set_on_memory_windows_change(
        [this](const std::vector<MemoryWindow>& w) { windows = w, ++changes; });
  }
  uint32_t in(uint16_t port, unsigned size) { return machine.io().read(port, size); }
  void out(uint16_t port, unsigned size, uint32_t v) { machine.io().write(port, size, v); }
  uint32_t pci_read(unsigned dev, unsigned reg) {
    out(0xcf8, 4, 0x80000000u | dev << 11 | reg);
    return in(0xcfc, 4);
  }
  std::vector<uint8_t> fw_cfg(uint16_t key, size_t n) {
    out(0x510, 2, key);
    std::vector<uint8_t> v;
    for (size_t i = 0; i < n; ++i) v.push_back(static_cast<uint8_t>(in(0x511, 1)));
    return v;
  }
  /// The fw_cfg directory: name -> (selector, size).
  std::map<std::string, std::pair<uint16_t, uint32_t>> directory() {
    const auto count = fw_cfg(0x19, 4);
    const uint32_t n = count[0] << 24 | count[1] << 16 | count[2] << 8 | count[3];
    const auto dir = fw_cfg(0x19, 4 + 64 * n);
    std::map<std::string, std::pair<uint16_t, uint32_t>> out;
    for (uint32_t i = 0; i < n; ++i) {
      const uint8_t* e = &dir[4 + 64 * i];
      out[reinterpret_cast<const char*>(e + 8)] = {
          static_cast<uint16_t>(e[4] << 8 | e[5]),
          uint32_t{e[0]} << 24 | e[1] << 16 | e[2] << 8 | e[3]};
    }
    return out;
  }

  BufferConsole console;
  Machine machine;
  std::vector<MemoryWindow> windows;
  int changes = 0;
};

TEST_F(FirmwareBootTest, RomIsMappedAndPamWritesRemapIt) {
  ASSERT_TRUE(machine.firmware_boot());
  auto w = machine.memory_windows();
  ASSERT_FALSE(w.empty());
  EXPECT_EQ(w.back().gpa, 0xfffe0000u);
  EXPECT_EQ(w.back().host[0x1fff0], 0xf4);
  // A PAM write through configuration mechanism #1 tells the engines.
  out(0xcf8, 4, 0x80000058u);
  out(0xcfd, 1, 0x30);  // PAM0 = RAM read/write
  EXPECT_EQ(changes, 1);
  EXPECT_EQ(windows, machine.memory_windows());
  for (const MemoryWindow& m : windows) EXPECT_FALSE(m.gpa <= 0xf0000 && 0xf0000 < m.gpa + m.size);
}

TEST_F(FirmwareBootTest, ChipsetIdentityAsSeaBiosLooksForIt) {
  EXPECT_EQ(pci_read(0, 0x00), 0x12378086u);
  EXPECT_EQ(pci_read(0, 0x2c), 0x11001af4u);  // QEMU's subsystem: SeaBIOS's qemu_detect
  EXPECT_EQ(pci_read(1, 0x00), 0x70008086u);
  EXPECT_EQ(pci_read(1, 0x60), 0x80808080u);  // PIRQ routing left to the firmware
}

TEST_F(FirmwareBootTest, VirtioBarsAreLeftToTheFirmware) {
  EXPECT_EQ(pci_read(3, 0x04) & 0x3, 0u);    // I/O and memory decoding off
  EXPECT_EQ(pci_read(3, 0x10), 1u);          // an I/O BAR, unassigned
  EXPECT_EQ(pci_read(3, 0x3c) & 0xff, 11u);  // INTA# -> PIRQC#, which SeaBIOS routes to 11
}

TEST_F(FirmwareBootTest, FwCfgHasTheFilesSeaBiosReads) {
  EXPECT_EQ(fw_cfg(0x0000, 4), (std::vector<uint8_t>{'Q', 'E', 'M', 'U'}));
  EXPECT_EQ(fw_cfg(0x0004, 2), (std::vector<uint8_t>{1, 0}));  // nographic
  auto dir = directory();
  for (const char* f : {"bootorder", "etc/acpi/rsdp", "etc/acpi/tables", "etc/boot-fail-wait",
                        "etc/e820", "etc/sercon-port", "etc/table-loader"}) {
    EXPECT_TRUE(dir.count(f)) << f;
  }
  const auto e820 = fw_cfg(dir["etc/e820"].first, dir["etc/e820"].second);
  ASSERT_EQ(e820.size(), 20u);
  EXPECT_EQ(e820,
            (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 1, 0, 0, 0}));
  const auto order = fw_cfg(dir["bootorder"].first, dir["bootorder"].second);
  EXPECT_EQ(std::string(order.begin(), order.end()), "/pci@i0cf8/scsi@3/disk@0,0\n");
  EXPECT_EQ(fw_cfg(dir["etc/sercon-port"].first, 2), (std::vector<uint8_t>{0xf8, 0x03}));
  EXPECT_EQ(fw_cfg(dir["etc/boot-fail-wait"].first, 4),
            (std::vector<uint8_t>{0xff, 0xff, 0xff, 0xff}));
  // No tables in RAM: the firmware places them.
  uint8_t rsdp[8] = {};
  machine.memory().read(0xe0000, rsdp, 8);
  EXPECT_NE(std::string(reinterpret_cast<char*>(rsdp), 8), "RSD PTR ");
}

TEST(FirmwareBootConfigTest, MissingBiosNamesThePackage) {
  BufferConsole console;
  GuestConfig c;
  c.bios = "/nonexistent/bios-256k.bin";
  try {
    Machine m(c, console);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("seabios"), std::string::npos);
  }
}

TEST(KernelBootMachineTest, NoWindowsAndPamSaysRam) {
  BufferConsole console;
  GuestConfig c;
  c.kernel = "unused.elf";  // the machine does not load it
  Machine m(c, console);
  EXPECT_FALSE(m.firmware_boot());
  EXPECT_TRUE(m.memory_windows().empty());
  m.io().write(0xcf8, 4, 0x80000058u);
  EXPECT_EQ(m.io().read(0xcfc, 4), 0x33333000u);
  m.io().write(0xcf8, 4, 0x8000005cu);
  EXPECT_EQ(m.io().read(0xcfc, 4), 0x33333333u);
  uint8_t rsdp[8] = {};
  m.memory().read(0xe0000, rsdp, 8);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(rsdp), 8), "RSD PTR ");
}

TEST(ResetStateTest, Sdm911Table91) {
  const VcpuState s = reset_state(0x6fb);
  EXPECT_EQ(s.eip, 0xfff0u);
  EXPECT_EQ(s.seg[kCs].selector, 0xf000);
  EXPECT_EQ(s.seg[kCs].base, 0xffff0000u);
  EXPECT_EQ(s.seg[kCs].limit, 0xffffu);
  EXPECT_TRUE(s.seg[kCs].present);
  EXPECT_FALSE(s.seg[kCs].db);
  for (SegIndex i : {kEs, kSs, kDs, kFs, kGs}) {
    EXPECT_EQ(s.seg[i].selector, 0);
    EXPECT_EQ(s.seg[i].base, 0u);
    EXPECT_EQ(s.seg[i].limit, 0xffffu);
    EXPECT_EQ(s.seg[i].type, 0x3);
  }
  EXPECT_EQ(s.cr0, 0x60000010u);
  EXPECT_EQ(s.eflags, 0x2u);
  EXPECT_EQ(s.gpr[kEdx], 0x6fbu);
  EXPECT_EQ(s.gpr[kEax], 0u);
  EXPECT_EQ(s.gdtr.limit, 0xffff);
  EXPECT_EQ(s.idtr.limit, 0xffff);
  EXPECT_EQ(s.dr[6], 0xffff0ff0u);
  EXPECT_EQ(s.dr[7], 0x400u);
  EXPECT_EQ(s.fxsave[0] | s.fxsave[1] << 8, 0x40);  // FCW at power-up
}

}  // namespace
}  // namespace vmbt
