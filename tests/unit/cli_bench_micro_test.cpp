// `vmbt bench micro`: every benchmark gives a positive, finite number per engine or says why not.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/micro_benchmarks.h"
#include "cli/micro_report.h"
#include "cli_run_helper.h"

namespace vmbt {
namespace {

using testing_cli::run_vmbt;

TEST(MicroBenchOutput, ParsesTheGuestsReportLine) {
  auto s = parse_micro_output(
      "noise\nVMBT-BENCH name=cpuid iters=100 unroll=8 base=0x0000000000000320 "
      "op=0x0000000000004e20\r\n");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->name, "cpuid");
  EXPECT_EQ(s->operations(), 800u);
  EXPECT_EQ(s->base_cycles, 800u);
  EXPECT_EQ(s->op_cycles, 20000u);
  EXPECT_DOUBLE_EQ(s->cycles_per_op(), 24.0);

  std::string failure;
  EXPECT_FALSE(parse_micro_output("VMBT-BENCH-FAIL name=x vector=0d eip=00100000\n", &failure));
  EXPECT_EQ(failure, "VMBT-BENCH-FAIL name=x vector=0d eip=00100000");
  EXPECT_FALSE(parse_micro_output("VMBT-BENCH name=x iters=0 unroll=8 base=0x1 op=0x2\n"));
  EXPECT_FALSE(parse_micro_output("VMBT-BENCH name=x iters=5 unroll=8 base=0x1\n"));
  EXPECT_FALSE(parse_micro_output(""));
}

TEST(MicroBenchOutput, MedianOfRuns) {
  EXPECT_DOUBLE_EQ(median({5, 1, 3}), 3);
  EXPECT_DOUBLE_EQ(median({4, 1, 3, 2}), 2.5);
  EXPECT_DOUBLE_EQ(median({}), 0);
}

TEST(MicroBenchCatalogue, HasBothPapersOperationsAndSaysWhatCannotRun) {
  std::set<std::string> names;
  for (const auto& b : micro_benchmarks()) names.insert(b.name);
  for (const char* n : {"syscall_int80", "syscall_sysenter", "in",           "cr8wr",
                        "call_ret",      "pgfault",          "pgfault_skip", "divzero",
                        "ptemod",        "hypercall",        "trap",         "io_monitor",
                        "io_device",     "eoi_ack",          "ipi",          "cpuid",
                        "rdtsc",         "pushf_popf",       "cli_sti",      "host_sigsegv",
                        "host_mprotect", "host_syscall",     "host_map_page"}) {
    EXPECT_TRUE(names.count(n)) << n;
  }
  for (const auto& b : micro_benchmarks()) {
    if (b.name == "cr8wr" || b.name == "ipi") {
      EXPECT_FALSE(b.not_applicable.empty()) << b.name;
    } else {
      EXPECT_TRUE(b.not_applicable.empty()) << b.name;
    }
  }
}

TEST(BenchMicroCommand, QuickRunGivesANumberOrAReasonForEveryBenchmark) {
  std::string json = testing::TempDir() + "/vmbt_bench_micro.json";
  auto r = run_vmbt("bench micro --quick --runs 1 --timeout 15 --json " + json, false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("bt cycles"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("kvm cycles"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("paper (cycles)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no IA-32 equivalent"), std::string::npos) << r.output;  // cr8wr

  std::ifstream in(json);
  nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_FALSE(j["host"]["cpu"].get<std::string>().empty());
  EXPECT_GT(j["host"]["tsc_hz"].get<double>(), 1e8);
  EXPECT_FALSE(j["host"]["kvm"].get<std::string>().empty());
  // bt and kvm, QEMU TCG when installed, and the host floors (measured natively, every time).
  const auto& engines = j["engines"];
  ASSERT_GE(engines.size(), 3u);
  EXPECT_EQ(engines[0], "bt");
  EXPECT_EQ(engines[1], "kvm");
  EXPECT_EQ(engines.back(), "host");
  for (const auto& b : j["benchmarks"]) {
    const auto& host = b["results"]["host"];
    if (b["name"].get<std::string>().rfind("host_", 0) == 0) {
      EXPECT_GT(host["cycles_per_op"].get<double>(), 0) << b.dump(2);
    } else {
      EXPECT_TRUE(host.contains("not_available")) << b.dump(2);
    }
  }
  ASSERT_EQ(j["benchmarks"].size(), micro_benchmarks().size());
  int bt_numbers = 0;
  for (const auto& b : j["benchmarks"]) {
    for (const char* engine : {"bt", "kvm"}) {
      const auto& res = b["results"][engine];
      if (res.contains("not_available")) {
        EXPECT_FALSE(res["not_available"].get<std::string>().empty()) << b.dump(2);
        continue;
      }
      double c = res["cycles_per_op"].get<double>(), ns = res["ns_per_op"].get<double>();
      EXPECT_TRUE(std::isfinite(c) && c > 0) << b.dump(2);
      EXPECT_TRUE(std::isfinite(ns) && ns > 0) << b.dump(2);
      EXPECT_EQ(res["runs_cycles_per_op"].size(), 1u);
      bt_numbers += std::string(engine) == "bt";
    }
  }
  // bt runs every benchmark whose operation exists on IA-32 with one vCPU (paging ones may hit
  // the timeout while the shadow MMU's page-table tracing is slow, hence not all 17).
  EXPECT_GE(bt_numbers, 12) << j.dump(2);
}

TEST(BenchMicroCommand, OneEngineOnlyAndUnknownNames) {
  auto r = run_vmbt("bench micro --quick --runs 2 --engine bt --only cpuid,cr8wr", false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("bt cycles"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("kvm cycles"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("median of 2 runs"), std::string::npos) << r.output;
  r = run_vmbt("bench micro --only nosuchbench");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("nosuchbench"), std::string::npos) << r.output;
}

TEST(BenchMicroCommand, PlotWithoutGnuplotFailsClearly) {
  auto r = run_vmbt("bench micro --quick --only cpuid --plot /tmp/vmbt_never.png", true,
                    "env PATH=/nonexistent");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("gnuplot"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("apt-get install gnuplot-nox"), std::string::npos) << r.output;
}

TEST(BenchMicroCommand, PlotDrawsAPng) {
  if (system("command -v gnuplot >/dev/null 2>&1") != 0) GTEST_SKIP() << "gnuplot not installed";
  std::string png = testing::TempDir() + "/vmbt_bench_micro.png";
  std::remove(png.c_str());
  auto r = run_vmbt("bench micro --quick --runs 1 --only cpuid,call_ret,cr8wr --plot " + png);
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream in(png, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
}

}  // namespace
}  // namespace vmbt
