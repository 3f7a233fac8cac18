// Segment-register loads and descriptor-visibility instructions (Intel SDM Vol. 2 MOV, POP, PUSH,
// LDS/LES/LFS/LGS/LSS, LAR, LSL, VERR/VERW, ARPL; Vol. 3A §3.4, §5.5-5.10).
#include "tests/unit/system_guest_image.h"

namespace vmbt::bt::testing {
namespace {

using SysSegmentsTest = SystemEmulatorTest;
using namespace eflags;

TEST_F(SysSegmentsTest, MovDsLoadsTheHiddenPartAndSetsAccessed) {
  enter_cpl0();
  s.gpr[kEax] = kPageDs;  // base 0x12345678, raw limit 0xF with G=1, type 2 (not accessed)
  code({0x8e, 0xd8});
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kDone);
  EXPECT_EQ(s.eip, kCode + 2);
  EXPECT_EQ(s.seg[kDs].selector, kPageDs);
  EXPECT_EQ(s.seg[kDs].base, 0x12345678u);
  EXPECT_EQ(s.seg[kDs].limit, 0xffffu);  // (0xF << 12) | 0xFFF
  EXPECT_EQ(s.seg[kDs].type, 0x3);
  EXPECT_EQ(s.seg[kDs].dpl, 0);
  EXPECT_TRUE(s.seg[kDs].present);
  EXPECT_FALSE(s.seg[kDs].unusable);
  EXPECT_EQ((gdt(18) >> 40) & 0xf, 0x3u) << "Accessed bit written back to the GDT";
}

TEST_F(SysSegmentsTest, MovDsWithANullSelectorMakesItUnusable) {
  enter_cpl3();
  s.gpr[kEax] = 0x3;
  code({0x8e, 0xd8});
  step();
  EXPECT_EQ(s.eip, kCode + 2);
  EXPECT_EQ(s.seg[kDs].selector, 3);
  EXPECT_TRUE(s.seg[kDs].unusable);
}

TEST_F(SysSegmentsTest, MovSsWithANullSelectorRaisesGp0) {
  enter_cpl0();
  s.gpr[kEax] = 0;
  code({0x8e, 0xd0});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0u);
  EXPECT_EQ(stack32(1), kCode);
}

TEST_F(SysSegmentsTest, MovSsSetsTheInterruptShadow) {
  enter_cpl0();
  s.gpr[kEax] = kKernelDs;
  code({0x8e, 0xd0});
  step();
  EXPECT_EQ(s.eip, kCode + 2);
  EXPECT_TRUE(emu.interrupt_shadow);
}

TEST_F(SysSegmentsTest, MovDsNotPresentRaisesNp) {
  enter_cpl0();
  s.gpr[kEax] = kAbsentDs;
  code({0x8e, 0xd8});
  step();
  EXPECT_EQ(s.eip, handler(11));
  EXPECT_EQ(stack32(0), uint32_t{kAbsentDs});
  EXPECT_EQ(s.seg[kDs].selector, kKernelDs);  // unchanged
}

TEST_F(SysSegmentsTest, MovSsNotPresentRaisesSs) {
  enter_cpl3();
  s.gpr[kEax] = kAbsentSs;
  code({0x8e, 0xd0});
  step();
  EXPECT_EQ(s.eip, handler(12));
  EXPECT_EQ(stack32(0), kAbsentSs & 0xfffcu);
}

TEST_F(SysSegmentsTest, MovSsReadOnlyDataRaisesGp) {
  enter_cpl3();
  s.gpr[kEax] = kRoDs;
  code({0x8e, 0xd0});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), kRoDs & 0xfffcu);
}

TEST_F(SysSegmentsTest, MovSsWithRplDifferentFromCplRaisesGp) {
  enter_cpl0();
  s.gpr[kEax] = kKernelDs | 3;
  code({0x8e, 0xd0});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), uint32_t{kKernelDs});
}

TEST_F(SysSegmentsTest, MovDsOfAMorePrivilegedSegmentRaisesGp) {
  enter_cpl3();
  s.gpr[kEax] = kKernelDs;
  code({0x8e, 0xd8});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), uint32_t{kKernelDs});
}

TEST_F(SysSegmentsTest, MovDsWithRplAboveDplRaisesGp) {
  enter_cpl0();
  s.gpr[kEax] = kKernelDs | 3;
  code({0x8e, 0xd8});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), uint32_t{kKernelDs});
}

TEST_F(SysSegmentsTest, MovDsOfExecuteOnlyCodeRaisesGp) {
  enter_cpl3();
  s.gpr[kEax] = kXoCs | 3;
  code({0x8e, 0xd8});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), uint32_t{kXoCs});
}

TEST_F(SysSegmentsTest, MovDsOfReadableConformingCodeNeedsNoPrivilege) {
  enter_cpl3();
  s.gpr[kEax] = kConfCs | 3;
  code({0x8e, 0xd8});
  step();
  EXPECT_EQ(s.eip, kCode + 2);
  EXPECT_EQ(s.seg[kDs].selector, kConfCs | 3);
}

TEST_F(SysSegmentsTest, MovDsBeyondTheGdtLimitRaisesGp) {
  enter_cpl0();
  s.gpr[kEax] = 0x1000;
  code({0x8e, 0xd8});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0x1000u);
}

TEST_F(SysSegmentsTest, MovDsThroughTheLdtWithoutAnLdtRaisesGp) {
  enter_cpl0();
  s.gpr[kEax] = 0x0c;  // index 1, TI=1
  code({0x8e, 0xd8});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0x0cu);
}

TEST_F(SysSegmentsTest, PopDsLoadsTheLowWordAndPopsFourBytes) {
  enter_cpl3();
  s.gpr[kEsp] = kUserStackTop - 4;
  mem.put32(kUserStackTop - 4, 0xabcd0000u | kByteDs);
  code({0x1f});
  step();
  EXPECT_EQ(s.seg[kDs].selector, kByteDs);
  EXPECT_EQ(s.seg[kDs].base, 0x50000u);
  EXPECT_EQ(s.seg[kDs].limit, 0xfffu);
  EXPECT_EQ(s.gpr[kEsp], kUserStackTop);
}

TEST_F(SysSegmentsTest, PopSsSetsTheInterruptShadow) {
  enter_cpl3();
  s.gpr[kEsp] = kUserStackTop - 4;
  mem.put32(kUserStackTop - 4, kUserDs);
  code({0x17});
  step();
  EXPECT_TRUE(emu.interrupt_shadow);
  EXPECT_EQ(s.gpr[kEsp], kUserStackTop);
}

TEST_F(SysSegmentsTest, PushCsDecrementsEspByTheOperandSize) {
  enter_cpl3();
  code({0x0e});
  step();
  EXPECT_EQ(s.gpr[kEsp], kUserStackTop - 4);
  EXPECT_EQ(stack16(0), kUserCs);
  s.eip = kCode;
  code({0x66, 0x16});  // push ss, 16-bit
  step();
  EXPECT_EQ(s.gpr[kEsp], kUserStackTop - 6);
  EXPECT_EQ(stack16(0), kUserDs);
}

TEST_F(SysSegmentsTest, MovFromSregZeroExtendsIntoA32BitRegister) {
  enter_cpl3();
  s.gpr[kEax] = 0xffffffffu;
  code({0x8c, 0xd8});  // mov eax, ds
  step();
  EXPECT_EQ(s.gpr[kEax], uint32_t{kUserDs});
  s.eip = kCode;
  s.gpr[kEax] = 0xffffffffu;
  code({0x66, 0x8c, 0xd8});  // mov ax, ds
  step();
  EXPECT_EQ(s.gpr[kEax], 0xffff0000u | kUserDs);
}

TEST_F(SysSegmentsTest, LdsLoadsOffsetAndSegment) {
  enter_cpl3();
  s.gpr[kEsi] = 0x60000;
  mem.put32(0x60000, 0xcafebabe);
  mem.put16(0x60004, kByteDs);
  code({0xc5, 0x06});  // lds eax, [esi]
  step();
  EXPECT_EQ(s.gpr[kEax], 0xcafebabeu);
  EXPECT_EQ(s.seg[kDs].selector, kByteDs);
  EXPECT_EQ(s.seg[kDs].base, 0x50000u);
  EXPECT_EQ(s.eip, kCode + 2);
}

TEST_F(SysSegmentsTest, LssLoadsSsEspWithoutAnInterruptShadow) {
  enter_cpl0();
  s.gpr[kEsi] = 0x60000;
  mem.put32(0x60000, 0x7777);
  mem.put16(0x60004, kKernelDs);
  code({0x0f, 0xb2, 0x26});  // lss esp, [esi]
  step();
  EXPECT_EQ(s.gpr[kEsp], 0x7777u);
  EXPECT_EQ(s.seg[kSs].selector, kKernelDs);
  EXPECT_FALSE(emu.interrupt_shadow);
}

TEST_F(SysSegmentsTest, LdsWithABadSelectorLeavesTheRegisterUnchanged) {
  enter_cpl3();
  s.gpr[kEsi] = 0x60000;
  s.gpr[kEax] = 0x1234;
  mem.put32(0x60000, 0xcafebabe);
  mem.put16(0x60004, kKernelDs);
  code({0xc5, 0x06});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(s.gpr[kEax], 0x1234u);
}

// LAR: ZF and the access rights masked with 00FxFF00H.
struct LarCase {
  uint16_t selector;
  bool cpl3;
  bool zf;
  uint32_t rights;
};

TEST_F(SysSegmentsTest, LarResults) {
  const LarCase cases[] = {
      {kUserCs, true, true, 0x00c0fb00u},      // user code: G D P DPL3 S type B
      {kUserDs, true, true, 0x00c0f300u},      // user data
      {kKernelDs, true, false, 0},             // DPL0 invisible at CPL3
      {kConfCs | 3, true, true, 0x00c09f00u},  // conforming: no privilege check (accessed now)
      {kTssSel, false, true, 0x00008b00u},     // busy 32-bit TSS
      {kCallGate, true, true, 0x0000ec00u},    // call gate: valid for LAR
      {kLdtSel, false, true, 0x00008200u},     // LDT
      {0, false, false, 0},                    // null selector
      {0x3, true, false, 0},                   // null with RPL
      {0x1000, false, false, 0},               // beyond the GDT limit
      {kKernelDs | 3, false, false, 0},        // RPL3 > DPL0
  };
  for (const LarCase& c : cases) {
    SetUp();
    c.cpl3 ? enter_cpl3() : enter_cpl0();
    if (c.selector == (kConfCs | 3)) set_gdt(8, seg_desc(0, 0xfffff, 0xf, true, 0));
    s.gpr[kEbx] = c.selector;
    s.gpr[kEax] = 0xdeadbeef;
    s.eflags = c.zf ? kFixed1 : kFixed1 | kZf;
    code({0x0f, 0x02, 0xc3});  // lar eax, ebx
    s.eip = kCode;
    step();
    EXPECT_EQ(s.eip, kCode + 3);
    EXPECT_EQ(bool(s.eflags & kZf), c.zf) << "selector " << std::hex << c.selector;
    EXPECT_EQ(s.gpr[kEax], c.zf ? c.rights : 0xdeadbeefu) << "selector " << std::hex << c.selector;
  }
}

TEST_F(SysSegmentsTest, LarRejectsInterruptGates) {
  set_gdt(15, gate_desc(kKernelCs, 0, 0xe, 3));
  enter_cpl3();
  s.gpr[kEbx] = kJmpGate;
  s.eflags = kFixed1 | kZf;
  code({0x0f, 0x02, 0xc3});
  step();
  EXPECT_FALSE(s.eflags & kZf);
}

TEST_F(SysSegmentsTest, Lar16WritesTheLowWord) {
  enter_cpl3();
  s.gpr[kEbx] = kUserCs;
  s.gpr[kEax] = 0xdeadbeef;
  code({0x66, 0x0f, 0x02, 0xc3});  // lar ax, bx
  step();
  EXPECT_EQ(s.gpr[kEax], 0xdeadfb00u);
}

struct LslCase {
  uint16_t selector;
  bool cpl3;
  bool zf;
  uint32_t limit;
};

TEST_F(SysSegmentsTest, LslResults) {
  const LslCase cases[] = {
      {kPageDs, false, true, 0xffffu},     // G=1: (0xF << 12) | 0xFFF
      {kByteDs, true, true, 0xfffu},       // byte granular
      {kUserCs, true, true, 0xffffffffu},  // 4 GiB
      {kTssSel, false, true, kTssLimit},   // TSS
      {kLdtSel, false, true, 0x17u},       // LDT
      {kCallGate, true, false, 0},         // gates have no limit
      {kPageDs, true, false, 0},           // DPL0 invisible at CPL3
      {0, false, false, 0},
  };
  for (const LslCase& c : cases) {
    SetUp();
    c.cpl3 ? enter_cpl3() : enter_cpl0();
    s.gpr[kEbx] = c.selector;
    s.gpr[kEax] = 0xdeadbeef;
    code({0x0f, 0x03, 0xc3});  // lsl eax, ebx
    step();
    EXPECT_EQ(bool(s.eflags & kZf), c.zf) << "selector " << std::hex << c.selector;
    EXPECT_EQ(s.gpr[kEax], c.zf ? c.limit : 0xdeadbeefu) << "selector " << std::hex << c.selector;
  }
}

struct VerCase {
  uint16_t selector;
  bool cpl3;
  bool readable;
  bool writable;
};

TEST_F(SysSegmentsTest, VerrVerwResults) {
  const VerCase cases[] = {
      {kUserDs, true, true, true},
      {kRoDs, true, true, false},
      {kXoCs | 3, true, false, false},
      {kUserCs, true, true, false},
      {kConfCs | 3, true, true, false},
      {kKernelDs, true, false, false},
      {kKernelDs, false, true, true},
      {kTssSel, false, false, false},
      {0, false, false, false},
      {0x1000, false, false, false},
      {kKernelDs | 3, false, false, false},  // RPL3 > DPL0
  };
  for (const VerCase& c : cases) {
    for (bool verw : {false, true}) {
      SetUp();
      c.cpl3 ? enter_cpl3() : enter_cpl0();
      s.gpr[kEax] = c.selector;
      code({0x0f, 0x00, static_cast<uint8_t>(verw ? 0xe8 : 0xe0)});  // verw ax / verr ax
      step();
      EXPECT_EQ(s.eip, kCode + 3);
      EXPECT_EQ(bool(s.eflags & kZf), verw ? c.writable : c.readable)
          << (verw ? "VERW " : "VERR ") << std::hex << c.selector;
    }
  }
}

TEST_F(SysSegmentsTest, ArplRaisesTheRpl) {
  enter_cpl3();
  s.gpr[kEax] = 0xffff0010;
  s.gpr[kEcx] = 0x0003;
  code({0x63, 0xc8});  // arpl ax, cx
  step();
  EXPECT_EQ(s.gpr[kEax], 0xffff0013u);
  EXPECT_TRUE(s.eflags & kZf);
  s.eip = kCode;
  step();
  EXPECT_EQ(s.gpr[kEax], 0xffff0013u);
  EXPECT_FALSE(s.eflags & kZf);
}

}  // namespace
}  // namespace vmbt::bt::testing
