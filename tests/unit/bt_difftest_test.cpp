// Differential tests: generated IA-32 instruction sequences run natively (the host CPU in a
// 32-bit code segment is the oracle) and through the bt engine must leave the same registers,
// defined flags and memory, or raise the same exception at the same EIP.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "tests/difftest/bt_snippet_runner.h"
#include "tests/difftest/case_generator.h"
#include "tests/difftest/code16_case.h"
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
  // ESP in the guest; natively the kernel takes the fault instead. Those bytes are not compared.
  if (n.memory != b.memory) {
    for (size_t i = 0; i < n.memory.size(); ++i) {
      if ((i - b.frame_offset) % NativeRunner::kDataSize < b.frame_size) continue;
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

/// What one batch saw: cases compared, those that ran natively to their end, those skipped for
/// a native timeout, and those that differ.
struct Tally {
  size_t compared = 0, completed = 0, skipped = 0, failures = 0;
};

/// Runs `gc` natively and under bt (`arena`: kDataSize bytes of scratch for bt's initial data)
/// and records in `t` how they compare (a failure per case that differs, the first 25 reported
/// with their reason).
void check_case(NativeRunner& native, BtSnippetRunner& bt, std::vector<uint8_t>& arena,
                const GeneratedCase& gc, Tally& t) {
  NativeResult n = run_case(native, gc);
  if (n.timed_out) {
    ++t.skipped;
    return;
  }
  fill_arena(arena.data(), arena.size(), gc.memory_seed);
  BtResult b = bt.run(gc.c, arena.data());
  ++t.compared;
  if (!n.faulted) ++t.completed;
  const std::string why = compare(gc, n, b);
  if (!why.empty() && ++t.failures <= 25) ADD_FAILURE() << gc.description << "\n  " << why;
}

void run_batch(uint64_t seed, size_t count) {
  VMBT_SKIP_WITHOUT_NATIVE_32BIT();
  NativeRunner native;
  BtSnippetRunner bt;
  std::vector<uint8_t> arena(NativeRunner::kDataSize);
  Tally t;
  for (const GeneratedCase& gc : generate_cases(seed, count)) check_case(native, bt, arena, gc, t);
  EXPECT_EQ(t.failures, 0u) << t.failures << " of " << t.compared << " cases differ";
  EXPECT_GT(t.compared, count * 9 / 10) << "too many cases skipped (" << t.skipped << ")";
  std::printf("bt differential: %zu cases compared, %zu skipped (native timeout), %zu differ\n",
              t.compared, t.skipped, t.failures);
}

/// The same generated instructions as 16-bit code: natively in 16-bit segments of this process
/// (NativeCase::code16), under bt in real mode with the same segment bases and limits. Which
/// cases fault differs from the 32-bit run (SP-based stack, 64 KiB limits), so the batch also
/// checks that most run to their end.
void run_code16_batch(uint64_t seed, size_t count) {
  VMBT_SKIP_WITHOUT_NATIVE_16BIT();
  NativeRunner native;
  BtSnippetRunner bt;
  std::vector<uint8_t> arena(NativeRunner::kDataSize);
  Tally t;
  size_t encoded = 0;
  std::string first_refusal;
  for (const GeneratedCase& gc32 : generate_cases(seed, count)) {
    std::string why;
    const std::optional<GeneratedCase> gc = to_code16(gc32, &why);
    if (!gc) {
      if (first_refusal.empty()) first_refusal = gc32.description + ": " + why;
      continue;
    }
    ++encoded;
    check_case(native, bt, arena, *gc, t);
  }
  EXPECT_EQ(t.failures, 0u) << t.failures << " of " << t.compared << " cases differ";
  EXPECT_GT(encoded, count * 9 / 10)
      << "too few cases re-encoded; first refusal: " << first_refusal;
  EXPECT_GT(t.compared, encoded * 9 / 10) << "too many native timeouts";
  EXPECT_GT(t.completed, t.compared / 2) << "too few cases ran to their end without a fault";
  std::printf(
      "bt differential, real mode: %zu of %zu cases re-encoded, %zu compared (%zu ran "
      "to the end), %zu differ\n",
      encoded, count, t.compared, t.completed, t.failures);
}

TEST(BtDifferential, GeneratedCasesMatchNativeExecution) {
  run_batch(0x5eed0001, 3000);
}

TEST(BtDifferential, SecondSeedMatchesNativeExecution) {
  run_batch(0x5eed0002, 2000);
}

TEST(BtDifferential, RealModeCasesMatchNative16BitCode) {
  run_code16_batch(0x5eed0016, 3000);
}

}  // namespace
}  // namespace vmbt::difftest
