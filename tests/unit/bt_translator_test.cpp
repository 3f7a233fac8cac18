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
  // mov dword [0xfffffff0], 0x5a5a5a5a; mov eax, [0xfffffff0]: far above the 4 MiB of RAM.
  // Nothing is there: the store vanishes and the load reads all ones, as on a PC's bus.
  BtResult r = run_bt({0xc7, 0x05, 0xf0, 0xff, 0xff, 0xff, 0x5a, 0x5a, 0x5a, 0x5a,  //
                       0xa1, 0xf0, 0xff, 0xff, 0xff});
  ASSERT_TRUE(r.engine_error.empty()) << r.engine_error;
  EXPECT_EQ(r.out.gpr[0], 0xffffffffu);
  // bts [0], eax with EAX = -2^31: the bit is 256 MiB below linear 0, which wraps to linear
  // 0xF0000000 (Intel SDM Vol. 2A "BT": a signed bit offset; addresses modulo 2^32): nothing is
  // there either, so the bit reads 1 (CF = 1) and the store vanishes; nothing outside the
  // window moves.
  r = run_bt({0xb8, 0, 0, 0, 0x80, 0x0f, 0xab, 0x05, 0, 0, 0, 0});
  ASSERT_TRUE(r.engine_error.empty()) << r.engine_error;
  EXPECT_EQ(r.out.eflags & 1, 1u);
}

}  // namespace
}  // namespace vmbt::difftest

namespace vmbt::difftest {
namespace {

/// Runs `code` natively and under bt from the same state; both must raise `vector` at the same
/// EIP (the host CPU is the oracle for which exception a user-level instruction raises).
void expect_same_exception(std::vector<uint8_t> code, int vector) {
  VMBT_SKIP_WITHOUT_NATIVE_32BIT();
  NativeRunner native;
  NativeCase c;
  c.code = std::move(code);
  c.in.gpr[4] = NativeRunner::kDataBase + NativeRunner::kDataSize - 64;
  std::fill(native.data(), native.data() + NativeRunner::kDataSize, 0);
  NativeResult n = native.run(c);
  ASSERT_TRUE(n.faulted);
  EXPECT_EQ(n.vector, vector) << "the host raised another exception";
  std::vector<uint8_t> arena(NativeRunner::kDataSize, 0);
  BtResult b = BtSnippetRunner().run(c, arena.data());
  ASSERT_TRUE(b.engine_error.empty()) << b.engine_error;
  ASSERT_TRUE(b.faulted);
  EXPECT_EQ(b.vector, n.vector);
  EXPECT_EQ(b.fault_eip, n.fault_eip);
}

TEST(BtTranslator, MisalignedMovapsIsGeneralProtection) {
  // movaps xmm0, [0x1001]
  expect_same_exception({0x0f, 0x28, 0x05, 0x01, 0x10, 0x00, 0x00}, 13);
}

TEST(BtTranslator, UnmaskedSseDivideByZeroIsSimdException) {
  // mov dword [0x1000], 0x1d00 (MXCSR: all masked but ZE); ldmxcsr [0x1000];
  // xorps xmm1, xmm1; mov dword [0x1004], 0x3f800000; movss xmm0, [0x1004]; divss xmm0, xmm1
  expect_same_exception({0xc7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x00,  //
                         0x0f, 0xae, 0x15, 0x00, 0x10, 0x00, 0x00,                    //
                         0x0f, 0x57, 0xc9,                                            //
                         0xc7, 0x05, 0x04, 0x10, 0x00, 0x00, 0x00, 0x00, 0x80, 0x3f,  //
                         0xf3, 0x0f, 0x10, 0x05, 0x04, 0x10, 0x00, 0x00,              //
                         0xf3, 0x0f, 0x5e, 0xc1},
                        19);
}

TEST(BtTranslator, UnmaskedX87DivideByZeroIsFloatingPointErrorAtTheNextWait) {
  // fninit; mov word [0x1000], 0x037b (ZM clear); fldcw [0x1000]; fld1; fldz; fdivp; fwait
  expect_same_exception({0xdb, 0xe3,                                            //
                         0x66, 0xc7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x7b, 0x03,  //
                         0xd9, 0x2d, 0x00, 0x10, 0x00, 0x00,                    //
                         0xd9, 0xe8, 0xd9, 0xee, 0xde, 0xf9, 0x9b, 0xdb, 0xe3},
                        16);
}

}  // namespace
}  // namespace vmbt::difftest
