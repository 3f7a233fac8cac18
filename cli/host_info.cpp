#include "cli/host_info.h"

#include <fstream>
#include <sstream>

#include "hw/kvm_system.h"
#include "vmm/error.h"
#include "vmm/machine/irq.h"

namespace vmbt {

HostInfo read_host_info() {
  HostInfo info;
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  bool constant = false, nonstop = false;
  while (std::getline(cpuinfo, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name" && info.cpu_model.empty()) info.cpu_model = value;
    if (key == "flags") {
      std::istringstream words(value);
      std::string w;
      while (words >> w) {
        constant |= w == "constant_tsc";
        nonstop |= w == "nonstop_tsc";
      }
      break;  // the first CPU is enough
    }
  }
  if (info.cpu_model.empty()) info.cpu_model = "unknown CPU";
  info.invariant_tsc = constant && nonstop;
  info.tsc_hz = host_tsc_hz();

  try {
    KvmSystem kvm;
    info.kvm_available = true;
    KvmHostFacts f = KvmHostFacts::read();
    if (f.vmx) {
      info.kvm_kind = "hardware-assisted (VT-x)";
    } else if (f.svm) {
      info.kvm_kind = "hardware-assisted (AMD-V)";
    } else if (f.pvm) {
      info.kvm_kind = "kvm-pvm: no VT-x/AMD-V, the host kernel emulates every guest instruction";
    } else {
      info.kvm_kind = "unknown kind (no vmx/svm flag, no kvm_pvm module)";
    }
  } catch (const Error& e) {
    info.kvm_kind = std::string("unavailable: ") + e.what();
  }
  return info;
}

}  // namespace vmbt
