// bench/bt_loops: integer compute loops run natively (IA-32 in a compatibility-mode segment of
// this process) and as a guest under the bt engine, in one run; prints bt/native per loop.
#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/difftest/bt_snippet_runner.h"
#include "tests/difftest/native_runner.h"

namespace {

using vmbt::difftest::BtSnippetRunner;
using vmbt::difftest::NativeCase;
using vmbt::difftest::NativeResult;
using vmbt::difftest::NativeRunner;

std::vector<uint8_t> load(const std::string& name) {
  std::ifstream in(std::string(VMBT_LOOP_DIR) + "/" + name + ".bin", std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main() {
  NativeRunner native;
  native.set_timeout_ms(60000);
  BtSnippetRunner bt;
  std::vector<uint8_t> arena(NativeRunner::kDataSize, 0);
  // Without a native run there is no reference: the bt column alone, and the reason.
  std::string why;
  const bool has_native = NativeRunner::host_runs_32bit_code(&why);
  fmt::print("{:<16} {:>12} {:>12} {:>10}\n", "loop", "native s", "bt s", "bt/native");
  int status = 0;
  for (const char* name :
       {"register_only", "memory_heavy", "call_heavy", "indirect_switch", "recursive_call"}) {
    NativeCase c;
    c.code = load(name);
    if (c.code.empty()) {
      fmt::print(stderr, "bt_loops: cannot read {}.bin\n", name);
      return 1;
    }
    c.in.gpr[4] = NativeRunner::kDataBase + NativeRunner::kDataSize - 64;  // ESP in the arena
    double best_native = 1e9, best_bt = 1e9;
    for (int rep = 0; rep < 3; ++rep) {  // best of three, alternating, in this one run
      NativeResult n;
      if (has_native) {
        std::fill(native.data(), native.data() + NativeRunner::kDataSize, 0);
        auto t0 = std::chrono::steady_clock::now();
        n = native.run(c);
        best_native = std::min(best_native, seconds_since(t0));
      }
      auto t1 = std::chrono::steady_clock::now();
      auto b = bt.run(c, arena.data(), 60000);
      best_bt = std::min(best_bt, seconds_since(t1));
      if (b.faulted || !b.engine_error.empty() ||
          (has_native && (n.faulted || n.out.gpr != b.out.gpr))) {
        fmt::print(stderr, "bt_loops: {} results differ or faulted ({})\n", name, b.engine_error);
        status = 1;
      }
    }
    if (has_native) {
      fmt::print("{:<16} {:>12.3f} {:>12.3f} {:>10.2f}\n", name, best_native, best_bt,
                 best_bt / best_native);
    } else {
      fmt::print("{:<16} {:>12} {:>12.3f} {:>10}\n", name, "-", best_bt, "-");
    }
  }
  if (!has_native) fmt::print("native: not measured: {}\n", why);
  return status;
}
