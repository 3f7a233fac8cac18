// Facts about the host that benchmark results depend on: CPU model, TSC rate, kind of KVM.
#pragma once

#include <string>

namespace vmbt {

struct HostInfo {
  std::string cpu_model;       ///< "model name" of /proc/cpuinfo
  double tsc_hz = 0;           ///< measured rate of the host TSC (both engines' guests read it)
  bool invariant_tsc = false;  ///< constant_tsc and nonstop_tsc flags
  bool kvm_available = false;
  /// "hardware-assisted (VT-x)", "hardware-assisted (AMD-V)", "kvm-pvm (...)" or why unavailable.
  std::string kvm_kind;
};

/// Reads /proc/cpuinfo and /dev/kvm and measures the TSC rate against CLOCK_MONOTONIC (~50 ms).
HostInfo read_host_info();

}  // namespace vmbt
