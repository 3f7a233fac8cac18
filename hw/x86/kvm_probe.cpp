#include "hw/x86/kvm_probe.h"

#include <fmt/format.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "hw/kvm_system.h"
#include "hw/x86/kvm_engine.h"
#include "vmm/boot/boot_state.h"
#include "vmm/cpu_model.h"
#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/irq.h"

namespace vmbt {

namespace {

/// Runs `code` at 0x1000 in flat protected mode (page tables prepared by the caller) for a few
/// exits; returns the first byte written to port 0x3f8, or -1, and describes the end in `detail`.
int run_probe_guest(GuestMemory& mem, const uint8_t* code, size_t len, std::string& detail,
                    bool* cpuid_set = nullptr) {
  NoInterrupts none;
  mem.write(0x1000, code, len);
  KvmEngine engine(mem, none);
  if (cpuid_set) *cpuid_set = engine.cpuid_model_set();
  VcpuState s = flat_protected_mode_state(0x1000);
  s.gpr[kEsp] = 0x8000;
  engine.set_state(s);
  int written = -1;
  for (int i = 0; i < 16; ++i) {
    Exit e = engine.run();
    if (e.reason == ExitReason::kIo && e.io.write && e.io.port == 0x3f8) {
      written = e.io.data[0];
      continue;
    }
    if (e.reason == ExitReason::kKicked) continue;
    detail = e.reason == ExitReason::kHalt ? "halted normally" : e.message;
    break;
  }
  return written;
}

}  // namespace

KvmProbeResult probe_kvm() {
  KvmProbeResult r;
  KvmHostFacts facts = KvmHostFacts::read();
  r.vmx = facts.vmx;
  r.svm = facts.svm;
  r.pvm = facts.pvm;
  r.ept = facts.ept;
  r.npt = facts.npt;
  try {
    KvmSystem kvm;
    r.available = true;
    r.api_version = kvm.api_version();
  } catch (const Error& e) {
    r.unavailable = e.what();
    return r;
  }
  try {
    GuestMemory mem(GuestMemory::kMinBytes);
    // mov al,'U'; mov dx,0x3f8; out dx,al; hlt
    const uint8_t unpaged[] = {0xb0, 'U', 0x66, 0xba, 0xf8, 0x03, 0xee, 0xf4};
    std::string detail;
    r.unpaged_guest_runs =
        run_probe_guest(mem, unpaged, sizeof unpaged, detail, &r.cpuid_model_set) == 'U';
  } catch (const Error& e) {
    r.paged_detail = fmt::format("unpaged guest failed: {}", e.what());
    return r;
  }
  try {
    GuestMemory mem(GuestMemory::kMinBytes);
    // Page directory at 0x2000 -> page table at 0x3000 identity-mapping the first 2 MiB.
    mem.write32(0x2000, 0x3000 | 3);
    for (uint32_t i = 0; i < 512; ++i) mem.write32(0x3000 + 4 * i, (i << 12) | 3);
    // mov eax,0x2000; mov cr3,eax; mov eax,cr0; or eax,0x80000000; mov cr0,eax; jmp $+2;
    // mov al,'P'; mov dx,0x3f8; out dx,al; hlt
    const uint8_t paged[] = {0xb8, 0x00, 0x20, 0x00, 0x00, 0x0f, 0x22, 0xd8, 0x0f, 0x20,
                             0xc0, 0x0d, 0x00, 0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0, 0xeb,
                             0x00, 0xb0, 'P',  0x66, 0xba, 0xf8, 0x03, 0xee, 0xf4};
    r.paged_guest_runs = run_probe_guest(mem, paged, sizeof paged, r.paged_detail) == 'P';
  } catch (const Error& e) {
    r.paged_detail = e.what();
  }
  return r;
}

std::string KvmProbeResult::to_text() const {
  auto yn = [](bool b) { return b ? "yes" : "no"; };
  std::string out;
  out += fmt::format("/dev/kvm:                  {}\n",
                     available ? fmt::format("yes (API version {})", api_version)
                               : fmt::format("no: {}", unavailable));
  out += fmt::format("VT-x (vmx):                {}\n", yn(vmx));
  out += fmt::format("AMD-V (svm):               {}\n", yn(svm));
  out += fmt::format("EPT (kvm_intel):           {}\n", ept.empty() ? "n/a" : ept);
  out += fmt::format("NPT (kvm_amd):             {}\n", npt.empty() ? "n/a" : npt);
  out += fmt::format("kvm-pvm (software KVM):    {}\n", yn(pvm));
  if (available) {
    out += fmt::format("unpaged 32-bit guest runs: {}\n", yn(unpaged_guest_runs));
    out += fmt::format("vmbt CPU model accepted:   {}\n",
                       cpuid_model_set ? "yes"
                                       : "no (KVM_SET_CPUID2 refused: guests see the host's "
                                         "CPUID under --engine kvm)");
    out += fmt::format("paged 32-bit guest runs:   {}{}\n", yn(paged_guest_runs),
                       paged_guest_runs ? "" : fmt::format(" ({})", paged_detail));
  }
  out += fmt::format("vmbt CPU model:            {}\n", CpuModel::describe());
  return out;
}

nlohmann::json KvmProbeResult::to_json() const {
  return {{"kvm_available", available},
          {"kvm_unavailable_reason", unavailable},
          {"api_version", api_version},
          {"vmx", vmx},
          {"svm", svm},
          {"ept", ept},
          {"npt", npt},
          {"kvm_pvm", pvm},
          {"unpaged_guest_runs", unpaged_guest_runs},
          {"paged_guest_runs", paged_guest_runs},
          {"cpuid_model_accepted", cpuid_model_set},
          {"paged_detail", paged_detail},
          {"cpu_model", CpuModel::describe()}};
}

}  // namespace vmbt
