#include "vmm/guest_config.h"

#include <fmt/format.h>

#include "vmm/error.h"

namespace vmbt {

const char* engine_name(EngineKind kind) {
  return kind == EngineKind::kKvm ? "kvm" : "bt";
}

EngineKind parse_engine_kind(const std::string& name) {
  if (name == "bt") return EngineKind::kBt;
  if (name == "kvm") return EngineKind::kKvm;
  throw Error(fmt::format("unknown engine '{}': choose bt or kvm", name));
}

}  // namespace vmbt
