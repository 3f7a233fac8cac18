#include "cli/compare_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <set>
#include <vector>

#include "cli/text_table.h"

namespace vmbt {

namespace {

constexpr const char* kNotApplicable = "—";

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string cur;
  for (char c : text) {
    if (c == '\r') continue;
    if (c == '\n') {
      lines.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) lines.push_back(cur);
  return lines;
}

/// One line of the report: a counter (or fact) for each engine; nullopt = not applicable.
struct ReportRow {
  std::string section;
  std::string metric;
  std::optional<nlohmann::json> bt;
  std::optional<nlohmann::json> kvm;
  std::optional<nlohmann::json> live;  ///< with --live
};

/// The runs of a comparison, bt and kvm, then the live one when there is one.
std::vector<const EngineOutcome*> sides(const Comparison& c) {
  std::vector<const EngineOutcome*> out = {&c.bt, &c.kvm};
  if (c.live) out.push_back(&*c.live);
  return out;
}

std::string cell(const std::optional<nlohmann::json>& v) {
  if (!v) return kNotApplicable;
  if (v->is_string()) return v->get<std::string>();
  if (v->is_number_float()) {
    double s = v->get<double>();  // the only float rows are times in seconds
    return s >= 1 ? fmt::format("{:.2f} s", s) : fmt::format("{:.1f} ms", s * 1e3);
  }
  return v->dump();
}

/// Counter names under `prefix` in either engine's stats, without the prefix.
std::set<std::string> keys_with_prefix(const Comparison& c, const std::string& prefix) {
  std::set<std::string> keys;
  for (const EngineOutcome* e : sides(c)) {
    if (!e->ran) continue;
    for (const auto& [name, n] : e->run.stats.counters()) {
      if (name.rfind(prefix, 0) == 0) keys.insert(name.substr(prefix.size()));
    }
  }
  return keys;
}

std::vector<ReportRow> build_rows(const Comparison& c) {
  std::vector<ReportRow> rows;
  // A counter every engine reports: 0 when absent. `only` restricts it to one engine's stats
  // (and the live run's, which has both).
  auto counter = [&](const EngineOutcome& e, const std::string& name,
                     const char* only) -> std::optional<nlohmann::json> {
    if (!e.ran || (only && e.engine != only && e.engine != "live")) return std::nullopt;
    return nlohmann::json(e.run.stats.get(name));
  };
  auto fact = [&](const std::string& section, const std::string& metric, auto&& f) {
    ReportRow r{section, metric, f(c.bt), f(c.kvm), std::nullopt};
    if (c.live) r.live = f(*c.live);
    rows.push_back(std::move(r));
  };
  auto counter_row = [&](const std::string& section, const std::string& metric,
                         const std::string& name, const char* only) {
    ReportRow r{section, metric, counter(c.bt, name, only), counter(c.kvm, name, only),
                std::nullopt};
    if (c.live) r.live = counter(*c.live, name, only);
    rows.push_back(std::move(r));
  };
  auto counters = [&](const std::string& section, const std::string& prefix, const char* only) {
    for (const std::string& key : keys_with_prefix(c, prefix)) {
      counter_row(section, key, prefix + key, only);
    }
  };

  const std::string run = "run";
  fact(run, "ran", [](const EngineOutcome& e) -> std::optional<nlohmann::json> {
    if (!e.ran) return nlohmann::json("no: " + e.unavailable);
    if (!e.completed()) return nlohmann::json("no: stopped early (see the exit reason)");
    return nlohmann::json("to the end");
  });
  fact(run, "wall time", [](const EngineOutcome& e) -> std::optional<nlohmann::json> {
    if (!e.ran) return std::nullopt;
    return nlohmann::json(e.run.result.seconds);
  });
  fact(run, "exit status", [](const EngineOutcome& e) -> std::optional<nlohmann::json> {
    if (!e.ran) return std::nullopt;
    return nlohmann::json(e.run.result.status);
  });
  fact(run, "exit reason", [](const EngineOutcome& e) -> std::optional<nlohmann::json> {
    if (!e.ran) return std::nullopt;
    return nlohmann::json(e.run.result.reason);
  });
  fact(run, "serial output (bytes)", [](const EngineOutcome& e) -> std::optional<nlohmann::json> {
    if (!e.ran) return std::nullopt;
    return nlohmann::json(e.run.serial.size());
  });
  if (c.bt.ran && c.kvm.ran) {
    SerialDiff d = diff_serial(c.bt.run.serial, c.kvm.run.serial);
    if (d.identical) {
      rows.push_back({run, "serial output", nlohmann::json("identical"),
                      nlohmann::json("identical"), std::nullopt});
    } else {
      rows.push_back({run, fmt::format("serial differs at line {}", d.line),
                      nlohmann::json(d.a_line), nlohmann::json(d.b_line), std::nullopt});
    }
  }
  if (c.live && c.live->ran && c.bt.ran) {
    SerialDiff d = diff_serial(c.bt.run.serial, c.live->run.serial);
    rows.push_back(
        {run, "live serial output vs bt", std::nullopt, std::nullopt,
         nlohmann::json(d.identical ? std::string("identical")
                                    : fmt::format("differs at line {}: {}", d.line, d.b_line))});
  }
  if (c.live) {
    for (const char* k : {"switches", "refused", "fallbacks"}) {
      counter_row("switches (live)", k, std::string("switch.") + k, "live");
    }
    for (const char* e : {"bt", "kvm"}) {
      ReportRow r{"switches (live)", fmt::format("time on {}", e), std::nullopt, std::nullopt,
                  std::nullopt};
      if (c.live->ran) {
        r.live =
            nlohmann::json(c.live->run.stats.values().count(fmt::format("switch.seconds.{}", e))
                               ? c.live->run.stats.values().at(fmt::format("switch.seconds.{}", e))
                               : 0.0);
      }
      rows.push_back(std::move(r));
      counter_row("switches (live)", fmt::format("exits on {}", e),
                  fmt::format("switch.exits.{}", e), "live");
    }
  }
  counters("exits by reason", "exits.", nullptr);
  counters("I/O exits by port", "io_ports.", nullptr);
  counters("callouts by instruction (bt)", "bt.callouts.", "bt");
  counter_row("page faults (bt shadow MMU)", "delivered to the guest", "guest_page_faults", "bt");
  for (const char* k : {"hidden_faults", "true_faults", "tracing_faults", "dirty_faults",
                        "code_write_faults", "flushes", "space_switches"}) {
    counter_row("page faults (bt shadow MMU)", k, std::string("bt.shadow.") + k, "bt");
  }
  for (const char* k :
       {"blocks_translated", "translation_cache_bytes", "chains_made", "dispatches"}) {
    counter_row("translation (bt)", k, std::string("bt.") + k, "bt");
  }
  counters("KVM exit reasons", "kvm.exit_reasons.", "kvm");
  return rows;
}

}  // namespace

bool EngineOutcome::completed() const {
  return ran && why_not_completed().empty();
}

std::string EngineOutcome::why_not_completed() const {
  if (!ran) return unavailable;
  const RunResult& r = run.result;
  if (run.stats.get("exits.internal_error") > 0 || r.status == 124 || r.status >= 128) {
    return r.reason;
  }
  return "";
}

SerialDiff diff_serial(const std::string& a, const std::string& b) {
  SerialDiff d;
  std::vector<std::string> la = split_lines(a), lb = split_lines(b);
  size_t n = std::max(la.size(), lb.size());
  for (size_t i = 0; i < n; ++i) {
    const char* end = "(end of output)";
    std::string x = i < la.size() ? la[i] : end;
    std::string y = i < lb.size() ? lb[i] : end;
    if (x != y) {
      d.identical = false;
      d.line = i + 1;
      d.a_line = x;
      d.b_line = y;
      return d;
    }
  }
  // Same lines; the texts can still differ in carriage returns only, which the diff ignores.
  return d;
}

std::string comparison_table(const Comparison& c) {
  std::string out = fmt::format("vmbt compare: {}{}{}, {} RAM\n", c.kernel,
                                c.append.empty() ? "" : " --append ", c.append, c.memory);
  TextTable t = c.live ? TextTable({"", "bt", "kvm", "live (bt <-> kvm)"}, {30, 32, 32, 32})
                       : TextTable({"", "bt", "kvm"}, {32, 44, 44});
  std::string section;
  for (const ReportRow& r : build_rows(c)) {
    if (r.section != section) {
      section = r.section;
      t.add_section(section);
    }
    if (c.live) {
      t.add_row({"  " + r.metric, cell(r.bt), cell(r.kvm), cell(r.live)});
    } else {
      t.add_row({"  " + r.metric, cell(r.bt), cell(r.kvm)});
    }
  }
  out += t.render();
  return out;
}

nlohmann::json comparison_json(const Comparison& c) {
  nlohmann::json j;
  j["kernel"] = c.kernel;
  j["append"] = c.append;
  j["memory"] = c.memory;
  if (c.bt.ran && c.kvm.ran) {
    SerialDiff d = diff_serial(c.bt.run.serial, c.kvm.run.serial);
    j["serial"]["identical"] = d.identical;
    j["serial"]["first_difference"] =
        d.identical ? nlohmann::json(nullptr)
                    : nlohmann::json{{"line", d.line}, {"bt", d.a_line}, {"kvm", d.b_line}};
  } else {
    j["serial"]["identical"] = nullptr;  // unknown: one engine did not run
    j["serial"]["first_difference"] = nullptr;
  }
  if (c.live && c.live->ran && c.bt.ran) {
    j["serial"]["live_identical_to_bt"] =
        diff_serial(c.bt.run.serial, c.live->run.serial).identical;
  }
  for (const EngineOutcome* e : sides(c)) {
    nlohmann::json& ej = j["engines"][e->engine];
    ej["ran"] = e->ran;
    ej["completed"] = e->completed();
    if (!e->ran) {
      ej["unavailable"] = e->unavailable;
      continue;
    }
    if (!e->completed()) ej["why_not_completed"] = e->why_not_completed();
    ej["wall_seconds"] = e->run.result.seconds;
    ej["exit_status"] = e->run.result.status;
    ej["exit_reason"] = e->run.result.reason;
    ej["serial"] = e->run.serial;
    ej["stats"] = e->run.stats.to_json();
  }
  nlohmann::json rows = nlohmann::json::array();
  for (const ReportRow& r : build_rows(c)) {
    nlohmann::json row = {{"section", r.section},
                          {"metric", r.metric},
                          {"bt", r.bt ? *r.bt : nlohmann::json(nullptr)},
                          {"kvm", r.kvm ? *r.kvm : nlohmann::json(nullptr)}};
    if (c.live) row["live"] = r.live ? *r.live : nlohmann::json(nullptr);
    rows.push_back(std::move(row));
  }
  j["rows"] = rows;
  return j;
}

}  // namespace vmbt
