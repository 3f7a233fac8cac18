// IN, OUT, INS, OUTS and the protected-mode I/O permission checks (Intel SDM Vol. 1 §19.5;
// Vol. 2A IN, INS; Vol. 2B OUT, OUTS).
#include "tests/unit/system_guest_image.h"

namespace vmbt::bt::testing {
namespace {

using namespace eflags;

class SysIoTest : public SystemEmulatorTest {
 protected:
  /// Clears the I/O permission bit of `port` in the TSS bitmap.
  void allow(uint16_t port) {
    const uint32_t a = kTss + kIoBitmap + port / 8;
    mem.put8(a, static_cast<uint8_t>(mem.u8(a) & ~(1u << (port & 7))));
  }
};

TEST_F(SysIoTest, InAtCpl3AllowedByTheBitmapReturnsAnIoRequest) {
  allow(0x3f8);
  enter_cpl3();
  s.gpr[kEdx] = 0x3f8;
  s.gpr[kEax] = 0x12345678;
  code({0xec});  // in al, dx
  StepResult r = step();
  ASSERT_EQ(r.kind, StepKind::kIo);
  EXPECT_EQ(r.io.port, 0x3f8);
  EXPECT_EQ(r.io.size, 1);
  EXPECT_FALSE(r.io.write);
  EXPECT_EQ(r.io.count, 1u);
  EXPECT_EQ(s.eip, kCode);  // not advanced until finish_io
  IoRequest done = r.io;
  done.data[0] = 0x5a;
  emu.finish_io(s, done);
  EXPECT_EQ(s.gpr[kEax], 0x1234565au);
  EXPECT_EQ(s.eip, kCode + 1);
}

TEST_F(SysIoTest, InFromAPortWhoseBitIsSetRaisesGp0) {
  allow(0x3f8);
  enter_cpl3();
  s.gpr[kEdx] = 0x3f9;
  code({0xec});
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kDone);
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0u);
  EXPECT_EQ(stack32(1), kCode);
}

TEST_F(SysIoTest, WordAccessNeedsTheBitsOfBothBytes) {
  allow(0x3f8);
  enter_cpl3();
  s.gpr[kEdx] = 0x3f8;
  code({0x66, 0xed});  // in ax, dx: ports 0x3f8 and 0x3f9
  step();
  EXPECT_EQ(s.eip, handler(13));
  SetUp();
  allow(0x3f8);
  allow(0x3f9);
  enter_cpl3();
  s.gpr[kEdx] = 0x3f8;
  code({0x66, 0xed});
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kIo);
  EXPECT_EQ(r.io.size, 2);
}

TEST_F(SysIoTest, AccessSpanningTwoBitmapBytes) {
  allow(0x3ff);
  allow(0x400);
  enter_cpl3();
  s.gpr[kEdx] = 0x3ff;
  code({0x66, 0xef});  // out dx, ax: ports 0x3ff and 0x400
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kIo);
}

TEST_F(SysIoTest, IoplAtLeastCplNeedsNoBitmap) {
  enter_cpl3();
  s.eflags = kFixed1 | kIopl;
  s.gpr[kEdx] = 0x60;
  code({0xec});
  EXPECT_EQ(step().kind, StepKind::kIo);
  SetUp();
  enter_cpl0();
  code({0xe4, 0x60});  // in al, 0x60 at CPL0, IOPL0
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kIo);
  EXPECT_EQ(r.io.port, 0x60);
}

TEST_F(SysIoTest, BitmapBytesBeyondTheTssLimitCountAsSet) {
  allow(0xffff);
  s.tr.limit = kTssLimit - 1;  // the byte after the bitmap's last byte is outside
  enter_cpl3();
  s.gpr[kEdx] = 0xffff;
  code({0xec});
  step();
  EXPECT_EQ(s.eip, handler(13));
}

TEST_F(SysIoTest, SixteenBitTssHasNoBitmap) {
  allow(0x3f8);
  s.tr.type = 0x3;  // busy 16-bit TSS: SP0 at +2, SS0 at +4 (Intel SDM Vol. 3A Figure 7-11)
  mem.put16(kTss + 2, 0x8800);
  mem.put16(kTss + 4, kKernelDs);
  enter_cpl3();
  s.gpr[kEdx] = 0x3f8;
  code({0xec});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(s.gpr[kEsp], 0x8800u - 24);  // the #GP went through the 16-bit TSS's SS0:SP0
}

TEST_F(SysIoTest, OutImmediateCarriesAl) {
  enter_cpl0();
  s.gpr[kEax] = 0x11223344;
  code({0xe6, 0x80});  // out 0x80, al
  StepResult r = step();
  ASSERT_EQ(r.kind, StepKind::kIo);
  EXPECT_TRUE(r.io.write);
  EXPECT_EQ(r.io.port, 0x80);
  EXPECT_EQ(r.io.size, 1);
  EXPECT_EQ(r.io.data[0], 0x44);
  emu.finish_io(s, r.io);
  EXPECT_EQ(s.eip, kCode + 2);
  EXPECT_EQ(s.gpr[kEax], 0x11223344u);
}

TEST_F(SysIoTest, OutDxEaxCarriesFourBytesLittleEndian) {
  enter_cpl0();
  s.gpr[kEax] = 0x11223344;
  s.gpr[kEdx] = 0xcf8;
  code({0xef});
  StepResult r = step();
  ASSERT_EQ(r.kind, StepKind::kIo);
  EXPECT_EQ(r.io.port, 0xcf8);
  EXPECT_EQ(r.io.size, 4);
  EXPECT_EQ(r.io.data[0], 0x44);
  EXPECT_EQ(r.io.data[3], 0x11);
}

TEST_F(SysIoTest, In16KeepsTheUpperHalfOfEax) {
  enter_cpl0();
  s.gpr[kEax] = 0xaabbccdd;
  s.gpr[kEdx] = 0x1f0;
  code({0x66, 0xed});
  StepResult r = step();
  r.io.data[0] = 0x34;
  r.io.data[1] = 0x12;
  emu.finish_io(s, r.io);
  EXPECT_EQ(s.gpr[kEax], 0xaabb1234u);
}

TEST_F(SysIoTest, RepOutsbBatchesStopAtThePageBoundary) {
  enter_cpl0();
  for (uint32_t i = 0; i < 200; ++i) mem.put8(0x60ff0 + i, static_cast<uint8_t>(i));
  s.gpr[kEsi] = 0x60ff0;
  s.gpr[kEcx] = 100;
  s.gpr[kEdx] = 0x3f8;
  code({0xf3, 0x6e});  // rep outsb
  StepResult r = step();
  ASSERT_EQ(r.kind, StepKind::kIo);
  EXPECT_TRUE(r.io.write);
  EXPECT_EQ(r.io.count, 16u);  // up to the end of the page
  EXPECT_EQ(r.io.data[0], 0);
  EXPECT_EQ(r.io.data[15], 15);
  emu.finish_io(s, r.io);
  EXPECT_EQ(s.gpr[kEsi], 0x61000u);
  EXPECT_EQ(s.gpr[kEcx], 84u);
  EXPECT_EQ(s.eip, kCode);  // not complete: re-executes
  r = step();
  ASSERT_EQ(r.kind, StepKind::kIo);
  EXPECT_EQ(r.io.count, 84u);  // at most ECX
  EXPECT_EQ(r.io.data[0], 16);
  emu.finish_io(s, r.io);
  EXPECT_EQ(s.gpr[kEsi], 0x61054u);
  EXPECT_EQ(s.gpr[kEcx], 0u);
  EXPECT_EQ(s.eip, kCode + 2);
}

TEST_F(SysIoTest, RepInswWithDfStoresDownwards) {
  enter_cpl0();
  s.eflags = kFixed1 | kDf;
  s.gpr[kEdi] = 0x60010;
  s.gpr[kEcx] = 4;
  s.gpr[kEdx] = 0x1f0;
  code({0xf3, 0x66, 0x6d});  // rep insw
  StepResult r = step();
  ASSERT_EQ(r.kind, StepKind::kIo);
  EXPECT_FALSE(r.io.write);
  EXPECT_EQ(r.io.size, 2);
  EXPECT_EQ(r.io.count, 4u);
  for (unsigned k = 0; k < 4; ++k) {
    r.io.data[2 * k] = static_cast<uint8_t>(0x10 + k);
    r.io.data[2 * k + 1] = 0xa0;
  }
  emu.finish_io(s, r.io);
  EXPECT_EQ(mem.u16(0x60010), 0xa010);
  EXPECT_EQ(mem.u16(0x6000e), 0xa011);
  EXPECT_EQ(mem.u16(0x6000c), 0xa012);
  EXPECT_EQ(mem.u16(0x6000a), 0xa013);
  EXPECT_EQ(s.gpr[kEdi], 0x60008u);
  EXPECT_EQ(s.gpr[kEcx], 0u);
  EXPECT_EQ(s.eip, kCode + 3);
}

TEST_F(SysIoTest, RepWithEcxZeroDoesNothing) {
  enter_cpl0();
  s.gpr[kEcx] = 0;
  code({0xf3, 0x6c});
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kDone);
  EXPECT_EQ(s.eip, kCode + 2);
}

TEST_F(SysIoTest, OutsHonoursTheSegmentOverrideAndItsLimit) {
  enter_cpl0();
  s.seg[kFs] = loaded(kByteDs, 0x50000, 0xfff, 0x3, 3, true, false);
  mem.put8(0x50010, 0x77);
  s.gpr[kEsi] = 0x10;
  s.gpr[kEdx] = 0x80;
  code({0x64, 0x6e});  // outsb with FS
  StepResult r = step();
  ASSERT_EQ(r.kind, StepKind::kIo);
  EXPECT_EQ(r.io.data[0], 0x77);
  emu.finish_io(s, r.io);
  EXPECT_EQ(s.gpr[kEsi], 0x11u);
  SetUp();
  enter_cpl0();
  s.seg[kFs] = loaded(kByteDs, 0x50000, 0xfff, 0x3, 3, true, false);
  s.gpr[kEsi] = 0x1000;  // beyond the limit
  code({0x64, 0x6e});
  step();
  EXPECT_EQ(s.eip, handler(13));
  EXPECT_EQ(stack32(0), 0u);
}

TEST_F(SysIoTest, InsFaultsOnItsDestinationBeforeTheDeviceIsAccessed) {
  enter_cpl0();
  mem.not_present.insert(0x60);
  s.gpr[kEdi] = 0x60000;
  s.gpr[kEdx] = 0x3f8;
  code({0x6c});  // insb
  StepResult r = step();
  EXPECT_EQ(r.kind, StepKind::kDone);
  EXPECT_EQ(s.eip, handler(14));
  EXPECT_EQ(s.cr2, 0x60000u);
  EXPECT_EQ(stack32(1), kCode);
}

TEST_F(SysIoTest, InsToAReadOnlyEsRaisesGp0) {
  enter_cpl0();
  s.seg[kEs] = loaded(0x58, 0, 0xffffffff, 0x1, 0);
  s.gpr[kEdi] = 0x60000;
  code({0x6c});
  step();
  EXPECT_EQ(s.eip, handler(13));
}

}  // namespace
}  // namespace vmbt::bt::testing
