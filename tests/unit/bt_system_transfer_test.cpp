// Far JMP/CALL/RET, call gates, SYSENTER/SYSEXIT (Intel SDM Vol. 2A CALL, JMP; Vol. 2B RET,
// SYSENTER, SYSEXIT; Vol. 3A §5.8).
#include "tests/unit/system_guest_image.h"

namespace vmbt::bt::testing {
namespace {

using SysTransferTest = SystemEmulatorTest;
using namespace eflags;

TEST_F(SysTransferTest, FarJmpToConformingCodeKeepsCplAndSetsRpl) {
  enter_cpl3();
  code({0xea, 0x00, 0x10, 0x00, 0x00, 0x40, 0x00});  // jmp 0x40:0x1000
  step();
  EXPECT_EQ(s.eip, 0x1000u);
  EXPECT_EQ(s.seg[kCs].selector, kConfCs | 3);  // RPL <- CPL
  EXPECT_EQ(s.seg[kCs].dpl, 0);
  EXPECT_EQ(s.seg[kSs].dpl, 3);  // CPL unchanged
  EXPECT_EQ(s.gpr[kEsp], kUserStackTop);
  EXPECT_TRUE((gdt(8) >> 40) & 1) << "Accessed bit set";
}

TEST_F(SysTransferTest, FarJmpToNonconformingCodeOfAnotherDplRaisesGp) {
  enter_cpl3();
  code({0xea, 0x00, 0x10, 0x00, 0x00, 0x08, 0x00});  // jmp 0x08:0x1000
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), uint32_t{kKernelCs});
}

TEST_F(SysTransferTest, FarJmpToNullSelectorRaisesGp0) {
  enter_cpl0();
  code({0xea, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00});
  const uint32_t esp = s.gpr[kEsp];
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(s.gpr[kEsp], esp - 16);
  EXPECT_EQ(stack32(0), 0u);
}

TEST_F(SysTransferTest, FarJmpToADataSegmentRaisesGp) {
  enter_cpl0();
  code({0xea, 0x00, 0x10, 0x00, 0x00, 0x10, 0x00});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), uint32_t{kKernelDs});
}

TEST_F(SysTransferTest, FarJmpBeyondTheCodeLimitRaisesGp0) {
  set_gdt(13, seg_desc(0, 0xfff, 0xb, true, 0, true, true, false));  // limit 0xFFF
  enter_cpl0();
  code({0xea, 0x00, 0x00, 0x01, 0x00, 0x68, 0x00});  // jmp 0x68:0x10000
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0u);
}

TEST_F(SysTransferTest, FarCallPushesCsAndEip) {
  enter_cpl0();
  const uint32_t esp = s.gpr[kEsp];
  code({0x9a, 0x00, 0x10, 0x00, 0x00, 0x40, 0x00});  // call 0x40:0x1000
  step();
  EXPECT_EQ(s.eip, 0x1000u);
  EXPECT_EQ(s.seg[kCs].selector, kConfCs);
  EXPECT_EQ(s.gpr[kEsp], esp - 8);
  EXPECT_EQ(stack32(0), kCode + 7);
  EXPECT_EQ(stack32(1) & 0xffff, kKernelCs);
}

TEST_F(SysTransferTest, FarCall16ThroughMemoryPushesWords) {
  enter_cpl0();
  const uint32_t esp = s.gpr[kEsp];
  mem.put16(0x60000, 0x2345);
  mem.put16(0x60002, kConfCs);
  code({0x66, 0xff, 0x1d, 0x00, 0x00, 0x06, 0x00});  // call far word [0x60000] (m16:16)
  step();
  EXPECT_EQ(s.eip, 0x2345u);
  EXPECT_EQ(s.gpr[kEsp], esp - 4);
  EXPECT_EQ(stack16(0), (kCode + 7) & 0xffff);
  EXPECT_EQ(stack16(1), kKernelCs);
}

TEST_F(SysTransferTest, CallThroughCallGateToCpl0SwitchesStacksAndCopiesParameters) {
  enter_cpl3();
  s.gpr[kEsp] = kUserStackTop - 8;
  mem.put32(kUserStackTop - 8, 0x11111111);          // parameter at ESP
  mem.put32(kUserStackTop - 4, 0x22222222);          // parameter at ESP+4
  code({0x9a, 0x00, 0x00, 0x00, 0x00, 0x3b, 0x00});  // call 0x3b:0 (gate, 2 parameters)
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kDone);
  EXPECT_EQ(s.eip, kGateTarget);  // offset from the gate, not the instruction
  EXPECT_EQ(s.seg[kCs].selector, kKernelCs);
  EXPECT_EQ(s.seg[kSs].selector, kKernelDs);
  EXPECT_EQ(s.seg[kSs].dpl, 0);
  EXPECT_EQ(s.gpr[kEsp], kKernelStackTop - 24);
  EXPECT_EQ(stack32(0), kCode + 7);
  EXPECT_EQ(stack32(1) & 0xffff, kUserCs);
  EXPECT_EQ(stack32(2), 0x11111111u);
  EXPECT_EQ(stack32(3), 0x22222222u);
  EXPECT_EQ(stack32(4), kUserStackTop - 8);
  EXPECT_EQ(stack32(5) & 0xffff, kUserDs);
}

TEST_F(SysTransferTest, CallThrough16BitCallGateCopiesWords) {
  enter_cpl3();
  s.gpr[kEsp] = kUserStackTop - 2;
  mem.put16(kUserStackTop - 2, 0xbeef);
  code({0x9a, 0x00, 0x00, 0x00, 0x00, 0x9b, 0x00});  // call 0x9b:0 (16-bit gate, 1 word)
  step();
  EXPECT_EQ(s.eip, 0x4000u);
  EXPECT_EQ(s.seg[kCs].selector, kKernelCs);
  EXPECT_EQ(s.gpr[kEsp], kKernelStackTop - 10);
  EXPECT_EQ(stack16(0), (kCode + 7) & 0xffff);
  EXPECT_EQ(stack16(1), kUserCs);
  EXPECT_EQ(stack16(2), 0xbeef);
  EXPECT_EQ(stack16(3), (kUserStackTop - 2) & 0xffff);
  EXPECT_EQ(stack16(4), kUserDs);
}

TEST_F(SysTransferTest, JmpThroughCallGateAtTheSamePrivilege) {
  enter_cpl3();
  code({0xea, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x00});  // jmp 0x7b:0 -> gate to user code
  step();
  EXPECT_EQ(s.eip, kGateTarget);
  EXPECT_EQ(s.seg[kCs].selector, kUserCs);
  EXPECT_EQ(s.gpr[kEsp], kUserStackTop);
}

TEST_F(SysTransferTest, JmpThroughCallGateToAMorePrivilegedSegmentRaisesGp) {
  enter_cpl3();
  code({0xea, 0x00, 0x00, 0x00, 0x00, 0x3b, 0x00});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), uint32_t{kKernelCs});
}

TEST_F(SysTransferTest, CallGateWithDplBelowCplRaisesGpWithTheGateSelector) {
  set_gdt(7, gate_desc(kKernelCs, kGateTarget, 0xc, 0, true, 2));
  enter_cpl3();
  code({0x9a, 0x00, 0x00, 0x00, 0x00, 0x3b, 0x00});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0x38u);
}

TEST_F(SysTransferTest, NotPresentCallGateRaisesNp) {
  set_gdt(7, gate_desc(kKernelCs, kGateTarget, 0xc, 3, false, 2));
  enter_cpl3();
  code({0x9a, 0x00, 0x00, 0x00, 0x00, 0x3b, 0x00});
  step();
  EXPECT_EQ(s.eip, handler(11));
  EXPECT_EQ(stack32(0), 0x38u);
}

TEST_F(SysTransferTest, FarRetImmToAnOuterLevelReleasesParametersAndNullsDataSegments) {
  enter_cpl0();
  const uint32_t esp = s.gpr[kEsp];
  mem.put32(esp + 0, 0x20000);  // EIP
  mem.put32(esp + 4, kUserCs);  // CS
  mem.put32(esp + 8, 0xaaaa);   // parameters
  mem.put32(esp + 12, 0xbbbb);
  mem.put32(esp + 16, 0x7ff8);   // ESP
  mem.put32(esp + 20, kUserDs);  // SS
  s.seg[kEs] = loaded(kUserDs, 0, 0xffffffff, 0x3, 3);
  code({0xca, 0x08, 0x00});  // retf 8
  step();
  EXPECT_EQ(s.eip, 0x20000u);
  EXPECT_EQ(s.seg[kCs].selector, kUserCs);
  EXPECT_EQ(s.seg[kSs].selector, kUserDs);
  EXPECT_EQ(s.seg[kSs].dpl, 3);
  EXPECT_EQ(s.gpr[kEsp], 0x7ff8u + 8);  // callee's parameters released on the outer stack too
  EXPECT_TRUE(s.seg[kDs].unusable);     // DPL0 data not visible at CPL3
  EXPECT_FALSE(s.seg[kEs].unusable);
}

TEST_F(SysTransferTest, FarRetSameLevel) {
  enter_cpl0();
  const uint32_t esp = s.gpr[kEsp];
  mem.put32(esp + 0, 0x33333);
  mem.put32(esp + 4, kConfCs);
  code({0xcb});
  step();
  EXPECT_EQ(s.eip, 0x33333u);
  EXPECT_EQ(s.seg[kCs].selector, kConfCs);
  EXPECT_EQ(s.gpr[kEsp], esp + 8);
  EXPECT_FALSE(s.seg[kDs].unusable);
}

TEST_F(SysTransferTest, FarRet16PopsWords) {
  enter_cpl0();
  const uint32_t esp = s.gpr[kEsp];
  mem.put16(esp + 0, 0x1234);
  mem.put16(esp + 2, kKernelCs);
  code({0x66, 0xcb});
  step();
  EXPECT_EQ(s.eip, 0x1234u);
  EXPECT_EQ(s.gpr[kEsp], esp + 4);
}

TEST_F(SysTransferTest, FarRetToAMorePrivilegedLevelRaisesGp) {
  enter_cpl3();
  const uint32_t esp = s.gpr[kEsp] = kUserStackTop - 8;
  mem.put32(esp + 0, 0x1000);
  mem.put32(esp + 4, kKernelCs);
  code({0xcb});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), uint32_t{kKernelCs});
}

TEST_F(SysTransferTest, FarRetToOuterLevelWithBadStackSelectorRaisesGp) {
  enter_cpl0();
  const uint32_t esp = s.gpr[kEsp];
  mem.put32(esp + 0, 0x20000);
  mem.put32(esp + 4, kUserCs);
  mem.put32(esp + 8, 0x7000);
  mem.put32(esp + 12, kKernelDs | 3);  // RPL3 but DPL0
  code({0xcb});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), uint32_t{kKernelDs});
  EXPECT_EQ(stack32(1), kCode);
}

TEST_F(SysTransferTest, SysenterSysexitRoundTrip) {
  s.sysenter_cs = kKernelCs;
  s.sysenter_esp = kKernelStackTop;
  s.sysenter_eip = 0x50000;
  enter_cpl3();
  s.eflags = kFixed1 | kIf;
  code({0x0f, 0x34});
  step();
  EXPECT_EQ(s.eip, 0x50000u);
  EXPECT_EQ(s.gpr[kEsp], kKernelStackTop);
  EXPECT_EQ(s.seg[kCs].selector, kKernelCs);
  EXPECT_EQ(s.seg[kSs].selector, kKernelCs + 8);
  EXPECT_EQ(s.seg[kSs].dpl, 0);
  EXPECT_EQ(s.seg[kCs].base, 0u);
  EXPECT_EQ(s.seg[kCs].limit, 0xffffffffu);
  EXPECT_EQ(s.seg[kCs].type, 0xb);
  EXPECT_EQ(s.seg[kSs].type, 0x3);
  EXPECT_EQ(s.eflags, kFixed1);  // IF cleared

  s.gpr[kEcx] = 0x7000;
  s.gpr[kEdx] = 0x20000;
  code({0x0f, 0x35});
  step();
  EXPECT_EQ(s.eip, 0x20000u);
  EXPECT_EQ(s.gpr[kEsp], 0x7000u);
  EXPECT_EQ(s.seg[kCs].selector, kKernelCs + 16 + 3);
  EXPECT_EQ(s.seg[kSs].selector, kKernelCs + 24 + 3);
  EXPECT_EQ(s.seg[kCs].dpl, 3);
  EXPECT_EQ(s.seg[kSs].dpl, 3);
  EXPECT_TRUE(s.seg[kCs].db);
}

TEST_F(SysTransferTest, SysenterWithNullSysenterCsRaisesGp) {
  enter_cpl3();
  s.sysenter_cs = 0x3;
  code({0x0f, 0x34});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0u);
}

TEST_F(SysTransferTest, SysexitAtCpl3RaisesGp) {
  enter_cpl3();
  s.sysenter_cs = kKernelCs;
  code({0x0f, 0x35});
  step();
  EXPECT_EQ(s.eip, handler(13));
}

TEST_F(SysTransferTest, CallGateWithANotPresentInnerStackRaisesSs) {
  mem.put16(kTss + 8, 0x48);                          // SS0 = GDT 9: not present
  set_idt(12, gate_desc(0xa8, handler(12), 0xe, 0));  // #SS handler at DPL1 (SS1 stack)
  enter_cpl3();
  code({0x9a, 0x00, 0x00, 0x00, 0x00, 0x3b, 0x00});
  step();
  EXPECT_EQ(s.eip, handler(12));
  EXPECT_EQ(s.seg[kSs].selector, 0xb1);
  EXPECT_EQ(stack32(0), 0x48u);  // #SS(new SS selector), EXT=0 for CALL
  EXPECT_EQ(stack32(1), kCode);
}

TEST_F(SysTransferTest, FarJmpThroughATaskGateDoesNotNest) {
  // JMP (Intel SDM Vol. 3A §8.3, Table 8-2): the old TSS becomes available, the new one busy, no
  // back link, NT clear.
  constexpr uint32_t tss = 0xA000;
  mem.put32(tss + 0x20, 0x20000);
  mem.put32(tss + 0x24, 0x2 | kNt);  // NT as the TSS holds it is kept for JMP
  mem.put32(tss + 0x38, 0x7800);
  const uint16_t sels[6] = {kUserDs, kUserCs, kUserDs, kUserDs, kUserDs, kUserDs};
  for (unsigned i = 0; i < 6; ++i) mem.put16(tss + 0x48 + 4 * i, sels[i]);
  set_gdt(6, seg_desc(tss, 0x67, 0x9, false, 3, true, false, false));
  set_gdt(15, gate_desc(kTss2Sel, 0, 0x5, 3));
  enter_cpl3();
  code({0xea, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x00});
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(s.eip, 0x20000u);
  EXPECT_EQ(s.seg[kCs].selector, kUserCs);
  EXPECT_EQ(s.tr.selector, kTss2Sel);
  EXPECT_EQ((gdt(5) >> 40) & 0xf, 0x9u);  // the TSS left by JMP is available
  EXPECT_EQ((gdt(6) >> 40) & 0xf, 0xbu);
  EXPECT_EQ(mem.u16(tss), 0u);  // no back link
  EXPECT_EQ(s.eflags & kNt, kNt);
  EXPECT_EQ(mem.u32(kTss + 0x20), kCode + 7);
}

TEST_F(SysTransferTest, FarCallToATssWithASegmentFaultChangesNothing) {
  // A TSS whose CS is a data segment: #TS(CS) before anything is written (vmbt checks all of
  // Table 8-1 before the commit point).
  constexpr uint32_t tss = 0xA000;
  mem.put32(tss + 0x20, 0x20000);
  mem.put32(tss + 0x24, 0x2);
  for (unsigned i = 0; i < 6; ++i) mem.put16(tss + 0x48 + 4 * i, kKernelDs);
  set_gdt(6, seg_desc(tss, 0x67, 0x9, false, 0, true, false, false));
  enter_cpl0();
  const uint64_t old_tss_desc = gdt(5);
  code({0x9a, 0x00, 0x00, 0x00, 0x00, 0x30, 0x00});
  step();
  expect_at_handler(10);
  EXPECT_EQ(stack32(0), uint32_t{kKernelDs});
  EXPECT_EQ(gdt(5), old_tss_desc);
  EXPECT_EQ((gdt(6) >> 40) & 0xf, 0x9u);
  EXPECT_EQ(s.tr.selector, kTssSel);
}

}  // namespace
}  // namespace vmbt::bt::testing
