// The native-execution oracle checked against documented IA-32 results (Intel SDM Vol. 2), the
// case generator against its own invariants, and Zydis against Capstone on generated code.
#include <gtest/gtest.h>

#include <csignal>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/difftest/case_generator.h"
#include "tests/difftest/code16_case.h"
#include "tests/difftest/decode_check.h"
#include "tests/difftest/native_runner.h"

namespace vmbt::difftest {
namespace {

constexpr uint32_t kArenaMid = NativeRunner::kDataBase + 0x8000;
constexpr uint32_t kStackTop = NativeRunner::kDataBase + 0xc000;

class NativeOracleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { runner_ = std::make_unique<NativeRunner>(); }
  static void TearDownTestSuite() { runner_.reset(); }
  void SetUp() override {
    VMBT_SKIP_WITHOUT_NATIVE_32BIT();
    std::memset(runner_->data(), 0, NativeRunner::kDataSize);
  }

  /// A case with distinct register values, ESP inside the arena and the given flags.
  static NativeCase make(std::vector<uint8_t> code, uint32_t eflags = flag::kFixed1) {
    NativeCase c;
    c.code = std::move(code);
    c.in.gpr = {0x11111111, 0x22222222, 0x33333333, 0x44444444,
                kStackTop,  0x66666666, 0x77777777, 0x88888888};
    c.in.eflags = eflags;
    return c;
  }
  static NativeResult run(const NativeCase& c) { return runner_->run(c); }
  static uint32_t arena32(const NativeResult& r, uint32_t addr) {
    uint32_t v;
    std::memcpy(&v, &r.memory[addr - NativeRunner::kDataBase], 4);
    return v;
  }

  static std::unique_ptr<NativeRunner> runner_;
};

std::unique_ptr<NativeRunner> NativeOracleTest::runner_;

TEST_F(NativeOracleTest, AllRegistersAndFlagsRoundTripThroughAnEmptySnippet) {
  for (uint32_t fl : {flag::kFixed1, flag::kFixed1 | flag::kCompared,
                      flag::kFixed1 | flag::kCf | flag::kZf | flag::kDf,
                      flag::kFixed1 | flag::kOf | flag::kSf | flag::kAf | flag::kPf}) {
    NativeCase c = make({}, fl);
    const NativeResult r = run(c);
    ASSERT_FALSE(r.faulted);
    EXPECT_EQ(r.out.gpr, c.in.gpr);
    EXPECT_EQ(r.out.eflags & flag::kCompared, fl & flag::kCompared);
  }
}

TEST_F(NativeOracleTest, AddSetsCarryAndZeroPerSdm) {
  NativeCase c = make({0x01, 0xd8});  // add eax, ebx
  c.in.gpr[reg::kEax] = 0xffffffff;
  c.in.gpr[reg::kEbx] = 1;
  const NativeResult r = run(c);
  ASSERT_FALSE(r.faulted);
  EXPECT_EQ(r.out.gpr[reg::kEax], 0u);
  EXPECT_EQ(r.out.gpr[reg::kEbx], 1u);
  // 0xffffffff + 1: CF=1 ZF=1 AF=1 (carry out of bit 3) PF=1 (0 has even parity) SF=0 OF=0.
  EXPECT_EQ(r.out.eflags & flag::kArith, flag::kCf | flag::kZf | flag::kAf | flag::kPf);
}

TEST_F(NativeOracleTest, OneByteIncDecAreIncDecIn32BitMode) {
  // 0x40/0x4B are REX prefixes in 64-bit mode; in compatibility mode: INC EAX, DEC EBX.
  NativeCase c = make({0x40, 0x4b}, flag::kFixed1 | flag::kCf);
  c.in.gpr[reg::kEax] = 0x7fffffff;
  c.in.gpr[reg::kEbx] = 1;
  const NativeResult r = run(c);
  ASSERT_FALSE(r.faulted);
  EXPECT_EQ(r.out.gpr[reg::kEax], 0x80000000u);
  EXPECT_EQ(r.out.gpr[reg::kEbx], 0u);
  // DEC EBX (1 -> 0) leaves ZF=1 PF=1, OF=0 SF=0; CF is not affected by INC/DEC.
  EXPECT_EQ(r.out.eflags & flag::kArith, flag::kCf | flag::kZf | flag::kPf);
}

TEST_F(NativeOracleTest, AaaGivesTheSdmResult) {
  // AAA: (AL & 0xf) > 9 -> AX += 0x106, AF=CF=1, AL &= 0xf.
  NativeCase c = make({0x37});
  c.in.gpr[reg::kEax] = 0xabcd000f;
  NativeResult r = run(c);
  ASSERT_FALSE(r.faulted);
  EXPECT_EQ(r.out.gpr[reg::kEax], 0xabcd0105u);
  EXPECT_EQ(r.out.eflags & (flag::kCf | flag::kAf), flag::kCf | flag::kAf);
  // Otherwise AF=CF=0 and only AL &= 0xf.
  c.in.gpr[reg::kEax] = 0x00000235;
  r = run(c);
  EXPECT_EQ(r.out.gpr[reg::kEax], 0x00000205u);
  EXPECT_EQ(r.out.eflags & (flag::kCf | flag::kAf), 0u);
}

TEST_F(NativeOracleTest, DaaAndDasFollowTheSdmExamples) {
  // SDM DAA example: ADD AL, BL with AL=79H BL=35H gives AEH; DAA gives 14H, CF=1 AF=1.
  NativeCase c = make({0x00, 0xd8, 0x27});  // add al, bl; daa
  c.in.gpr[reg::kEax] = 0x79;
  c.in.gpr[reg::kEbx] = 0x35;
  NativeResult r = run(c);
  ASSERT_FALSE(r.faulted);
  EXPECT_EQ(r.out.gpr[reg::kEax] & 0xff, 0x14u);
  const uint32_t daa_known = flag::kCf | flag::kAf | flag::kSf | flag::kZf | flag::kPf;
  EXPECT_EQ(r.out.eflags & daa_known, flag::kCf | flag::kAf | flag::kPf);
  // SDM DAS example: SUB AL, BL with AL=35H BL=47H gives EEH; DAS gives 88H, CF=1 AF=1.
  c = make({0x28, 0xd8, 0x2f});  // sub al, bl; das
  c.in.gpr[reg::kEax] = 0x35;
  c.in.gpr[reg::kEbx] = 0x47;
  r = run(c);
  ASSERT_FALSE(r.faulted);
  EXPECT_EQ(r.out.gpr[reg::kEax] & 0xff, 0x88u);
  EXPECT_EQ(r.out.eflags & daa_known, flag::kCf | flag::kAf | flag::kSf | flag::kPf);
}

TEST_F(NativeOracleTest, DivideByZeroFaultsPreciselyAndTheNextRunWorks) {
  NativeCase c = make({0x90, 0xf7, 0xf1});  // nop; div ecx
  c.in.gpr[reg::kEcx] = 0;
  const NativeResult r = run(c);
  ASSERT_TRUE(r.faulted);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.signal, SIGFPE);
  EXPECT_EQ(r.vector, 0);  // #DE
  EXPECT_EQ(r.fault_eip, NativeRunner::kSnippetBase + 1);
  EXPECT_EQ(r.out.gpr, c.in.gpr);  // fault: state before the DIV

  const NativeResult ok = run(make({0x40}));
  ASSERT_FALSE(ok.faulted);
  EXPECT_EQ(ok.out.gpr[reg::kEax], 0x11111112u);
}

TEST_F(NativeOracleTest, OtherFaultsAreReportedWithSignalAndVector) {
  NativeResult r = run(make({0x0f, 0x0b}));  // ud2
  ASSERT_TRUE(r.faulted);
  EXPECT_EQ(r.signal, SIGILL);
  EXPECT_EQ(r.vector, 6);
  EXPECT_EQ(r.fault_eip, NativeRunner::kSnippetBase);

  // inc eax; mov eax, [guard page + 0x10]: a page fault just past the arena
  constexpr uint32_t kBad = NativeRunner::kGuardBase + 0x10;
  r = run(make({0x40, 0xa1, kBad & 0xff, (kBad >> 8) & 0xff, (kBad >> 16) & 0xff, kBad >> 24}));
  ASSERT_TRUE(r.faulted);
  EXPECT_EQ(r.signal, SIGSEGV);
  EXPECT_EQ(r.vector, 14);
  EXPECT_EQ(r.fault_addr, kBad);
  EXPECT_EQ(r.fault_eip, NativeRunner::kSnippetBase + 1);
  EXPECT_EQ(r.out.gpr[reg::kEax], 0x11111112u);  // the INC retired

  r = run(make({0xcc, 0x90}));  // int3: a trap, EIP after it
  ASSERT_TRUE(r.faulted);
  EXPECT_EQ(r.signal, SIGTRAP);
  EXPECT_EQ(r.fault_eip, NativeRunner::kSnippetBase + 1);

  // BOUND (62 /r, EVEX in 64-bit mode) raising #BR.
  NativeCase b = make({0x62, 0x05, 0x00, 0x90, 0x00, 0x00});  // bound eax, [0x9000]
  b.in.gpr[reg::kEax] = 5;
  std::memset(runner_->data(), 0, NativeRunner::kDataSize);
  const uint32_t bounds[2] = {10, 20};
  std::memcpy(runner_->data() + (0x9000 - NativeRunner::kDataBase), bounds, sizeof bounds);
  r = run(b);
  ASSERT_TRUE(r.faulted);
  EXPECT_EQ(r.vector, 5);
  EXPECT_EQ(r.signal, SIGSEGV);
}

TEST_F(NativeOracleTest, InfiniteLoopTimesOut) {
  runner_->set_timeout_ms(100);
  const NativeResult r = run(make({0xeb, 0xfe}));  // jmp $
  runner_->set_timeout_ms(2000);
  ASSERT_TRUE(r.faulted);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.fault_eip, NativeRunner::kSnippetBase);
  EXPECT_FALSE(run(make({0x90})).faulted);
}

TEST_F(NativeOracleTest, OperandSizePrefixAddWrapsAt16Bits) {
  NativeCase c = make({0x66, 0x01, 0xd8});  // add ax, bx
  c.in.gpr[reg::kEax] = 0x1234ffff;
  c.in.gpr[reg::kEbx] = 0xabcd0001;
  const NativeResult r = run(c);
  ASSERT_FALSE(r.faulted);
  EXPECT_EQ(r.out.gpr[reg::kEax], 0x12340000u);  // upper half untouched
  EXPECT_EQ(r.out.eflags & (flag::kCf | flag::kZf | flag::kSf | flag::kOf), flag::kCf | flag::kZf);
}

TEST_F(NativeOracleTest, AddressSizePrefixUsesSixteenBitAddresses) {
  // 67 8B 07: mov eax, [bx]; the upper half of EBX is ignored.
  NativeCase c = make({0x67, 0x8b, 0x07});
  c.in.gpr[reg::kEbx] = 0xffff0000u | (kArenaMid & 0xffff);
  const uint32_t v = 0xcafef00d;
  std::memcpy(runner_->data() + (kArenaMid - NativeRunner::kDataBase), &v, 4);
  const NativeResult r = run(c);
  ASSERT_FALSE(r.faulted);
  EXPECT_EQ(r.out.gpr[reg::kEax], v);
}

TEST_F(NativeOracleTest, RepMovsbCopiesForwardAndBackward) {
  constexpr uint32_t kSrc = NativeRunner::kDataBase + 0x3000,
                     kDst = NativeRunner::kDataBase + 0x5000;
  constexpr uint32_t kN = 37;
  uint8_t* arena = runner_->data();
  for (uint32_t i = 0; i < kN; ++i) arena[kSrc - NativeRunner::kDataBase + i] = uint8_t(i * 7 + 1);

  NativeCase c = make({0xf3, 0xa4});  // rep movsb
  c.in.gpr[reg::kEsi] = kSrc;
  c.in.gpr[reg::kEdi] = kDst;
  c.in.gpr[reg::kEcx] = kN;
  NativeResult r = run(c);
  ASSERT_FALSE(r.faulted);
  EXPECT_EQ(r.out.gpr[reg::kEcx], 0u);
  EXPECT_EQ(r.out.gpr[reg::kEsi], kSrc + kN);
  EXPECT_EQ(r.out.gpr[reg::kEdi], kDst + kN);
  for (uint32_t i = 0; i < kN; ++i)
    EXPECT_EQ(r.memory[kDst - NativeRunner::kDataBase + i], uint8_t(i * 7 + 1)) << i;
  EXPECT_EQ(r.memory[kDst - NativeRunner::kDataBase + kN], 0);

  // DF=1: from the last byte down.
  c.in.eflags = flag::kFixed1 | flag::kDf;
  c.in.gpr[reg::kEsi] = kSrc + kN - 1;
  c.in.gpr[reg::kEdi] = kDst + 0x100 + kN - 1;
  r = run(c);
  ASSERT_FALSE(r.faulted);
  EXPECT_EQ(r.out.gpr[reg::kEsi], kSrc - 1);
  EXPECT_EQ(r.out.gpr[reg::kEdi], kDst + 0x100 - 1);
  EXPECT_NE(r.out.eflags & flag::kDf, 0u);
  for (uint32_t i = 0; i < kN; ++i)
    EXPECT_EQ(r.memory[kDst + 0x100 - NativeRunner::kDataBase + i], uint8_t(i * 7 + 1)) << i;
}

TEST_F(NativeOracleTest, PushfdPopfdRoundTrip) {
  const uint32_t in = flag::kFixed1 | flag::kCf | flag::kZf | flag::kOf;
  // pushfd; pop eax; push eax; xor dword [esp], 0x8d5; popfd
  NativeCase c = make({0x9c, 0x58, 0x50, 0x81, 0x34, 0x24, 0xd5, 0x08, 0x00, 0x00, 0x9d}, in);
  const NativeResult r = run(c);
  ASSERT_FALSE(r.faulted);
  EXPECT_EQ(r.out.gpr[reg::kEax] & flag::kCompared, in & flag::kCompared);
  EXPECT_EQ(r.out.eflags & flag::kArith, (in ^ 0x8d5) & flag::kArith);
  EXPECT_EQ(r.out.gpr[reg::kEsp], kStackTop);
  EXPECT_EQ(arena32(r, kStackTop - 4) & flag::kArith, (in ^ 0x8d5) & flag::kArith);
}

TEST_F(NativeOracleTest, PushWritesTheArenaBelowEsp) {
  const NativeResult r = run(make({0x50, 0x6a, 0xff}));  // push eax; push -1
  ASSERT_FALSE(r.faulted);
  EXPECT_EQ(r.out.gpr[reg::kEsp], kStackTop - 8);
  EXPECT_EQ(arena32(r, kStackTop - 4), 0x11111111u);
  EXPECT_EQ(arena32(r, kStackTop - 8), 0xffffffffu);
}

/// 16-bit code (NativeCase::code16): the operand and address sizes flip (Intel SDM Vol. 1
/// §3.6), the stack is SS:SP, and offsets beyond 0xffff are outside the segments.
class NativeOracle16Test : public NativeOracleTest {
 protected:
  void SetUp() override {
    VMBT_SKIP_WITHOUT_NATIVE_16BIT();
    NativeOracleTest::SetUp();
  }
  static NativeCase make16(std::vector<uint8_t> code) {
    NativeCase c = make(std::move(code));
    c.code16 = true;
    return c;
  }
};

TEST_F(NativeOracle16Test, OperandSizeDefaultsTo16BitsAnd66hSelects32) {
  // B8 iw: MOV AX, imm16 keeps EAX's top half; 66 B8 id: MOV EAX, imm32.
  NativeResult r = run(make16({0xb8, 0x34, 0x12, 0x66, 0xb9, 0x78, 0x56, 0x34, 0x12}));
  ASSERT_FALSE(r.faulted) << r.vector;
  EXPECT_EQ(r.out.gpr[reg::kEax], 0x11111234u);
  EXPECT_EQ(r.out.gpr[reg::kEcx], 0x12345678u);
}

TEST_F(NativeOracle16Test, AddressesAreDataSegmentOffsets) {
  // MOV [BX+SI+2], AX with BX = 0x100, SI = 0x20: linear kDataBase + 0x122 (DS's base is the
  // arena); 67 89 03: MOV [EBX], AX with a 32-bit address.
  NativeCase c = make16({0xbb, 0x00, 0x01, 0xbe, 0x20, 0x00, 0x89, 0x40, 0x02,  //
                         0x66, 0xbb, 0x00, 0x02, 0x00, 0x00, 0x67, 0x89, 0x03});
  NativeResult r = run(c);
  ASSERT_FALSE(r.faulted) << r.vector;
  EXPECT_EQ(r.memory[0x122], 0x11);
  EXPECT_EQ(r.memory[0x123], 0x11);
  EXPECT_EQ(r.memory[0x200], 0x11);
}

TEST_F(NativeOracle16Test, OffsetsBeyondTheLimitRaiseGpAndSs) {
  // 67 8B 03: MOV AX, [EBX] with EBX = 0x10000 is beyond DS's limit: #GP(0). 67 8B 03 with
  // EBX = 0xffff reads 2 bytes of which one is beyond: #GP too. 67 8B 04 24: [ESP] = SS: #SS(0).
  NativeCase c = make16({0x66, 0xbb, 0x00, 0x00, 0x01, 0x00, 0x67, 0x8b, 0x03});
  NativeResult r = run(c);
  ASSERT_TRUE(r.faulted);
  EXPECT_EQ(r.vector, 13);
  EXPECT_EQ(r.fault_eip, NativeRunner::kSnippetBase + 6);
  c = make16({0x66, 0xbb, 0xff, 0xff, 0x00, 0x00, 0x67, 0x8b, 0x03});
  r = run(c);
  ASSERT_TRUE(r.faulted);
  EXPECT_EQ(r.vector, 13);
  c = make16({0x66, 0xbc, 0x00, 0x00, 0x01, 0x00, 0x67, 0x8b, 0x04, 0x24});
  r = run(c);
  ASSERT_TRUE(r.faulted);
  EXPECT_EQ(r.vector, 12);
}

TEST_F(NativeOracle16Test, PushUsesSpAndWrapsInTheSegment) {
  // With ESP = 0x12340000, PUSH AX stores at SS:0xfffe and leaves ESP = 0x1234fffe (SS.B = 0:
  // only SP changes, Intel SDM Vol. 1 §6.2.3).
  NativeCase c = make16({0x50});
  c.in.gpr[reg::kEsp] = 0x12340000;
  NativeResult r = run(c);
  ASSERT_FALSE(r.faulted) << r.vector;
  EXPECT_EQ(r.out.gpr[reg::kEsp], 0x1234fffeu);
  EXPECT_EQ(r.memory[0xfffe], 0x11);
  EXPECT_EQ(r.memory[0xffff], 0x11);
}

TEST_F(NativeOracle16Test, ReencodedCasesKeepTheirSizes) {
  // 66 01 C8 (ADD AX, CX in 32-bit code) becomes 01 C8; 01 C8 (ADD EAX, ECX) becomes 66 01 C8;
  // 67 8B 07 (MOV EAX, [BX]) becomes 66 8B 07; a JMP rel8 over them keeps its target.
  GeneratedCase gc;
  gc.c = make({0xeb, 0x05, 0x66, 0x01, 0xc8, 0x01, 0xc8, 0x67, 0x8b, 0x07});
  gc.insns = {{0, 2, "jcc:jmp short"}, {2, 3, "alu:add"}, {5, 2, "alu:add"}, {7, 3, "mov:load"}};
  std::string why;
  const std::optional<GeneratedCase> g16 = to_code16(gc, &why);
  ASSERT_TRUE(g16) << why;
  const std::vector<uint8_t> want = {0x66, 0xeb, 0x05, 0x01, 0xc8, 0x66,
                                     0x01, 0xc8, 0x66, 0x8b, 0x07};
  EXPECT_EQ(g16->c.code, want);
  EXPECT_TRUE(g16->c.code16);
  EXPECT_EQ(g16->insns[1].offset, 3u);
  EXPECT_EQ(g16->insns[3].offset, 8u);
  EXPECT_EQ(g16->insns[3].length, 3u);
}

TEST(CaseGeneratorTest, IsDeterministic) {
  const auto a = generate_cases(42, 200);
  const auto b = generate_cases(42, 200);
  const auto c = generate_cases(43, 200);
  ASSERT_EQ(a.size(), 200u);
  size_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].c.code, b[i].c.code);
    EXPECT_EQ(a[i].c.in, b[i].c.in);
    EXPECT_EQ(a[i].memory_seed, b[i].memory_seed);
    if (a[i].c.code != c[i].c.code) ++differ;
  }
  EXPECT_GT(differ, 150u);
}

TEST(DecodeCheckTest, FindsLengthDisagreementsAndAgreesOnPlainCode) {
  const uint8_t plain[] = {0x40, 0x66, 0x01, 0xd8, 0x0f, 0xc7, 0x0e, 0x27, 0xd4, 0x0a};
  const DecodeCheckResult ok = check_decoders(plain, 0x1000);
  EXPECT_TRUE(ok.agree());
  EXPECT_EQ(ok.instructions, 5u);
  EXPECT_FALSE(ok.both_rejected);
  // Truncated instruction at the end: both decoders reject it.
  const uint8_t cut[] = {0x90, 0x81, 0xc0, 0x01};
  const DecodeCheckResult bad = check_decoders(cut, 0);
  EXPECT_EQ(bad.instructions, 1u);
  EXPECT_TRUE(bad.agree());
  ASSERT_TRUE(bad.both_rejected.has_value());
  EXPECT_EQ(*bad.both_rejected, 1u);
}

TEST_F(NativeOracleTest, GeneratedBatchRunsAndDecodersAgree) {
  const auto cases = generate_cases(0x5eed, 2000);
  const Coverage cov = coverage(cases);
  for (const char* group :
       {"alu",    "incdec",      "negnot", "test",  "mul",  "imul",  "div",       "shift",
        "shld",   "bt",          "bsf",    "bswap", "xchg", "xadd",  "cmpxchg",   "movx",
        "cbw",    "setcc",       "cmov",   "lea",   "bcd",  "flags", "sahf_lahf", "stack",
        "pushad", "enter_leave", "string", "loop",  "jcc",  "mov",   "bound",     "xlat"}) {
    EXPECT_GT(cov.count(std::string("group:") + group), 0u) << group;
  }
  for (const char* cls :
       {"cmpxchg:cmpxchg m", "cmpxchg:cmpxchg8b", "bswap:r32", "incdec:inc short",
        "incdec:dec short", "bcd:daa", "bcd:das", "bcd:aaa", "bcd:aas", "bcd:aam", "bcd:aad",
        "string:rep movs", "string:repne scas", "string:repe cmps", "loop:loop back",
        "loop:jecxz fwd", "shift:rcl cl", "shift:rcr imm", "enter_leave:leave"}) {
    EXPECT_GT(cov.count(cls), 0u) << cls;
  }
  for (const char* attr : {"attr:lock", "attr:opsize16", "attr:addr16", "attr:rep", "attr:mem"})
    EXPECT_GT(cov.count(attr), 0u) << attr;

  size_t faults = 0;
  for (const GeneratedCase& gc : cases) {
    const DecodeCheckResult d = check_decoders(gc.c.code, NativeRunner::kSnippetBase);
    EXPECT_TRUE(d.agree() && !d.both_rejected)
        << gc.description << "\n  zydis: " << (d.mismatch ? d.mismatch->zydis_text : "")
        << "\n  capstone: " << (d.mismatch ? d.mismatch->capstone_text : "");
    size_t decoded = 0;
    for (const GeneratedInsn& gi : gc.insns) decoded += gi.length;
    EXPECT_EQ(decoded, gc.c.code.size());

    const NativeResult r = run_case(*runner_, gc);
    if (!r.faulted) continue;
    ++faults;
    // The generator keeps memory in the arena and branches in the snippet: the only faults
    // are #DE (DIV/IDIV/AAM) and #BR (BOUND).
    EXPECT_FALSE(r.timed_out) << gc.description;
    EXPECT_TRUE((r.signal == SIGFPE && r.vector == 0) || (r.signal == SIGSEGV && r.vector == 5))
        << "signal " << r.signal << " vector " << r.vector << " at " << std::hex << r.fault_eip
        << ": " << gc.description;
    // ... and they are reported at the start of the faulting generated instruction.
    const GeneratedInsn* at = nullptr;
    for (const GeneratedInsn& gi : gc.insns)
      if (NativeRunner::kSnippetBase + gi.offset == r.fault_eip) at = &gi;
    ASSERT_NE(at, nullptr) << gc.description;
    EXPECT_TRUE(at->cls.starts_with("div:") || at->cls == "bcd:aam" || at->cls == "bound:bound")
        << at->cls;
    EXPECT_EQ(undefined_flags_for(gc, r), at->undefined_flags_before);
  }
  EXPECT_GT(faults, 0u);  // some #DE cases are generated on purpose
  EXPECT_LT(faults, cases.size() / 5);
}

TEST_F(NativeOracleTest, GeneratedCasesAreReproducible) {
  const auto cases = generate_cases(7, 300);
  for (const GeneratedCase& gc : cases) {
    const NativeResult a = run_case(*runner_, gc);
    const NativeResult b = run_case(*runner_, gc);
    ASSERT_EQ(a.faulted, b.faulted) << gc.description;
    EXPECT_EQ(a.out, b.out) << gc.description;
    EXPECT_TRUE(a.memory == b.memory) << gc.description;
  }
}

TEST(CaseGeneratorTest, InvalidEncodingsAreOptIn) {
  GeneratorOptions opt;
  opt.include_invalid = true;
  const Coverage with = coverage(generate_cases(9, 500, opt));
  const Coverage without = coverage(generate_cases(9, 500));
  EXPECT_GT(with.count("group:invalid"), 0u);
  EXPECT_EQ(without.count("group:invalid"), 0u);
}

}  // namespace
}  // namespace vmbt::difftest
