// Results of `vmbt bench micro` and their forms: the terminal table, JSON and the gnuplot chart.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/host_info.h"
#include "cli/micro_benchmarks.h"

namespace vmbt {

/// One benchmark on one engine.
struct MicroResult {
  bool measured = false;
  double cycles = 0;               ///< median cycles per operation
  double ns = 0;                   ///< the same in nanoseconds (host TSC rate)
  std::vector<double> run_cycles;  ///< cycles per operation of each run
  uint64_t operations = 0;         ///< operations timed per run
  std::string not_available;       ///< why there is no number (when !measured)
  /// Not this column's kind of figure (a host floor under an engine, a guest under "host"):
  /// the table leaves the cell empty.
  bool blank = false;
};

struct MicroReport {
  HostInfo host;
  /// Measured columns: "bt", "kvm", "qemu" (QEMU TCG, the reference) and "host" (host floors).
  std::vector<std::string> engines;
  unsigned runs = 0;
  uint64_t iterations = 0;  ///< loop iterations per guest run
  std::vector<MicroBenchmark> benchmarks;
  /// results[i][engine] for benchmarks[i].
  std::vector<std::map<std::string, MicroResult>> results;
};

/// Median of `values` (mean of the middle two for an even count); 0 for none.
double median(std::vector<double> values);

/// The table printed by `vmbt bench micro`: a header naming the host and engines, one row per
/// benchmark (cycles and ns per engine, the paper's figures), numbered notes for every n/a.
std::string micro_table(const MicroReport& r);

/// The same as JSON.
nlohmann::json micro_json(const MicroReport& r);

/// Throws vmbt::Error naming the Debian package when gnuplot is not on PATH.
void require_gnuplot();

/// Draws a grouped bar chart (one group per benchmark, one bar per engine, log-scale cycles) to
/// `png_path` with gnuplot. Throws vmbt::Error when gnuplot is missing or fails.
void plot_micro(const MicroReport& r, const std::string& png_path);

}  // namespace vmbt
