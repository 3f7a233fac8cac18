// IndirectTables: address-space tables and global tables per mode, bounded (issue 17, defects 1
// and 3).
#include "bt/indirect_tables.h"

#include <gtest/gtest.h>

namespace vmbt::bt {
namespace {

constexpr uint64_t kMiss = 0x1111, kExit = 0x2222;
constexpr uint32_t kCpl0Mode = 0x80, kUserMode = 0x80000000u;
const void* host(uintptr_t v) {
  return reinterpret_cast<const void*>(v);
}
uint64_t slot(uint64_t* slots, uint32_t eip) {
  return slots[eip & (kIndirectTableSize - 1)];
}

TEST(IndirectTables, ABlockIsFoundOnlyInTheModeAndSpaceItWasTranslatedFor) {
  IndirectTables t(kMiss, kExit);
  t.remember(/*space=*/1, kCpl0Mode, 0x00401234, 0x00401, host(0xabc), /*global=*/false);
  EXPECT_EQ(slot(t.slots(1, kCpl0Mode), 0x00401234), 0xabcu);
  EXPECT_EQ(slot(t.slots(1, kUserMode), 0x00401234), kMiss);  // CPL 3 must miss
  EXPECT_EQ(slot(t.slots(2, kCpl0Mode), 0x00401234), kMiss);  // another space too
  EXPECT_EQ(slot(t.global_slots(kCpl0Mode), 0x00401234), kMiss);
}

TEST(IndirectTables, EverySlotOfTheKickTableLeaves) {
  IndirectTables t(kMiss, kExit);
  t.remember(1, kCpl0Mode, 0x00401234, 0x00401, host(0xabc), false);
  uint64_t* kick = t.kick_slots();
  for (size_t i = 0; i < kIndirectTableSlots; ++i) ASSERT_EQ(kick[i], kExit) << i;
}

TEST(IndirectTables, GlobalBlocksAreInTheModesGlobalTableOnly) {
  IndirectTables t(kMiss, kExit);
  t.remember(1, kCpl0Mode, 0xc0002000, 0xc0002, host(0xdef), /*global=*/true);
  EXPECT_EQ(slot(t.global_slots(kCpl0Mode), 0xc0002000), 0xdefu);
  EXPECT_EQ(slot(t.global_slots(kUserMode), 0xc0002000), kMiss);  // CPL 3 must not find it
  EXPECT_EQ(slot(t.slots(7, kCpl0Mode), 0xc0002000), kMiss);      // a space probes it next
  // A page-directory change in a space keeps global blocks; INVLPG drops them.
  t.forget_pages(7, 0xc0002, 1, /*global=*/false);
  EXPECT_EQ(slot(t.global_slots(kCpl0Mode), 0xc0002000), 0xdefu);
  t.forget_page_everywhere(7, 0xc0002);
  EXPECT_EQ(slot(t.global_slots(kCpl0Mode), 0xc0002000), kMiss);
}

TEST(IndirectTables, DroppedPagesAndBlocksMissInEveryModeOfTheSpace) {
  IndirectTables t(kMiss, kExit);
  t.remember(3, kCpl0Mode, 0x08048000, 0x08048, host(0x10), false);
  t.remember(3, kUserMode, 0x08048010, 0x08048, host(0x20), false);
  t.remember(3, kUserMode, 0x08049000, 0x08049, host(0x30), false);
  t.forget_pages(3, 0x08048, 1, false);
  EXPECT_EQ(slot(t.slots(3, kCpl0Mode), 0x08048000), kMiss);
  EXPECT_EQ(slot(t.slots(3, kUserMode), 0x08048010), kMiss);
  EXPECT_EQ(slot(t.slots(3, kUserMode), 0x08049000), 0x30u);
  t.forget_block(0x08049000, host(0x30));
  EXPECT_EQ(slot(t.slots(3, kUserMode), 0x08049000), kMiss);
  // A slot taken over by another page's block is not emptied with the first page.
  t.remember(3, kUserMode, 0x0804a000, 0x0804a, host(0x40), false);
  t.remember(3, kUserMode, 0x0805a000, 0x0805a, host(0x50), false);  // same low 16 bits
  t.forget_pages(3, 0x0804a, 1, false);
  EXPECT_EQ(slot(t.slots(3, kUserMode), 0x0805a000), 0x50u);
}

TEST(IndirectTables, TheTwoMostRecentTargetsOfASlotAreBothFound) {
  // Targets 64 KiB apart share a slot (the low 16 bits); the second way (the victim slot after
  // it, which Stubs::indirect_miss probes next) keeps the one before.
  IndirectTables t(kMiss, kExit);
  const uint32_t a = 0x00401234, b = 0x00411234, c = 0x00421234;
  const size_t i = a & (kIndirectTableSize - 1);
  t.remember(4, kUserMode, a, a >> 12, host(0xa), false);
  t.remember(4, kUserMode, b, b >> 12, host(0xb), false);
  uint64_t* s = t.slots(4, kUserMode);
  EXPECT_EQ(s[i], 0xbu);
  EXPECT_EQ(s[i + 1], 0xau);
  EXPECT_TRUE(t.holds(4, kUserMode, a, host(0xa), false));
  t.remember(4, kUserMode, c, c >> 12, host(0xc), false);  // the oldest, a, goes
  EXPECT_EQ(s[i], 0xcu);
  EXPECT_EQ(s[i + 1], 0xbu);
  EXPECT_FALSE(t.holds(4, kUserMode, a, host(0xa), false));
  // Forgetting b's page empties its slot, wherever it is now; c stays.
  t.forget_pages(4, b >> 12, 1, false);
  EXPECT_EQ(s[i + 1], kMiss);
  EXPECT_EQ(s[i], 0xcu);
  // The last slot's victim is one past the index's range.
  const uint32_t last = 0x0040ffff;
  t.remember(4, kUserMode, last, last >> 12, host(0xd), false);
  t.remember(4, kUserMode, last + 0x10000, (last + 0x10000) >> 12, host(0xe), false);
  EXPECT_EQ(s[kIndirectTableSize], 0xdu);
  t.forget_block(last, host(0xd));
  EXPECT_EQ(s[kIndirectTableSize], kMiss);
}

TEST(IndirectTables, HostMemoryStaysBoundedWhateverTheGuestDoes) {
  // A guest cycling through thousands of page directories and modes (issue 17, defect 3).
  IndirectTables t(kMiss, kExit);
  for (uint32_t space = 0; space < 3000; ++space) {
    const uint32_t mode = (space % 11) << 8;
    t.remember(space << 12, mode, 0x1000 + space, 1, host(0x100 + space), space % 3 == 0);
    ASSERT_LE(t.live(), IndirectTables::kMaxTables + IndirectTables::kMaxGlobalTables);
  }
  EXPECT_GT(t.evictions(), 0u);
  const uint32_t last = 2998;  // the most recent non-global entry survives
  EXPECT_EQ(slot(t.slots(last << 12, (last % 11) << 8), 0x1000 + last), 0x100u + last);
  const size_t before = t.live();
  t.forget_pages(last << 12, 0, 1u << 20, false);  // a whole space forgotten frees its tables
  EXPECT_LT(t.live(), before);
  // Slots taken back and forth by two pages keep a bounded list (compacted) and stay right.
  for (uint32_t i = 0; i < 100000; ++i) {
    t.remember(5, kUserMode, (i & 1) ? 0x10000 : 0x20000, (i & 1) ? 0x10 : 0x20, host(i), false);
  }
  EXPECT_EQ(slot(t.slots(5, kUserMode), 0x10000), 99999u);
  t.forget_pages(5, 0x10, 1, false);
  EXPECT_EQ(slot(t.slots(5, kUserMode), 0x10000), kMiss);
}

}  // namespace
}  // namespace vmbt::bt
