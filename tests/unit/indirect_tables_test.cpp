// IndirectTables: one table per address space and mode, bounded (issue 17, defects 1 and 3).
#include "bt/indirect_tables.h"

#include <gtest/gtest.h>

namespace vmbt::bt {
namespace {

constexpr uint64_t kMiss = 0x1111;
constexpr uint32_t kCpl0Mode = 0x80, kUserMode = 0x80000000u;
const void* host(uintptr_t v) {
  return reinterpret_cast<const void*>(v);
}
uint64_t slot(uint64_t* slots, uint32_t eip) {
  return slots[eip & (kIndirectTableSize - 1)];
}

TEST(IndirectTables, ABlockIsFoundOnlyInTheModeAndSpaceItWasTranslatedFor) {
  IndirectTables t(kMiss);
  t.remember(/*space=*/1, kCpl0Mode, 0xc0001234, 0xc0001, host(0xabc), /*global=*/false);
  EXPECT_EQ(slot(t.slots(1, kCpl0Mode), 0xc0001234), 0xabcu);
  EXPECT_EQ(slot(t.slots(1, kUserMode), 0xc0001234), kMiss);  // CPL 3 must miss
  EXPECT_EQ(slot(t.slots(2, kCpl0Mode), 0xc0001234), kMiss);  // another space too
}

TEST(IndirectTables, GlobalBlocksSeedNewSpacesOfTheSameModeOnly) {
  IndirectTables t(kMiss);
  t.remember(1, kCpl0Mode, 0xc0002000, 0xc0002, host(0xdef), /*global=*/true);
  EXPECT_EQ(slot(t.slots(7, kCpl0Mode), 0xc0002000), 0xdefu);
  EXPECT_EQ(slot(t.slots(7, kUserMode), 0xc0002000), kMiss);
  // A page-directory change in space 7 keeps global blocks; INVLPG drops them everywhere.
  t.forget_pages(7, 0xc0002, 1, /*global=*/false);
  EXPECT_EQ(slot(t.slots(7, kCpl0Mode), 0xc0002000), 0xdefu);
  t.forget_page_everywhere(7, 0xc0002);
  EXPECT_EQ(slot(t.slots(7, kCpl0Mode), 0xc0002000), kMiss);
  EXPECT_EQ(slot(t.slots(9, kCpl0Mode), 0xc0002000), kMiss);
}

TEST(IndirectTables, DroppedPagesAndBlocksMissInEveryModeOfTheSpace) {
  IndirectTables t(kMiss);
  t.remember(3, kCpl0Mode, 0x08048000, 0x08048, host(0x10), false);
  t.remember(3, kUserMode, 0x08048010, 0x08048, host(0x20), false);
  t.remember(3, kUserMode, 0x08049000, 0x08049, host(0x30), false);
  t.forget_pages(3, 0x08048, 1, false);
  EXPECT_EQ(slot(t.slots(3, kCpl0Mode), 0x08048000), kMiss);
  EXPECT_EQ(slot(t.slots(3, kUserMode), 0x08048010), kMiss);
  EXPECT_EQ(slot(t.slots(3, kUserMode), 0x08049000), 0x30u);
  t.forget_block(0x08049000, host(0x30));
  EXPECT_EQ(slot(t.slots(3, kUserMode), 0x08049000), kMiss);
}

TEST(IndirectTables, HostMemoryStaysBoundedWhateverTheGuestDoes) {
  // A guest cycling through thousands of page directories and modes (issue 17, defect 3).
  IndirectTables t(kMiss);
  for (uint32_t space = 0; space < 3000; ++space) {
    const uint32_t mode = (space % 5) << 8;
    t.remember(space << 12, mode, 0x1000 + space, 1, host(0x100 + space), space % 3 == 0);
    ASSERT_LE(t.live(), IndirectTables::kMaxTables + IndirectTables::kMaxGlobalTables);
  }
  EXPECT_GT(t.evictions(), 0u);
  // The most recent table survives with its entry.
  const uint32_t last = 2999;
  EXPECT_EQ(slot(t.slots(last << 12, (last % 5) << 8), 0x1000 + last), 0x100u + last);
  // A whole space forgotten frees its tables.
  const size_t before = t.live();
  t.forget_pages(last << 12, 0, 1u << 20, false);
  EXPECT_LT(t.live(), before);
}

}  // namespace
}  // namespace vmbt::bt
