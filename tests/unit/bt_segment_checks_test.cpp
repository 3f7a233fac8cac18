// bt's segment checks for data accesses (bt/segment_checks.h; Intel SDM Vol. 3A §5.3-5.4, and
// §20.1-20.2 for real-address and virtual-8086 mode, where only the limit applies).
#include "bt/segment_checks.h"

#include <gtest/gtest.h>

namespace vmbt::bt {
namespace {

// CS as a far jump to 16-bit code leaves it: execute/read code, limit 0xFFFF, base 0.
SegmentReg code16() {
  SegmentReg r;
  r.limit = 0xffff;
  r.type = 0xb;
  r.s = true;
  r.present = true;
  return r;
}

VcpuState with_cs(uint32_t cr0, uint32_t eflags) {
  VcpuState s;
  s.cr0 = cr0;
  s.eflags = eflags;
  s.seg[kCs] = code16();
  return s;
}

TEST(SegmentChecks, ProtectedModeWriteThroughCodeSegmentIsGp0) {
  const VcpuState s = with_cs(cr0::kEt | cr0::kPe, eflags::kFixed1);
  auto f = check_access(s, kCs, 0x90fe, 4, true);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->vector, 13);
  EXPECT_FALSE(check_access(s, kCs, 0x90fe, 4, false).has_value()) << "readable code";
}

// GRUB's real-mode INT 13h glue: `mov cs:[0x90fe], eax` after `int 0x13` (grub_bios_interrupt).
TEST(SegmentChecks, RealModeWriteThroughCodeSegmentIsAllowed) {
  const VcpuState s = with_cs(cr0::kEt, eflags::kFixed1);
  EXPECT_FALSE(check_access(s, kCs, 0x90fe, 4, true).has_value());
}

TEST(SegmentChecks, RealModeStillChecksTheLimit) {
  const VcpuState s = with_cs(cr0::kEt, eflags::kFixed1);
  auto f = check_access(s, kCs, 0xfffe, 4, true);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->vector, 13);
  VcpuState ss = s;
  ss.seg[kSs] = code16();
  ss.seg[kSs].type = 0x3;
  auto g = check_access(ss, kSs, 0xffff, 2, false);
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->vector, 12);
}

TEST(SegmentChecks, RealModeAccessThroughASegmentProtectedModeLeftUnusableIsAllowed) {
  VcpuState s = with_cs(cr0::kEt, eflags::kFixed1);
  s.seg[kEs].unusable = true;
  s.seg[kEs].limit = 0xffff;
  EXPECT_FALSE(check_access(s, kEs, 0x10, 2, true).has_value());
}

TEST(SegmentChecks, Vm86WriteThroughCsIsAllowed) {
  const VcpuState s = with_cs(cr0::kEt | cr0::kPe, eflags::kFixed1 | eflags::kVm);
  EXPECT_FALSE(check_access(s, kCs, 0x100, 2, true).has_value());
}

}  // namespace
}  // namespace vmbt::bt
