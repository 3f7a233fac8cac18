// Counters both engines and the run loop report, printed by --stats and written by --stats-json.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace vmbt {

/// Named counters grouped by a dotted prefix ("exits.io", "io_ports.0x3f8", "bt.callouts.cli").
/// Names shared by both engines (exits.*, io_ports.*, guest_page_faults) mean the same thing for
/// each; engine-specific ones live under "bt." or "kvm.".
class Stats {
 public:
  void add(const std::string& name, uint64_t n = 1) { counters_[name] += n; }
  void set(const std::string& name, uint64_t v) { counters_[name] = v; }
  void set_value(const std::string& name, double v) { values_[name] = v; }
  void set_text(const std::string& name, std::string v) { texts_[name] = std::move(v); }
  uint64_t get(const std::string& name) const {
    auto it = counters_.find(name);
    return it == counters_.end() ? 0 : it->second;
  }
  const std::map<std::string, uint64_t>& counters() const { return counters_; }
  const std::map<std::string, double>& values() const { return values_; }
  const std::map<std::string, std::string>& texts() const { return texts_; }

  /// Human-readable table, one counter a line, grouped by prefix.
  std::string to_text() const;
  /// {"engine": ..., "counters": {...}, "values": {...}} as nested objects split on '.'.
  nlohmann::json to_json() const;

 private:
  std::map<std::string, uint64_t> counters_;
  std::map<std::string, double> values_;
  std::map<std::string, std::string> texts_;
};

}  // namespace vmbt
