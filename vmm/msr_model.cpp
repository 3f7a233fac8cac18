#include "vmm/msr_model.h"

#include "vmm/cpu_model.h"

#include "vmm/devices/local_apic.h"

namespace vmbt {

namespace {
// Memory types (Intel SDM Vol. 3A §12.3, Table 12-8; §13.12.3 for PAT's UC-).
constexpr uint8_t kUc = 0, kWc = 1, kWt = 4, kWp = 5, kWb = 6, kUcMinus = 7;
bool valid_mtrr_type(uint64_t t) {
  return t == kUc || t == kWc || t == kWt || t == kWp || t == kWb;
}
/// Each byte of a fixed-range MTRR (or PAT entry, with UC- allowed) is a valid type.
bool valid_types(uint64_t v, bool pat) {
  for (unsigned i = 0; i < 8; ++i) {
    const uint64_t t = (v >> (8 * i)) & 0xFF;
    if (!valid_mtrr_type(t) && !(pat && t == kUcMinus)) return false;
  }
  return true;
}
constexpr uint64_t bytes_of(uint8_t t) {
  return 0x0101010101010101ull * t;
}
// MAXPHYADDR (CpuModel::kMaxPhyAddr, 36: PAE without CPUID.80000008H, Intel SDM Vol. 3A
// §4.1.4): physical-address bits from there to 63 of a variable-range MTRR are reserved.
constexpr uint64_t kPhysPageBits = ((uint64_t{1} << CpuModel::kMaxPhyAddr) - 1) & ~0xFFFull;
constexpr uint64_t kPhysBaseWritable = kPhysPageBits | 0xFF;
constexpr uint64_t kPhysMaskWritable = kPhysPageBits | (1u << 11);
constexpr uint64_t kDefTypeWritable = 0xFF | (1u << 10) | (1u << 11);
}  // namespace

MsrModel::MsrModel(LocalApic& apic) : apic_(apic) {
  def_type_ = (1u << 11) | (1u << 10) | kWb;
  fixed_.fill(bytes_of(kWb));
  fixed_[2] = bytes_of(kUc);  // FIX16K_A0000: the legacy VGA window
  variable_[0] = 0xC0000000u | kUc;
  variable_[1] = 0xC0000000u | (1u << 11);
}

bool MsrModel::apic_enabled() const {
  return apic_.hardware_enabled();
}

uint32_t MsrModel::apic_base() const {
  return apic_.base();
}

CpuidDynamic MsrModel::cpuid_dynamic() const {
  return {apic_.hardware_enabled(), (misc_enable_ & kMiscEnableXdDisable) != 0};
}

int MsrModel::fixed_slot(uint32_t index) {
  if (index == kMtrrFix64K) return 0;
  if (index == kMtrrFix16K80000) return 1;
  if (index == kMtrrFix16KA0000) return 2;
  if (index >= kMtrrFix4KC0000 && index < kMtrrFix4KC0000 + 8) {
    return 3 + static_cast<int>(index - kMtrrFix4KC0000);
  }
  return -1;
}

std::optional<uint64_t> MsrModel::read(uint32_t index, uint64_t /*guest_tsc*/) const {
  if (index >= kMtrrPhysBase0 && index < kMtrrPhysBase0 + 2 * kVariableRanges) {
    return variable_[index - kMtrrPhysBase0];
  }
  if (const int slot = fixed_slot(index); slot >= 0) return fixed_[static_cast<size_t>(slot)];
  switch (index) {
    case kPlatformId:  // platform 0
    case kBiosSignId:  // no microcode update loaded
      return 0;
    case kApicBase:
      return apic_.base_msr();
    case kMtrrCap:
      return kMtrrCapValue;
    case kMcgCap:
      return 0;
    case kEfer:
      return efer_;
    case kMiscEnable:
      return misc_enable_;
    case kPat:
      return pat_;
    case kMtrrDefType:
      return def_type_;
    case kTscDeadline:
      return apic_.tsc_deadline();
    default:
      return std::nullopt;
  }
}

bool MsrModel::write(uint32_t index, uint64_t value, uint64_t guest_tsc) {
  if (index >= kMtrrPhysBase0 && index < kMtrrPhysBase0 + 2 * kVariableRanges) {
    const bool is_mask = (index - kMtrrPhysBase0) & 1;
    if (is_mask ? (value & ~kPhysMaskWritable) != 0
                : (value & ~kPhysBaseWritable) != 0 || !valid_mtrr_type(value & 0xFF)) {
      return false;
    }
    variable_[index - kMtrrPhysBase0] = value;
    return true;
  }
  if (const int slot = fixed_slot(index); slot >= 0) {
    if (!valid_types(value, false)) return false;
    fixed_[static_cast<size_t>(slot)] = value;
    return true;
  }
  switch (index) {
    case kBiosSignId:  // a microcode update's trigger: accepted, nothing loads
      return true;
    case kApicBase:
      return apic_.write_base_msr(value);
    case kMiscEnable:
      if ((value ^ misc_enable_) & ~kMiscEnableWritable) return false;
      misc_enable_ = value;
      return true;
    case kEfer:
      if (value & ~(kEferSce | kEferNxe)) return false;  // LME: no 64-bit mode; reserved bits
      if ((value & kEferNxe) && (misc_enable_ & kMiscEnableXdDisable)) return false;
      efer_ = value;
      return true;
    case kPat:
      if (!valid_types(value, true)) return false;
      pat_ = value;
      return true;
    case kMtrrDefType:
      if ((value & ~kDefTypeWritable) != 0 || !valid_mtrr_type(value & 0xFF)) return false;
      def_type_ = value;
      return true;
    case kTscDeadline:
      apic_.write_tsc_deadline(value, guest_tsc);
      return true;
    default:
      return false;  // IA32_PLATFORM_ID and IA32_MTRRCAP are read-only; every other is absent
  }
}

}  // namespace vmbt
