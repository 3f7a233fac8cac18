// The AML builder (vmm/boot/aml.h) against ACPI 6.5 ch. 19-20 (PkgLength, integers, names, EISA
// IDs), and the DSDT it makes against ACPICA's own disassembler (iasl -d: Debian's acpica-tools,
// installed by scripts/setup), which must read it without error and print the ASL it means.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "vmm/boot/acpi_tables.h"
#include "vmm/boot/aml.h"
#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"

namespace vmbt {
namespace {

/// Decodes a PkgLength as an AML interpreter does (§20.2.4): the value and the bytes it took.
std::pair<size_t, size_t> decode_pkg_length(const aml::Bytes& b) {
  const unsigned follow = b[0] >> 6;
  if (follow == 0) return {b[0] & 0x3f, 1};
  size_t v = b[0] & 0x0f;
  for (unsigned i = 0; i < follow; ++i) v |= size_t{b[1 + i]} << (4 + 8 * i);
  return {v, 1 + follow};
}

TEST(AmlTest, PkgLengthCountsItselfAndGrowsAtTheSpecsBounds) {
  for (size_t content : {0ul, 1ul, 62ul, 63ul, 64ul, 200ul, 4092ul, 4093ul, 5000ul, 1048572ul,
                         1048573ul, 3000000ul}) {
    const aml::Bytes b = aml::pkg_length(content);
    const auto [value, used] = decode_pkg_length(b);
    EXPECT_EQ(used, b.size()) << content;
    EXPECT_EQ(value, content + b.size()) << content;  // the length includes its own bytes
    // One byte up to 63 in all; 2 bytes up to 2^12 - 1; 3 up to 2^20 - 1; then 4.
    const size_t expect_bytes = content + 1 <= 63          ? 1
                                : content + 2 < (1u << 12) ? 2
                                : content + 3 < (1u << 20) ? 3
                                                           : 4;
    EXPECT_EQ(b.size(), expect_bytes) << content;
    if (b.size() > 1) {
      EXPECT_EQ(b[0] & 0x30, 0) << content;  // bits 5:4 of a lead byte are 0
    }
  }
  EXPECT_THROW(aml::pkg_length(size_t{1} << 28), Error);
}

TEST(AmlTest, IntegersTakeTheSmallestEncoding) {
  EXPECT_EQ(aml::integer(0), aml::Bytes({0x00}));
  EXPECT_EQ(aml::integer(1), aml::Bytes({0x01}));
  EXPECT_EQ(aml::integer(2), aml::Bytes({0x0A, 0x02}));
  EXPECT_EQ(aml::integer(0xff), aml::Bytes({0x0A, 0xff}));
  EXPECT_EQ(aml::integer(0x100), aml::Bytes({0x0B, 0x00, 0x01}));
  EXPECT_EQ(aml::integer(0x3ffff), aml::Bytes({0x0C, 0xff, 0xff, 0x03, 0x00}));
  EXPECT_EQ(aml::integer(0x100000000ull), aml::Bytes({0x0E, 0, 0, 0, 0, 1, 0, 0, 0}));
}

TEST(AmlTest, NamesAndEisaIds) {
  EXPECT_EQ(aml::name_seg("_SB"), aml::Bytes({'_', 'S', 'B', '_'}));
  EXPECT_EQ(aml::name_string("\\_SB"), aml::Bytes({'\\', '_', 'S', 'B', '_'}));
  EXPECT_EQ(aml::name_string("\\_SB.PCI0"),
            aml::Bytes({'\\', 0x2E, '_', 'S', 'B', '_', 'P', 'C', 'I', '0'}));
  for (const char* bad : {"", "1ABC", "ABCDE", "ab"}) EXPECT_THROW(aml::name_seg(bad), Error);
  // ACPI 6.5 §19.6.35: EisaId ("PNP0A03") is the DWORD 0x030AD041.
  EXPECT_EQ(aml::eisa_id("PNP0A03"), aml::Bytes({0x0C, 0x41, 0xD0, 0x0A, 0x03}));
  for (const char* bad : {"PNP0A0", "pnp0a03", "PNP0A0G"}) EXPECT_THROW(aml::eisa_id(bad), Error);
}

/// The DSDT write_acpi_tables leaves for a machine with two PCI functions, disassembled by iasl.
class DsdtDisassemblyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v iasl >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "iasl is not installed (scripts/setup installs acpica-tools)";
    }
    GuestMemory memory(64u << 20);
    AcpiPlatform p;
    p.pci_memory_base = 0x04000000;
    p.pci_routes = {{3, 11}, {4, 6}};
    const AcpiLayout layout = write_acpi_tables(memory, p);
    const uint32_t length = memory.read32(layout.dsdt + 4);
    dir = ::testing::TempDir() + "vmbt-dsdt-" + std::to_string(::getpid());
    ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
    {
      std::ofstream out(dir + "/dsdt.dat", std::ios::binary);
      out.write(reinterpret_cast<const char*>(memory.host_ptr(layout.dsdt, length)), length);
    }
    const int status = std::system(("cd " + dir + " && iasl -d dsdt.dat >iasl.log 2>&1").c_str());
    std::ifstream log(dir + "/iasl.log");
    std::stringstream l;
    l << log.rdbuf();
    iasl_log = l.str();
    ASSERT_EQ(status, 0) << iasl_log;
    std::ifstream dsl(dir + "/dsdt.dsl");
    std::stringstream s;
    s << dsl.rdbuf();
    asl = s.str();
    // Matching ignores whitespace and comments: the disassembler's layout is not the contract.
    bool line_comment = false, block_comment = false;
    for (size_t i = 0; i < asl.size(); ++i) {
      const char c = asl[i], next = i + 1 < asl.size() ? asl[i + 1] : 0;
      if (block_comment) {
        if (c == '*' && next == '/') block_comment = false, ++i;
        continue;
      }
      if (c == '\n') line_comment = false;
      if (c == '/' && next == '/') line_comment = true;
      if (c == '/' && next == '*' && !line_comment) {
        block_comment = true;
        continue;
      }
      if (!line_comment && c != ' ' && c != '\n' && c != '\t' && c != '\r') flat += c;
    }
  }
  void TearDown() override {
    if (!dir.empty()) std::system(("rm -rf " + dir).c_str());
  }
  /// Whether the disassembly holds `text` (spaces ignored).
  bool holds(const std::string& text) const {
    std::string t;
    for (char c : text) {
      if (c != ' ') t += c;
    }
    return flat.find(t) != std::string::npos;
  }
  std::string dir, iasl_log, asl, flat;
};

TEST_F(DsdtDisassemblyTest, IaslReadsTheS5ObjectAndThePciRootBridge) {
  EXPECT_EQ(iasl_log.find("Error"), std::string::npos) << iasl_log;
  EXPECT_TRUE(holds("Name(_S5,Package(0x04){Zero,Zero,Zero,Zero})")) << asl;
  EXPECT_TRUE(holds("Scope(\\_SB){Device(PCI0){Name(_HID,EisaId(\"PNP0A03\"))")) << asl;
  EXPECT_TRUE(holds("Name(_UID,Zero)")) << asl;
}

TEST_F(DsdtDisassemblyTest, CrsNamesTheBusRangeThePortsAndTheMemoryWindows) {
  EXPECT_TRUE(
      holds("WordBusNumber(ResourceProducer,MinFixed,MaxFixed,PosDecode,0x0000,0x0000,"
            "0x00FF,0x0000,0x0100"))
      << asl;
  EXPECT_TRUE(holds("IO(Decode16,0x0CF8,0x0CF8,0x01,0x08")) << asl;
  EXPECT_TRUE(
      holds("WordIO(ResourceProducer,MinFixed,MaxFixed,PosDecode,EntireRange,0x0000,"
            "0x0000,0x0CF7,0x0000,0x0CF8"))
      << asl;
  EXPECT_TRUE(
      holds("WordIO(ResourceProducer,MinFixed,MaxFixed,PosDecode,EntireRange,0x0000,"
            "0x0D00,0xFFFF,0x0000,0xF300"))
      << asl;
  EXPECT_TRUE(
      holds("DWordMemory(ResourceProducer,PosDecode,MinFixed,MaxFixed,Cacheable,ReadWrite,"
            "0x00000000,0x000A0000,0x000BFFFF,0x00000000,0x00020000"))
      << asl;
  EXPECT_TRUE(
      holds("DWordMemory(ResourceProducer,PosDecode,MinFixed,MaxFixed,Cacheable,ReadWrite,"
            "0x00000000,0x04000000,0xFEBFFFFF,0x00000000,0xFAC00000"))
      << asl;
}

TEST_F(DsdtDisassemblyTest, PrtRoutesEachFunctionsIntaToItsGsi) {
  EXPECT_TRUE(
      holds("Name(_PRT,Package(0x02){Package(0x04){0x0003FFFF,Zero,Zero,0x0B},"
            "Package(0x04){0x0004FFFF,Zero,Zero,0x06}})"))
      << asl;
}

}  // namespace
}  // namespace vmbt
