#include "cli/trace_recorder.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "bt/bt_engine.h"
#include "cli/text_table.h"

namespace vmbt {

namespace {

constexpr const char* kNoSymbol = "(no symbol)";

}  // namespace

TracedInstruction traced_instruction(const bt::CalloutEvent& event) {
  TracedInstruction t;
  t.eip = event.eip;
  t.linear = event.linear;
  t.cpl = event.cpl;
  t.bytes = event.bytes;
  t.length = sizeof event.bytes;
  return t;
}

TraceRecorder::TraceRecorder(SymbolTable symbols, FILE* log, uint64_t every)
    : symbols_(std::move(symbols)), log_(log), every_(every ? every : 1) {}

void TraceRecorder::record(const TracedInstruction& insn) {
  DecodedInstruction d = disassembler_.decode(insn.bytes, insn.length, insn.eip);
  CalloutKind kind = classify_instruction(d, insn.bytes, insn.length);
  auto& k = by_kind_[kind.kind];
  k.cls = kind.cls;
  ++k.count;
  ++k.by_cpl[insn.cpl & 3];
  std::string function = symbols_.empty() ? "" : symbols_.describe(insn.linear);
  std::string base = function.substr(0, function.find('+'));
  ++by_function_[base][kind.kind];

  if (log_ && total_ % every_ == 0) {
    std::string hex;
    unsigned shown = d.valid ? d.length : std::min(insn.length, 1u);
    for (unsigned i = 0; i < shown; ++i) hex += fmt::format("{:02x}", insn.bytes[i]);
    fmt::print(log_, "vmbt trace: #{:<7} eip {:#010x} cpl {}  {:<16} {:<30} {}\n", total_ + 1,
               insn.eip, insn.cpl, hex, d.text(), function);
  }
  ++total_;
}

uint64_t TraceRecorder::count(const std::string& kind) const {
  auto it = by_kind_.find(kind);
  return it == by_kind_.end() ? 0 : it->second.count;
}

uint64_t TraceRecorder::count_in(const std::string& function, const std::string& kind) const {
  auto f = by_function_.find(function);
  if (f == by_function_.end()) return 0;
  auto k = f->second.find(kind);
  return k == f->second.end() ? 0 : k->second;
}

std::vector<std::pair<std::string, uint64_t>> TraceRecorder::functions_by_count() const {
  std::vector<std::pair<std::string, uint64_t>> functions;
  for (const auto& [f, m] : by_function_) {
    uint64_t n = 0;
    for (const auto& [kind, c] : m) n += c;
    functions.push_back({f, n});
  }
  std::stable_sort(functions.begin(), functions.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return functions;
}

std::string TraceRecorder::summary_text(size_t max_functions) const {
  std::string out = fmt::format(
      "vmbt trace: {} callouts (instructions bt hands to its monitor)\n\nby kind:\n", total_);
  std::vector<std::pair<std::string, KindCount>> kinds(by_kind_.begin(), by_kind_.end());
  std::stable_sort(kinds.begin(), kinds.end(),
                   [](const auto& a, const auto& b) { return a.second.count > b.second.count; });
  TextTable t({"instruction", "class", "count", "at CPL 0", "at CPL 3"});
  for (size_t i = 2; i < 5; ++i) t.align_right(i);
  for (const auto& [kind, k] : kinds) {
    t.add_row({kind, class_name(k.cls), std::to_string(k.count), std::to_string(k.by_cpl[0]),
               std::to_string(k.by_cpl[3])});
  }
  out += t.render();

  out += "\nby guest function:\n";
  if (symbols_.empty()) {
    out += "  (no symbols: give --symbols System.map or an ELF with a symbol table)\n";
    return out;
  }
  const std::vector<std::pair<std::string, uint64_t>> functions = functions_by_count();
  TextTable f({"function", "callouts", "instructions"}, {40, 0, 60});
  f.align_right(1);
  size_t shown = 0;
  for (const auto& [name, n] : functions) {
    if (max_functions && shown++ == max_functions) break;
    std::vector<std::pair<std::string, uint64_t>> ks(by_function_.at(name).begin(),
                                                     by_function_.at(name).end());
    std::stable_sort(ks.begin(), ks.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    std::string list;
    for (const auto& [kind, c] : ks)
      list += fmt::format("{}{} {}", list.empty() ? "" : ", ", kind, c);
    f.add_row({name.empty() ? kNoSymbol : name, std::to_string(n), list});
  }
  out += f.render();
  if (max_functions && functions.size() > max_functions) {
    out += fmt::format("({} more functions: --top 0 shows all, --summary-json lists all)\n",
                       functions.size() - max_functions);
  }
  auto outside = by_function_.find("");
  uint64_t unattributed = 0;
  if (outside != by_function_.end()) {
    for (const auto& [kind, c] : outside->second) unattributed += c;
  }
  if (unattributed * 2 > total_) {
    out +=
        "note: most callouts are outside the symbols' range: is the kernel relocated (KASLR)? "
        "For Linux add nokaslr to --append, or give the symbols of the image that ran.\n";
  }
  return out;
}

nlohmann::json TraceRecorder::summary_json() const {
  nlohmann::json j;
  j["callouts"] = total_;
  j["symbols"] = !symbols_.empty();
  std::vector<std::pair<std::string, KindCount>> kinds(by_kind_.begin(), by_kind_.end());
  std::stable_sort(kinds.begin(), kinds.end(),
                   [](const auto& a, const auto& b) { return a.second.count > b.second.count; });
  j["by_kind"] = nlohmann::json::array();
  for (const auto& [kind, k] : kinds) {
    j["by_kind"].push_back({{"kind", kind},
                            {"class", class_name(k.cls)},
                            {"count", k.count},
                            {"cpl0", k.by_cpl[0]},
                            {"cpl3", k.by_cpl[3]}});
  }
  j["by_function"] = nlohmann::json::array();
  const std::vector<std::pair<std::string, uint64_t>> functions = functions_by_count();
  for (const auto& [name, n] : functions) {
    j["by_function"].push_back(
        {{"function", symbols_.empty() ? nullptr : nlohmann::json(name.empty() ? kNoSymbol : name)},
         {"count", n},
         {"kinds", by_function_.at(name)}});
  }
  return j;
}

}  // namespace vmbt
