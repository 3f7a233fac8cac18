#include <fmt/format.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "vmm/cli/commands.h"
#include "vmm/cli/guest_session.h"
#include "vmm/cli/micro_report.h"
#include "vmm/error.h"

namespace vmbt {

namespace {

constexpr uint64_t kIterations = 1000;  ///< loop iterations (x8 unrolled operations)
constexpr uint64_t kQuickIterations = 20;

/// bench/micro next to the vmbt executable (the build tree's layout).
std::string default_guest_dir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "bench/micro";
  buf[n] = '\0';
  return (std::filesystem::path(buf).parent_path() / "bench" / "micro").string();
}

/// "VMBT-BENCH-FAIL name=x vector=0d eip=0010029f" in words.
std::string describe_failure(const std::string& line) {
  auto field = [&](const std::string& key) {
    size_t at = line.find(" " + key + "=");
    if (at == std::string::npos) return std::string("?");
    size_t start = at + key.size() + 2;
    return line.substr(start, line.find(' ', start) - start);
  };
  static const char* const kNames[] = {"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
                                       "#DF", "",    "#TS", "#NP", "#SS", "#GP", "#PF"};
  unsigned long vector = std::strtoul(field("vector").c_str(), nullptr, 16);
  std::string name = vector < 15 ? kNames[vector] : "";
  return fmt::format("the guest took an unexpected exception: vector {:#04x}{}{} at EIP 0x{}",
                     vector, name.empty() ? "" : " ", name, field("eip"));
}

/// Runs one benchmark `runs` times on one engine. Stops at the first run without a result: the
/// reason would be the same every time.
MicroResult measure(const MicroBenchmark& b, const std::string& engine, const BenchMicroArgs& args,
                    const std::string& guest_dir, uint64_t iterations, double tsc_hz,
                    std::string* engine_unavailable) {
  MicroResult m;
  if (!b.not_applicable.empty()) {
    m.not_available = b.not_applicable;
    return m;
  }
  if (!engine_unavailable->empty()) {
    m.not_available = *engine_unavailable;
    return m;
  }
  GuestRunSpec spec;
  spec.engine = engine;
  spec.kernel = guest_dir + "/" + b.name + ".elf";
  spec.append = fmt::format("iters={}", iterations);
  spec.memory = "64M";
  spec.timeout_seconds = args.timeout_seconds;
  spec.capture_serial = true;
  spec.fatal_dump = nullptr;  // the table's note says why a run failed
  for (unsigned run = 0; run < args.runs; ++run) {
    GuestRun g;
    try {
      g = run_guest_once(spec);
    } catch (const EngineUnavailable& e) {
      *engine_unavailable = e.what();
      m.not_available = e.what();
      return m;
    }
    std::string failure;
    std::optional<MicroSample> s = parse_micro_output(g.serial, &failure);
    if (!s) {
      if (!failure.empty()) {
        m.not_available = describe_failure(failure);
      } else if (g.result.status == 124) {
        m.not_available =
            fmt::format("the guest did not finish within {} s (--timeout)", args.timeout_seconds);
      } else {
        m.not_available = g.result.reason;
      }
      m.run_cycles.clear();
      return m;
    }
    m.operations = s->operations();
    m.run_cycles.push_back(s->cycles_per_op());
  }
  m.cycles = median(m.run_cycles);
  if (!(m.cycles > 0) || !std::isfinite(m.cycles)) {
    m.not_available =
        "below this measurement's resolution: the loop with the operation was not slower than "
        "the loop without it";
    return m;
  }
  m.ns = m.cycles / tsc_hz * 1e9;
  m.measured = true;
  return m;
}

}  // namespace

int bench_micro_command(const BenchMicroArgs& args) {
  if (!args.plot.empty()) require_gnuplot();  // fail before minutes of measuring
  std::string guest_dir = args.guest_dir.empty() ? default_guest_dir() : args.guest_dir;

  MicroReport report;
  for (const MicroBenchmark& b : micro_benchmarks()) {
    if (args.only.empty() ||
        std::find(args.only.begin(), args.only.end(), b.name) != args.only.end()) {
      report.benchmarks.push_back(b);
    }
  }
  for (const std::string& name : args.only) {
    bool known = false;
    for (const MicroBenchmark& b : micro_benchmarks()) known |= b.name == name;
    if (!known) throw Error(fmt::format("--only: no micro-benchmark is called '{}'", name));
  }
  for (const MicroBenchmark& b : report.benchmarks) {
    std::string elf = guest_dir + "/" + b.name + ".elf";
    if (b.not_applicable.empty() && !std::filesystem::exists(elf)) {
      throw Error(fmt::format(
          "micro-benchmark guest '{}' not found (build the project, or give --guest-dir)", elf));
    }
  }
  report.engines = args.engine == "both" ? std::vector<std::string>{"bt", "kvm"}
                                         : std::vector<std::string>{args.engine};
  report.runs = args.runs;
  report.iterations = args.quick ? kQuickIterations : kIterations;
  report.host = read_host_info();
  report.results.resize(report.benchmarks.size());

  const bool progress = isatty(2);
  for (const std::string& engine : report.engines) {
    std::string unavailable;
    for (size_t i = 0; i < report.benchmarks.size(); ++i) {
      const MicroBenchmark& b = report.benchmarks[i];
      if (progress) fmt::print(stderr, "\r\033[K{} {} ...", engine, b.name);
      report.results[i][engine] =
          measure(b, engine, args, guest_dir, report.iterations, report.host.tsc_hz, &unavailable);
    }
  }
  if (progress) fmt::print(stderr, "\r\033[K");

  fmt::print("{}", micro_table(report));
  if (!args.json.empty()) {
    std::ofstream out(args.json);
    if (!out) throw Error(fmt::format("cannot write --json file '{}'", args.json));
    out << micro_json(report).dump(2) << "\n";
  }
  if (!args.plot.empty()) plot_micro(report, args.plot);
  return 0;
}

}  // namespace vmbt
