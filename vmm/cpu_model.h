// The one IA-32 CPU model both engines present to the guest through CPUID.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vmbt {

/// One CPUID leaf result (Intel SDM Vol. 2A, CPUID).
struct CpuidEntry {
  uint32_t function = 0, index = 0;
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

/// The vmbt virtual CPU: a family-6 "GenuineIntel" 686 without PAE, APIC, MTRR or VMX, so that
/// every feature it advertises is one the bt engine implements. Both engines present exactly these
/// leaves; any leaf not listed returns the highest basic leaf's values, as Intel CPUs do for
/// out-of-range basic leaves (SDM Vol. 2A CPUID, "INPUT EAX = 0" note).
struct CpuModel {
  static constexpr char kVendor[13] = "GenuineIntel";
  static constexpr char kBrand[49] = "vmbt virtual CPU (IA-32, binary translation)";
  static constexpr uint32_t kFamily = 6, kModel = 15, kStepping = 11;

  /// CPUID.1:EDX feature bits advertised (Intel SDM Vol. 2A Table 3-11).
  static constexpr uint32_t kFeaturesEdx = (1u << 0)      // FPU
                                           | (1u << 3)    // PSE: 4 MiB pages
                                           | (1u << 4)    // TSC
                                           | (1u << 5)    // MSR
                                           | (1u << 8)    // CX8
                                           | (1u << 11)   // SEP: SYSENTER/SYSEXIT
                                           | (1u << 13)   // PGE
                                           | (1u << 15)   // CMOV
                                           | (1u << 19)   // CLFSH
                                           | (1u << 23)   // MMX
                                           | (1u << 24)   // FXSR
                                           | (1u << 25)   // SSE
                                           | (1u << 26);  // SSE2
  /// CPUID.1:ECX feature bits advertised (none: no SSE3, no hypervisor bit games).
  static constexpr uint32_t kFeaturesEcx = 0;

  /// All leaves: 0, 1, 2 (no cache descriptors), 0x80000000-0x80000004 (brand string).
  static std::vector<CpuidEntry> leaves();
  /// CPUID as the guest sees it for EAX=function, ECX=index.
  static CpuidEntry query(uint32_t function, uint32_t index);
  /// One-line description for `vmbt probe` and --stats.
  static std::string describe();
};

}  // namespace vmbt
