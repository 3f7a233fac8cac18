// Differential tests: generated IA-32 instruction sequences run natively (the host CPU in a
// 32-bit code segment is the oracle) and through the bt engine must leave the same registers,
// defined flags and memory, or raise the same exception at the same EIP.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "tests/difftest/bt_snippet_runner.h"
#include "tests/difftest/case_generator.h"
#include "tests/difftest/native_runner.h"

namespace vmbt::difftest {
namespace {

/// Compares one case; returns an empty string when bt agrees with the native run.
std::string compare(const GeneratedCase& gc, const NativeResult& n, const BtResult& b) {
  if (!b.engine_error.empty()) return "bt engine stopped: " + b.engine_error;
  if (b.timed_out) return "bt timed out where native finished";
  std::string why = compare_registers(n, b, flag::kCompared & ~undefined_flags_for(gc, n));
  if (n.faulted != b.faulted) return why;
  // Delivering an exception pushes its frame (EIP, CS, EFLAGS, error code) below the faulting
  // ESP in the guest; natively the kernel takes the fault instead. Those 16 bytes are not compared.
  uint64_t frame_lo = 0, frame_hi = 0;
  if (b.faulted) {
    frame_hi = uint64_t{b.out.gpr[4]} - NativeRunner::kDataBase;
    frame_lo = frame_hi >= 16 ? frame_hi - 16 : 0;
  }
  if (n.memory != b.memory) {
    for (size_t i = 0; i < n.memory.size(); ++i) {
      if (i >= frame_lo && i < frame_hi) continue;
      if (n.memory[i] != b.memory[i]) {
        char buf[96];
        snprintf(buf, sizeof buf, "memory differs first at arena+%#zx (native %#x bt %#x); ", i,
                 n.memory[i], b.memory[i]);
        why += buf;
        break;
      }
    }
  }
  return why;
}

void run_batch(uint64_t seed, size_t count) {
  VMBT_SKIP_WITHOUT_NATIVE_32BIT();
  NativeRunner native;
  BtSnippetRunner bt;
  std::vector<uint8_t> arena(NativeRunner::kDataSize);
  std::vector<GeneratedCase> cases = generate_cases(seed, count);
  size_t compared = 0, skipped = 0, failures = 0;
  for (const GeneratedCase& gc : cases) {
    NativeResult n = run_case(native, gc);
    if (n.timed_out) {
      ++skipped;
      continue;
    }
    fill_arena(arena.data(), arena.size(), gc.memory_seed);
    BtResult b = bt.run(gc.c, arena.data());
    ++compared;
    std::string why = compare(gc, n, b);
    if (!why.empty()) {
      if (++failures <= 25) ADD_FAILURE() << gc.description << "\n  " << why;
    }
  }
  EXPECT_EQ(failures, 0u) << failures << " of " << compared << " cases differ";
  EXPECT_GT(compared, count * 9 / 10) << "too many cases skipped (" << skipped << ")";
  std::printf("bt differential: %zu cases compared, %zu skipped (native timeout), %zu differ\n",
              compared, skipped, failures);
}

TEST(BtDifferential, GeneratedCasesMatchNativeExecution) {
  run_batch(0x5eed0001, 3000);
}

TEST(BtDifferential, SecondSeedMatchesNativeExecution) {
  run_batch(0x5eed0002, 2000);
}

}  // namespace
}  // namespace vmbt::difftest
