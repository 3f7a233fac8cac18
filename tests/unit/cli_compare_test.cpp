// `vmbt compare`: the side-by-side table and JSON of one guest on bt and on kvm.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/compare_report.h"
#include "cli/text_table.h"
#include "cli_run_helper.h"

namespace vmbt {
namespace {

using testing_cli::run_vmbt;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

TEST(SerialDiff, FindsTheFirstDifferingLine) {
  EXPECT_TRUE(diff_serial("a\nb\n", "a\nb\n").identical);
  EXPECT_TRUE(diff_serial("a\r\nb\r\n", "a\nb\n").identical);  // carriage returns ignored
  SerialDiff d = diff_serial("a\nb\nc\n", "a\nx\nc\n");
  EXPECT_FALSE(d.identical);
  EXPECT_EQ(d.line, 2u);
  EXPECT_EQ(d.a_line, "b");
  EXPECT_EQ(d.b_line, "x");
  d = diff_serial("a\n", "a\nmore\n");
  EXPECT_FALSE(d.identical);
  EXPECT_EQ(d.line, 2u);
  EXPECT_EQ(d.a_line, "(end of output)");
  EXPECT_EQ(d.b_line, "more");
}

TEST(TextTable, AlignsAndWrapsCells) {
  TextTable t({"name", "value"}, {0, 10});
  t.align_right(1);
  t.add_section("section");
  t.add_row({"a", "1"});
  t.add_row({"bb", "a long cell that wraps"});
  std::string out = t.render();
  EXPECT_EQ(out,
            "name      value\n"
            "---------------\n"
            "section\n"
            "a             1\n"
            "bb       a long\n"
            "      cell that\n"
            "          wraps\n");
  EXPECT_EQ(wrap_text("αβγ δεζ", 3), (std::vector<std::string>{"αβγ", "δεζ"}));
}

TEST(CompareCommand, HelloHasBothColumnsAndIdenticalOutput) {
  std::string json = testing::TempDir() + "/vmbt_compare_hello.json";
  auto r = run_vmbt(
      "compare --timeout 60 --kernel " + std::string(VMBT_GUEST_DIR) + "/hello.elf --json " + json,
      false);
  ASSERT_EQ(r.status, 0) << r.output;
  // The table: both engines' columns and the sections.
  EXPECT_NE(r.output.find("bt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("kvm"), std::string::npos) << r.output;
  for (const char* section : {"exits by reason", "I/O exits by port", "callouts by instruction",
                              "page faults (bt shadow MMU)", "translation (bt)"}) {
    EXPECT_NE(r.output.find(section), std::string::npos) << section << "\n" << r.output;
  }

  nlohmann::json j = read_json(json);
  const auto& bt = j["engines"]["bt"];
  ASSERT_TRUE(bt["ran"].get<bool>()) << j.dump(2);
  EXPECT_TRUE(bt["completed"].get<bool>());
  EXPECT_EQ(bt["exit_status"], 1);
  EXPECT_EQ(bt["serial"], "Hello from vmbt guest\n");
  double secs = bt["wall_seconds"].get<double>();
  EXPECT_TRUE(std::isfinite(secs) && secs > 0 && secs < 60);
  EXPECT_GT(bt["stats"]["bt"]["blocks_translated"].get<uint64_t>(), 0u);
  EXPECT_GT(bt["stats"]["bt"]["callouts"]["out"].get<uint64_t>(), 0u);
  EXPECT_EQ(bt["stats"]["io_ports"]["0x00f4"], 1);

  const auto& kvm = j["engines"]["kvm"];
  ASSERT_TRUE(kvm.contains("ran"));
  if (!kvm["ran"].get<bool>()) {
    // No usable /dev/kvm: the column says why.
    EXPECT_FALSE(kvm["unavailable"].get<std::string>().empty());
    EXPECT_NE(r.output.find(kvm["unavailable"].get<std::string>().substr(0, 20)),
              std::string::npos);
  } else {
    EXPECT_TRUE(kvm["completed"].get<bool>()) << kvm.dump(2);
    EXPECT_EQ(kvm["exit_status"], 1);
    EXPECT_TRUE(j["serial"]["identical"].get<bool>()) << j["serial"].dump();
    EXPECT_TRUE(j["serial"]["first_difference"].is_null());
    EXPECT_NE(r.output.find("identical"), std::string::npos) << r.output;
    EXPECT_GT(kvm["stats"]["kvm"]["exit_reasons"]["io"].get<uint64_t>(), 0u);
    // Both engines see the same port I/O.
    EXPECT_EQ(kvm["stats"]["io_ports"], bt["stats"]["io_ports"]);
  }

  // The rows mirror the table; counters are numbers, engine-specific rows null on the other side.
  bool saw_callout_row = false;
  for (const auto& row : j["rows"]) {
    if (row["section"] == "callouts by instruction (bt)") {
      saw_callout_row = true;
      EXPECT_TRUE(row["bt"].is_number()) << row.dump();
      EXPECT_TRUE(row["kvm"].is_null()) << row.dump();
    }
  }
  EXPECT_TRUE(saw_callout_row);
}

TEST(CompareCommand, AGuestKvmCannotRunSaysWhyInTheKvmColumn) {
  // INT3 + IRET: a VT-x host runs it; kvm-pvm cannot emulate INT3/IRET and says so.
  std::string json = testing::TempDir() + "/vmbt_compare_trap.json";
  std::string kernel = testing_cli::micro_guest_dir() + "/trap.elf";
  auto r = run_vmbt("compare --timeout 60 --append iters=10 --kernel " + kernel + " --json " + json,
                    false);
  ASSERT_EQ(r.status, 0) << r.output;
  nlohmann::json j = read_json(json);
  EXPECT_TRUE(j["engines"]["bt"]["completed"].get<bool>()) << j["engines"]["bt"].dump(2);
  EXPECT_NE(j["engines"]["bt"]["serial"].get<std::string>().find("VMBT-BENCH name=trap"),
            std::string::npos);
  const auto& kvm = j["engines"]["kvm"];
  if (kvm["ran"].get<bool>() && kvm["completed"].get<bool>()) {
    GTEST_SKIP() << "this host's KVM runs INT3/IRET guests: nothing to explain";
  }
  std::string why = kvm["ran"].get<bool>() ? kvm["why_not_completed"].get<std::string>()
                                           : kvm["unavailable"].get<std::string>();
  EXPECT_FALSE(why.empty());
  EXPECT_TRUE(j["serial"]["identical"].is_null() || !j["serial"]["identical"].get<bool>());
  // The table's kvm column carries the reason (wrapped: look for its first words).
  EXPECT_NE(r.output.find(why.substr(0, 20)), std::string::npos) << why << "\n" << r.output;
}

TEST(CompareCommand, LiveColumnRunsTheGuestMovedBetweenTheEngines) {
  // --live: a third run moved between bt and kvm every 0.5 ms; its output must be bt's (the
  // oracle: the single-engine run), and its switches are counted.
  std::string json = testing::TempDir() + "/vmbt_compare_live.json";
  auto r = run_vmbt("compare --live --live-every 0.0005 --timeout 60 --kernel " +
                        std::string(VMBT_GUEST_DIR) + "/flags_loops.elf --json " + json,
                    false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("live (bt <-> kvm)"), std::string::npos) << r.output;
  nlohmann::json j = read_json(json);
  const auto& live = j["engines"]["live"];
  ASSERT_TRUE(live.contains("ran")) << j.dump(2);
  if (!live["ran"].get<bool>()) {
    EXPECT_FALSE(live["unavailable"].get<std::string>().empty());  // no /dev/kvm: says why
    return;
  }
  EXPECT_TRUE(live["completed"].get<bool>()) << live.dump(2);
  EXPECT_TRUE(j["serial"]["live_identical_to_bt"].get<bool>()) << j["serial"].dump();
  EXPECT_EQ(live["serial"], j["engines"]["bt"]["serial"]);
  EXPECT_GT(live["stats"]["switch"]["switches"].get<uint64_t>(), 0u) << live["stats"].dump(2);
  bool saw_switch_row = false;
  for (const auto& row : j["rows"]) {
    if (row["section"] == "switches (live)" && row["metric"] == "switches") {
      saw_switch_row = true;
      EXPECT_TRUE(row["live"].is_number()) << row.dump();
      EXPECT_TRUE(row["bt"].is_null()) << row.dump();
    }
  }
  EXPECT_TRUE(saw_switch_row);
}

TEST(CompareCommand, MissingKernelIsAnError) {
  auto r = run_vmbt("compare --kernel /nonexistent/k.elf");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("vmbt: error:"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace vmbt
