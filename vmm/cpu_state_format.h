// Human-readable dumps of the vCPU state, for fatal exits and debugging.
#pragma once

#include <string>

#include "vmm/cpu_state.h"

namespace vmbt {

/// Multi-line register dump in the style of QEMU's "info registers": GPRs, EIP, EFLAGS (with
/// the flag letters), segment registers with their hidden parts, descriptor tables, CR0-CR4.
std::string format_vcpu_state(const VcpuState& s);

}  // namespace vmbt
