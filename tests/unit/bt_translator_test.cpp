// Targeted bt translator behaviours the generated differential cases do not reach.
#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "tests/difftest/bt_snippet_runner.h"
#include "tests/difftest/native_runner.h"

namespace vmbt::difftest {
namespace {

BtResult run_bt(std::vector<uint8_t> code, CpuSnapshot in = {}, unsigned timeout_ms = 2000) {
  BtSnippetRunner bt;
  std::vector<uint8_t> arena(NativeRunner::kDataSize, 0);
  NativeCase c;
  c.code = std::move(code);
  c.in = in;
  if (c.in.gpr[4] == 0) c.in.gpr[4] = NativeRunner::kDataBase + NativeRunner::kDataSize - 64;
  return bt.run(c, arena.data(), timeout_ms);
}

TEST(BtTranslator, RepBsfIsBsfOnACpuWithoutBmi1) {
  // mov eax, 0; mov ebx, 0x55; rep bsf ebx, eax  -> BSF with a zero source: ZF=1, EBX unchanged
  // (Intel SDM Vol. 2A BSF; TZCNT would set EBX=32 and CF=1).
  BtResult r = run_bt({0xb8, 0, 0, 0, 0, 0xbb, 0x55, 0, 0, 0, 0xf3, 0x0f, 0xbc, 0xd8});
  ASSERT_TRUE(r.engine_error.empty()) << r.engine_error;
  EXPECT_EQ(r.out.gpr[3], 0x55u);
  EXPECT_TRUE(r.out.eflags & flag::kZf);
  // rep bsr (LZCNT's encoding) with source 0x100 gives 8 (BSR), not 23 (LZCNT).
  r = run_bt({0xb8, 0, 1, 0, 0, 0xf3, 0x0f, 0xbd, 0xd8});
  EXPECT_EQ(r.out.gpr[3], 8u);
}

TEST(BtTranslator, Endbr32IsAHintNop) {
  // endbr32; mov eax, 7
  BtResult r = run_bt({0xf3, 0x0f, 0x1e, 0xfb, 0xb8, 7, 0, 0, 0});
  ASSERT_TRUE(r.engine_error.empty()) << r.engine_error;
  EXPECT_FALSE(r.faulted);
  EXPECT_EQ(r.out.gpr[0], 7u);
}

TEST(BtTranslator, SelfModifyingCodeSeesTheNewInstruction) {
  // 0: mov byte [0x10100f], 0x2a   ; patch the immediate of the mov below
  // 7: jmp 9                       ; a jump makes the store visible (SDM Vol. 3A §8.1.3)
  // 9: ... 0x10100e: mov eax, imm32 (imm at +0x0f)
  std::vector<uint8_t> code = {0xc6, 0x05, 0x0f, 0x10, 0x10, 0x00, 0x2a,  // mov byte [..], 0x2a
                               0xeb, 0x05,                                // jmp +5
                               0x90, 0x90, 0x90, 0x90, 0x90,              // padding
                               0xb8, 0x01, 0x00, 0x00, 0x00};             // mov eax, 1
  // The first run translates the code, the store hits a page holding it.
  BtResult r = run_bt(code);
  ASSERT_TRUE(r.engine_error.empty()) << r.engine_error;
  EXPECT_EQ(r.out.gpr[0], 0x2au);
}

TEST(BtTranslator, AChainedInfiniteLoopCanBeInterrupted) {
  // 0: jmp 0 — a block chained to itself. The watchdog's kick must still get out.
  auto t0 = std::chrono::steady_clock::now();
  BtResult r = run_bt({0xeb, 0xfe}, {}, 300);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(s, 5.0);
  // A loop through an indirect branch (ret to itself) too.
  // 0: push 0x101000; ret
  r = run_bt({0x68, 0x00, 0x10, 0x10, 0x00, 0xc3}, {}, 300);
  EXPECT_TRUE(r.timed_out);
}

TEST(BtTranslator, DivideErrorIsPreciseMidBlock) {
  // mov ecx, 5; mov eax, 9; xor edx, edx; div edx?  -> use div ebx with ebx=0
  // mov ecx,5; xor ebx,ebx; mov eax,9; div ebx; mov ecx,6
  std::vector<uint8_t> code = {0xb9, 5, 0,    0,    0,    0x31, 0xdb, 0xb8, 9, 0,
                               0,    0, 0xf7, 0xf3, 0xb9, 6,    0,    0,    0};
  BtResult r = run_bt(code);
  ASSERT_TRUE(r.faulted);
  EXPECT_EQ(r.vector, 0);                                   // #DE
  EXPECT_EQ(r.fault_eip, NativeRunner::kSnippetBase + 12);  // the DIV, not after it
  EXPECT_EQ(r.out.gpr[1], 5u);                              // the MOV after it did not run
  EXPECT_EQ(r.out.gpr[0], 9u);
}

TEST(BtTranslator, GuestCannotReachHostMemoryOutsideItsRam) {
  // mov eax, [0xfffffff0]: far outside the 4 MiB of RAM: the run stops with a message, the
  // host does not crash.
  BtResult r = run_bt({0xa1, 0xf0, 0xff, 0xff, 0xff});
  EXPECT_FALSE(r.engine_error.empty());
  EXPECT_NE(r.engine_error.find("no RAM behind it"), std::string::npos) << r.engine_error;
  // bts [0], eax with EAX = -2^31: the operand is 256 MiB below the window base.
  r = run_bt({0xb8, 0, 0, 0, 0x80, 0x0f, 0xab, 0x05, 0, 0, 0, 0});
  EXPECT_FALSE(r.engine_error.empty());
}

}  // namespace
}  // namespace vmbt::difftest
