// The observer behind `vmbt trace`: logs callouts and counts them by kind and by guest function.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/sensitive_kinds.h"
#include "cli/symbol_table.h"
#include "cli/x86_disassembler.h"

namespace vmbt {

namespace bt {
struct CalloutEvent;
}

/// One callout as the recorder needs it (bt::CalloutEvent without the engine's header).
struct TracedInstruction {
  uint32_t eip = 0;     ///< offset in CS
  uint32_t linear = 0;  ///< CS.base + EIP: what symbols are looked up with
  unsigned cpl = 0;
  const uint8_t* bytes = nullptr;
  unsigned length = 0;  ///< bytes available (at least the instruction's length)
};

/// The recorder's view of a bt callout.
TracedInstruction traced_instruction(const bt::CalloutEvent& event);

class TraceRecorder {
 public:
  /// `log` receives one line per logged callout (nullptr: none); every `every`th callout is
  /// logged, starting with the first. `symbols` may be empty.
  TraceRecorder(SymbolTable symbols, FILE* log, uint64_t every);

  void record(const TracedInstruction& insn);

  uint64_t total() const { return total_; }
  /// Count of one kind ("cli", "mov to cr3"), 0 if never seen.
  uint64_t count(const std::string& kind) const;
  /// Count of one kind in one function ("" = outside every symbol).
  uint64_t count_in(const std::string& function, const std::string& kind) const;

  /// Tables by kind (with the counts at CPL 0 and CPL 3) and by function, each sorted by count
  /// (largest first); the function table stops after `max_functions` rows (0: all).
  std::string summary_text(size_t max_functions = 0) const;
  /// {"callouts", "symbols", "by_kind": [{kind, class, count, cpl0, cpl3}],
  ///  "by_function": [{function, count, kinds: {kind: n}}]}
  nlohmann::json summary_json() const;

 private:
  /// (function, callouts in it), most callouts first ("" for callouts outside any symbol).
  std::vector<std::pair<std::string, uint64_t>> functions_by_count() const;
  struct KindCount {
    SensitiveClass cls;
    uint64_t count = 0;
    uint64_t by_cpl[4] = {};
  };
  SymbolTable symbols_;
  X86Disassembler disassembler_;
  FILE* log_;
  uint64_t every_;
  uint64_t total_ = 0;
  std::map<std::string, KindCount> by_kind_;
  std::map<std::string, std::map<std::string, uint64_t>> by_function_;  ///< function -> kind -> n
};

}  // namespace vmbt
