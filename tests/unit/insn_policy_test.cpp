// bt's instruction policy (bt/insn_policy.h) against the SDM's classes and the CPU model.
#include "bt/insn_policy.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "bt/translator.h"
#include "vmm/cpu_model.h"
#include "vmm/cpu_state.h"

namespace vmbt::bt {
namespace {

using policy::Sensitivity;
using policy::Shape;

GuestInsn decode(std::initializer_list<uint8_t> bytes) {
  GuestInsn in;
  std::vector<uint8_t> b(bytes);
  std::copy(b.begin(), b.end(), in.bytes);
  ZydisDecoder dec;
  ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
  EXPECT_TRUE(ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, in.bytes, b.size(), &in.d, in.ops)));
  in.next = in.d.length;
  return in;
}

struct NoTables : CodeFetcher {
  bool tables = false;
  unsigned fetch(uint32_t, uint8_t*, unsigned, uint32_t*) override { return 0; }
  bool writes_page_tables(uint32_t) const override { return tables; }
};

// A kernel's ordinary mode: flat segments, paging, CPL 0, direct calls.
constexpr uint32_t kKernel = tb_flags::kFlatData | tb_flags::kFlatStack | tb_flags::kPaging |
                             tb_flags::kCpl0 | tb_flags::kDirectCalls;
// User mode: the same at CPL 3.
constexpr uint32_t kUser = kKernel & ~tb_flags::kCpl0;

Shape shape_of(std::initializer_list<uint8_t> bytes, uint32_t flags, bool tables = false) {
  NoTables f;
  f.tables = tables;
  return policy::decide(decode(bytes), flags, f, 0x1000);
}

/// A fetcher that reports every instruction as one that kept faulting (access probes wanted).
struct Faulting : NoTables {
  bool probes_access(uint32_t) const override { return true; }
};

/// The access probes policy::access_probes gives `bytes` in mode `flags`, for an instruction that
/// kept faulting: "operand:r source:r destination:w push:w top:r", with "rep " first for REP.
std::string probes_of(std::initializer_list<uint8_t> bytes, uint32_t flags) {
  Faulting f;
  const GuestInsn in = decode(bytes);
  const policy::AccessProbes p =
      policy::access_probes(in, policy::decide(in, flags, f, 0x1000), flags, f, 0x1000);
  static const char* const names[] = {"operand", "source", "destination", "push", "top"};
  std::string out = p.rep ? "rep" : "";
  for (unsigned i = 0; i < p.count; ++i) {
    if (!out.empty()) out += ' ';
    out += names[static_cast<unsigned>(p.access[i].address)];
    out += p.access[i].write ? ":w" : ":r";
  }
  return out;
}

Sensitivity class_of(std::initializer_list<uint8_t> bytes) {
  GuestInsn in = decode(bytes);
  return policy::sensitivity(in.d, in.ops);
}

TEST(InsnPolicy, RobinAndIrvinesSensitiveUnprivilegedInstructions) {
  // The 17 of Robin & Irvine (USENIX Security 2000), docs/sensitive-instructions.md.
  for (auto bytes : std::vector<std::vector<uint8_t>>{
           {0x0f, 0x01, 0x00},        // SGDT [eax]
           {0x0f, 0x01, 0x08},        // SIDT [eax]
           {0x0f, 0x00, 0xc0},        // SLDT eax
           {0x0f, 0x01, 0xe0},        // SMSW eax
           {0x9c},                    // PUSHFD
           {0x9d},                    // POPFD
           {0x0f, 0x02, 0xc1},        // LAR eax, ecx
           {0x0f, 0x03, 0xc1},        // LSL eax, ecx
           {0x0f, 0x00, 0xe0},        // VERR ax
           {0x0f, 0x00, 0xe8},        // VERW ax
           {0x1e},                    // PUSH DS
           {0x1f},                    // POP DS
           {0x9a, 0, 0, 0, 0, 8, 0},  // CALL far
           {0xea, 0, 0, 0, 0, 8, 0},  // JMP far
           {0xcd, 0x80},              // INT 0x80
           {0xcb},                    // RET far
           {0x0f, 0x00, 0xc8},        // STR eax
           {0x8e, 0xd8},              // MOV DS, eax
       }) {
    GuestInsn in;
    std::copy(bytes.begin(), bytes.end(), in.bytes);
    ZydisDecoder dec;
    ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
    ASSERT_TRUE(ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, in.bytes, bytes.size(), &in.d, in.ops)));
    EXPECT_EQ(policy::sensitivity(in.d, in.ops), Sensitivity::kSensitiveUnprivileged)
        << ZydisMnemonicGetString(in.d.mnemonic);
  }
}

TEST(InsnPolicy, PrivilegedIoplSensitiveVirtualizedAndOrdinary) {
  EXPECT_EQ(class_of({0x0f, 0x22, 0xd8}), Sensitivity::kPrivileged);  // MOV CR3, eax
  EXPECT_EQ(class_of({0x0f, 0x23, 0xf8}), Sensitivity::kPrivileged);  // MOV DR7, eax
  EXPECT_EQ(class_of({0x0f, 0x01, 0x38}), Sensitivity::kPrivileged);  // INVLPG [eax]
  EXPECT_EQ(class_of({0xf4}), Sensitivity::kPrivileged);              // HLT
  EXPECT_EQ(class_of({0x0f, 0x35}), Sensitivity::kPrivileged);        // SYSEXIT
  EXPECT_EQ(class_of({0xfa}), Sensitivity::kIoplSensitive);           // CLI
  EXPECT_EQ(class_of({0xe4, 0x80}), Sensitivity::kIoplSensitive);     // IN al, 0x80
  EXPECT_EQ(class_of({0xf3, 0x6e}), Sensitivity::kIoplSensitive);     // REP OUTSB
  EXPECT_EQ(class_of({0x0f, 0xa2}), Sensitivity::kVirtualized);       // CPUID
  EXPECT_EQ(class_of({0x0f, 0x34}), Sensitivity::kVirtualized);       // SYSENTER
  EXPECT_EQ(class_of({0x60}), Sensitivity::kEmulated);                // PUSHAD: no 64-bit form
  EXPECT_EQ(class_of({0x27}), Sensitivity::kEmulated);                // DAA
  EXPECT_EQ(class_of({0x01, 0xc8}), Sensitivity::kNone);              // ADD eax, ecx
  EXPECT_EQ(class_of({0x8b, 0x03}), Sensitivity::kNone);              // MOV eax, [ebx]
}

TEST(InsnPolicy, TheModelsExtensionsAreTheOnesItsCpuidAdvertises) {
  // Intel SDM Vol. 2A Table 3-11: FPU 0, CLFSH 19, MMX 23, SSE 25, SSE2 26.
  const uint32_t edx = CpuModel::query(1, 0).edx;
  EXPECT_EQ(policy::in_cpu_model(ZYDIS_ISA_EXT_X87), (edx >> 0) & 1);
  EXPECT_EQ(policy::in_cpu_model(ZYDIS_ISA_EXT_CLFSH), (edx >> 19) & 1);
  EXPECT_EQ(policy::in_cpu_model(ZYDIS_ISA_EXT_MMX), (edx >> 23) & 1);
  EXPECT_EQ(policy::in_cpu_model(ZYDIS_ISA_EXT_SSE), (edx >> 25) & 1);
  EXPECT_EQ(policy::in_cpu_model(ZYDIS_ISA_EXT_SSE2), (edx >> 26) & 1);
  const uint32_t ecx = CpuModel::query(1, 0).ecx;
  EXPECT_EQ(policy::in_cpu_model(ZYDIS_ISA_EXT_SSE3), (ecx >> 0) & 1);
  EXPECT_EQ(policy::in_cpu_model(ZYDIS_ISA_EXT_SSSE3), (ecx >> 9) & 1);
  EXPECT_EQ(policy::in_cpu_model(ZYDIS_ISA_EXT_SSE4), (ecx >> 19) & 1);
  EXPECT_EQ(policy::in_cpu_model(ZYDIS_ISA_EXT_AVX), (ecx >> 28) & 1);
  // Encodings older processors execute as something else are executed, not #UD.
  EXPECT_TRUE(policy::model_executes(decode({0xf3, 0x0f, 0xbc, 0xc1}).d));  // TZCNT = REP BSF
  EXPECT_TRUE(policy::model_executes(decode({0xf3, 0x0f, 0x1e, 0xfb}).d));  // ENDBR32
  EXPECT_FALSE(policy::model_executes(decode({0x66, 0x0f, 0x38, 0x00, 0xc1}).d));  // PSHUFB
}

TEST(InsnPolicy, ShapesOfTheSensitiveInstructionsFollowTheMode) {
  // CPUID: a direct call; with direct calls off (a callout observer), an exit.
  EXPECT_EQ(shape_of({0x0f, 0xa2}, kKernel), Shape::kMonitorCall);
  EXPECT_EQ(shape_of({0x0f, 0xa2}, kKernel & ~tb_flags::kDirectCalls), Shape::kMonitorExit);
  EXPECT_EQ(shape_of({0x0f, 0xa2}, kKernel | tb_flags::kSingleInstruction), Shape::kMonitorExit);
  // CLI: inline on the virtual IF at CPL 0 (it cannot fault there); at CPL 3 the monitor checks
  // IOPL (Intel SDM Vol. 2A CLI).
  EXPECT_EQ(shape_of({0xfa}, kKernel), Shape::kCpl0Flags);
  EXPECT_EQ(shape_of({0xfa}, kUser), Shape::kMonitorCall);
  // RDTSC: the host's when the guest TSC is the host's.
  EXPECT_EQ(shape_of({0x0f, 0x31}, kKernel | tb_flags::kHostTsc), Shape::kIdent);
  EXPECT_EQ(shape_of({0x0f, 0x31}, kKernel), Shape::kMonitorCall);
  // INT 0x80 and IRETD: direct calls that end the block (they transfer control).
  EXPECT_EQ(shape_of({0xcd, 0x80}, kUser), Shape::kMonitorCall);
  EXPECT_TRUE(policy::ends_block(Shape::kMonitorCall, decode({0xcd, 0x80}).d));
  EXPECT_FALSE(policy::ends_block(Shape::kMonitorCall, decode({0x0f, 0xa2}).d));
  // An instruction outside the model: the system emulator cannot take it, the dispatcher raises
  // #UD (SSSE3's PSHUFB).
  EXPECT_EQ(shape_of({0x66, 0x0f, 0x38, 0x00, 0xc1}, kUser), Shape::kMonitorExit);
  // SSE with CR4.OSFXSR clear: #UD from the monitor, in place.
  EXPECT_EQ(shape_of({0x0f, 0x58, 0xc1}, kUser), Shape::kIdent);  // ADDPS xmm0, xmm1
  EXPECT_EQ(shape_of({0x0f, 0x58, 0xc1}, kUser | tb_flags::kSseOff), Shape::kMonitorCall);
}

TEST(InsnPolicy, ShapesOfOrdinaryInstructions) {
  EXPECT_EQ(shape_of({0x01, 0xc8}, kUser), Shape::kIdent);            // ADD eax, ecx
  EXPECT_EQ(shape_of({0x8b, 0x03}, kUser), Shape::kMemory);           // MOV eax, [ebx]
  EXPECT_EQ(shape_of({0xa1, 0, 0x10, 0, 0}, kUser), Shape::kMoffs);   // MOV eax, [0x1000]
  EXPECT_EQ(shape_of({0x8d, 0x43, 0x04}, kUser), Shape::kLea);        // LEA eax, [ebx+4]
  EXPECT_EQ(shape_of({0x50}, kUser), Shape::kStack);                  // PUSH eax
  EXPECT_EQ(shape_of({0xf3, 0xa5}, kUser), Shape::kString);           // REP MOVSD
  EXPECT_EQ(shape_of({0xe8, 0, 0, 0, 0}, kUser), Shape::kCall);       // CALL rel32
  EXPECT_EQ(shape_of({0xc3}, kUser), Shape::kReturn);                 // RET
  EXPECT_EQ(shape_of({0x74, 0x02}, kUser), Shape::kCondBranch);       // JZ
  EXPECT_EQ(shape_of({0xf7, 0xf1}, kUser), Shape::kDivide);           // DIV ecx
  EXPECT_EQ(shape_of({0xf3, 0x0f, 0x1e, 0xfb}, kUser), Shape::kNop);  // ENDBR32
  // Stack instructions over an SS base and with 16-bit operands have shapes of their own; a
  // string instruction over a segment base and the 16-bit-address forms the translator does
  // not emit leave the block for the dispatcher.
  EXPECT_EQ(shape_of({0x50}, kUser & ~tb_flags::kFlatStack), Shape::kStack);
  EXPECT_EQ(shape_of({0x66, 0xe8, 0, 0}, kUser), Shape::kCall);  // CALL rel16
  EXPECT_EQ(shape_of({0xf3, 0xa5}, kUser & ~tb_flags::kFlatData), Shape::kMonitorExit);
  EXPECT_EQ(shape_of({0x67, 0xe2, 0xfe}, kUser), Shape::kMonitorExit);  // LOOP with CX
  // An ordinary instruction through a segment that needs checks (here DS).
  const uint32_t ds_checked = kUser | (1u << (tb_flags::kRestrictedShift + kDs));
  EXPECT_EQ(shape_of({0x8b, 0x03}, ds_checked), Shape::kMonitorExit);
  EXPECT_EQ(shape_of({0x8b, 0x03}, ds_checked | tb_flags::kSegUnchecked), Shape::kMemory);
  // A store the instruction made into traced page tables before: the adaptive shape.
  EXPECT_EQ(shape_of({0x89, 0x03}, kKernel, true), Shape::kTableStore);  // MOV [ebx], eax
  EXPECT_EQ(shape_of({0x8b, 0x03}, kKernel, true), Shape::kMemory);      // a load is not
}

TEST(InsnPolicy, AccessProbesFollowTheAccessesInTheirOrder) {
  // Intel SDM Vol. 2: the accesses each instruction makes, in order; the probe checks them.
  EXPECT_EQ(probes_of({0x8b, 0x03}, kUser), "operand:r");                   // MOV eax, [ebx]
  EXPECT_EQ(probes_of({0x89, 0x03}, kUser), "operand:w");                   // MOV [ebx], eax
  EXPECT_EQ(probes_of({0x01, 0x03}, kUser), "operand:w");                   // ADD [ebx], eax
  EXPECT_EQ(probes_of({0xa1, 0, 0x10, 0, 0}, kUser), "operand:r");          // MOV eax, [moffs]
  EXPECT_EQ(probes_of({0xa3, 0, 0x10, 0, 0}, kUser), "operand:w");          // MOV [moffs], eax
  EXPECT_EQ(probes_of({0xf3, 0xa5}, kUser), "rep source:r destination:w");  // REP MOVSD
  EXPECT_EQ(probes_of({0xab}, kUser), "destination:w");                     // STOSD
  EXPECT_EQ(probes_of({0xf3, 0xa7}, kUser), "rep source:r destination:r");  // REPE CMPSD
  EXPECT_EQ(probes_of({0xad}, kUser), "source:r");                          // LODSD
  EXPECT_EQ(probes_of({0x50}, kUser), "push:w");                            // PUSH eax
  EXPECT_EQ(probes_of({0xff, 0x33}, kUser), "operand:r push:w");            // PUSH [ebx]
  EXPECT_EQ(probes_of({0x58}, kUser), "top:r");                             // POP eax
  EXPECT_EQ(probes_of({0xff, 0x13}, kUser), "operand:r push:w");            // CALL [ebx]
  EXPECT_EQ(probes_of({0xe8, 0, 0, 0, 0}, kUser), "push:w");                // CALL rel32
  EXPECT_EQ(probes_of({0xff, 0x23}, kUser), "operand:r");                   // JMP [ebx]
  EXPECT_EQ(probes_of({0xc3}, kUser), "top:r");                             // RET
  // Accesses that may not happen are never probed: a hint, a ModRM NOP, LEA, x87 data.
  EXPECT_EQ(probes_of({0x0f, 0x18, 0x0b}, kUser), "");  // PREFETCHT0 [ebx]
  EXPECT_EQ(probes_of({0x0f, 0x1f, 0x03}, kUser), "");  // NOP [ebx]
  EXPECT_EQ(probes_of({0x8d, 0x43, 0x04}, kUser), "");  // LEA eax, [ebx+4]
  EXPECT_EQ(probes_of({0xd9, 0x03}, kUser), "");        // FLD dword [ebx]
  // BT with a register offset reads the bit string beyond its operand; with an immediate, the
  // operand itself.
  EXPECT_EQ(probes_of({0x0f, 0xa3, 0x03}, kUser), "");                 // BT [ebx], eax
  EXPECT_EQ(probes_of({0x0f, 0xba, 0x23, 0x05}, kUser), "operand:r");  // BT [ebx], 5
  EXPECT_EQ(probes_of({0x0f, 0xff, 0x03}, kUser), "");                 // UD0 eax, [ebx]
  // Nor without paging, direct calls, or a flat 32-bit stack for the stack's accesses.
  EXPECT_EQ(probes_of({0x8b, 0x03}, kUser & ~tb_flags::kPaging), "");
  EXPECT_EQ(probes_of({0x8b, 0x03}, kUser & ~tb_flags::kDirectCalls), "");
  EXPECT_EQ(probes_of({0x8b, 0x03}, kUser | tb_flags::kSingleInstruction), "");
  EXPECT_EQ(probes_of({0x50}, kUser & ~tb_flags::kFlatStack), "");
  // An instruction that never kept faulting gets none.
  NoTables quiet;
  const GuestInsn load = decode({0x8b, 0x03});
  EXPECT_EQ(policy::access_probes(load, Shape::kMemory, kUser, quiet, 0x1000).count, 0);
}

}  // namespace
}  // namespace vmbt::bt
