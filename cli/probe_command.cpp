#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "hw/x86/kvm_probe.h"

namespace vmbt {

int probe_command(bool json) {
  KvmProbeResult r = probe_kvm();
  if (json) {
    fmt::print("{}\n", r.to_json().dump(2));
  } else {
    fmt::print("{}", r.to_text());
    fmt::print("bt engine:                 {}\n",
               "available (binary translation; needs no VT-x/AMD-V; 32-bit protected mode, 2-level "
               "paging)");
  }
  return 0;
}

}  // namespace vmbt
