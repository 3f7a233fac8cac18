#include "vmm/stats.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace vmbt {

std::string Stats::to_text() const {
  std::string out;
  for (const auto& [k, v] : texts_) out += fmt::format("  {:<40} {}\n", k, v);
  for (const auto& [k, v] : values_) out += fmt::format("  {:<40} {:.6g}\n", k, v);
  for (const auto& [k, v] : counters_) out += fmt::format("  {:<40} {}\n", k, v);
  return out;
}

nlohmann::json Stats::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  auto place = [&](const std::string& name, nlohmann::json value) {
    nlohmann::json* node = &j;
    size_t start = 0;
    for (size_t dot; (dot = name.find('.', start)) != std::string::npos; start = dot + 1) {
      node = &(*node)[name.substr(start, dot - start)];
    }
    (*node)[name.substr(start)] = std::move(value);
  };
  for (const auto& [k, v] : texts_) place(k, v);
  for (const auto& [k, v] : values_) place(k, v);
  for (const auto& [k, v] : counters_) place(k, v);
  return j;
}

}  // namespace vmbt
