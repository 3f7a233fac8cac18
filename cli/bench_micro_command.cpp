#include <fmt/format.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/commands.h"
#include "cli/guest_session.h"
#include "cli/host_floors.h"
#include "cli/micro_report.h"
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

/// Whether `qemu-system-i386` is on PATH (the reference column of the table).
bool qemu_installed() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (!dir.empty() && access((dir + "/qemu-system-i386").c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

/// Single quotes for a shell word.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// One run of a benchmark guest under QEMU TCG: its serial output (the guest's report line), or
/// "" when QEMU could not be run.
std::string run_under_qemu(const std::string& elf, uint64_t iterations, double timeout_seconds) {
  std::string cmd = fmt::format(
      "timeout {:.0f} qemu-system-i386 -nographic -nodefaults -no-reboot -serial stdio -m 64M "
      "-device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel {} -append {} </dev/null "
      "2>/dev/null",
      std::ceil(timeout_seconds), shell_quote(elf),
      shell_quote(fmt::format("iters={}", iterations)));
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

/// Runs one benchmark `runs` times on one engine. Stops at the first run without a result: the
/// reason would be the same every time.
/// A result from its runs' cycles per operation: their median, in ns too, or why it is none.
MicroResult finish(MicroResult m, double tsc_hz) {
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

MicroResult measure(const MicroBenchmark& b, const std::string& engine, const BenchMicroArgs& args,
                    const std::string& guest_dir, uint64_t iterations, double tsc_hz,
                    std::string* engine_unavailable) {
  MicroResult m;
  if (b.host_floor != (engine == "host")) {
    m.blank = true;
    m.not_available = b.host_floor ? "a host floor: measured natively (the host column)"
                                   : "a guest benchmark: measured on the engines";
    return m;
  }
  if (b.host_floor) {
    m.cycles = measure_host_floor(b.name, args.runs);
    m.run_cycles = {m.cycles};
    m.ns = m.cycles / tsc_hz * 1e9;
    m.measured = m.cycles > 0;
    if (!m.measured) m.not_available = "the host floor measured no time";
    return m;
  }
  if (!b.not_applicable.empty()) {
    m.not_available = b.not_applicable;
    return m;
  }
  if (engine == "qemu") {
    const std::string elf = guest_dir + "/" + b.name + ".elf";
    for (unsigned run = 0; run < args.runs; ++run) {
      std::string failure;
      std::optional<MicroSample> s =
          parse_micro_output(run_under_qemu(elf, iterations, args.timeout_seconds), &failure);
      if (!s) {
        m.not_available = !failure.empty()
                              ? describe_failure(failure)
                              : "QEMU gave no result (not finished within --timeout, or failed)";
        m.run_cycles.clear();
        return m;
      }
      m.operations = s->operations();
      m.run_cycles.push_back(s->cycles_per_op());
    }
    return finish(m, tsc_hz);
  }
  if (!engine_unavailable->empty()) {
    m.not_available = *engine_unavailable;
    return m;
  }
  GuestRunSpec spec;
  spec.guest.engine = parse_engine_kind(engine);
  spec.guest.kernel = guest_dir + "/" + b.name + ".elf";
  spec.guest.append = fmt::format("iters={}", iterations);
  spec.guest.ram_bytes = 64ull << 20;
  spec.guest.timeout_seconds = args.timeout_seconds;
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
  return finish(m, tsc_hz);
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
    if (b.not_applicable.empty() && !b.host_floor && !std::filesystem::exists(elf)) {
      throw Error(fmt::format(
          "micro-benchmark guest '{}' not found (build the project, or give --guest-dir)", elf));
    }
  }
  // "all": both engines, QEMU TCG as the reference when it is installed, and the host floors.
  if (args.engine == "all") {
    report.engines = {"bt", "kvm"};
    if (qemu_installed()) {
      report.engines.push_back("qemu");
    } else {
      fmt::print(stderr,
                 "vmbt bench micro: qemu-system-i386 is not installed, so there is no QEMU TCG "
                 "column (apt-get install qemu-system-x86 to add it)\n");
    }
  } else if (args.engine == "both") {
    report.engines = {"bt", "kvm"};
  } else {
    report.engines = {args.engine};
  }
  if (args.engine == "qemu" && !qemu_installed()) {
    throw Error(
        "--engine qemu: qemu-system-i386 is not installed (apt-get install qemu-system-x86)");
  }
  if (std::any_of(report.benchmarks.begin(), report.benchmarks.end(),
                  [](const MicroBenchmark& b) { return b.host_floor; })) {
    report.engines.push_back("host");
  }
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
