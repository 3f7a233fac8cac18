// Virtual-8086 mode in the system emulator (Intel SDM Vol. 3A ch. 20 §20.2-20.3; Vol. 2 IRET,
// INT n, CLI, STI, PUSHF, POPF, IN/OUT and the "Virtual-8086 Mode Exceptions" of each): entering
// it by IRET and by a task switch, segment loads, the IOPL-sensitive instructions, the I/O
// permission bitmap, and events leaving it for the protected-mode handler.
#include "tests/unit/system_guest_image.h"

namespace vmbt::bt::testing {
namespace {

using namespace eflags;

class SysVm86Test : public SystemEmulatorTest {
 protected:
  static constexpr uint16_t kCodeSeg = 0x1000;   // CS: code at 0x10000 (kCode)
  static constexpr uint16_t kStackSeg = 0x0500;  // SS: stack at 0x5000 + SP
  static constexpr uint32_t kSp = 0x1f00;

  /// A virtual-8086 segment register as the processor caches it (§20.2.1; access rights 0xF3).
  static SegmentReg vm86_segment(uint16_t sel) {
    return loaded(sel, uint32_t{sel} << 4, 0xffff, 0x3, 3, false, false);
  }

  void enter_vm86(uint32_t iopl = 0) {
    s.seg[kCs] = vm86_segment(kCodeSeg);
    s.seg[kSs] = vm86_segment(kStackSeg);
    s.seg[kDs] = vm86_segment(0x2000);
    s.seg[kEs] = vm86_segment(0x3000);
    s.seg[kFs] = vm86_segment(0x4000);
    s.seg[kGs] = vm86_segment(0x5000);
    s.eip = 0;
    s.gpr[kEsp] = 0xabcd0000 | kSp;
    s.eflags = kFixed1 | kVm | kIf | kCf | (iopl << 12);
  }

  uint16_t vm_stack_word(unsigned i) const {
    return mem.u16(s.seg[kSs].base + ((s.gpr[kEsp] + 2 * i) & 0xffff));
  }

  /// The frame an event from virtual-8086 mode leaves on the CPL-0 stack (Intel SDM Vol. 3A
  /// Figure 20-5): [error code,] EIP, CS, EFLAGS, ESP, SS, ES, DS, FS, GS.
  void expect_vm86_frame(uint8_t vector, uint32_t eip, bool error_code, uint32_t code = 0) {
    expect_at_handler(vector);
    const unsigned e = error_code ? 1 : 0;
    EXPECT_EQ(s.gpr[kEsp], kKernelStackTop - 4 * (9 + e));
    if (error_code) {
      EXPECT_EQ(stack32(0), code);
    }
    EXPECT_EQ(stack32(e + 0), eip);
    EXPECT_EQ(stack32(e + 1), kCodeSeg);
    EXPECT_TRUE(stack32(e + 2) & kVm);
    EXPECT_EQ(stack32(e + 3), 0xabcd0000 | kSp);
    EXPECT_EQ(stack32(e + 4), kStackSeg);
    EXPECT_EQ(stack32(e + 5), 0x3000u);  // ES
    EXPECT_EQ(stack32(e + 6), 0x2000u);  // DS
    EXPECT_EQ(stack32(e + 7), 0x4000u);  // FS
    EXPECT_EQ(stack32(e + 8), 0x5000u);  // GS
    EXPECT_FALSE(s.eflags & kVm);
    EXPECT_EQ(s.cpl(), 0u);
  }
};

TEST_F(SysVm86Test, IretAtCpl0WithVmInThePoppedEflagsEntersVm86) {
  enter_cpl0();
  const uint32_t frame[9] = {0x0123, 0x1234, kFixed1 | kVm | kIf | (2u << 12) | kRf | kVif,
                             0x0ffe, 0x2345, 0x3456,
                             0x4567, 0x5678, 0x6789};
  for (unsigned i = 0; i < 9; ++i) mem.put32(kKernelStackTop - 0x100 + 4 * i, frame[i]);
  code({0xcf});  // iretd
  StepResult r = step();
  ASSERT_EQ(r.kind, StepKind::kDone) << r.message;
  EXPECT_EQ(s.eip, 0x0123u);
  EXPECT_EQ(s.eflags, frame[2]);  // loaded whole: VM, IOPL, VIF and RF as popped
  EXPECT_EQ(s.cpl(), 3u);
  EXPECT_EQ(s.gpr[kEsp], 0x0ffeu);
  const uint16_t sel[6] = {0x3456, 0x1234, 0x2345, 0x4567, 0x5678, 0x6789};  // ES CS SS DS FS GS
  for (unsigned i = 0; i < 6; ++i) {
    const SegmentReg& g = s.seg[i];
    EXPECT_EQ(g.selector, sel[i]) << i;
    EXPECT_EQ(g.base, uint32_t{sel[i]} << 4) << i;
    EXPECT_EQ(g.limit, 0xffffu) << i;
    EXPECT_EQ(g.dpl, 3) << i;
    EXPECT_EQ(g.type, 3) << i;
    EXPECT_FALSE(g.db) << i;
    EXPECT_FALSE(g.unusable) << i;
  }
}

TEST_F(SysVm86Test, IretToVm86NeedsItsWholeFrameInsideTheStackLimit) {
  enter_cpl0();
  const uint32_t esp = kKernelStackTop - 0x100;
  s.seg[kSs].limit = esp + 32 - 1;  // room for 8 doublewords, not 9
  mem.put32(esp + 8, kFixed1 | kVm);
  code({0xcf});
  ASSERT_EQ(step().kind, StepKind::kDone);
  expect_at_handler(12);  // #SS(0)
  EXPECT_EQ(stack32(0), 0u);
}

TEST_F(SysVm86Test, IretToVm86PastTheCsLimitFaultsInVm86) {
  enter_cpl0();
  const uint32_t esp = kKernelStackTop - 0x100;
  s.gpr[kEsp] = esp;
  const uint32_t frame[9] = {0x10000,          kCodeSeg,  kFixed1 | kVm | kCf,
                             0xabcd0000 | kSp, kStackSeg, 0x3000,
                             0x2000,           0x4000,    0x5000};
  for (unsigned i = 0; i < 9; ++i) mem.put32(esp + 4 * i, frame[i]);
  code({0xcf});
  ASSERT_EQ(step().kind, StepKind::kDone);
  // The IRET completed; its first fetch (EIP 0x10000 > limit 0xFFFF) is a #GP(0) from VM86.
  expect_vm86_frame(13, 0x10000, true, 0);
}

TEST_F(SysVm86Test, IretAboveCpl0IgnoresVm) {
  enter_cpl3();
  const uint32_t esp = kUserStackTop - 12;
  s.gpr[kEsp] = esp;
  mem.put32(esp, 0x5000);
  mem.put32(esp + 4, kUserCs);
  mem.put32(esp + 8, kFixed1 | kVm | kZf);
  code({0xcf});
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(s.eip, 0x5000u);
  EXPECT_EQ(s.eflags, kFixed1 | kZf);  // VM only changes at CPL 0 (Vol. 2A IRET)
}

TEST_F(SysVm86Test, AnExceptionGoesToTheCpl0HandlerWithTheSegmentsPushed) {
  enter_vm86();
  s.eflags |= kTf | kNt;
  StepResult r = emu.raise(s, 13, true, 0x1234);
  ASSERT_EQ(r.kind, StepKind::kDone) << r.message;
  expect_vm86_frame(13, 0, true, 0x1234);
  EXPECT_EQ(s.seg[kSs].selector, kKernelDs);
  for (unsigned i : {kDs, kEs, kFs, kGs}) {
    EXPECT_TRUE(s.seg[i].unusable) << i;
    EXPECT_EQ(s.seg[i].selector, 0) << i;
  }
  EXPECT_EQ(s.eflags, kFixed1 | kCf);  // VM, TF, NT and (interrupt gate) IF cleared
}

TEST_F(SysVm86Test, IoplSensitiveInstructionsFaultBelowIopl3) {
  const std::vector<std::vector<uint8_t>> insns = {
      {0xfa},        // cli
      {0xfb},        // sti
      {0x9c},        // pushf
      {0x66, 0x9c},  // pushfd
      {0x9d},        // popf
      {0xcd, 0x21},  // int 0x21
      {0xcf},        // iret
      {0x66, 0xcf},  // iretd
  };
  for (const auto& bytes : insns) {
    SCOPED_TRACE(::testing::Message() << "opcode " << std::hex << int{bytes.back()});
    enter_vm86(2);
    for (size_t i = 0; i < bytes.size(); ++i) mem.put8(kCode + i, bytes[i]);
    ASSERT_EQ(step().kind, StepKind::kDone);
    expect_vm86_frame(13, 0, true, 0);
    EXPECT_EQ(stack32(3) & (kIf | kIopl), kIf | (2u << 12));  // nothing changed before the #GP
  }
}

TEST_F(SysVm86Test, CliAndPushfRunWithIopl3) {
  enter_vm86(3);
  code({0xfa, 0x9c, 0x66, 0x9c});  // cli; pushf; pushfd
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_FALSE(s.eflags & kIf);
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(vm_stack_word(0), kFixed1 | kCf | (3u << 12));
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(s.gpr[kEsp], 0xabcd0000u | (kSp - 6));
  // PUSHFD's image has VM (and RF) clear (Vol. 2B PUSHF).
  EXPECT_EQ(mem.u32(s.seg[kSs].base + kSp - 6), kFixed1 | kCf | (3u << 12));
  EXPECT_TRUE(s.eflags & kVm);
}

TEST_F(SysVm86Test, PopfWithIopl3ChangesIfButNotIopl) {
  enter_vm86(3);
  s.eflags &= ~kIf;
  mem.put16(s.seg[kSs].base + kSp, kFixed1 | kIf | kZf);  // IOPL 0 in the image
  code({0x9d});
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(s.eflags, kFixed1 | kVm | kIf | kZf | (3u << 12));
}

TEST_F(SysVm86Test, IretWithIopl3StaysInVm86) {
  enter_vm86(3);
  mem.put16(s.seg[kSs].base + kSp, 0x0040);                   // IP
  mem.put16(s.seg[kSs].base + kSp + 2, 0x2222);               // CS
  mem.put16(s.seg[kSs].base + kSp + 4, kFixed1 | kZf | kTf);  // IOPL 0, IF 0 in the image
  code({0xcf});
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(s.eip, 0x40u);
  EXPECT_EQ(s.seg[kCs].base, 0x22220u);
  EXPECT_EQ(s.seg[kCs].dpl, 3);
  EXPECT_EQ(s.eflags, kFixed1 | kVm | kZf | kTf | (3u << 12));
  EXPECT_EQ(s.gpr[kEsp], 0xabcd0000u | (kSp + 6));
}

TEST_F(SysVm86Test, IretdWithIopl3KeepsVmAndChecksTheCsLimit) {
  enter_vm86(3);
  mem.put32(s.seg[kSs].base + kSp, 0x10000);  // EIP past the 64 KiB limit
  mem.put32(s.seg[kSs].base + kSp + 4, 0x2222);
  mem.put32(s.seg[kSs].base + kSp + 8, kFixed1);
  code({0x66, 0xcf});
  ASSERT_EQ(step().kind, StepKind::kDone);
  expect_vm86_frame(13, 0, true, 0);
  enter_vm86(3);
  mem.put32(s.seg[kSs].base + kSp, 0x0040);
  mem.put32(s.seg[kSs].base + kSp + 8, kFixed1 | kAc);  // VM, IOPL clear in the image
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(s.eip, 0x40u);
  EXPECT_EQ(s.eflags, kFixed1 | kVm | kAc | (3u << 12));
}

TEST_F(SysVm86Test, IntNWithIopl3GoesThroughTheIdtGateDplCheck) {
  enter_vm86(3);
  set_idt(0x21, gate_desc(kKernelCs, handler(0x21), 0xe, 3));
  code({0xcd, 0x21});
  ASSERT_EQ(step().kind, StepKind::kDone);
  expect_vm86_frame(0x21, 2, false);
  enter_vm86(3);
  set_idt(0x21, gate_desc(kKernelCs, handler(0x21), 0xe, 0));  // DPL 0 < CPL 3
  ASSERT_EQ(step().kind, StepKind::kDone);
  expect_vm86_frame(13, 0, true, 0x21 * 8 + 2);
}

TEST_F(SysVm86Test, Int3AndIntoAreNotIoplSensitive) {
  set_idt(3, gate_desc(kKernelCs, handler(3), 0xe, 3));
  set_idt(4, gate_desc(kKernelCs, handler(4), 0xe, 3));
  enter_vm86(0);
  code({0xcc});
  ASSERT_EQ(step().kind, StepKind::kDone);
  expect_vm86_frame(3, 1, false);
  enter_vm86(0);
  s.eflags |= kOf;
  code({0xce});
  ASSERT_EQ(step().kind, StepKind::kDone);
  expect_vm86_frame(4, 1, false);
}

TEST_F(SysVm86Test, TheHandlerMustBeANonConformingDpl0CodeSegment) {
  enter_vm86(3);
  set_idt(0x21, gate_desc(0xa8, handler(0x21), 0xe, 3));  // code DPL 1
  code({0xcd, 0x21});
  ASSERT_EQ(step().kind, StepKind::kDone);
  expect_vm86_frame(13, 0, true, 0xa8);
  enter_vm86(3);
  set_idt(0x21, gate_desc(kConfCs, handler(0x21), 0xe, 3));  // conforming
  ASSERT_EQ(step().kind, StepKind::kDone);
  expect_vm86_frame(13, 0, true, kConfCs);
  enter_vm86(3);
  set_idt(0x21, gate_desc(kUserCs, handler(0x21), 0xe, 3));  // DPL 3 = CPL
  ASSERT_EQ(step().kind, StepKind::kDone);
  expect_vm86_frame(13, 0, true, kUserCs & ~3u);
}

TEST_F(SysVm86Test, PortIoFollowsTheBitmapWhateverIopl) {
  mem.put8(kTss + kIoBitmap + 0x80 / 8, 0xfe);  // port 0x80 allowed, 0x81 denied
  enter_vm86(0);
  code({0xe4, 0x80});  // in al, 0x80
  StepResult r = step();
  ASSERT_EQ(r.kind, StepKind::kIo);
  EXPECT_EQ(r.io.port, 0x80);
  enter_vm86(3);
  code({0xe6, 0x81});  // out 0x81, al: IOPL 3 does not allow it in virtual-8086 mode
  ASSERT_EQ(step().kind, StepKind::kDone);
  expect_vm86_frame(13, 0, true, 0);
  enter_vm86(3);
  s.gpr[kEdx] = 0x80;
  s.gpr[kEsi] = 0;
  code({0x66, 0x6f});  // outsd: ports 0x80-0x83, 0x81 denied
  ASSERT_EQ(step().kind, StepKind::kDone);
  expect_vm86_frame(13, 0, true, 0);
}

TEST_F(SysVm86Test, SegmentLoadsSetBaseLimitAndRights) {
  enter_vm86();
  s.seg[kDs].limit = 0xffffffff;  // no "big real" limit survives a virtual-8086 load
  s.gpr[kEax] = 0x1234;
  code({0x8e, 0xd8, 0x8e, 0xd0});  // mov ds, ax; mov ss, ax
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(s.seg[kDs].base, 0x12340u);
  EXPECT_EQ(s.seg[kDs].limit, 0xffffu);
  EXPECT_EQ(s.seg[kDs].dpl, 3);
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(s.seg[kSs].base, 0x12340u);
  EXPECT_EQ(s.cpl(), 3u);  // still: CPL is 3 in virtual-8086 mode whatever SS holds
}

TEST_F(SysVm86Test, FarCallAndRetLoadCsAsVm86) {
  enter_vm86();
  code({0x9a, 0x34, 0x12, 0x00, 0x30});  // call 3000:1234
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(s.seg[kCs].base, 0x30000u);
  EXPECT_EQ(s.seg[kCs].dpl, 3);
  EXPECT_EQ(s.eip, 0x1234u);
  EXPECT_EQ(vm_stack_word(0), 5);
  EXPECT_EQ(vm_stack_word(1), kCodeSeg);
  code({0xcb});  // retf
  ASSERT_EQ(step().kind, StepKind::kDone);
  EXPECT_EQ(s.seg[kCs].base, uint32_t{kCodeSeg} << 4);
  EXPECT_EQ(s.eip, 5u);
  EXPECT_TRUE(s.eflags & kVm);
}

TEST_F(SysVm86Test, AFarJumpPastTheCsLimitIsGp) {
  enter_vm86();
  code({0x66, 0xea, 0, 0, 1, 0, 0x00, 0x30});  // jmp far 3000:00010000
  ASSERT_EQ(step().kind, StepKind::kDone);
  expect_vm86_frame(13, 0, true, 0);
}

TEST_F(SysVm86Test, ProtectedModeInstructionsAreUndefinedOrPrivileged) {
  enter_vm86();
  code({0x0f, 0x02, 0xc0});  // lar ax, ax: #UD in virtual-8086 mode
  ASSERT_EQ(step().kind, StepKind::kDone);
  expect_vm86_frame(6, 0, false);
  enter_vm86(3);
  code({0xf4});  // hlt: CPL 3, #GP(0)
  ASSERT_EQ(step().kind, StepKind::kDone);
  expect_vm86_frame(13, 0, true, 0);
}

TEST_F(SysVm86Test, ATaskSwitchToATssWithVmStartsAVm86Task) {
  enter_cpl0();
  constexpr uint32_t kNewTss = 0x6800;  // past the current TSS and its bitmap
  set_gdt(6, seg_desc(kNewTss, 0x67, 0x9, false, 0, true, false, false));
  mem.put32(kNewTss + 0x20, 0x0100);                                         // EIP
  mem.put32(kNewTss + 0x24, kFixed1 | kVm | (3u << 12));                     // EFLAGS
  mem.put32(kNewTss + 0x38, 0x0800);                                         // ESP
  const uint16_t sel[6] = {0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666};  // ES CS SS DS FS GS
  for (unsigned i = 0; i < 6; ++i) mem.put32(kNewTss + 0x48 + 4 * i, sel[i]);
  code({0xea, 0, 0, 0, 0, kTss2Sel, 0});  // jmp kTss2Sel:0
  StepResult r = step();
  ASSERT_EQ(r.kind, StepKind::kDone) << r.message;
  EXPECT_TRUE(s.eflags & kVm);
  EXPECT_EQ(s.cpl(), 3u);
  EXPECT_EQ(s.eip, 0x100u);
  EXPECT_EQ(s.tr.selector, kTss2Sel);
  for (unsigned i = 0; i < 6; ++i) {
    EXPECT_EQ(s.seg[i].base, uint32_t{sel[i]} << 4) << i;
    EXPECT_EQ(s.seg[i].limit, 0xffffu) << i;
    EXPECT_EQ(s.seg[i].dpl, 3) << i;
  }
}

TEST_F(SysVm86Test, CpuidDoesNotAdvertiseVme) {
  EXPECT_FALSE(CpuModel::query(1, 0).edx & (1u << 1));  // CR4.VME never usable
}

}  // namespace
}  // namespace vmbt::bt::testing
