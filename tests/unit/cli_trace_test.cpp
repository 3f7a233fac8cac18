// `vmbt trace`: callouts logged and counted exactly, by kind and by guest function.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/sensitive_kinds.h"
#include "cli/trace_recorder.h"
#include "cli_run_helper.h"

namespace vmbt {
namespace {

using testing_cli::run_vmbt;

std::string census_guest() {
  return testing_cli::micro_guest_dir() + "/trace_census.elf";
}

size_t count_lines_with(const std::string& text, const std::string& needle) {
  std::istringstream in(text);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) n += line.find(needle) != std::string::npos;
  return n;
}

CalloutKind kind_of(std::initializer_list<uint8_t> bytes) {
  X86Disassembler d;
  std::vector<uint8_t> b(bytes);
  b.resize(16);
  return classify_instruction(d.decode(b.data(), b.size(), 0x1000), b.data(), b.size());
}

TEST(SensitiveKinds, NamesWhatTheMnemonicHides) {
  EXPECT_EQ(kind_of({0x0f, 0x22, 0xd8}).kind, "mov to cr3");
  EXPECT_EQ(kind_of({0x0f, 0x22, 0xd8}).cls, SensitiveClass::kPrivileged);
  EXPECT_EQ(kind_of({0x0f, 0x20, 0xc0}).kind, "mov from cr0");
  EXPECT_EQ(kind_of({0x8e, 0xd8}).kind, "mov to sreg");
  EXPECT_EQ(kind_of({0x8c, 0xc8}).kind, "mov from sreg");
  EXPECT_EQ(kind_of({0x8c, 0xc8}).cls, SensitiveClass::kSensitiveUnprivileged);
  EXPECT_EQ(kind_of({0x0e}).kind, "push sreg");
  EXPECT_EQ(kind_of({0x1f}).kind, "pop sreg");
  EXPECT_EQ(kind_of({0xea, 0, 0, 0x10, 0, 8, 0}).kind, "jmp far");
  EXPECT_EQ(kind_of({0xcb}).kind, "ret far");
  EXPECT_EQ(kind_of({0x9c}).kind, "pushf");
  EXPECT_EQ(kind_of({0x9d}).cls, SensitiveClass::kSensitiveUnprivileged);
  EXPECT_EQ(kind_of({0x0f, 0x01, 0x08}).kind, "sidt");
  EXPECT_EQ(kind_of({0xfa}).cls, SensitiveClass::kIoplSensitive);
  EXPECT_EQ(kind_of({0xf3, 0x6e}).cls, SensitiveClass::kIoplSensitive);  // rep outsb
  EXPECT_EQ(kind_of({0x0f, 0x01, 0x38}).kind, "invlpg");
  EXPECT_EQ(kind_of({0x0f, 0x01, 0x38}).cls, SensitiveClass::kPrivileged);
  EXPECT_EQ(kind_of({0x0f, 0xa2}).cls, SensitiveClass::kVirtualized);
  EXPECT_EQ(kind_of({0x60}).cls, SensitiveClass::kEmulated);  // pushad: no 64-bit encoding
}

TEST(TraceRecorder, CountsByKindAndFunctionAndLogsEveryNth) {
  SymbolTable symbols;
  symbols.add(0x1000, 0x10, "f", 3);
  symbols.add(0x2000, 0, "g", 1);
  char* buf = nullptr;
  size_t len = 0;
  FILE* log = open_memstream(&buf, &len);
  {
    TraceRecorder rec(std::move(symbols), log, 2);
    const uint8_t cli[16] = {0xfa}, mov_cr3[16] = {0x0f, 0x22, 0xd8};
    rec.record({0x1000, 0x1000, 0, cli, 16});
    rec.record({0x1001, 0x1001, 0, cli, 16});
    rec.record({0x2004, 0x2004, 0, mov_cr3, 16});
    rec.record({0x3000, 0x1010, 3, cli, 16});  // past f's size: no symbol
    EXPECT_EQ(rec.total(), 4u);
    EXPECT_EQ(rec.count("cli"), 3u);
    EXPECT_EQ(rec.count("mov to cr3"), 1u);
    EXPECT_EQ(rec.count_in("f", "cli"), 2u);
    EXPECT_EQ(rec.count_in("g", "mov to cr3"), 1u);
    EXPECT_EQ(rec.count_in("", "cli"), 1u);
    std::string text = rec.summary_text();
    EXPECT_NE(text.find("mov to cr3"), std::string::npos) << text;
    EXPECT_NE(text.find("(no symbol)"), std::string::npos) << text;
    nlohmann::json j = rec.summary_json();
    EXPECT_EQ(j["by_kind"][0]["kind"], "cli");  // sorted by count
    EXPECT_EQ(j["by_kind"][0]["cpl3"], 1);
  }
  fclose(log);
  std::string logged(buf, len);
  free(buf);
  EXPECT_EQ(count_lines_with(logged, "vmbt trace: #"), 2u) << logged;  // #1 and #3
  EXPECT_NE(logged.find("mov cr3, eax"), std::string::npos) << logged;
  EXPECT_NE(logged.find("g+0x4"), std::string::npos) << logged;
}

TEST(TraceCommand, CensusGuestSummaryListsExactlyItsCallouts) {
  std::string json = testing::TempDir() + "/vmbt_trace_census.json";
  auto r = run_vmbt("trace --timeout 60 --kernel " + census_guest() + " --summary-json " + json);
  EXPECT_EQ(r.status, 1) << r.output;  // isa-debug-exit 0
  std::ifstream in(json);
  nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j["callouts"], 12);
  EXPECT_TRUE(j["symbols"].get<bool>());
  std::map<std::string, uint64_t> kinds;
  for (const auto& k : j["by_kind"]) kinds[k["kind"]] = k["count"];
  EXPECT_EQ(kinds,
            (std::map<std::string, uint64_t>{{"out", 6}, {"cli", 3}, {"sti", 2}, {"cpuid", 1}}));
  std::map<std::string, std::map<std::string, uint64_t>> functions;
  for (const auto& f : j["by_function"]) {
    functions[f["function"]] = f["kinds"].get<std::map<std::string, uint64_t>>();
  }
  EXPECT_EQ(functions, (std::map<std::string, std::map<std::string, uint64_t>>{
                           {"_start", {{"out", 3}, {"cpuid", 1}}},
                           {"loud", {{"sti", 2}}},
                           {"quiet", {{"cli", 3}}},
                           {"emit", {{"out", 3}}}}));
  // The summary on stderr: the table, largest first.
  EXPECT_NE(r.output.find("12 callouts"), std::string::npos) << r.output;
  EXPECT_LT(r.output.find("\nout "), r.output.find("\ncli ")) << r.output;
}

TEST(TraceCommand, LogsEveryCalloutOrEveryNth) {
  auto r = run_vmbt("trace --timeout 60 --trace-sensitive --kernel " + census_guest());
  EXPECT_EQ(count_lines_with(r.output, "vmbt trace: #"), 12u) << r.output;
  EXPECT_NE(r.output.find("cpl 0  fa               cli"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("quiet+0x2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cpuid"), std::string::npos) << r.output;
  r = run_vmbt("trace --timeout 60 --trace-sensitive --trace-every 5 --kernel " + census_guest());
  EXPECT_EQ(count_lines_with(r.output, "vmbt trace: #"), 3u) << r.output;  // #1, #6, #11
}

TEST(TraceCommand, SymbolsFromASystemMap) {
  std::string map = testing::TempDir() + "/vmbt_trace_System.map";
  {  // one symbol over the whole guest: every callout is in it
    std::ofstream out(map);
    out << "00100000 T entry_point\n00100000 t _mb_header\n";
  }
  std::string json = testing::TempDir() + "/vmbt_trace_map.json";
  auto r = run_vmbt("trace --timeout 60 --kernel " + census_guest() + " --symbols " + map +
                    " --summary-json " + json);
  std::ifstream in(json);
  nlohmann::json j = nlohmann::json::parse(in);
  ASSERT_EQ(j["by_function"].size(), 1u) << j.dump(2);
  EXPECT_EQ(j["by_function"][0]["function"], "entry_point");
  EXPECT_EQ(j["by_function"][0]["count"], 12);

  r = run_vmbt("trace --kernel " + census_guest() + " --symbols /nonexistent.map");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("/nonexistent.map"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace vmbt
