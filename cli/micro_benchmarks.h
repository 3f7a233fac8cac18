// The catalogue of `vmbt bench micro`: which operations are timed, by which guest, and the
// published figures set beside ours (docs/reference-figures.md); and the parser of the guests'
// report lines (bench/micro/bench.inc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vmbt {

/// One micro-benchmark.
struct MicroBenchmark {
  std::string name;       ///< id: the guest is bench/micro/<name>.elf
  std::string group;      ///< "Adams & Agesen 2006", "KVM/ARM 2014 Table 3", "vmbt"
  std::string operation;  ///< what one operation is, in a few words (bench/micro/<name>.S: more)
  /// Set when no guest can measure it on this machine (e.g. cr8wr, IPI): the reason.
  std::string not_applicable;
  /// The published figures of `group`'s paper for the same operation, cycles ("" if none).
  std::string paper;
  /// Measured natively by vmbt itself (the "host" column), not by a guest on an engine.
  bool host_floor = false;
};

/// Every benchmark, in report order.
const std::vector<MicroBenchmark>& micro_benchmarks();

/// The caveat printed under the "paper" column.
extern const char* const kPaperCaveat;

/// One guest's report: "VMBT-BENCH name=N iters=I unroll=U base=0x.. op=0x..".
struct MicroSample {
  std::string name;
  uint64_t iters = 0;
  uint64_t unroll = 0;
  uint64_t base_cycles = 0;  ///< TSC delta of the loop without the operation
  uint64_t op_cycles = 0;    ///< TSC delta of the loop with it

  uint64_t operations() const { return iters * unroll; }
  /// (op - base) / operations: the cost of one operation in TSC cycles (may be <= 0 for noise).
  double cycles_per_op() const;
};

/// Finds the report line in a guest's serial output. Returns nullopt when there is none; then
/// `failure` (if given) receives the guest's "VMBT-BENCH-FAIL ..." line, or "".
std::optional<MicroSample> parse_micro_output(const std::string& serial,
                                              std::string* failure = nullptr);

}  // namespace vmbt
