// INT n / INT3 / INTO / INT1, exception and interrupt delivery, double and triple faults, IRET
// (Intel SDM Vol. 2A INT n, IRET; Vol. 3A §6.10-6.15, Table 6-5).
#include "tests/unit/system_guest_image.h"

namespace vmbt::bt::testing {
namespace {

using SysInterruptTest = SystemEmulatorTest;
using namespace eflags;

constexpr uint8_t kIntGate32 = 0xe, kTrapGate32 = 0xf, kIntGate16 = 0x6, kTaskGate = 0x5;

TEST_F(SysInterruptTest, Int80FromCpl3ThroughDpl3TrapGateKeepsIf) {
  set_idt(0x80, gate_desc(kKernelCs, 0x50000, kTrapGate32, 3));
  enter_cpl3();
  s.eflags = kFixed1 | kIf | kTf;
  code({0xcd, 0x80});
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kDone);
  EXPECT_EQ(s.eip, 0x50000u);
  EXPECT_EQ(s.seg[kCs].selector, kKernelCs);
  EXPECT_EQ(s.seg[kSs].selector, kKernelDs);
  EXPECT_EQ(s.gpr[kEsp], kKernelStackTop - 20);  // SS, ESP, EFLAGS, CS, EIP; no error code
  EXPECT_EQ(stack32(0), kCode + 2);              // return address: next instruction
  EXPECT_EQ(stack32(1) & 0xffff, kUserCs);
  EXPECT_EQ(stack32(2), kFixed1 | kIf | kTf);  // RF=0 for a software interrupt
  EXPECT_EQ(stack32(3), kUserStackTop);
  EXPECT_EQ(stack32(4) & 0xffff, kUserDs);
  EXPECT_EQ(s.eflags, kFixed1 | kIf);  // trap gate: IF kept; TF cleared
}

TEST_F(SysInterruptTest, Int80FromCpl3ThroughDpl3InterruptGateClearsIf) {
  set_idt(0x80, gate_desc(kKernelCs, 0x50000, kIntGate32, 3));
  enter_cpl3();
  s.eflags = kFixed1 | kIf;
  code({0xcd, 0x80});
  step();
  EXPECT_EQ(s.eip, 0x50000u);
  EXPECT_EQ(s.eflags, kFixed1);
  EXPECT_EQ(stack32(2), kFixed1 | kIf);
}

TEST_F(SysInterruptTest, IntThroughDpl0GateFromCpl3RaisesGpWithIdtErrorCode) {
  enter_cpl3();
  code({0xcd, 0x80});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0x80u * 8 + 2);  // IDT bit set, EXT=0 for INT n
  EXPECT_EQ(stack32(1), kCode);          // fault: return to the INT instruction
}

TEST_F(SysInterruptTest, Int3AndIntoCheckTheGateDpl) {
  enter_cpl3();
  code({0xcc});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 3u * 8 + 2);
}

TEST_F(SysInterruptTest, IntoOnlyWhenOfIsSet) {
  set_idt(4, gate_desc(kKernelCs, handler(4), kTrapGate32, 3));
  enter_cpl3();
  code({0xce});
  step();
  EXPECT_EQ(s.eip, kCode + 1);  // OF=0: no interrupt
  EXPECT_EQ(s.seg[kCs].selector, kUserCs);
  s.eip = kCode;
  s.eflags |= kOf;
  step();
  EXPECT_EQ(s.eip, handler(4));
  EXPECT_EQ(stack32(0), kCode + 1);
}

TEST_F(SysInterruptTest, Int1IgnoresTheGateDpl) {
  enter_cpl3();
  code({0xf1});
  step();
  EXPECT_EQ(s.eip, handler(1));
  EXPECT_EQ(stack32(0), kCode + 1);
}

TEST_F(SysInterruptTest, NotPresentGateRaisesNp) {
  set_idt(0x81, gate_desc(kKernelCs, 0x50000, kIntGate32, 3, /*present=*/false));
  enter_cpl3();
  code({0xcd, 0x81});
  step();
  EXPECT_EQ(s.eip, handler(11));
  EXPECT_EQ(stack32(0), 0x81u * 8 + 2);
  EXPECT_EQ(stack32(1), kCode);
}

TEST_F(SysInterruptTest, NotPresentGateForAnExternalInterruptSetsExt) {
  set_idt(0x30, gate_desc(kKernelCs, 0x50000, kIntGate32, 0, /*present=*/false));
  enter_cpl0();
  s.eflags = kFixed1 | kIf;
  StepResult r = emu.deliver_interrupt(s, 0x30);
  EXPECT_EQ(r.kind, StepKind::kDone);
  EXPECT_EQ(s.eip, handler(11));
  EXPECT_EQ(stack32(0), 0x30u * 8 + 2 + 1);  // IDT + EXT
  EXPECT_EQ(stack32(1), kCode);
}

TEST_F(SysInterruptTest, VectorBeyondTheIdtLimitRaisesGp) {
  s.idtr.limit = 0x80 * 8 - 1;
  set_idt(0x80, gate_desc(kKernelCs, 0x50000, kIntGate32, 3));
  enter_cpl3();
  code({0xcd, 0x80});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0x80u * 8 + 2);
}

TEST_F(SysInterruptTest, ExternalInterruptIgnoresGateDplAndPushesNoErrorCode) {
  enter_cpl3();
  s.eflags = kFixed1 | kIf;
  s.eip = 0x12345;
  StepResult r = emu.deliver_interrupt(s, 0x20);
  EXPECT_EQ(r.kind, StepKind::kDone);
  EXPECT_EQ(s.eip, handler(0x20));
  EXPECT_EQ(s.gpr[kEsp], kKernelStackTop - 20);
  EXPECT_EQ(stack32(0), 0x12345u);
  EXPECT_EQ(stack32(2), kFixed1 | kIf);
  EXPECT_EQ(s.eflags, kFixed1);
}

TEST_F(SysInterruptTest, GateToADataSegmentRaisesGpWithSelectorAndExt) {
  set_idt(0x31, gate_desc(kKernelDs, 0x50000, kIntGate32, 0));
  enter_cpl0();
  emu.deliver_interrupt(s, 0x31);
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), uint32_t{kKernelDs} | 1);
}

TEST_F(SysInterruptTest, SamePrivilegeInterruptDoesNotSwitchStacks) {
  set_idt(0x80, gate_desc(kKernelCs, 0x50000, kTrapGate32, 3));
  enter_cpl0();
  const uint32_t esp = s.gpr[kEsp];
  s.eflags = kFixed1 | kIf;
  code({0xcd, 0x80});
  step();
  EXPECT_EQ(s.gpr[kEsp], esp - 12);
  EXPECT_EQ(stack32(0), kCode + 2);
  EXPECT_EQ(stack32(1) & 0xffff, kKernelCs);
  EXPECT_EQ(stack32(2), kFixed1 | kIf);
  EXPECT_EQ(s.seg[kSs].selector, kKernelDs);
}

TEST_F(SysInterruptTest, SixteenBitGatePushesWordsAndUsesTheLowOffset) {
  set_idt(0x40, gate_desc(kKernelCs, 0x12345, kIntGate16, 0));
  enter_cpl0();
  const uint32_t esp = s.gpr[kEsp];
  s.eflags = kFixed1 | kIf | kAc;
  emu.deliver_interrupt(s, 0x40);
  EXPECT_EQ(s.eip, 0x2345u);
  EXPECT_EQ(s.gpr[kEsp], esp - 6);
  EXPECT_EQ(stack16(0), kCode & 0xffff);
  EXPECT_EQ(stack16(1), kKernelCs);
  EXPECT_EQ(stack16(2), kFixed1 | kIf);
}

/// A second 32-bit TSS at 0xA000 (GDT 6, available) whose task runs kernel code at 0x20000 on a
/// stack at 0x7800 with EFLAGS 0x2 (Intel SDM Vol. 3A Figure 8-2).
void put_task(FakeMemory& mem) {
  constexpr uint32_t tss = 0xA000;
  for (uint32_t i = 0; i < 0x68; i += 4) mem.put32(tss + i, 0);
  mem.put32(tss + 0x20, 0x20000);                                 // EIP
  mem.put32(tss + 0x24, 0x2);                                     // EFLAGS
  mem.put32(tss + 0x38, 0x7800);                                  // ESP
  mem.put32(tss + 0x40, 0x5151);                                  // ESI
  const uint16_t sels[6] = {0x10, 0x08, 0x10, 0x10, 0x10, 0x10};  // ES CS SS DS FS GS
  for (unsigned i = 0; i < 6; ++i) mem.put16(tss + 0x48 + 4 * i, sels[i]);
}

TEST_F(SysInterruptTest, IntThroughATaskGateSwitchesTasksAndIretReturns) {
  put_task(mem);
  set_gdt(6, seg_desc(0xA000, 0x67, 0x9, false, 0, true, false, false));
  set_idt(0x82, gate_desc(kTss2Sel, 0, kTaskGate, 3));
  enter_cpl3();
  s.gpr[kEsi] = 0x3333;
  s.eflags = kFixed1 | kIf;
  code({0xcd, 0x82});
  ASSERT_EQ(step().kind, StepKind::kDone);
  // The new task (§8.3): its registers, NT set (nested), TR, busy bit, back link, CR0.TS.
  EXPECT_EQ(s.eip, 0x20000u);
  EXPECT_EQ(s.seg[kCs].selector, kKernelCs);
  EXPECT_EQ(s.gpr[kEsp], 0x7800u);
  EXPECT_EQ(s.gpr[kEsi], 0x5151u);
  EXPECT_EQ(s.eflags & (kNt | kIf), kNt);
  EXPECT_EQ(s.tr.selector, kTss2Sel);
  EXPECT_EQ((gdt(6) >> 40) & 0xf, 0xbu);
  EXPECT_EQ(mem.u16(0xA000), kTssSel);
  EXPECT_TRUE(s.cr0 & cr0::kTs);
  // The old task's state in its TSS: EIP past INT n, its EFLAGS, selectors, registers.
  EXPECT_EQ(mem.u32(kTss + 0x20), kCode + 2);
  EXPECT_EQ(mem.u32(kTss + 0x24), kFixed1 | kIf);
  EXPECT_EQ(mem.u16(kTss + 0x4c), kUserCs);
  EXPECT_EQ(mem.u32(kTss + 0x40), 0x3333u);
  // IRET with NT: back to the task in the back link, which resumes after its INT.
  code({0xcf});
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(s.eip, kCode + 2);
  EXPECT_EQ(s.seg[kCs].selector, kUserCs);
  EXPECT_EQ(s.gpr[kEsi], 0x3333u);
  EXPECT_EQ(s.eflags & (kNt | kIf), kIf);
  EXPECT_EQ(s.tr.selector, kTssSel);
  EXPECT_EQ((gdt(6) >> 40) & 0xf, 0x9u);        // IRET frees the task it leaves
  EXPECT_EQ(mem.u32(0xA000 + 0x20), 0x20001u);  // that task resumes after its IRET
}

TEST_F(SysInterruptTest, ExceptionThroughATaskGatePushesItsErrorCodeOnTheNewStack) {
  put_task(mem);
  set_gdt(6, seg_desc(0xA000, 0x67, 0x9, false, 0, true, false, false));
  set_idt(13, gate_desc(kTss2Sel, 0, kTaskGate, 0));
  enter_cpl0();
  ASSERT_EQ(emu.raise(s, 13, true, 0x28).kind, StepKind::kDone);
  EXPECT_EQ(s.eip, 0x20000u);
  EXPECT_EQ(s.gpr[kEsp], 0x7800u - 4);
  EXPECT_EQ(stack32(0), 0x28u);
  EXPECT_EQ(mem.u32(kTss + 0x20), kCode);  // a fault: the old task resumes at the instruction
  EXPECT_EQ(mem.u32(kTss + 0x24) & kRf, kRf);
}

TEST_F(SysInterruptTest, TaskGateToABusyTssRaisesGp) {
  set_idt(0x82, gate_desc(kTssSel, 0, kTaskGate, 3));  // the running task's own (busy) TSS
  enter_cpl3();
  code({0xcd, 0x82});
  step();
  expect_at_handler(13);
  EXPECT_EQ(stack32(0), uint32_t{kTssSel});
}

TEST_F(SysInterruptTest, RaiseDeliversAFaultWithItsErrorCodeAndRf) {
  enter_cpl0();
  const uint32_t esp = s.gpr[kEsp];
  s.eflags = kFixed1 | kIf;
  StepResult r = emu.raise(s, 13, true, 0x28);
  EXPECT_EQ(r.kind, StepKind::kDone);
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(s.gpr[kEsp], esp - 16);
  EXPECT_EQ(stack32(0), 0x28u);
  EXPECT_EQ(stack32(1), kCode);
  EXPECT_EQ(stack32(3), kFixed1 | kIf | kRf);
}

TEST_F(SysInterruptTest, RaiseDivideErrorPushesNoErrorCode) {
  enter_cpl0();
  const uint32_t esp = s.gpr[kEsp];
  emu.raise(s, 0);
  EXPECT_EQ(s.eip, handler(0));
  EXPECT_EQ(s.gpr[kEsp], esp - 12);
  EXPECT_EQ(stack32(0), kCode);
}

TEST_F(SysInterruptTest, DoubleFaultFromNpDuringGpDelivery) {
  set_idt(13, gate_desc(kKernelCs, handler(13), kIntGate32, 0, /*present=*/false));
  enter_cpl3();
  s.eflags = kFixed1 | kIf;
  code({0xfa});  // CLI at CPL3 -> #GP(0) -> gate not present -> #NP -> #DF
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kDone);
  EXPECT_EQ(s.eip, handler(8));
  EXPECT_EQ(s.seg[kSs].selector, kKernelDs);
  EXPECT_EQ(s.gpr[kEsp], kKernelStackTop - 24);
  EXPECT_EQ(stack32(0), 0u);  // #DF error code is 0
  EXPECT_EQ(stack32(1), kCode);
  EXPECT_EQ(stack32(2) & 0xffff, kUserCs);
  EXPECT_EQ(stack32(4), kUserStackTop);
}

TEST_F(SysInterruptTest, BenignThenContributoryIsDeliveredSerially) {
  set_idt(6, gate_desc(kKernelCs, handler(6), kIntGate32, 0, /*present=*/false));
  enter_cpl0();
  code({0x0f, 0x0b});  // UD2 -> #UD -> gate not present -> #NP(6*8+2+EXT)
  step();
  EXPECT_EQ(s.eip, handler(11));
  EXPECT_EQ(stack32(0), 6u * 8 + 2 + 1);
  EXPECT_EQ(stack32(1), kCode);
}

TEST_F(SysInterruptTest, TripleFaultShutsDown) {
  set_idt(13, gate_desc(kKernelCs, handler(13), kIntGate32, 0, false));
  set_idt(8, gate_desc(kKernelCs, handler(8), kIntGate32, 0, false));
  enter_cpl3();
  code({0xfa});
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kShutdown);
  EXPECT_NE(r.message.find("triple fault"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("00010000"), std::string::npos) << r.message;
  EXPECT_EQ(s.eip, kCode);
  EXPECT_EQ(s.seg[kCs].selector, kUserCs);
}

TEST_F(SysInterruptTest, PageFaultDuringPageFaultDeliveryIsADoubleFault) {
  // #PF handler runs at DPL1, whose stack (SS1:ESP1 = 0xb1:0x6000) is not mapped.
  set_idt(14, gate_desc(0xa8, handler(14), kIntGate32, 0));
  mem.not_present.insert(0x5);
  enter_cpl3();
  StepResult r = emu.raise(s, 14, true, 0x4);
  EXPECT_EQ(r.kind, StepKind::kDone);
  EXPECT_EQ(s.eip, handler(8));
  EXPECT_EQ(s.cr2, 0x5ffcu);  // the first push onto the DPL1 stack
  EXPECT_EQ(stack32(0), 0u);
  EXPECT_EQ(stack32(1), kCode);
}

TEST_F(SysInterruptTest, PageFaultDuringGpDeliveryIsDeliveredSerially) {
  set_idt(13, gate_desc(0xa8, handler(13), kIntGate32, 0));
  mem.not_present.insert(0x5);
  enter_cpl3();
  code({0xfa});
  step();
  EXPECT_EQ(s.eip, handler(14));
  EXPECT_EQ(s.cr2, 0x5ffcu);
  EXPECT_EQ(stack32(0), 0x2u);  // not present, write, supervisor
  EXPECT_EQ(stack32(1), kCode);
}

TEST_F(SysInterruptTest, NullStackSelectorInTheTssRaisesTs) {
  set_idt(0x50, gate_desc(0xa8, 0x50000, kIntGate32, 3));  // to a DPL1 code segment
  mem.put16(kTss + 16, 0);                                 // SS1 = null
  enter_cpl3();
  code({0xcd, 0x50});
  step();
  EXPECT_EQ(s.eip, handler(10));
  EXPECT_EQ(stack32(0), 0u);  // #TS(EXT), EXT=0 for INT n
  EXPECT_EQ(stack32(1), kCode);
}

TEST_F(SysInterruptTest, StackSelectorRplMismatchRaisesTsWithTheSelector) {
  set_idt(0x50, gate_desc(0xa8, 0x50000, kIntGate32, 3));
  mem.put16(kTss + 16, 0xb0);  // RPL 0 for a DPL1 handler
  enter_cpl3();
  code({0xcd, 0x50});
  step();
  EXPECT_EQ(s.eip, handler(10));
  EXPECT_EQ(stack32(0), 0xb0u);
}

TEST_F(SysInterruptTest, InterruptToDpl1UsesSs1Esp1) {
  set_idt(0x50, gate_desc(0xa8, 0x50000, kIntGate32, 3));
  enter_cpl3();
  code({0xcd, 0x50});
  step();
  EXPECT_EQ(s.eip, 0x50000u);
  EXPECT_EQ(s.seg[kCs].selector, 0xa9);
  EXPECT_EQ(s.seg[kSs].selector, 0xb1);
  EXPECT_EQ(s.seg[kSs].dpl, 1);
  EXPECT_EQ(s.gpr[kEsp], 0x6000u - 20);
}

// IRET (Intel SDM Vol. 2A IRET).

TEST_F(SysInterruptTest, IretToCpl3RestoresSsEspAndNullsDpl0DataSegments) {
  enter_cpl0();
  s.seg[kEs] = loaded(kUserDs, 0, 0xffffffff, 0x3, 3);
  s.seg[kFs] = loaded(kConfCs, 0, 0xffffffff, 0xf, 0);  // conforming code: kept
  s.seg[kGs] = loaded(0x88, 0, 0xffffffff, 0x3, 1);     // DPL1 data: nulled
  s.gpr[kEsp] = kKernelStackTop - 20;
  mem.put32(s.gpr[kEsp] + 0, 0x20000);
  mem.put32(s.gpr[kEsp] + 4, kUserCs);
  mem.put32(s.gpr[kEsp] + 8, kFixed1 | kIf | kIopl | kCf);
  mem.put32(s.gpr[kEsp] + 12, 0x7000);
  mem.put32(s.gpr[kEsp] + 16, kUserDs);
  code({0xcf});
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kDone);
  EXPECT_EQ(s.eip, 0x20000u);
  EXPECT_EQ(s.seg[kCs].selector, kUserCs);
  EXPECT_EQ(s.seg[kSs].selector, kUserDs);
  EXPECT_EQ(s.seg[kSs].dpl, 3);
  EXPECT_EQ(s.gpr[kEsp], 0x7000u);
  EXPECT_EQ(s.eflags, kFixed1 | kIf | kIopl | kCf);  // CPL0: IF and IOPL loaded
  EXPECT_EQ(s.seg[kDs].selector, 0);
  EXPECT_TRUE(s.seg[kDs].unusable);
  EXPECT_EQ(s.seg[kEs].selector, kUserDs);
  EXPECT_FALSE(s.seg[kEs].unusable);
  EXPECT_EQ(s.seg[kFs].selector, kConfCs);
  EXPECT_TRUE(s.seg[kGs].unusable);
}

TEST_F(SysInterruptTest, IretSameLevelAtCpl0) {
  enter_cpl0();
  const uint32_t esp = s.gpr[kEsp];
  mem.put32(esp + 0, 0x11111);
  mem.put32(esp + 4, kKernelCs);
  mem.put32(esp + 8, kFixed1 | kIf | kRf | kAc);
  code({0xcf});
  step();
  EXPECT_EQ(s.eip, 0x11111u);
  EXPECT_EQ(s.gpr[kEsp], esp + 12);
  EXPECT_EQ(s.eflags, kFixed1 | kIf | kRf | kAc);  // RF loaded by IRET stays set
}

TEST_F(SysInterruptTest, IretAtCpl3CannotChangeIfOrIopl) {
  enter_cpl3();
  s.eflags = kFixed1;
  const uint32_t esp = s.gpr[kEsp] = kUserStackTop - 12;
  mem.put32(esp + 0, 0x22222);
  mem.put32(esp + 4, kUserCs);
  mem.put32(esp + 8, kFixed1 | kIf | kIopl | kZf);
  code({0xcf});
  step();
  EXPECT_EQ(s.eip, 0x22222u);
  EXPECT_EQ(s.eflags, kFixed1 | kZf);
}

TEST_F(SysInterruptTest, Iret16PopsWords) {
  enter_cpl0();
  s.eflags = kFixed1 | kAc;
  const uint32_t esp = s.gpr[kEsp];
  mem.put16(esp + 0, 0x1234);
  mem.put16(esp + 2, kKernelCs);
  mem.put16(esp + 4, kFixed1 | kDf);
  code({0x66, 0xcf});
  step();
  EXPECT_EQ(s.eip, 0x1234u);
  EXPECT_EQ(s.gpr[kEsp], esp + 6);
  EXPECT_EQ(s.eflags, kFixed1 | kDf | kAc);  // AC is above the popped word: unchanged
}

TEST_F(SysInterruptTest, IretToAMorePrivilegedLevelRaisesGp) {
  enter_cpl3();
  const uint32_t esp = s.gpr[kEsp] = kUserStackTop - 12;
  mem.put32(esp + 0, 0x22222);
  mem.put32(esp + 4, kKernelCs);
  mem.put32(esp + 8, kFixed1);
  code({0xcf});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), uint32_t{kKernelCs});
}

TEST_F(SysInterruptTest, IretWithNtToAnAvailableTssRaisesTs) {
  // The back link must name a busy TSS (Intel SDM Vol. 2A IRET "TASK-RETURN"): #TS(link).
  enter_cpl0();
  mem.put16(kTss, kTss2Sel);  // available
  s.eflags = kFixed1 | kNt;
  code({0xcf});
  step();
  expect_at_handler(10);
  EXPECT_EQ(stack32(0), uint32_t{kTss2Sel});
}

}  // namespace
}  // namespace vmbt::bt::testing
