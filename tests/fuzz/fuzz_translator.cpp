// libFuzzer target: arbitrary code bytes run by bt at CPL 0 or CPL 3 (the first byte's low bit)
// in a small guest with an IDT whose handlers halt (the differential tests' harness,
// tests/difftest/bt_snippet_runner.h). The monitor must never crash, trip a sanitizer or stop
// with an internal error: whatever the bytes, the guest ends in an exception delivered through its
// IDT, a HLT, or the time limit. And when every instruction of the input is one native execution
// can run safely and decide (user-level, registers and immediates only, no branch), the host CPU
// runs the same bytes in a 32-bit code segment (tests/difftest/native_runner.h) and bt must leave
// the same registers and defined flags, or raise the same exception at the same EIP.
#include <Zydis/Zydis.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tests/difftest/bt_snippet_runner.h"
#include "tests/difftest/native_runner.h"

namespace {

using vmbt::difftest::BtResult;
using vmbt::difftest::NativeCase;
using vmbt::difftest::NativeResult;
using vmbt::difftest::NativeRunner;

/// Whether native execution can run `code` safely and its outcome is the architecture's, not
/// this host's: every instruction decodes in 32-bit mode and is a base-ISA one that touches only
/// general registers and flags (no memory operand, explicit or implicit: no stack, no string),
/// does not branch, and is not a system, I/O or nondeterministic one (RDTSC, CPUID: the guest's
/// CPU model is not the host's), and none reads a flag an earlier one left undefined. `undefined`
/// receives the flags undefined at the end (Zydis's per-instruction tables), which the
/// comparison ignores.
bool natively_comparable(const uint8_t* code, size_t size, uint32_t* undefined) {
  ZydisDecoder decoder;
  ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
  *undefined = 0;
  for (size_t offset = 0; offset < size;) {
    ZydisDecodedInstruction insn;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, code + offset, size - offset, &insn, ops))) {
      return false;
    }
    if (insn.meta.isa_ext != ZYDIS_ISA_EXT_BASE) return false;
    switch (insn.meta.category) {
      case ZYDIS_CATEGORY_CALL:
      case ZYDIS_CATEGORY_COND_BR:
      case ZYDIS_CATEGORY_UNCOND_BR:
      case ZYDIS_CATEGORY_RET:
      case ZYDIS_CATEGORY_INTERRUPT:
      case ZYDIS_CATEGORY_SYSCALL:
      case ZYDIS_CATEGORY_SYSRET:
      case ZYDIS_CATEGORY_SYSTEM:
      case ZYDIS_CATEGORY_IO:
      case ZYDIS_CATEGORY_IOSTRINGOP:
      case ZYDIS_CATEGORY_STRINGOP:
      case ZYDIS_CATEGORY_PUSH:
      case ZYDIS_CATEGORY_POP:
        return false;
      default:
        break;
    }
    switch (insn.mnemonic) {
      case ZYDIS_MNEMONIC_CLI:  // IOPL-sensitive: bt's CPL 0 allows it, the host's CPL 3 not
      case ZYDIS_MNEMONIC_STI:
      case ZYDIS_MNEMONIC_CPUID:  // the guest's CPU model, not the host's
      case ZYDIS_MNEMONIC_RDTSC:
      case ZYDIS_MNEMONIC_RDTSCP:
      case ZYDIS_MNEMONIC_RDPMC:
      case ZYDIS_MNEMONIC_SALC:  // undocumented
        return false;
      default:
        break;
    }
    for (unsigned i = 0; i < insn.operand_count; ++i) {
      const ZydisDecodedOperand& op = ops[i];
      if (op.type == ZYDIS_OPERAND_TYPE_MEMORY && op.mem.type != ZYDIS_MEMOP_TYPE_AGEN) {
        return false;  // LEA computes an address and touches nothing
      }
      if (op.type == ZYDIS_OPERAND_TYPE_POINTER) return false;
      if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
        const ZydisRegisterClass cls = ZydisRegisterGetClass(op.reg.value);
        if (cls != ZYDIS_REGCLASS_GPR8 && cls != ZYDIS_REGCLASS_GPR16 &&
            cls != ZYDIS_REGCLASS_GPR32 && cls != ZYDIS_REGCLASS_FLAGS) {
          return false;  // segment, control, debug, x87, vector registers; EIP (a branch)
        }
      }
    }
    if (insn.cpu_flags) {
      // A flag an earlier instruction left undefined must not reach a result (LAHF, SETcc,
      // ADC... after AAS): each CPU may leave it otherwise.
      const ZydisAccessedFlags& f = *insn.cpu_flags;
      if (f.tested & *undefined) return false;
      *undefined = (*undefined & ~(f.modified | f.set_0 | f.set_1)) | f.undefined;
    }
    offset += insn.length;
  }
  return size > 0;
}

/// The native runner, when this host runs 32-bit code (created once: its mappings are fixed).
NativeRunner* native_runner() {
  static std::unique_ptr<NativeRunner> runner = []() -> std::unique_ptr<NativeRunner> {
    std::string why;
    if (!NativeRunner::host_runs_32bit_code(&why)) {
      std::fprintf(stderr, "fuzz_translator: no native comparison: %s\n", why.c_str());
      return nullptr;
    }
    auto r = std::make_unique<NativeRunner>();
    r->set_timeout_ms(50);
    return r;
  }();
  return runner.get();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static vmbt::difftest::BtSnippetRunner runner;
  static std::vector<uint8_t> arena(NativeRunner::kDataSize, 0);
  if (size < 1 || size > 4096) return 0;
  const bool user = data[0] & 1;
  NativeCase c;
  c.code.assign(data + 1, data + size);
  c.in.gpr[4] = NativeRunner::kDataBase + NativeRunner::kDataSize - 64;  // ESP in the arena
  c.in.gpr[6] = NativeRunner::kDataBase;                                 // ESI, EDI too
  c.in.gpr[7] = NativeRunner::kDataBase + 256;
  for (unsigned i : {0u, 1u, 2u, 3u, 5u}) {  // other registers from the input's first bytes
    c.in.gpr[i] = 0x9e3779b9u * (i + 1) ^ (size > i + 1 ? data[i + 1] : 0);
  }
  const BtResult r = runner.run(c, arena.data(), 50, user);
  // Messages that mean the monitor itself went wrong (not the guest).
  for (const char* bug : {"unexpected host signal", "not a system instruction", "internal error"}) {
    if (r.engine_error.find(bug) != std::string::npos) {
      std::fprintf(stderr, "monitor error: %s\n", r.engine_error.c_str());
      __builtin_trap();
    }
  }
  uint32_t undefined = 0;
  NativeRunner* native = native_runner();
  if (native && r.engine_error.empty() &&
      natively_comparable(c.code.data(), c.code.size(), &undefined)) {
    const NativeResult n = native->run(c);
    // At CPL 3 the harness's closing HLT raises #GP(0) right after the last instruction: there
    // that is the normal end (its frame holds the registers).
    BtResult b = r;
    const uint32_t end = NativeRunner::kSnippetBase + static_cast<uint32_t>(c.code.size());
    if (user && b.faulted && b.vector == 13 && b.error_code == 0 && b.fault_eip == end) {
      b.faulted = false;
    }
    // At CPL 0 an exception frame goes where the snippet's ESP points, which may be nowhere the
    // harness can read it back: faults are compared at CPL 3 (ring-0 stack from the TSS) only.
    const bool comparable_end = user || (!n.faulted && !b.faulted);
    const std::string why =
        comparable_end && !n.timed_out && !b.timed_out
            ? vmbt::difftest::compare_registers(n, b, vmbt::difftest::flag::kCompared & ~undefined)
            : std::string();
    if (!why.empty()) {
      std::fprintf(stderr, "bt and native execution disagree (CPL %d): %s\n", user ? 3 : 0,
                   why.c_str());
      __builtin_trap();
    }
  }
  return 0;
}
