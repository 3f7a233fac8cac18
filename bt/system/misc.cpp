// CPUID, RDTSC, RDPMC, RDMSR, WRMSR, HLT (Intel SDM Vol. 2A CPUID, HLT; Vol. 2B RDTSC, RDPMC,
// RDMSR, WRMSR; Vol. 4 for the MSRs).
#include "bt/system/internal.h"
#include "bt/system/system_emulator.h"
#include "vmm/cpu_model.h"

namespace vmbt::bt {

using sys::Insn;

namespace {
// The MSRs the engine keeps itself (the rest are the platform's: vmm/msr_model.h has the table).
constexpr uint32_t kMsrTsc = 0x10, kMsrSysenterCs = 0x174, kMsrSysenterEsp = 0x175,
                   kMsrSysenterEip = 0x176;
/// IA32_EFER: kept by the platform (vmm/msr_model.h); the engine keeps a copy in VcpuState.
constexpr uint32_t kMsrEfer = 0xC0000080;
}  // namespace

// CPUID: the leaves of the vmbt CPU model, as the platform presents them.
StepResult SystemEmulator::cpuid(VcpuState& s, const Insn& in) {
  const CpuidEntry e = hooks_.cpuid(s.gpr[kEax], s.gpr[kEcx]);
  s.gpr[kEax] = e.eax;
  s.gpr[kEbx] = e.ebx;
  s.gpr[kEcx] = e.ecx;
  s.gpr[kEdx] = e.edx;
  s.eip = in.next_eip;
  return {};
}

// RDTSC: #GP(0) when CR4.TSD=1 and CPL>0; EDX:EAX = guest TSC.
StepResult SystemEmulator::rdtsc(VcpuState& s, const Insn& in) {
  if ((s.cr4 & cr4::kTsd) && sys::cpl(s) != 0) sys::gp(0);
  const uint64_t tsc = hooks_.read_tsc();
  s.gpr[kEax] = static_cast<uint32_t>(tsc);
  s.gpr[kEdx] = static_cast<uint32_t>(tsc >> 32);
  s.eip = in.next_eip;
  return {};
}

// RDPMC: #GP(0) when CR4.PCE=0 and CPL>0; the model has no performance counters, so every ECX is
// an invalid counter: #GP(0).
StepResult SystemEmulator::rdpmc(VcpuState& /*s*/, const Insn& /*in*/) {
  sys::gp(0);
}

// RDMSR: CPL0; IA32_TIME_STAMP_COUNTER and IA32_SYSENTER_CS/ESP/EIP (the engine's); the platform's
// MSRs (vmm/msr_model.h); any other MSR -> #GP(0).
StepResult SystemEmulator::rdmsr(VcpuState& s, const Insn& in) {
  if (sys::cpl(s) != 0) sys::gp(0);
  uint64_t v;
  switch (s.gpr[kEcx]) {
    case kMsrTsc:
      v = hooks_.read_tsc();
      break;
    case kMsrSysenterCs:
      v = s.sysenter_cs;
      break;
    case kMsrSysenterEsp:
      v = s.sysenter_esp;
      break;
    case kMsrSysenterEip:
      v = s.sysenter_eip;
      break;
    default: {
      const std::optional<uint64_t> platform = hooks_.read_platform_msr(s.gpr[kEcx]);
      if (!platform) sys::gp(0);
      v = *platform;
      break;
    }
  }
  s.gpr[kEax] = static_cast<uint32_t>(v);
  s.gpr[kEdx] = static_cast<uint32_t>(v >> 32);
  s.eip = in.next_eip;
  return {};
}

// WRMSR: CPL0; the same MSRs (SYSENTER MSRs keep the low 32 bits); the platform's, which may refuse
// a value with #GP(0); others -> #GP(0).
StepResult SystemEmulator::wrmsr(VcpuState& s, const Insn& in) {
  if (sys::cpl(s) != 0) sys::gp(0);
  const uint64_t v = (uint64_t{s.gpr[kEdx]} << 32) | s.gpr[kEax];
  switch (s.gpr[kEcx]) {
    case kMsrTsc:
      s.tsc = v;
      hooks_.write_tsc(v);
      break;
    case kMsrSysenterCs:
      s.sysenter_cs = s.gpr[kEax];
      break;
    case kMsrSysenterEsp:
      s.sysenter_esp = s.gpr[kEax];
      break;
    case kMsrSysenterEip:
      s.sysenter_eip = s.gpr[kEax];
      break;
    default:
      if (!hooks_.write_platform_msr(s.gpr[kEcx], v)) sys::gp(0);
      if (s.gpr[kEcx] == kMsrEfer) {
        // IA32_EFER.NXE turns the XD bit of PAE entries on (Intel SDM Vol. 3A §4.1.3, §4.4.2):
        // the engine's MMU follows the value the platform accepted.
        const uint64_t was = s.efer;
        s.efer = v;
        if ((was ^ v) & efer::kNxe) hooks_.on_paging_changed(s);
      }
      break;
  }
  s.eip = in.next_eip;
  return {};
}

// HLT: CPL0 only (#GP(0)); the engine halts with EIP past the instruction.
StepResult SystemEmulator::hlt(VcpuState& s, const Insn& in) {
  if (sys::cpl(s) != 0) sys::gp(0);
  s.eip = in.next_eip;
  return {StepKind::kHalt, {}, {}};
}

}  // namespace vmbt::bt
