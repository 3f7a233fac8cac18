// The model-specific registers of the vmbt CPU that belong to the platform, not an engine.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "vmm/cpu_model.h"

namespace vmbt {

class LocalApic;

/// The MSRs of the vmbt CPU model (vmm/cpu_model.h) that no engine keeps in VcpuState, with the
/// behaviour Intel SDM Vol. 4 gives them. The whole model, engine-kept MSRs included:
///
/// | MSR | index | kept by | behaviour |
/// |---|---|---|---|
/// | IA32_TIME_STAMP_COUNTER | 0x10 | engine | read/write the guest TSC |
/// | IA32_PLATFORM_ID | 0x17 | here | reads 0 (platform 0), writes #GP |
/// | IA32_APIC_BASE | 0x1B | here, local APIC | base, BSP, EN; EXTD and reserved bits #GP |
/// | IA32_BIOS_SIGN_ID | 0x8B | here | reads 0 (no microcode update), writes ignored |
/// | IA32_MTRRCAP | 0xFE | here | 0x508: 8 variable ranges, fixed ranges, WC; writes #GP |
/// | IA32_SYSENTER_CS/ESP/EIP | 0x174-0x176 | engine | read/write (low 32 bits kept) |
/// | IA32_MISC_ENABLE | 0x1A0 | here | kMiscEnableWritable read back; other bits fixed, #GP if
/// changed | | IA32_MTRR_PHYSBASE/PHYSMASKn | 0x200-0x20F | here | type/base, valid/mask; reserved
/// bits #GP | | IA32_MTRR_FIX64K/16K/4K_* | 0x250, 0x258-0x259, 0x268-0x26F | here | 8 types a
/// register | | IA32_PAT | 0x277 | here | 8 PAT types (0, 1, 4, 5, 6, 7); reset 0x0007040600070406
/// | | IA32_MTRR_DEF_TYPE | 0x2FF | here | type, FE (bit 10), E (bit 11) | | IA32_MCG_CAP | 0x179 |
/// here | reads 0 (no machine-check banks), writes #GP | | IA32_TSC_DEADLINE | 0x6E0 | here, local
/// APIC | the APIC timer's TSC deadline | | IA32_EFER | 0xC0000080 | here | SCE (bit 0) and NXE
/// (bit 11) read back; LME, reserved #GP |
///
/// Every other MSR raises #GP(0), as on hardware for an MSR the CPU does not implement (SDM Vol. 4
/// §2.1); so do MSRs whose CPUID feature the model does not advertise (IA32_TSC_ADJUST and
/// IA32_FEATURE_CONTROL: no leaf 7, VMX or SMX; IA32_SPEC_CTRL/PRED_CMD/FLUSH_CMD; the x2APIC
/// range 0x800-0x8FF: no x2APIC; the 64-bit mode MSRs: no LM; machine-check banks 0x400 on:
/// IA32_MCG_CAP says there are none). IA32_EFER exists because CPUID advertises NX (Table 2-2);
/// NXE set while IA32_MISC_ENABLE.XD_DISABLE is set raises #GP. A guest-visible MTRR or PAT type
/// has no effect on how guest memory is accessed (the host decides caching), as in QEMU TCG.
///
/// MTRRs start as a PC BIOS leaves them (SeaBIOS's mtrr_setup): enabled with fixed ranges, default
/// type write-back, 0xA0000-0xBFFFF uncacheable, variable range 0 making 0xC0000000-0xFFFFFFFF
/// (the MMIO hole above the largest RAM size) uncacheable.
class MsrModel {
 public:
  /// `apic`: the local APIC whose IA32_APIC_BASE and IA32_TSC_DEADLINE these are.
  explicit MsrModel(LocalApic& apic);

  /// IA32_APIC_BASE.EN and the APIC page's base.
  bool apic_enabled() const;
  uint32_t apic_base() const;
  /// The CPUID bits that follow these MSRs (CPUID.1:EDX.APIC, CPUID.80000001H:EDX.NX).
  CpuidDynamic cpuid_dynamic() const;

  /// RDMSR of `index` with the guest TSC `guest_tsc`: the value, or nullopt for #GP(0).
  std::optional<uint64_t> read(uint32_t index, uint64_t guest_tsc) const;
  /// WRMSR: false for #GP(0) (nothing changes then).
  bool write(uint32_t index, uint64_t value, uint64_t guest_tsc);

  static constexpr uint32_t kPlatformId = 0x17, kBiosSignId = 0x8B, kApicBase = 0x1B,
                            kMtrrCap = 0xFE, kMcgCap = 0x179, kMiscEnable = 0x1A0,
                            kMtrrPhysBase0 = 0x200, kMtrrFix64K = 0x250, kMtrrFix16K80000 = 0x258,
                            kMtrrFix16KA0000 = 0x259, kMtrrFix4KC0000 = 0x268, kPat = 0x277,
                            kMtrrDefType = 0x2FF, kTscDeadline = 0x6E0, kEfer = 0xC0000080;
  static constexpr uint64_t kEferSce = 1u << 0, kEferNxe = 1u << 11;
  static constexpr uint64_t kMiscEnableXdDisable = 1ull << 34;
  /// IA32_MTRRCAP: VCNT 8, FIX (bit 8), WC (bit 10); no SMRR.
  static constexpr uint64_t kMtrrCapValue = 0x508;
  /// IA32_MISC_ENABLE as read at reset: fast strings (bit 0), performance monitoring unavailable
  /// (bit 7 clear), branch trace storage and PEBS unavailable (bits 11, 12).
  static constexpr uint64_t kMiscEnableReset = (1u << 0) | (1u << 11) | (1u << 12);
  /// Bits of IA32_MISC_ENABLE a write may change (SDM Vol. 4 Table 2-2, "R/W" on family 6):
  /// fast strings (0), automatic thermal control (3), EIST (16), MONITOR FSM (18), limit CPUID
  /// maxval (22), xTPR message disable (23), XD bit disable (34).
  static constexpr uint64_t kMiscEnableWritable = (1ull << 0) | (1ull << 3) | (1ull << 16) |
                                                  (1ull << 18) | (1ull << 22) | (1ull << 23) |
                                                  (1ull << 34);
  static constexpr uint64_t kPatReset = 0x0007040600070406ull;

 private:
  static constexpr unsigned kVariableRanges = 8, kFixedRanges = 11;
  /// The fixed-range register array index of `index`, or -1.
  static int fixed_slot(uint32_t index);

  LocalApic& apic_;
  uint64_t misc_enable_ = kMiscEnableReset;
  uint64_t pat_ = kPatReset;
  uint64_t def_type_ = 0;
  uint64_t efer_ = 0;
  std::array<uint64_t, kVariableRanges * 2> variable_{};
  std::array<uint64_t, kFixedRanges> fixed_{};
};

}  // namespace vmbt
