// libFuzzer target: arbitrary code bytes run by bt at CPL 0 or CPL 3 (the first byte's low bit)
// in a small guest with an IDT whose handlers halt (the differential tests' harness,
// tests/difftest/bt_snippet_runner.h). The
// monitor must never crash, trip a sanitizer or stop with an internal error: whatever the bytes,
// the guest ends in an exception delivered through its IDT, a HLT, or the time limit.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tests/difftest/bt_snippet_runner.h"
#include "tests/difftest/native_runner.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using vmbt::difftest::NativeRunner;
  static vmbt::difftest::BtSnippetRunner runner;
  static std::vector<uint8_t> arena(NativeRunner::kDataSize, 0);
  if (size < 1 || size > 4096) return 0;
  const bool user = data[0] & 1;
  vmbt::difftest::NativeCase c;
  c.code.assign(data + 1, data + size);
  c.in.gpr[4] = NativeRunner::kDataBase + NativeRunner::kDataSize - 64;  // ESP in the arena
  c.in.gpr[6] = NativeRunner::kDataBase;                                 // ESI, EDI too
  c.in.gpr[7] = NativeRunner::kDataBase + 256;
  const vmbt::difftest::BtResult r = runner.run(c, arena.data(), 50, user);
  // Messages that mean the monitor itself went wrong (not the guest).
  for (const char* bug : {"unexpected host signal", "not a system instruction", "internal error"}) {
    if (r.engine_error.find(bug) != std::string::npos) {
      std::fprintf(stderr, "monitor error: %s\n", r.engine_error.c_str());
      __builtin_trap();
    }
  }
  return 0;
}
