#include "cli/micro_report.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "cli/text_table.h"
#include "vmm/error.h"

namespace vmbt {

namespace {

std::string format_cycles(double c) {
  return c < 10 ? fmt::format("{:.1f}", c) : fmt::format("{:.0f}", c);
}

std::string format_ns(double ns) {
  return ns < 100 ? fmt::format("{:.1f}", ns) : fmt::format("{:.0f}", ns);
}

std::string engine_title(const std::string& engine, const HostInfo& host) {
  if (engine == "bt") return "bt: binary translation (vmbt's translator and shadow MMU)";
  if (engine == "qemu") {
    return "qemu: QEMU TCG (qemu-system-i386), the same guests; its RDTSC is the host's TSC";
  }
  if (engine == "host") return "host: measured natively by vmbt in this run (host floors)";
  return "kvm: /dev/kvm, " + host.kvm_kind;
}

}  // namespace

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string micro_table(const MicroReport& r) {
  std::string out;
  out += fmt::format("vmbt bench micro on {}\n", r.host.cpu_model);
  out += fmt::format("host TSC {:.3f} GHz{}; cycles are host TSC cycles, ns = cycles / TSC rate\n",
                     r.host.tsc_hz / 1e9, r.host.invariant_tsc ? " (invariant)" : "");
  for (const std::string& e : r.engines) out += engine_title(e, r.host) + "\n";
  out += fmt::format("median of {} run{} per value, {} loop iterations per run\n\n", r.runs,
                     r.runs == 1 ? "" : "s", r.iterations);

  std::vector<std::string> headers = {"benchmark", "operation"};
  std::vector<size_t> widths = {0, 30};
  for (const std::string& e : r.engines) {
    headers.push_back(e + " cycles");
    headers.push_back(e + " ns");
    widths.push_back(0);
    widths.push_back(0);
  }
  headers.push_back("paper (cycles)");
  widths.push_back(34);
  TextTable t(headers, widths);
  for (size_t i = 2; i + 1 < headers.size(); ++i) t.align_right(i);

  std::vector<std::string> notes;
  auto note = [&](const std::string& text) {
    auto it = std::find(notes.begin(), notes.end(), text);
    size_t n = it == notes.end() ? (notes.push_back(text), notes.size())
                                 : static_cast<size_t>(it - notes.begin()) + 1;
    return fmt::format("n/a [{}]", n);
  };
  std::string group;
  for (size_t i = 0; i < r.benchmarks.size(); ++i) {
    const MicroBenchmark& b = r.benchmarks[i];
    if (b.group != group) {
      group = b.group;
      t.add_section(group);
    }
    std::vector<std::string> row = {"  " + b.name, b.operation};
    for (const std::string& e : r.engines) {
      auto it = r.results[i].find(e);
      if (it != r.results[i].end() && it->second.measured) {
        row.push_back(format_cycles(it->second.cycles));
        row.push_back(format_ns(it->second.ns));
      } else if (it != r.results[i].end() && it->second.blank) {
        row.push_back("");
        row.push_back("");
      } else {
        std::string why = it == r.results[i].end() ? "not run" : it->second.not_available;
        row.push_back(note(b.not_applicable.empty() ? e + ": " + why : why));
        row.push_back("");
      }
    }
    row.push_back(b.paper);
    t.add_row(row);
  }
  out += t.render();
  if (!notes.empty()) out += "\n";
  for (size_t i = 0; i < notes.size(); ++i) {
    for (const std::string& line : wrap_text(fmt::format("[{}] {}", i + 1, notes[i]), 100)) {
      out += line + "\n";
    }
  }
  out += "\n";
  for (const std::string& line : wrap_text(kPaperCaveat, 100)) out += line + "\n";
  return out;
}

nlohmann::json micro_json(const MicroReport& r) {
  nlohmann::json j;
  j["host"] = {{"cpu", r.host.cpu_model},
               {"tsc_hz", r.host.tsc_hz},
               {"invariant_tsc", r.host.invariant_tsc},
               {"kvm", r.host.kvm_kind}};
  j["engines"] = r.engines;
  j["runs"] = r.runs;
  j["iterations"] = r.iterations;
  j["paper_caveat"] = kPaperCaveat;
  nlohmann::json list = nlohmann::json::array();
  for (size_t i = 0; i < r.benchmarks.size(); ++i) {
    const MicroBenchmark& b = r.benchmarks[i];
    nlohmann::json bj = {
        {"name", b.name},
        {"group", b.group},
        {"operation", b.operation},
        {"paper", b.paper.empty() ? nlohmann::json(nullptr) : nlohmann::json(b.paper)}};
    for (const std::string& e : r.engines) {
      auto it = r.results[i].find(e);
      if (it != r.results[i].end() && it->second.measured) {
        const MicroResult& m = it->second;
        bj["results"][e] = {{"cycles_per_op", m.cycles},
                            {"ns_per_op", m.ns},
                            {"runs_cycles_per_op", m.run_cycles},
                            {"operations_per_run", m.operations}};
      } else {
        bj["results"][e] = {
            {"not_available", it == r.results[i].end() ? "not run" : it->second.not_available}};
      }
    }
    list.push_back(bj);
  }
  j["benchmarks"] = list;
  return j;
}

void require_gnuplot() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && access((dir + "/gnuplot").c_str(), X_OK) == 0) return;
  }
  throw Error(
      "--plot needs gnuplot, which is not installed: apt-get install gnuplot-nox (or run "
      "scripts/setup)");
}

void plot_micro(const MicroReport& r, const std::string& png_path) {
  require_gnuplot();
  std::string script;
  script += "set terminal pngcairo size 1400,760 noenhanced font ',10'\n";
  script += "set output '" + png_path + "'\n";
  script +=
      fmt::format("set title 'vmbt bench micro: cycles per operation ({})'\n", r.host.cpu_model);
  script +=
      "set style data histograms\nset style histogram clustered gap 1\n"
      "set style fill solid 0.85 border -1\nset logscale y\nset grid ytics\n"
      "set ylabel 'host TSC cycles per operation (log scale)'\n"
      "set xtics rotate by 40 right nomirror\nset datafile missing '-'\nset key top left\n"
      "set bmargin 8\n";
  script += "$data << EOD\n";
  for (size_t i = 0; i < r.benchmarks.size(); ++i) {
    script += r.benchmarks[i].name;
    for (const std::string& e : r.engines) {
      auto it = r.results[i].find(e);
      bool ok = it != r.results[i].end() && it->second.measured && it->second.cycles > 0;
      script += ok ? fmt::format(" {:.3f}", it->second.cycles) : " -";
    }
    script += "\n";
  }
  script += "EOD\n";
  script += "plot ";
  for (size_t k = 0; k < r.engines.size(); ++k) {
    if (k) script += ", ";
    std::string title = r.engines[k];
    if (title == "kvm" && r.host.kvm_kind.rfind("kvm-pvm", 0) == 0) title += " (kvm-pvm, emulated)";
    if (title == "kvm" && r.host.kvm_kind.rfind("hardware", 0) == 0)
      title += " (hardware-assisted)";
    script += fmt::format("$data using {}{} title '{}'", k + 2, k == 0 ? ":xtic(1)" : "", title);
  }
  script += "\n";

  FILE* p = popen("gnuplot", "w");
  if (!p) throw Error("cannot start gnuplot");
  fwrite(script.data(), 1, script.size(), p);
  int status = pclose(p);
  if (status != 0) throw Error(fmt::format("gnuplot failed to draw '{}'", png_path));
}

}  // namespace vmbt
