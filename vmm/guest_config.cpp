#include "vmm/guest_config.h"

#include <fmt/format.h>

#include "vmm/error.h"

namespace vmbt {

const char* engine_name(EngineKind kind) {
  switch (kind) {
    case EngineKind::kBt:
      return "bt";
    case EngineKind::kKvm:
      return "kvm";
    case EngineKind::kAuto:
      return "auto";
  }
  return "bt";
}

EngineKind parse_engine_kind(const std::string& name) {
  if (name == "bt") return EngineKind::kBt;
  if (name == "kvm") return EngineKind::kKvm;
  if (name == "auto") return EngineKind::kAuto;
  throw Error(fmt::format("unknown engine '{}': choose auto, bt or kvm", name));
}

}  // namespace vmbt
