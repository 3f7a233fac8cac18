// Guest symbol lookup for `vmbt trace`: System.map text and ELF symbol tables.
#include "cli/symbol_table.h"

#include <gtest/gtest.h>

#include <fstream>

#include "cli_run_helper.h"
#include "vmm/error.h"

namespace vmbt {
namespace {

TEST(SymbolTable, SystemMapKeepsTextSymbolsAndFindsTheContainingOne) {
  SymbolTable t = SymbolTable::parse_system_map(
      "c1000000 T _text\n"
      "c1000000 T startup_32\n"
      "c1001000 t helper\n"
      "c1002000 D some_data\n"
      "c1003000 W weak_fn\n"
      "c1004000 B _end\n"
      "not a line\n"
      "zzzz T bad_address\n");
  EXPECT_EQ(t.size(), 3u);  // _text/startup_32 share an address: one is kept
  EXPECT_EQ(t.describe(0xc0ffffff), "");
  EXPECT_EQ(t.describe(0xc1000000).substr(0, 1), "_");  // _text or startup_32, never both
  EXPECT_EQ(t.describe(0xc1001234), "helper+0x234");
  EXPECT_EQ(t.describe(0xc1002004), "helper+0x1004");  // data symbols are not functions
  EXPECT_EQ(t.describe(0xc1003000), "weak_fn");
  EXPECT_EQ(t.describe(0xc1003fff), "weak_fn+0xfff");
  EXPECT_EQ(t.describe(0xc1004000), "");  // past _end: a module or a relocated kernel
  EXPECT_EQ(t.describe(0xc8000000), "");
}

TEST(SymbolTable, SizedSymbolsCoverOnlyTheirRangeAndBetterRanksWin) {
  SymbolTable t;
  t.add(0x100, 0x10, "sized", 3);
  t.add(0x100, 0, "label", 0);
  t.add(0x200, 0, "open_ended", 0);
  EXPECT_EQ(t.describe(0x100), "sized");
  EXPECT_EQ(t.describe(0x10f), "sized+0xf");
  EXPECT_EQ(t.describe(0x110), "");  // past its size
  EXPECT_EQ(t.describe(0x5000), "open_ended+0x4e00");
  auto hit = t.lookup(0x104);
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit->name, "sized");
  EXPECT_EQ(hit->offset, 4u);
}

TEST(SymbolTable, ReadsAGuestElfsCodeSymbols) {
  std::string elf = testing_cli::micro_guest_dir() + "/trace_census.elf";
  SymbolTable t = SymbolTable::load(elf);
  EXPECT_GE(t.size(), 4u);
  SymbolTable same = SymbolTable::load_elf_if_any(elf);
  EXPECT_EQ(same.size(), t.size());
  // stack_top is a .bss label: not code, never a function name.
  for (uint64_t a = 0x100000; a < 0x100100; ++a) {
    EXPECT_EQ(t.describe(a).find("stack_top"), std::string::npos);
  }
  EXPECT_EQ(t.describe(0x100000), "");  // the Multiboot header precedes _start
  EXPECT_EQ(t.describe(0x100010).substr(0, 6), "_start");
}

TEST(SymbolTable, RejectsFilesWithoutSymbols) {
  std::string text = testing::TempDir() + "/vmbt_symbols_garbage";
  std::ofstream(text) << "hello\n";
  EXPECT_THROW(SymbolTable::load(text), Error);
  EXPECT_THROW(SymbolTable::load("/nonexistent/System.map"), Error);
  EXPECT_TRUE(SymbolTable::load_elf_if_any(text).empty());
}

}  // namespace
}  // namespace vmbt
