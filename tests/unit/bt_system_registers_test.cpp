// System registers and tables, MSRs, CPUID, HLT, #UD and instruction fetch (Intel SDM Vol. 2
// LGDT ... WRMSR; Vol. 3A §2.5, §5.3, §17.2).
#include "tests/unit/system_guest_image.h"
#include "vmm/cpu_model.h"

namespace vmbt::bt::testing {
namespace {

using SysRegistersTest = SystemEmulatorTest;
using namespace eflags;

TEST_F(SysRegistersTest, LgdtLoadsLimitAndBase) {
  enter_cpl0();
  s.gpr[kEax] = 0x60000;
  mem.put16(0x60000, 0x1234);
  mem.put32(0x60002, 0xaabbccdd);
  code({0x0f, 0x01, 0x10});  // lgdt [eax]
  step();
  EXPECT_EQ(s.gdtr.limit, 0x1234);
  EXPECT_EQ(s.gdtr.base, 0xaabbccddu);
  EXPECT_EQ(s.eip, kCode + 3);
}

TEST_F(SysRegistersTest, Lidt16LoadsA24BitBase) {
  enter_cpl0();
  s.gpr[kEax] = 0x60000;
  mem.put16(0x60000, 0x07ff);
  mem.put32(0x60002, 0xaabbccdd);
  code({0x66, 0x0f, 0x01, 0x18});  // lidt [eax], 16-bit operand size
  step();
  EXPECT_EQ(s.idtr.limit, 0x07ff);
  EXPECT_EQ(s.idtr.base, 0x00bbccddu);
}

TEST_F(SysRegistersTest, LidtAtCpl3RaisesGp0) {
  enter_cpl3();
  s.gpr[kEax] = 0x60000;
  code({0x0f, 0x01, 0x18});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0u);
  EXPECT_EQ(s.idtr.base, kIdt);
}

TEST_F(SysRegistersTest, SgdtAndSidtAtCpl3ReturnTheGuestValues) {
  enter_cpl3();
  s.gpr[kEax] = 0x60000;
  code({0x0f, 0x01, 0x00});  // sgdt [eax]
  step();
  EXPECT_EQ(s.eip, kCode + 3);
  EXPECT_EQ(mem.u16(0x60000), 23 * 8 - 1);
  EXPECT_EQ(mem.u32(0x60002), kGdt);
  s.eip = kCode;
  code({0x0f, 0x01, 0x08});  // sidt [eax]
  step();
  EXPECT_EQ(mem.u16(0x60000), 0x7ff);
  EXPECT_EQ(mem.u32(0x60002), kIdt);
}

TEST_F(SysRegistersTest, LtrLoadsTrAndMarksTheTssBusy) {
  enter_cpl0();
  s.gpr[kEax] = kTss2Sel;
  code({0x0f, 0x00, 0xd8});  // ltr ax
  step();
  EXPECT_EQ(s.eip, kCode + 3);
  EXPECT_EQ(s.tr.selector, kTss2Sel);
  EXPECT_EQ(s.tr.base, kTss);
  EXPECT_EQ(s.tr.limit, 0x67u);
  EXPECT_EQ(s.tr.type, 0xb);
  EXPECT_EQ((gdt(6) >> 40) & 0xf, 0xbu) << "busy bit set in the GDT";
}

TEST_F(SysRegistersTest, LtrOfABusyTssRaisesGp) {
  enter_cpl0();
  s.gpr[kEax] = kTssSel;
  code({0x0f, 0x00, 0xd8});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), uint32_t{kTssSel});
}

TEST_F(SysRegistersTest, LtrOfANullSelectorRaisesGp0AndAtCpl3Too) {
  enter_cpl0();
  s.gpr[kEax] = 0;
  code({0x0f, 0x00, 0xd8});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0u);
  SetUp();
  enter_cpl3();
  s.gpr[kEax] = kTss2Sel;
  code({0x0f, 0x00, 0xd8});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0u);
}

TEST_F(SysRegistersTest, LldtLoadsTheLdtAndSegmentLoadsUseIt) {
  mem.put64(kLdt + 8, seg_desc(0x70000, 0xff, 0x3, true, 3, true, true, false));
  enter_cpl0();
  s.gpr[kEax] = kLdtSel;
  code({0x0f, 0x00, 0xd0});  // lldt ax
  step();
  EXPECT_EQ(s.ldtr.selector, kLdtSel);
  EXPECT_EQ(s.ldtr.base, kLdt);
  EXPECT_EQ(s.ldtr.limit, 0x17u);
  s.eip = kCode;
  s.gpr[kEax] = 0x0c;  // LDT index 1, RPL0
  code({0x8e, 0xd8});  // mov ds, ax
  step();
  EXPECT_EQ(s.seg[kDs].base, 0x70000u);
  EXPECT_EQ(s.seg[kDs].limit, 0xffu);
}

TEST_F(SysRegistersTest, LldtOfANonLdtDescriptorRaisesGpAndNullInvalidatesLdtr) {
  enter_cpl0();
  s.gpr[kEax] = kKernelDs;
  code({0x0f, 0x00, 0xd0});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), uint32_t{kKernelDs});
  SetUp();
  enter_cpl0();
  s.ldtr.unusable = false;
  s.gpr[kEax] = 0;
  code({0x0f, 0x00, 0xd0});
  step();
  EXPECT_EQ(s.eip, kCode + 3);
  EXPECT_TRUE(s.ldtr.unusable);
}

TEST_F(SysRegistersTest, StrAndSldtAreUnprivileged) {
  enter_cpl3();
  s.gpr[kEax] = 0xffffffffu;
  code({0x0f, 0x00, 0xc8});  // str eax
  step();
  EXPECT_EQ(s.gpr[kEax], uint32_t{kTssSel});  // zero-extended
  s.eip = kCode;
  s.gpr[kEax] = 0xffffffffu;
  code({0x66, 0x0f, 0x00, 0xc8});  // str ax
  step();
  EXPECT_EQ(s.gpr[kEax], 0xffff0000u | kTssSel);
  s.eip = kCode;
  s.ldtr.selector = kLdtSel;
  s.gpr[kEax] = 0x60000;
  mem.put32(0x60000, 0xffffffffu);
  code({0x0f, 0x00, 0x00});  // sldt [eax]
  step();
  EXPECT_EQ(mem.u32(0x60000), 0xffff0000u | kLdtSel);  // 16 bits stored
}

TEST_F(SysRegistersTest, SmswStoresTheMachineStatusWord) {
  enter_cpl3();
  s.cr0 = cr0::kPe | cr0::kEt | cr0::kNe | cr0::kTs | cr0::kPg | cr0::kWp;
  s.gpr[kEax] = 0x60000;
  mem.put32(0x60000, 0xffffffffu);
  code({0x0f, 0x01, 0x20});  // smsw [eax]
  step();
  EXPECT_EQ(mem.u32(0x60000), 0xffff0000u | 0x39);  // PE ET NE TS, 16 bits stored
  s.eip = kCode;
  s.gpr[kEax] = 0xabcd0000u;
  code({0x66, 0x0f, 0x01, 0xe0});  // smsw ax
  step();
  EXPECT_EQ(s.gpr[kEax], 0xabcd0039u);
  s.eip = kCode;
  code({0x0f, 0x01, 0xe0});  // smsw eax: low 16 bits are CR0[15:0]
  step();
  EXPECT_EQ(s.gpr[kEax] & 0xffff, 0x0039u);
}

TEST_F(SysRegistersTest, LmswCanSetButNotClearPe) {
  enter_cpl0();
  s.cr0 = cr0::kPe | cr0::kEt | cr0::kNe;
  s.gpr[kEax] = 0xffee;      // PE=0, MP EM TS=1; bits above 3 ignored
  code({0x0f, 0x01, 0xf0});  // lmsw ax
  step();
  EXPECT_EQ(s.cr0, cr0::kPe | cr0::kMp | cr0::kEm | cr0::kTs | cr0::kEt | cr0::kNe);
}

TEST_F(SysRegistersTest, MovCr0AtCpl3RaisesGp0) {
  enter_cpl3();
  code({0x0f, 0x22, 0xc0});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0u);
  EXPECT_EQ(s.cr0, cr0::kPe | cr0::kEt);
}

TEST_F(SysRegistersTest, MovCr0PgWithoutPeOrNwWithoutCdRaisesGp0) {
  for (uint32_t v : {cr0::kPg | cr0::kEt, cr0::kPe | cr0::kNw}) {
    SetUp();
    enter_cpl0();
    s.gpr[kEax] = v;
    code({0x0f, 0x22, 0xc0});
    step();
    EXPECT_EQ(s.eip, handler(13)) << std::hex << v;
    EXPECT_EQ(s.cr0, cr0::kPe | cr0::kEt);
  }
}

TEST_F(SysRegistersTest, MovCr0EnablingPagingNotifiesTheMmu) {
  enter_cpl0();
  s.gpr[kEax] = cr0::kPe | cr0::kPg | cr0::kWp | 0x0000f000u;  // reserved bits 15:12 ignored
  code({0x0f, 0x22, 0xc0});
  step();
  EXPECT_EQ(s.cr0, cr0::kPe | cr0::kPg | cr0::kWp | cr0::kEt);  // ET hardwired to 1
  EXPECT_EQ(hooks.paging_changes, 1);
  s.eip = kCode;
  s.gpr[kEax] = s.cr0 | cr0::kTs;
  step();
  EXPECT_EQ(hooks.paging_changes, 1) << "TS does not affect paging";
}

TEST_F(SysRegistersTest, MovCr3AlwaysNotifiesTheMmu) {
  enter_cpl0();
  s.gpr[kEax] = 0x123000;
  code({0x0f, 0x22, 0xd8});
  step();
  s.eip = kCode;
  step();
  EXPECT_EQ(s.cr3, 0x123000u);
  EXPECT_EQ(hooks.paging_changes, 2);
}

TEST_F(SysRegistersTest, MovCr4RefusesFeaturesTheModelDoesNotAdvertise) {
  for (uint32_t bit : {cr4::kVme, cr4::kPvi, cr4::kDe, 1u << 13 /*VMXE*/}) {
    SetUp();
    enter_cpl0();
    s.gpr[kEax] = bit;
    code({0x0f, 0x22, 0xe0});
    step();
    EXPECT_EQ(s.eip, handler(13)) << std::hex << bit;
    EXPECT_EQ(s.cr4, 0u);
  }
  SetUp();
  enter_cpl0();
  s.gpr[kEax] = cr4::kPse | cr4::kPge | cr4::kTsd | cr4::kOsfxsr | cr4::kOsxmmexcpt | cr4::kPae;
  code({0x0f, 0x22, 0xe0});
  step();
  EXPECT_EQ(s.eip, kCode + 3);
  EXPECT_EQ(s.cr4, cr4::kPse | cr4::kPge | cr4::kTsd | cr4::kOsfxsr | cr4::kOsxmmexcpt | cr4::kPae);
  EXPECT_EQ(hooks.paging_changes, 1);
  EXPECT_TRUE(hooks.pdpte_loads.empty()) << "paging is off: no PDPTE load";
}

TEST_F(SysRegistersTest, PaePdptesLoadAtTheirLoadEventsOrRaiseGp) {
  // Intel SDM Vol. 3A §4.4.1: with PAE paging in use after the instruction, MOV CR3 loads the
  // PDPTEs, and so do MOV CR0 / MOV CR4 that modify CR0.PG/CD/NW or CR4.PAE/PGE/PSE; a PDPT
  // whose load fails (a reserved bit) is a #GP(0) that changes neither the register nor the
  // PDPTEs. Other CR4 bits load nothing.
  const std::array<uint64_t, 4> a{0x1001, 0x2001, 0, 0}, b{0x3001, 0, 0, 0x4001};
  hooks.pdpts[0x5000] = a;
  hooks.pdpts[0x6020] = b;
  enter_cpl0();
  s.cr4 = cr4::kPae;
  s.cr3 = 0x5000;
  s.gpr[kEax] = s.cr0 | cr0::kPg;
  code({0x0f, 0x22, 0xc0});  // mov cr0, eax: paging on
  step();
  EXPECT_EQ(s.pdpte, a);
  s.eip = kCode;
  s.gpr[kEax] = 0x6020;
  code({0x0f, 0x22, 0xd8});  // mov cr3, eax: 32-byte aligned PDPT
  step();
  EXPECT_EQ(s.cr3, 0x6020u);
  EXPECT_EQ(s.pdpte, b);
  s.eip = kCode;
  s.gpr[kEax] = 0x7000;  // refused
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(s.cr3, 0x6020u);
  EXPECT_EQ(s.pdpte, b);
  const int paging_changes = hooks.paging_changes;
  const size_t loads = hooks.pdpte_loads.size();
  s.eip = kCode;
  s.gpr[kEax] = s.cr4 | cr4::kTsd;
  code({0x0f, 0x22, 0xe0});  // mov cr4, eax: TSD loads nothing
  step();
  EXPECT_EQ(hooks.pdpte_loads.size(), loads);
  s.eip = kCode;
  s.gpr[kEax] = s.cr4 | cr4::kPge;
  hooks.pdpts[0x6020] = a;  // the PDPT rewritten: PGE is a load event
  step();
  EXPECT_EQ(hooks.pdpte_loads.size(), loads + 1);
  EXPECT_EQ(s.pdpte, a);
  EXPECT_GT(hooks.paging_changes, paging_changes);
}

TEST_F(SysRegistersTest, MovFromCr2) {
  enter_cpl0();
  s.cr2 = 0xdeadb000;
  code({0x0f, 0x20, 0xd0});  // mov eax, cr2
  step();
  EXPECT_EQ(s.gpr[kEax], 0xdeadb000u);
}

TEST_F(SysRegistersTest, Dr4AndDr5AliasDr6AndDr7WhenCr4DeIsClear) {
  enter_cpl0();
  s.gpr[kEax] = 0;
  code({0x0f, 0x23, 0xe0});  // mov dr4, eax -> DR6
  step();
  EXPECT_EQ(s.dr[6], 0xffff0ff0u);  // reserved DR6 bits read as 1
  s.eip = kCode;
  s.gpr[kEax] = 0x1;
  code({0x0f, 0x23, 0xf8});  // mov dr7, eax
  step();
  EXPECT_EQ(s.dr[7], 0x401u);  // bit 10 reads as 1
  s.eip = kCode;
  code({0x0f, 0x21, 0xe8});  // mov eax, dr5 -> DR7
  step();
  EXPECT_EQ(s.gpr[kEax], 0x401u);
}

TEST_F(SysRegistersTest, MovDrWithGeneralDetectRaisesDb) {
  enter_cpl0();
  s.dr[7] = 0x400 | (1u << 13);
  s.dr[6] = 0xffff0ff0u;
  code({0x0f, 0x21, 0xc0});  // mov eax, dr0
  step();
  EXPECT_EQ(s.eip, handler(1));
  EXPECT_EQ(stack32(0), kCode);  // fault: the MOV is not executed
  EXPECT_TRUE(s.dr[6] & (1u << 13)) << "DR6.BD";
  EXPECT_FALSE(s.dr[7] & (1u << 13)) << "GD cleared on entry to the handler";
}

TEST_F(SysRegistersTest, MovDrAtCpl3RaisesGp0) {
  enter_cpl3();
  code({0x0f, 0x21, 0xc0});
  step();
  EXPECT_EQ(s.eip, handler(13));
}

TEST_F(SysRegistersTest, CltsClearsTsAndIsPrivileged) {
  enter_cpl0();
  s.cr0 |= cr0::kTs;
  code({0x0f, 0x06});
  step();
  EXPECT_EQ(s.cr0, cr0::kPe | cr0::kEt);
  SetUp();
  enter_cpl3();
  code({0x0f, 0x06});
  step();
  EXPECT_EQ(s.eip, handler(13));
}

TEST_F(SysRegistersTest, InvlpgReportsTheLinearAddress) {
  enter_cpl0();
  s.seg[kDs].base = 0x1000;
  s.gpr[kEax] = 0x400123;
  code({0x0f, 0x01, 0x38});  // invlpg [eax]
  step();
  EXPECT_EQ(hooks.invlpg, std::vector<uint32_t>{0x401123});
  EXPECT_EQ(s.eip, kCode + 3);
}

TEST_F(SysRegistersTest, InvdAndWbinvdArePrivileged) {
  for (uint8_t op : {0x08, 0x09}) {
    SetUp();
    enter_cpl3();
    code({0x0f, op});
    step();
    EXPECT_EQ(s.eip, handler(13));
    SetUp();
    enter_cpl0();
    code({0x0f, op});
    step();
    EXPECT_EQ(s.eip, kCode + 2);
  }
}

TEST_F(SysRegistersTest, CpuidReturnsTheCpuModel) {
  for (uint32_t leaf : {0u, 1u, 2u, 7u, 0x80000000u, 0x80000002u, 0x80000004u, 0x80000008u}) {
    SetUp();
    enter_cpl3();
    s.gpr[kEax] = leaf;
    s.gpr[kEcx] = 0;
    code({0x0f, 0xa2});
    step();
    const CpuidEntry e = CpuModel::query(leaf, 0);
    EXPECT_EQ(s.gpr[kEax], e.eax) << std::hex << leaf;
    EXPECT_EQ(s.gpr[kEbx], e.ebx) << std::hex << leaf;
    EXPECT_EQ(s.gpr[kEcx], e.ecx) << std::hex << leaf;
    EXPECT_EQ(s.gpr[kEdx], e.edx) << std::hex << leaf;
    EXPECT_EQ(s.eip, kCode + 2);
  }
  SetUp();
  s.gpr[kEax] = 0;
  enter_cpl0();
  code({0x0f, 0xa2});
  step();
  EXPECT_EQ(s.gpr[kEbx], 0x756e6547u);  // "Genu"
  EXPECT_EQ(s.gpr[kEdx], 0x49656e69u);  // "ineI"
  EXPECT_EQ(s.gpr[kEcx], 0x6c65746eu);  // "ntel"
}

TEST_F(SysRegistersTest, RdtscHonoursCr4Tsd) {
  enter_cpl3();
  code({0x0f, 0x31});
  step();
  EXPECT_EQ(s.gpr[kEax], 0x89abcdefu);
  EXPECT_EQ(s.gpr[kEdx], 0x01234567u);
  s.eip = kCode;
  s.cr4 = cr4::kTsd;
  step();
  EXPECT_EQ(s.eip, handler(13));
  SetUp();
  enter_cpl0();
  s.cr4 = cr4::kTsd;
  code({0x0f, 0x31});
  step();
  EXPECT_EQ(s.eip, kCode + 2);
}

TEST_F(SysRegistersTest, SysenterMsrsRoundTrip) {
  enter_cpl0();
  const uint32_t msrs[] = {0x174, 0x175, 0x176};
  for (uint32_t msr : msrs) {
    s.eip = kCode;
    s.gpr[kEcx] = msr;
    s.gpr[kEax] = 0x1000 + msr;
    s.gpr[kEdx] = 0;
    code({0x0f, 0x30});  // wrmsr
    step();
    EXPECT_EQ(s.eip, kCode + 2);
  }
  EXPECT_EQ(s.sysenter_cs, 0x1174u);
  EXPECT_EQ(s.sysenter_esp, 0x1175u);
  EXPECT_EQ(s.sysenter_eip, 0x1176u);
  s.eip = kCode;
  s.gpr[kEcx] = 0x175;
  s.gpr[kEax] = s.gpr[kEdx] = 0xffffffffu;
  code({0x0f, 0x32});  // rdmsr
  step();
  EXPECT_EQ(s.gpr[kEax], 0x1175u);
  EXPECT_EQ(s.gpr[kEdx], 0u);
}

TEST_F(SysRegistersTest, RdmsrOfTscMicrocodeAndUnknownMsrs) {
  enter_cpl0();
  s.gpr[kEcx] = 0x10;
  code({0x0f, 0x32});
  step();
  EXPECT_EQ(s.gpr[kEax], 0x89abcdefu);
  EXPECT_EQ(s.gpr[kEdx], 0x01234567u);
  // An MSR the platform keeps (vmm/msr_model.h) is read from it.
  s.eip = kCode;
  hooks.platform_msrs[0x1a0] = 0x400001801ull;
  s.gpr[kEcx] = 0x1a0;
  step();
  EXPECT_EQ(s.gpr[kEax], 0x1801u);
  EXPECT_EQ(s.gpr[kEdx], 0x4u);
  EXPECT_EQ(s.eip, kCode + 2);
  // One neither keeps: #GP(0).
  for (uint32_t msr : {0x1bu, 0xc0000080u}) {
    SetUp();
    enter_cpl0();
    s.gpr[kEcx] = msr;
    code({0x0f, 0x32});
    step();
    EXPECT_EQ(s.eip, handler(13)) << std::hex << msr;
    EXPECT_EQ(stack32(0), 0u);
  }
}

TEST_F(SysRegistersTest, WrmsrReachesThePlatformWhichMayRefuse) {
  enter_cpl0();
  hooks.platform_msrs[0x277] = 0;
  s.gpr[kEcx] = 0x277;
  s.gpr[kEax] = 0x00070406;
  s.gpr[kEdx] = 0x00070406;
  code({0x0f, 0x30});
  step();
  EXPECT_EQ(hooks.platform_msrs[0x277], 0x0007040600070406ull);
  EXPECT_EQ(s.eip, kCode + 2);
  // IA32_PLATFORM_ID is read-only and an unknown MSR absent: both #GP(0), nothing written.
  for (uint32_t msr : {0x17u, 0x3au}) {
    SetUp();
    enter_cpl0();
    s.gpr[kEcx] = msr;
    code({0x0f, 0x30});
    step();
    EXPECT_EQ(s.eip, handler(13)) << std::hex << msr;
    EXPECT_EQ(hooks.platform_msrs.count(msr), 0u);
  }
}

TEST_F(SysRegistersTest, WrmsrTscAndPrivilege) {
  enter_cpl0();
  s.gpr[kEcx] = 0x10;
  s.gpr[kEax] = 0x5;
  s.gpr[kEdx] = 0x6;
  code({0x0f, 0x30});
  step();
  EXPECT_EQ(hooks.written_tsc, std::vector<uint64_t>{0x600000005ull});
  SetUp();
  enter_cpl3();
  s.gpr[kEcx] = 0x174;
  code({0x0f, 0x30});
  step();
  EXPECT_EQ(s.eip, handler(13));
}

TEST_F(SysRegistersTest, HltAtCpl0HaltsPastTheInstruction) {
  enter_cpl0();
  code({0xf4});
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kHalt);
  EXPECT_EQ(s.eip, kCode + 1);
  SetUp();
  enter_cpl3();
  code({0xf4});
  r = step();
  EXPECT_EQ(r.kind, StepKind::kDone);
  EXPECT_EQ(s.eip, handler(13));
}

TEST_F(SysRegistersTest, Ud2RaisesUdWithoutAnErrorCode) {
  enter_cpl0();
  const uint32_t esp = s.gpr[kEsp];
  code({0x0f, 0x0b});
  step();
  EXPECT_EQ(s.eip, handler(6));
  EXPECT_EQ(s.gpr[kEsp], esp - 12);
  EXPECT_EQ(stack32(0), kCode);
  EXPECT_EQ(stack32(1) & 0xffff, kKernelCs);
  EXPECT_EQ(stack32(2), kFixed1 | kRf);
}

TEST_F(SysRegistersTest, InvalidEncodingsRaiseUd) {
  const std::vector<std::vector<uint8_t>> encodings = {
      {0x8e, 0xc8},        // mov cs, ax
      {0xf0, 0xfa},        // lock cli
      {0x0f, 0x22, 0xc8},  // mov cr1, eax
      {0x0f, 0x05},        // syscall (legacy mode on Intel)
      {0x0f, 0x01, 0xf9},  // rdtscp (not advertised)
      {0xc5, 0xf8, 0x77},  // vzeroupper (VEX: no AVX)
      {0x0f, 0x01, 0xd0},  // xgetbv (CR4.OSXSAVE=0)
  };
  for (const auto& bytes : encodings) {
    SetUp();
    enter_cpl0();
    for (size_t i = 0; i < bytes.size(); ++i) mem.put8(kCode + i, bytes[i]);
    step();
    EXPECT_EQ(s.eip, handler(6)) << "first byte " << std::hex << int{bytes[0]};
  }
}

TEST_F(SysRegistersTest, NonSystemInstructionIsUnsupportedAndLeavesTheState) {
  enter_cpl0();
  s.gpr[kEax] = 1;
  s.gpr[kEbx] = 2;
  code({0x01, 0xd8});  // add eax, ebx
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kUnsupported);
  EXPECT_NE(r.message.find("add"), std::string::npos) << r.message;
  EXPECT_EQ(s.gpr[kEax], 1u);
  EXPECT_EQ(s.eip, kCode);
}

TEST_F(SysRegistersTest, InstructionRunningPastTheCsLimitRaisesGp0) {
  enter_cpl0();
  s.seg[kCs].limit = kCode;  // only the first byte of a two-byte instruction is inside
  code({0x0f, 0x06});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0u);
  EXPECT_EQ(stack32(1), kCode);
}

TEST_F(SysRegistersTest, FetchFromANotPresentPageRaisesPf) {
  enter_cpl3();
  s.eip = 0x20ffe;
  code({0x0f, 0x01});  // sgdt ... with the ModRM byte on the next page
  mem.not_present.insert(0x21);
  step();
  EXPECT_EQ(s.eip, handler(14));
  EXPECT_EQ(s.cr2, 0x21000u);
  EXPECT_EQ(stack32(0), 0x4u);  // not present, read, user
  EXPECT_EQ(stack32(1), 0x20ffeu);
}

TEST_F(SysRegistersTest, SgdtToAReadOnlySegmentRaisesGp0) {
  enter_cpl3();
  s.seg[kDs] = loaded(kRoDs, 0, 0xffffffff, 0x1, 3);
  s.gpr[kEax] = 0x60000;
  code({0x0f, 0x01, 0x00});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0u);
}

}  // namespace
}  // namespace vmbt::bt::testing
