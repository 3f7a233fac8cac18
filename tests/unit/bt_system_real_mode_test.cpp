// Real-address mode in the system emulator: segment loads, far transfers, INT n / IRET and
// interrupt delivery through the interrupt vector table (Intel SDM Vol. 3A §20.1; the
// REAL-ADDRESS-MODE parts of the Vol. 2 pseudocode of MOV, JMP, CALL, RET, IRET, INT n).
#include "tests/unit/system_guest_image.h"

namespace vmbt::bt::testing {
namespace {

using namespace eflags;

class SysRealModeTest : public SystemEmulatorTest {
 protected:
  static constexpr uint16_t kCodeSeg = 0x1000;   // CS: code at 0x10000 (kCode)
  static constexpr uint16_t kStackSeg = 0x0800;  // SS: stack at 0x8000 + SP

  void SetUp() override {
    SystemEmulatorTest::SetUp();
    s.cr0 = cr0::kEt;  // PE = 0
    s.idtr = {0, 0x3ff};
    for (unsigned i = 0; i < 6; ++i) {
      SegmentReg& r = s.seg[i];
      r = SegmentReg{};
      r.selector = 0;
      r.base = 0;
      r.limit = 0xffff;
      r.type = i == kCs ? 0xb : 0x3;
      r.s = true;
      r.present = true;
    }
    s.seg[kCs].selector = kCodeSeg;
    s.seg[kCs].base = kCodeSeg << 4;
    s.seg[kSs].selector = kStackSeg;
    s.seg[kSs].base = kStackSeg << 4;
    s.eip = 0;
    s.gpr[kEsp] = 0xabcd0100;  // the upper half of ESP is left alone by a 16-bit stack
    s.eflags = kFixed1 | kIf | kCf;
  }

  uint16_t stack_word(unsigned i) const {
    return mem.u16(s.seg[kSs].base + ((s.gpr[kEsp] + 2 * i) & 0xffff));
  }
};

TEST_F(SysRealModeTest, IntNDeliversThroughTheInterruptVectorTable) {
  mem.put32(0x21 * 4, (0x2345u << 16) | 0x0678);  // IVT[0x21] = 2345:0678
  s.eflags |= kTf;
  code({0xcd, 0x21});
  StepResult r = step();
  ASSERT_EQ(r.kind, StepKind::kDone) << r.message;
  EXPECT_EQ(s.seg[kCs].selector, 0x2345);
  EXPECT_EQ(s.seg[kCs].base, 0x23450u);
  EXPECT_EQ(s.eip, 0x0678u);
  EXPECT_EQ(s.gpr[kEsp], 0xabcd00fau);  // SP - 6, upper half kept
  EXPECT_EQ(stack_word(0), 2);          // IP of the next instruction
  EXPECT_EQ(stack_word(1), kCodeSeg);
  EXPECT_EQ(stack_word(2), kFixed1 | kIf | kTf | kCf);
  EXPECT_EQ(s.eflags, kFixed1 | kCf);  // IF and TF cleared
}

TEST_F(SysRealModeTest, IretPopsIpCsAndFlags) {
  s.gpr[kEsp] = 0x0100;
  mem.put16(s.seg[kSs].base + 0x100, 0x1234);         // IP
  mem.put16(s.seg[kSs].base + 0x102, 0x2000);         // CS
  mem.put16(s.seg[kSs].base + 0x104, 0x3000 | 0xd5);  // IOPL 3, arithmetic flags, bit 1 clear
  code({0xcf});
  StepResult r = step();
  ASSERT_EQ(r.kind, StepKind::kDone) << r.message;
  EXPECT_EQ(s.seg[kCs].selector, 0x2000);
  EXPECT_EQ(s.seg[kCs].base, 0x20000u);
  EXPECT_EQ(s.eip, 0x1234u);
  EXPECT_EQ(s.gpr[kEsp], 0x106u);
  EXPECT_EQ(s.eflags, 0x3000u | 0xd5u | kFixed1);  // FLAGS[15:0] loaded; bit 1 reads as 1
}

TEST_F(SysRealModeTest, ExceptionsAreDeliveredWithoutAnErrorCode) {
  mem.put32(13 * 4, (0x0100u << 16) | 0x0020);
  StepResult r = emu.raise(s, 13, true, 0x1234);
  ASSERT_EQ(r.kind, StepKind::kDone) << r.message;
  EXPECT_EQ(s.eip, 0x20u);
  EXPECT_EQ(s.seg[kCs].base, 0x1000u);
  EXPECT_EQ(s.gpr[kEsp], 0xabcd00fau);  // three words: no error code in real mode
  EXPECT_EQ(stack_word(0), 0);          // the faulting IP
}

TEST_F(SysRealModeTest, AVectorPastTheIvtLimitEndsInAShutdown) {
  s.idtr = {0, 0x1f};  // vectors 0-7 only: #GP for 0x21, then #GP again -> #DF -> shutdown
  code({0xcd, 0x21});
  EXPECT_EQ(step().kind, StepKind::kShutdown);
}

TEST_F(SysRealModeTest, SegmentLoadsSetTheBaseAndKeepTheLimit) {
  s.seg[kDs].limit = 0xffffffff;  // "big real" mode: a limit set in protected mode stays
  s.gpr[kEax] = 0x1234;
  code({0x8e, 0xd8});  // mov ds, ax
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(s.seg[kDs].selector, 0x1234);
  EXPECT_EQ(s.seg[kDs].base, 0x12340u);
  EXPECT_EQ(s.seg[kDs].limit, 0xffffffffu);
}

TEST_F(SysRealModeTest, FarCallPushesCsAndIpAndFarRetReturns) {
  code({0x9a, 0x34, 0x12, 0x00, 0x30});  // call 3000:1234
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(s.seg[kCs].base, 0x30000u);
  EXPECT_EQ(s.eip, 0x1234u);
  EXPECT_EQ(stack_word(0), 5);  // return IP
  EXPECT_EQ(stack_word(1), kCodeSeg);
  code({0xca, 0x04, 0x00});  // retf 4
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(s.seg[kCs].selector, kCodeSeg);
  EXPECT_EQ(s.eip, 5u);
  EXPECT_EQ(s.gpr[kEsp], 0xabcd0104u);  // 0x100 - 4 + 4 + 4
}

TEST_F(SysRealModeTest, ProtectedModeOnlyInstructionsAreUndefined) {
  mem.put32(6 * 4, (0x0200u << 16) | 0x0010);  // #UD handler
  code({0x0f, 0x00, 0xc8});                    // str ax
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(s.seg[kCs].base, 0x2000u);
  EXPECT_EQ(s.eip, 0x10u);
}

TEST_F(SysRealModeTest, CliAndInWorkWithoutIoplChecks) {
  s.eflags = kFixed1 | kIf;  // IOPL 0: real mode has CPL 0, so no check applies
  code({0xfa});
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_FALSE(s.eflags & kIf);
}

}  // namespace
}  // namespace vmbt::bt::testing
