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

/// The parts of CPUID that follow MSRs the guest writes.
struct CpuidDynamic {
  bool apic_enabled = true;  ///< IA32_APIC_BASE.EN
  bool xd_disabled = false;  ///< IA32_MISC_ENABLE.XD_DISABLE
  bool operator==(const CpuidDynamic&) const = default;
};

/// The vmbt virtual CPU: a family-6 "GenuineIntel" 686 with an xAPIC, MTRRs and PAT, without PAE,
/// x2APIC or VMX, so that every feature it advertises is one the bt engine and the platform
/// implement (MSRs: vmm/msr_model.h). Both engines present exactly these
/// leaves; any leaf not listed returns the highest basic leaf's values, as Intel CPUs do for
/// out-of-range basic leaves (SDM Vol. 2A CPUID, "INPUT EAX = 0" note).
struct CpuModel {
  static constexpr char kVendor[13] = "GenuineIntel";
  static constexpr char kBrand[49] = "vmbt virtual CPU (IA-32, binary translation)";
  static constexpr uint32_t kFamily = 6, kModel = 15, kStepping = 11;
  /// MAXPHYADDR: 36 bits, what a CPU advertising PAE without CPUID leaf 80000008H has (Intel
  /// SDM Vol. 3A §4.1.4). Paging entries and variable-range MTRRs may name frames up to it; the
  /// local APIC's base stays below 4 GiB (IA32_APIC_BASE bits 32 and up #GP, as on QEMU).
  static constexpr int kMaxPhyAddr = 36;

  /// CPUID.1:EDX feature bits advertised (Intel SDM Vol. 2A Table 3-11).
  static constexpr uint32_t kFeaturesEdx = (1u << 0)      // FPU
                                           | (1u << 3)    // PSE: 4 MiB pages
                                           | (1u << 4)    // TSC
                                           | (1u << 5)    // MSR
                                           | (1u << 6)    // PAE: PAE paging, NX
                                           | (1u << 8)    // CX8
                                           | (1u << 9)    // APIC: on-chip xAPIC
                                           | (1u << 11)   // SEP: SYSENTER/SYSEXIT
                                           | (1u << 12)   // MTRR
                                           | (1u << 13)   // PGE
                                           | (1u << 15)   // CMOV
                                           | (1u << 16)   // PAT
                                           | (1u << 19)   // CLFSH
                                           | (1u << 23)   // MMX
                                           | (1u << 24)   // FXSR
                                           | (1u << 25)   // SSE
                                           | (1u << 26);  // SSE2
  /// CPUID.1:ECX feature bits advertised: only the APIC timer's TSC-deadline mode (no SSE3, no
  /// x2APIC, no hypervisor bit games).
  static constexpr uint32_t kTscDeadlineFeature = 1u << 24;
  static constexpr uint32_t kFeaturesEcx = kTscDeadlineFeature;
  /// CPUID.1:EDX.APIC: cleared while IA32_APIC_BASE.EN is 0 (Intel SDM Vol. 3A §11.4.3).
  static constexpr uint32_t kApicFeature = 1u << 9;
  /// CPUID.80000001H:EDX feature bits: only NX (execute-disable). It makes IA32_EFER exist (SDM
  /// Vol. 4 Table 2-2) with its NXE bit, which turns on the XD bit of PAE paging entries (SDM
  /// Vol. 3A §4.1.3, §4.4.2). Cleared while IA32_MISC_ENABLE.XD_DISABLE (bit 34) is set.
  static constexpr uint32_t kExtFeaturesEdx = 1u << 20;  // NX

  /// All leaves: 0, 1, 2 (no cache descriptors), 0x80000000, 0x80000001 (NX), 0x80000002-4
  /// (brand string).
  static std::vector<CpuidEntry> leaves();
  /// CPUID as the guest sees it for EAX=function, ECX=index, in the MSR state `dynamic`. Leaves
  /// 0x40000000-0x4FFFFFFF (the hypervisor range) read all zeros, as on QEMU without a hypervisor
  /// interface, so a guest probing for one finds none.
  static CpuidEntry query(uint32_t function, uint32_t index, const CpuidDynamic& dynamic = {});
  /// Whether query()'s answer for EAX=`function` depends on ECX (the leaves with sub-leaves in
  /// Intel SDM Vol. 2A, CPUID: 4, 7, 0xB, 0xD, 0xF, 0x10, 0x12, 0x14, 0x17, 0x18 and up). None of
  /// this model's leaves has any: a function above the highest basic leaf answers as that leaf.
  static bool depends_on_index(uint32_t function);
  /// One-line description for `vmbt probe` and --stats.
  static std::string describe();
};

}  // namespace vmbt
