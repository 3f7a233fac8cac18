// CLI, STI, PUSHF, POPF in protected mode: Intel SDM Vol. 2A CLI, Vol. 2B STI, PUSHF, POPF.
#include "tests/unit/system_guest_image.h"

namespace vmbt::bt::testing {
namespace {

using SysFlagsTest = SystemEmulatorTest;
using namespace eflags;

TEST_F(SysFlagsTest, PopfAtCpl3WithIopl0LeavesIfAndIoplUnchangedWithoutFault) {
  enter_cpl3();
  s.eflags = kFixed1 | kIf;  // IOPL 0
  s.gpr[kEsp] = kUserStackTop - 4;
  mem.put32(kUserStackTop - 4, kFixed1 | kCf | kZf | kIopl);  // IF=0, IOPL=3 in the image
  code({0x9d});
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kDone);
  EXPECT_EQ(s.eip, kCode + 1);
  EXPECT_EQ(s.gpr[kEsp], kUserStackTop);
  EXPECT_EQ(s.eflags, kFixed1 | kIf | kCf | kZf);  // IF kept, IOPL kept, arithmetic flags loaded
  EXPECT_EQ(s.seg[kCs].selector, kUserCs);         // no exception
}

TEST_F(SysFlagsTest, PopfAtCpl0ChangesIfAndIopl) {
  enter_cpl0();
  s.eflags = kFixed1 | kIf;
  s.gpr[kEsp] -= 4;
  mem.put32(s.gpr[kEsp], kFixed1 | kIopl | kOf);
  code({0x9d});
  step();
  EXPECT_EQ(s.eflags, kFixed1 | kIopl | kOf);
}

TEST_F(SysFlagsTest, PopfAtCpl3WithIopl3ChangesIfButNotIopl) {
  enter_cpl3();
  s.eflags = kFixed1 | kIopl;  // IOPL 3, IF 0
  s.gpr[kEsp] -= 4;
  mem.put32(s.gpr[kEsp], kFixed1 | kIf);  // IOPL 0 in the image
  code({0x9d});
  step();
  EXPECT_EQ(s.eflags, kFixed1 | kIopl | kIf);
}

TEST_F(SysFlagsTest, Popf32KeepsReservedBitsVmVifVipAndClearsRf) {
  enter_cpl0();
  s.gpr[kEsp] -= 4;
  mem.put32(s.gpr[kEsp], 0xffffffffu);
  code({0x9d});
  step();
  // Writable: CF PF AF ZF SF TF IF DF OF IOPL NT AC ID; bit 1 = 1; bits 3, 5, 15, 22-31 = 0;
  // RF cleared; VM, VIF, VIP unaffected (0).
  EXPECT_EQ(s.eflags, 0x00247fd7u);
}

TEST_F(SysFlagsTest, Popf16ChangesOnlyTheLowWord) {
  enter_cpl0();
  s.eflags = kFixed1 | kAc | kId;
  s.gpr[kEsp] -= 2;
  mem.put16(s.gpr[kEsp], 0xffff);
  code({0x66, 0x9d});
  step();
  EXPECT_EQ(s.eflags, kAc | kId | 0x7fd7u);
  EXPECT_EQ(s.gpr[kEsp], kKernelStackTop - 0x100);
  EXPECT_EQ(s.eip, kCode + 2);
}

TEST_F(SysFlagsTest, Popf16AtCpl3WithIopl0KeepsIf) {
  enter_cpl3();
  s.eflags = kFixed1;
  s.gpr[kEsp] -= 2;
  mem.put16(s.gpr[kEsp], kFixed1 | kIf | kIopl | kSf);
  code({0x66, 0x9d});
  step();
  EXPECT_EQ(s.eflags, kFixed1 | kSf);
}

TEST_F(SysFlagsTest, PushfClearsRfInTheImage) {
  enter_cpl0();
  s.eflags = kFixed1 | kRf | kAc | kIf | kCf;
  code({0x9c});
  step();
  EXPECT_EQ(s.gpr[kEsp], kKernelStackTop - 0x100 - 4);
  EXPECT_EQ(stack32(0), kFixed1 | kAc | kIf | kCf);  // EFLAGS AND 00FCFFFFH
}

TEST_F(SysFlagsTest, Pushf16PushesTheLowWord) {
  enter_cpl3();
  s.eflags = kFixed1 | kAc | kDf | kIopl;
  code({0x66, 0x9c});
  step();
  EXPECT_EQ(s.gpr[kEsp], kUserStackTop - 2);
  EXPECT_EQ(stack16(0), kFixed1 | kDf | kIopl);
}

TEST_F(SysFlagsTest, CliAtCpl3WithIopl0DeliversGpThroughTheIdtOnTheTssStack) {
  enter_cpl3();
  s.eflags = kFixed1 | kIf;
  code({0xfa});
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kDone);
  // #GP handler through the DPL0 interrupt gate, on SS0:ESP0 from the TSS.
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(s.seg[kCs].selector, kKernelCs);
  EXPECT_EQ(s.seg[kSs].selector, kKernelDs);
  EXPECT_EQ(s.gpr[kEsp], kKernelStackTop - 24);
  EXPECT_EQ(stack32(0), 0u);                   // error code 0
  EXPECT_EQ(stack32(1), kCode);                // faulting instruction
  EXPECT_EQ(stack32(2) & 0xffff, kUserCs);     // old CS
  EXPECT_EQ(stack32(3), kFixed1 | kIf | kRf);  // EFLAGS, RF=1 for a fault
  EXPECT_EQ(stack32(4), kUserStackTop);        // old ESP
  EXPECT_EQ(stack32(5) & 0xffff, kUserDs);     // old SS
  EXPECT_EQ(s.eflags, kFixed1);                // interrupt gate clears IF; RF, TF cleared
  EXPECT_TRUE((gdt(1) >> 40) & 1) << "Accessed bit set in the handler's CS descriptor";
}

TEST_F(SysFlagsTest, CliAtCpl3WithIopl3ClearsIf) {
  enter_cpl3();
  s.eflags = kFixed1 | kIf | kIopl;
  code({0xfa});
  step();
  EXPECT_EQ(s.eflags, kFixed1 | kIopl);
  EXPECT_EQ(s.eip, kCode + 1);
}

TEST_F(SysFlagsTest, StiSetsTheInterruptShadowOnlyWhenIfWasClear) {
  enter_cpl0();
  s.eflags = kFixed1;
  code({0xfb});
  step();
  EXPECT_EQ(s.eflags, kFixed1 | kIf);
  EXPECT_TRUE(emu.interrupt_shadow);
  s.eip = kCode;
  step();
  EXPECT_FALSE(emu.interrupt_shadow);
}

TEST_F(SysFlagsTest, StiAtCpl3WithIopl0RaisesGp) {
  enter_cpl3();
  s.eflags = kFixed1;
  code({0xfb});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0u);
  EXPECT_EQ(stack32(1), kCode);
  EXPECT_FALSE(emu.interrupt_shadow);
}

TEST_F(SysFlagsTest, SingleStepTrapAfterAnEmulatedInstruction) {
  enter_cpl0();
  s.eflags = kFixed1 | kTf | kIopl;
  code({0xfa});  // CLI with TF=1
  step();
  // #DB (trap) after CLI: DR6.BS set, return address is the next instruction.
  EXPECT_EQ(s.eip, handler(1));
  EXPECT_TRUE(s.dr[6] & (1u << 14));
  EXPECT_EQ(stack32(0), kCode + 1);
  EXPECT_EQ(stack32(2), kFixed1 | kTf | kIopl);
  EXPECT_FALSE(s.eflags & kTf);
}

TEST_F(SysFlagsTest, PopfThatSetsTfDoesNotTrapImmediately) {
  enter_cpl0();
  s.gpr[kEsp] -= 4;
  mem.put32(s.gpr[kEsp], kFixed1 | kTf);
  code({0x9d});
  step();
  EXPECT_EQ(s.eip, kCode + 1);
  EXPECT_EQ(s.eflags, kFixed1 | kTf);
}

TEST_F(SysFlagsTest, PushOntoAnExpandDownStackChecksTheLowerBound) {
  // Expand-down SS with limit 0xFFF and B=1: valid offsets are 0x1000..0xFFFFFFFF (Vol. 3A §5.3).
  enter_cpl3();
  s.seg[kSs] = loaded(kExpandDownDs, 0, 0xfff, 0x7, 3, true, false);
  s.gpr[kEsp] = 0x1004;
  code({0x9c});
  step();
  EXPECT_EQ(s.gpr[kEsp], 0x1000u);
  s.eip = kCode;
  step();  // would write 0xFFC..0xFFF: below the lower bound
  EXPECT_EQ(s.eip, handler(12));
  EXPECT_EQ(stack32(0), 0u);  // #SS(0)
  EXPECT_EQ(stack32(1), kCode);
  EXPECT_EQ(stack32(4), 0x1000u);  // ESP unchanged by the faulting PUSHF
}

}  // namespace
}  // namespace vmbt::bt::testing
