// `vmbt probe`: what this host's KVM can do for 32-bit x86 guests.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

namespace vmbt {

/// The result of probing /dev/kvm. Each field is measured, not assumed: the paging check runs a
/// tiny guest that turns on 32-bit paging and reports whether it got past MOV CR0.
struct KvmProbeResult {
  bool available = false;   ///< /dev/kvm opened and speaks API 12
  std::string unavailable;  ///< why not, when !available
  int api_version = 0;
  bool vmx = false, svm = false, pvm = false;
  std::string ept, npt;  ///< kvm_intel ept / kvm_amd npt module parameters, empty if absent
  bool unpaged_guest_runs = false;  ///< a protected-mode guest wrote to a port and halted
  bool paged_guest_runs = false;    ///< the same with CR0.PG=1 (4 KiB identity map)
  bool cpuid_model_set = false;     ///< KVM_SET_CPUID2 accepted the vmbt CPU model
  std::string paged_detail;         ///< what happened to the paged guest

  std::string to_text() const;
  nlohmann::json to_json() const;
};

/// Probes the host; never throws (failures are reported in the result).
KvmProbeResult probe_kvm();

}  // namespace vmbt
